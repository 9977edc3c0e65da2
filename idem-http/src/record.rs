//! What a handler's response becomes: a recorded response (and its bytes in
//! the store), or one that is passed on and not recorded.

use std::any::Any;
use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CACHE_CONTROL};
use http::{HeaderMap, Response, StatusCode};
use http_body::Body;
use idem::durable::Codec;

use crate::body::ResponseBody;

/// A response as the layer keeps it: the handler's status, headers and
/// whole body.
#[derive(Debug, Clone)]
pub(crate) struct Completed {
    pub(crate) status: StatusCode,
    /// Every header the handler set, for the client whose request ran it;
    /// a decoded record holds only the replayed ones.
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// A response that is not recorded: the key is released, so a retry runs
/// the handler again.
#[derive(Clone)]
pub(crate) enum Unrecorded {
    /// Buffered: passed on to the caller, and to the callers of this
    /// process that joined it.
    Response(Completed),
    /// What only one caller can have, a [`Handoff`] of the inner service's
    /// types: the callers that joined it get a problem.
    Handoff(Arc<Mutex<Option<Box<dyn Any + Send>>>>),
}

impl fmt::Debug for Unrecorded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unrecorded::Response(r) => f.debug_tuple("Response").field(&r.status).finish(),
            Unrecorded::Handoff(_) => f.write_str("Handoff"),
        }
    }
}

/// A response only one caller can have.
pub(crate) enum Handoff<B: Body, E> {
    /// A body over the cap: the status and headers, the body's first
    /// bytes, and the rest of it.
    TooLarge(http::response::Parts, Bytes, Pin<Box<B>>),
    /// A body that failed while it was read: its first bytes and the error.
    Failed(http::response::Parts, Bytes, B::Error),
    /// The inner service's error.
    Error(E),
}

impl Unrecorded {
    pub(crate) fn handoff<B, E>(h: Handoff<B, E>) -> Self
    where
        B: Body + Send + 'static,
        B::Error: Send,
        E: Send + 'static,
    {
        Unrecorded::Handoff(Arc::new(Mutex::new(Some(Box::new(h)))))
    }

    /// The handoff, to the first caller that asks; `None` to the others.
    pub(crate) fn take<B, E>(slot: &Mutex<Option<Box<dyn Any + Send>>>) -> Option<Handoff<B, E>>
    where
        B: Body + 'static,
        E: 'static,
    {
        let taken = slot.lock().unwrap_or_else(|e| e.into_inner()).take()?;
        taken.downcast::<Handoff<B, E>>().ok().map(|h| *h)
    }
}

/// Which responses are recorded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordPolicy {
    pub(crate) server_errors: bool,
}

impl RecordPolicy {
    /// Whether a response with this status and headers is recorded: 2xx and
    /// 3xx, and 4xx but those that say "try again" (`408`, `409`, `425`,
    /// `429`); 5xx if asked; never a response marked `no-store`.
    pub(crate) fn records(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        let by_status = match status.as_u16() {
            408 | 409 | 425 | 429 => false,
            100..=499 => true,
            _ => self.server_errors,
        };
        by_status && !no_store(headers)
    }
}

fn no_store(headers: &HeaderMap) -> bool {
    headers.get_all(CACHE_CONTROL).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|d| d.trim().eq_ignore_ascii_case("no-store"))
        })
    })
}

/// The headers a replay carries.
#[derive(Debug, Clone)]
pub(crate) struct Replayed {
    pub(crate) allowed: AllowList,
}

/// A replay's allow-list: each name once, in the order the list first
/// names it, with how many times the list names it (a map that a name's
/// values are appended to twice holds them twice: what
/// [`Replayed::filter`] gives for a name listed twice).
#[derive(Debug, Clone)]
pub(crate) struct AllowList(Arc<[(HeaderName, usize)]>);

impl From<Vec<HeaderName>> for AllowList {
    fn from(list: Vec<HeaderName>) -> Self {
        let mut names: Vec<(HeaderName, usize)> = Vec::with_capacity(list.len());
        for name in list {
            match names.iter_mut().find(|(n, _)| *n == name) {
                Some((_, times)) => *times += 1,
                None => names.push((name, 1)),
            }
        }
        Self(names.into())
    }
}

impl AllowList {
    /// `name`'s place in the list, and how many times the list names it.
    fn find(&self, name: &HeaderName) -> Option<(usize, usize)> {
        let i = self.0.iter().position(|(n, _)| n == name)?;
        Some((i, self.0[i].1))
    }
}

impl Replayed {
    /// The default allow-list: what describes the representation or the
    /// resource created, nothing about the connection, the session or the
    /// moment (`Set-Cookie`, `Date`, hop-by-hop headers are never kept).
    pub(crate) fn default_allowed() -> Vec<HeaderName> {
        use http::header::*;
        vec![
            CONTENT_TYPE,
            CONTENT_LANGUAGE,
            CONTENT_LOCATION,
            CONTENT_DISPOSITION,
            LOCATION,
            ETAG,
            LAST_MODIFIED,
            LINK,
            VARY,
        ]
    }

    /// `headers`, filtered by the allow-list, into a map sized for what
    /// it keeps and the headers the layer adds to a replay.
    pub(crate) fn filter(&self, headers: &HeaderMap) -> HeaderMap {
        let scan = self.scan(headers);
        let mut kept = HeaderMap::with_capacity(scan.values + ADDED);
        let Ok(()) = self.each_kept(headers, &scan, |name, v| {
            kept.append(name.clone(), v.clone());
            Ok::<(), Infallible>(())
        });
        kept
    }

    /// What [`filter`](Self::filter) keeps of `headers`, from one look at
    /// each of them, no lookup.
    fn scan(&self, headers: &HeaderMap) -> Scan {
        let mut scan = Scan {
            present: 0,
            values: 0,
            bytes: 0,
        };
        for (name, value) in headers {
            if let Some((i, times)) = self.allowed.find(name) {
                scan.present |= 1_u64.checked_shl(i as u32).unwrap_or(0);
                scan.values += times;
                scan.bytes += times * (name.as_str().len() + value.len());
            }
        }
        scan
    }

    /// Calls `f` with each header [`filter`](Self::filter) keeps, in the
    /// order its map holds them: each allowed name's values, as many times
    /// as the list names it. Only the names `scan` found are looked up.
    fn each_kept<E>(
        &self,
        headers: &HeaderMap,
        scan: &Scan,
        mut f: impl FnMut(&HeaderName, &HeaderValue) -> Result<(), E>,
    ) -> Result<(), E> {
        for (i, (name, times)) in self.allowed.0.iter().enumerate() {
            if i < 64 && scan.present & (1 << i) == 0 {
                continue;
            }
            let values = headers.get_all(name);
            for _ in 0..*times {
                for value in &values {
                    f(name, value)?;
                }
            }
        }
        Ok(())
    }

    /// Whether [`filter`](Self::filter) would give `headers` back as they
    /// are: each name allowed, named once by the list, and in the list's
    /// order (a record decoded from the store, written by this
    /// allow-list).
    fn keeps_as_is(&self, headers: &HeaderMap) -> bool {
        let mut after = 0;
        headers.keys().all(|name| match self.allowed.find(name) {
            Some((i, 1)) if i >= after => {
                after = i + 1;
                true
            }
            _ => false,
        })
    }
}

impl Completed {
    /// The response to the client whose request ran the handler: the
    /// handler's status, headers and body.
    pub(crate) fn into_response<B: Body>(self) -> Response<ResponseBody<B>> {
        let mut r = Response::new(ResponseBody::bytes(self.body));
        *r.status_mut() = self.status;
        *r.headers_mut() = self.headers;
        r
    }

    /// The response to a client that did not run the handler: the status,
    /// the body, the headers `replayed` allows, then `marker: true` (what
    /// [`Replayed::filter`] keeps, and the marker inserted).
    ///
    /// A record decoded from the store holds only those headers, in that
    /// order, and has room for the marker: its map becomes the
    /// response's, not filtered into another. A response shared by the
    /// call that ran it is filtered, into a map with that room.
    pub(crate) fn into_replay<B: Body>(
        self,
        replayed: &Replayed,
        marker: Option<&HeaderName>,
    ) -> Response<ResponseBody<B>> {
        let mut headers = if replayed.keeps_as_is(&self.headers) {
            self.headers
        } else {
            replayed.filter(&self.headers)
        };
        if let Some(marker) = marker {
            headers.insert(marker.clone(), HeaderValue::from_static("true"));
        }
        Completed { headers, ..self }.into_response()
    }
}

/// What an allow-list keeps of a header map ([`Replayed::scan`]).
struct Scan {
    /// Bit `i`: the map has the list's `i`-th name (a name past the 64th
    /// is looked up whether the map has it or not).
    present: u64,
    /// How many values are kept.
    values: usize,
    /// Their names' and values' bytes.
    bytes: usize,
}

/// How many headers the layer adds to a replay's map: the replay marker and
/// the retention header (a map that must grow for them allocates twice).
const ADDED: usize = 2;

/// The names no allow-list may hold: what would leak a session, lie about
/// the time, or break the connection.
pub(crate) fn never_replayed(name: &HeaderName) -> bool {
    use http::header::*;
    [
        SET_COOKIE,
        DATE,
        CONNECTION,
        TRANSFER_ENCODING,
        CONTENT_LENGTH,
        TE,
        TRAILER,
        UPGRADE,
        PROXY_AUTHENTICATE,
        HeaderName::from_static("keep-alive"),
    ]
    .contains(name)
}

/// The record format of a response: status, headers and the body as raw
/// bytes (JSON would spell every body byte as a number).
///
/// `status u16 BE | header count u16 BE | (name len u16, name, value len
/// u16, value)* | body`.
#[derive(Debug, Clone)]
pub(crate) struct ResponseCodec {
    pub(crate) replayed: Replayed,
}

impl Codec<Completed> for ResponseCodec {
    fn encode(&self, r: &Completed) -> Result<Vec<u8>, String> {
        // What `filter` would keep, written in its order, without its map,
        // into a record sized for it.
        let scan = self.replayed.scan(&r.headers);
        let count = u16::try_from(scan.values).map_err(|_| "too many headers")?;
        let mut out = Vec::with_capacity(4 + 4 * scan.values + scan.bytes + r.body.len());
        out.extend_from_slice(&r.status.as_u16().to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        self.replayed.each_kept(&r.headers, &scan, |name, value| {
            for part in [name.as_str().as_bytes(), value.as_bytes()] {
                let len = u16::try_from(part.len()).map_err(|_| "a header over 64 KiB")?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(part);
            }
            Ok::<(), String>(())
        })?;
        out.extend_from_slice(&r.body);
        Ok(out)
    }

    fn decode(&self, bytes: &[u8]) -> Result<Completed, String> {
        let mut rest = bytes;
        let status = StatusCode::from_u16(take_u16(&mut rest)?).map_err(|e| e.to_string())?;
        let count = take_u16(&mut rest)?;
        // Room for what the layer adds to a replay (and no more than a few
        // dozen: a corrupt count is caught by `take`, not by a huge map).
        let mut headers = HeaderMap::with_capacity(usize::from(count).min(64) + ADDED);
        for _ in 0..count {
            let name = take(&mut rest)?;
            let value = take(&mut rest)?;
            headers.append(
                HeaderName::from_bytes(name).map_err(|e| e.to_string())?,
                HeaderValue::from_bytes(value).map_err(|e| e.to_string())?,
            );
        }
        Ok(Completed {
            status,
            headers,
            body: Bytes::copy_from_slice(rest),
        })
    }
}

/// Unrecorded responses are never recorded: the layer records no errors.
impl Codec<Unrecorded> for ResponseCodec {
    fn encode(&self, _: &Unrecorded) -> Result<Vec<u8>, String> {
        Err("an unrecorded response is never recorded".to_string())
    }

    fn decode(&self, _: &[u8]) -> Result<Unrecorded, String> {
        Err("a record of an error, which idem-http never writes".to_string())
    }
}

fn take_u16(rest: &mut &[u8]) -> Result<u16, String> {
    match rest {
        [a, b, tail @ ..] => {
            let v = u16::from_be_bytes([*a, *b]);
            *rest = tail;
            Ok(v)
        }
        _ => Err("a truncated response record".to_string()),
    }
}

fn take<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let len = usize::from(take_u16(rest)?);
    if rest.len() < len {
        return Err("a truncated response record".to_string());
    }
    let (part, tail) = rest.split_at(len);
    *rest = tail;
    Ok(part)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{CONTENT_LANGUAGE, CONTENT_TYPE, DATE, ETAG, LINK, LOCATION, SET_COOKIE};

    fn codec() -> ResponseCodec {
        ResponseCodec {
            replayed: Replayed {
                allowed: Replayed::default_allowed().into(),
            },
        }
    }

    #[test]
    fn a_record_keeps_status_allowed_headers_and_raw_body() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(LOCATION, HeaderValue::from_static("/payments/7"));
        headers.insert(SET_COOKIE, HeaderValue::from_static("session=secret"));
        headers.insert(
            DATE,
            HeaderValue::from_static("Thu, 03 Dec 2026 18:00:00 GMT"),
        );
        let r = Completed {
            status: StatusCode::CREATED,
            headers,
            body: Bytes::from_static(b"\x00\xff{\"id\":7}"),
        };
        let c = codec();
        let bytes = Codec::<Completed>::encode(&c, &r).unwrap();
        let back = Codec::<Completed>::decode(&c, &bytes).unwrap();
        assert_eq!(back.status, StatusCode::CREATED);
        assert_eq!(back.body, r.body);
        assert_eq!(back.headers.len(), 2);
        assert_eq!(back.headers[LOCATION], "/payments/7");
        assert!(back.headers.get(SET_COOKIE).is_none());
        assert!(back.headers.get(DATE).is_none());
    }

    #[test]
    fn truncated_records_are_errors_not_panics() {
        let c = codec();
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let bytes = Codec::<Completed>::encode(
            &c,
            &Completed {
                status: StatusCode::OK,
                headers,
                body: Bytes::new(),
            },
        )
        .unwrap();
        for cut in 0..bytes.len() {
            assert!(
                Codec::<Completed>::decode(&c, &bytes[..cut]).is_err(),
                "{cut}"
            );
        }
    }

    #[test]
    fn what_is_recorded() {
        let p = RecordPolicy {
            server_errors: false,
        };
        let none = HeaderMap::new();
        for (status, recorded) in [
            (200, true),
            (201, true),
            (303, true),
            (400, true),
            (404, true),
            (422, true),
            (408, false),
            (409, false),
            (425, false),
            (429, false),
            (500, false),
            (503, false),
        ] {
            let s = StatusCode::from_u16(status).unwrap();
            assert_eq!(p.records(s, &none), recorded, "{status}");
        }
        let p5 = RecordPolicy {
            server_errors: true,
        };
        assert!(p5.records(StatusCode::INTERNAL_SERVER_ERROR, &none));
        let mut no_store = HeaderMap::new();
        no_store.insert(CACHE_CONTROL, HeaderValue::from_static("private, No-Store"));
        assert!(!p.records(StatusCode::OK, &no_store));
    }

    /// A record as every version writes it, byte for byte: records live in
    /// shared stores for a day, across deployments.
    #[test]
    fn the_record_format_is_pinned() {
        let mut headers = HeaderMap::new();
        headers.insert(SET_COOKIE, HeaderValue::from_static("s=1"));
        headers.insert(LINK, HeaderValue::from_static("<a>"));
        headers.insert(LOCATION, HeaderValue::from_static("/p/7"));
        headers.append(LINK, HeaderValue::from_static("<b>"));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let r = Completed {
            status: StatusCode::CREATED,
            headers,
            body: Bytes::from_static(b"{\"id\":7}"),
        };
        let record: &[u8] = b"\x00\xc9\x00\x04\
            \x00\x0ccontent-type\x00\x10application/json\
            \x00\x08location\x00\x04/p/7\
            \x00\x04link\x00\x03<a>\
            \x00\x04link\x00\x03<b>\
            {\"id\":7}";
        let c = codec();
        assert_eq!(Codec::<Completed>::encode(&c, &r).unwrap(), record);
        let back = Codec::<Completed>::decode(&c, record).unwrap();
        assert_eq!(back.status, StatusCode::CREATED);
        assert_eq!(&back.body[..], b"{\"id\":7}");
        assert_eq!(
            pairs(&back.headers),
            [
                ("content-type", "application/json"),
                ("location", "/p/7"),
                ("link", "<a>"),
                ("link", "<b>"),
            ]
        );
    }

    fn pairs(headers: &HeaderMap) -> Vec<(&str, &str)> {
        headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect()
    }

    /// `Replayed::filter` as it was before records were written from the
    /// response's own map.
    fn old_filter(allowed: &[HeaderName], headers: &HeaderMap) -> HeaderMap {
        let mut kept = HeaderMap::new();
        for name in allowed {
            for v in headers.get_all(name) {
                kept.append(name.clone(), v.clone());
            }
        }
        kept
    }

    /// `ResponseCodec::encode` as it was.
    fn old_encode(allowed: &[HeaderName], r: &Completed) -> Vec<u8> {
        let headers = old_filter(allowed, &r.headers);
        let mut out = Vec::with_capacity(4 + r.body.len() + 64 * headers.len());
        out.extend_from_slice(&r.status.as_u16().to_be_bytes());
        let count = u16::try_from(headers.len()).unwrap();
        out.extend_from_slice(&count.to_be_bytes());
        for (name, value) in &headers {
            for part in [name.as_str().as_bytes(), value.as_bytes()] {
                let len = u16::try_from(part.len()).unwrap();
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(part);
            }
        }
        out.extend_from_slice(&r.body);
        out
    }

    /// The headers of a replay as service.rs's `completed` made them
    /// before `Completed::into_replay`.
    fn old_replay(allowed: &[HeaderName], marker: Option<&HeaderName>, h: &HeaderMap) -> HeaderMap {
        let mut kept = old_filter(allowed, h);
        if let Some(marker) = marker {
            kept.insert(marker.clone(), HeaderValue::from_static("true"));
        }
        kept
    }

    /// Allow-lists: the default, reversed, with a name twice, with the
    /// marker's name, with a name of its own, empty, and long.
    fn allow_lists() -> Vec<Vec<HeaderName>> {
        let default = Replayed::default_allowed();
        let mut reversed = default.clone();
        reversed.reverse();
        vec![
            default.clone(),
            reversed,
            vec![CONTENT_TYPE, LINK, LOCATION, LINK],
            vec![
                LOCATION,
                HeaderName::from_static("idempotent-replayed"),
                CONTENT_TYPE,
            ],
            vec![HeaderName::from_static("x-request-cost"), ETAG],
            vec![],
            // Longer than the 64 names `encode` notes by place.
            (0..70)
                .map(|i| HeaderName::try_from(format!("x-{i}")).unwrap())
                .chain([
                    LOCATION,
                    HeaderName::from_static("x-request-cost"),
                    CONTENT_TYPE,
                    LOCATION,
                ])
                .collect(),
        ]
    }

    /// Header maps made of a few names (allowed by some lists, by none),
    /// one to three values each, in every order the generator picks.
    fn header_maps() -> Vec<HeaderMap> {
        let names = [
            CONTENT_TYPE,
            LOCATION,
            LINK,
            ETAG,
            CONTENT_LANGUAGE,
            SET_COOKIE,
            DATE,
            HeaderName::from_static("x-request-cost"),
            HeaderName::from_static("idempotent-replayed"),
        ];
        let mut state = 0x5eed_u64;
        let mut next = move |n: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            ((state >> 33) % n as u64) as usize
        };
        (0..400)
            .map(|_| {
                let mut h = HeaderMap::new();
                for _ in 0..next(8) {
                    let name = names[next(names.len())].clone();
                    let value = HeaderValue::from_str(&format!("v{}", next(100))).unwrap();
                    if next(3) == 0 {
                        h.insert(name, value);
                    } else {
                        h.append(name, value);
                    }
                }
                h
            })
            .collect()
    }

    #[test]
    fn records_and_replays_are_what_they_were() {
        let marker = HeaderName::from_static("idempotent-replayed");
        let maps = header_maps();
        for allowed in allow_lists() {
            let replayed = Replayed {
                allowed: allowed.clone().into(),
            };
            let c = ResponseCodec {
                replayed: replayed.clone(),
            };
            for headers in &maps {
                let r = Completed {
                    status: StatusCode::OK,
                    headers: headers.clone(),
                    body: Bytes::from_static(b"body"),
                };
                let record = Codec::<Completed>::encode(&c, &r).unwrap();
                assert_eq!(record, old_encode(&allowed, &r), "{allowed:?} {headers:?}");
                assert_eq!(
                    pairs(&replayed.filter(headers)),
                    pairs(&old_filter(&allowed, headers))
                );
                // Replays: of the response shared by the call that ran it,
                // of the record, and of records written by other lists.
                let mut shapes = vec![r.clone(), Codec::<Completed>::decode(&c, &record).unwrap()];
                for other in allow_lists() {
                    let c = ResponseCodec {
                        replayed: Replayed {
                            allowed: other.into(),
                        },
                    };
                    let record = Codec::<Completed>::encode(&c, &r).unwrap();
                    shapes.push(Codec::<Completed>::decode(&c, &record).unwrap());
                }
                for done in shapes {
                    for marker in [None, Some(&marker)] {
                        let want = old_replay(&allowed, marker, &done.headers);
                        let got = done
                            .clone()
                            .into_replay::<http_body_util::Empty<Bytes>>(&replayed, marker);
                        assert_eq!(got.status(), StatusCode::OK);
                        assert_eq!(pairs(got.headers()), pairs(&want), "{allowed:?} {done:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_record_written_by_this_list_is_replayed_in_place() {
        let c = codec();
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(LOCATION, HeaderValue::from_static("/p/7"));
        headers.insert(DATE, HeaderValue::from_static("now"));
        let r = Completed {
            status: StatusCode::CREATED,
            headers,
            body: Bytes::new(),
        };
        assert!(!c.replayed.keeps_as_is(&r.headers));
        let record = Codec::<Completed>::encode(&c, &r).unwrap();
        let back = Codec::<Completed>::decode(&c, &record).unwrap();
        assert!(c.replayed.keeps_as_is(&back.headers));
        let other = Replayed {
            allowed: vec![LOCATION, CONTENT_TYPE].into(),
        };
        assert!(!other.keeps_as_is(&back.headers));
    }
}
