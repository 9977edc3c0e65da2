//! The layer's own answers: `application/problem+json` (RFC 9457).
//!
//! Each has a `type` URI under the layer's
//! [`problem_base`](crate::IdempotencyLayerBuilder::problem_base) (this
//! page by default), a `title`, and a `detail` that says what to do:
//!
//! | status | type | when |
//! |---|---|---|
//! | `400` | `#key-missing` | the route requires a key and the request has none |
//! | `400` | `#key-invalid` | empty, repeated, over 255 characters, or not visible ASCII |
//! | `409` | `#request-in-progress` | a request with this key is still running (with `Retry-After`) |
//! | `400` | `#request-unreadable` | the request body could not be read; nothing was claimed |
//! | `413` | `#request-too-large` | the body is over the layer's cap; nothing was claimed |
//! | `422` | `#key-reused` | the key was used for a different request (method, path, query, body or chosen headers) |
//! | `500` | `#handler-panicked` | the handler panicked; nothing was recorded, a retry runs it again |
//! | `500` | `#scope-missing` | the scope hook found no principal: a misconfiguration |
//! | `500` | `#record-unreadable` | the stored record cannot be read by this version |
//! | `503` | `#store-unavailable` | the store could not be reached; the handler did not run (with `Retry-After`) |
//! | `503` | `#not-recorded` | the handler ran but its response could not be recorded (its lease was lost) |

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};

/// One of the layer's problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Problem {
    KeyMissing,
    KeyInvalid,
    InProgress,
    TooLarge,
    BodyUnreadable,
    KeyReused,
    Panicked,
    ScopeMissing,
    Unreadable,
    StoreUnavailable,
    NotRecorded,
    /// A response that another caller of this process took (too large to
    /// share, or the inner service's error).
    NotShared,
}

impl Problem {
    fn parts(self) -> (StatusCode, &'static str, &'static str) {
        use Problem::*;
        match self {
            KeyMissing => (
                StatusCode::BAD_REQUEST,
                "key-missing",
                "Idempotency-Key is missing",
            ),
            KeyInvalid => (
                StatusCode::BAD_REQUEST,
                "key-invalid",
                "Idempotency-Key is invalid",
            ),
            InProgress => (
                StatusCode::CONFLICT,
                "request-in-progress",
                "A request with this Idempotency-Key is in progress",
            ),
            BodyUnreadable => (
                StatusCode::BAD_REQUEST,
                "request-unreadable",
                "The request body could not be read",
            ),
            TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "request-too-large",
                "The request body is too large",
            ),
            KeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "key-reused",
                "Idempotency-Key reused for a different request",
            ),
            Panicked => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "handler-panicked",
                "The request failed",
            ),
            ScopeMissing => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "scope-missing",
                "The request has no idempotency scope",
            ),
            Unreadable => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "record-unreadable",
                "The stored response cannot be read",
            ),
            StoreUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                "Idempotency store unavailable",
            ),
            NotRecorded => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not-recorded",
                "The response could not be recorded",
            ),
            NotShared => (
                StatusCode::CONFLICT,
                "response-not-shared",
                "A concurrent request with this Idempotency-Key got the response",
            ),
        }
    }

    pub(crate) fn status(self) -> StatusCode {
        self.parts().0
    }

    /// The response: `detail` says what happened and what to do;
    /// `retry_after` sets `Retry-After` (whole seconds, at least 1).
    pub(crate) fn response(
        self,
        base: &str,
        detail: &str,
        retry_after: Option<Duration>,
    ) -> Response<Bytes> {
        let (status, slug, title) = self.parts();
        let body = serde_json::json!({
            "type": format!("{base}#{slug}"),
            "title": title,
            "status": status.as_u16(),
            "detail": detail,
        });
        let mut r = Response::new(Bytes::from(body.to_string()));
        *r.status_mut() = status;
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(after) = retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            r.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_is_problem_json_with_retry_after_rounded_up() {
        let r = Problem::InProgress.response(
            "https://example.com/problems",
            "retry later",
            Some(Duration::from_millis(1_200)),
        );
        assert_eq!(r.status(), StatusCode::CONFLICT);
        assert_eq!(r.headers()[CONTENT_TYPE], "application/problem+json");
        assert_eq!(r.headers()[RETRY_AFTER], "2");
        let v: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(
            v["type"],
            "https://example.com/problems#request-in-progress"
        );
        assert_eq!(v["status"], 409);
        assert_eq!(v["detail"], "retry later");
    }
}
