//! What a call can fail with.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// Why a call to [`SingleFlight::run`](crate::SingleFlight::run) (or one of
/// its siblings) did not return a value.
///
/// Every caller of one flight receives a clone of the same error: the work ran
/// once and failed once. Errors are never cached; the next call after a
/// failed flight executes again.
///
/// # Sharing an error that is not `Clone`
///
/// `E` must be `Clone` because each coalesced caller gets its own copy. Wrap
/// an error type that is not (`std::io::Error`, `anyhow::Error`) in an
/// [`Arc`]:
///
/// ```
/// use std::sync::Arc;
/// use idem::{Error, SingleFlight};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let flight: SingleFlight<u32, String, Arc<std::io::Error>> = SingleFlight::new();
/// let res = flight
///     .run(7, || async { Err(Arc::new(std::io::Error::other("disk on fire"))) })
///     .await;
/// match res {
///     Err(Error::Failed(e)) => assert_eq!(e.to_string(), "disk on fire"),
///     other => panic!("unexpected {other:?}"),
/// }
/// # }
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error<E> {
    /// The work returned `Err(e)`.
    Failed(E),
    /// The work panicked. The panic was caught, so no caller hangs and the
    /// key is free again.
    Panicked(Panicked),
    /// A flight started by [`run_detached`](crate::SingleFlight::run_detached)
    /// lost its task before the work finished: the task was dropped, which
    /// happens when its tokio runtime shuts down. Only the caller that
    /// spawned the task sees this (its work went with the task); callers
    /// that joined the flight with work of their own take it over instead.
    ///
    /// A `Clone` of a result that panics is reported as
    /// [`Error::Panicked`], with a message that says so.
    Aborted,
    /// Refused, and nothing ran: the table is bounded with
    /// [`Eviction::Never`](crate::Eviction::Never) and already holds
    /// `max_entries` stored results and running flights, so this call's
    /// new key has no room. Retry after `retry_after`, when the oldest
    /// stored result expires and frees its slot; `None` when the table
    /// holds only running flights, whose end cannot be known.
    Full {
        /// How long until the oldest stored result expires.
        retry_after: Option<std::time::Duration>,
    },
    /// Refused, and nothing ran: [`Builder::max_in_flight`](crate::Builder::max_in_flight)
    /// flights are running already. Retry once one of them has ended.
    Busy,
    /// The key is running or stored for a call with another
    /// [`Fingerprint`](crate::Fingerprint): the same key was reused for a
    /// different request. Nothing ran, and the other call's result is not
    /// given out. Not retryable as is: the caller must use a new key, or
    /// send the original request. An `#[idempotent]` fn with a
    /// `fingerprint` returns it as `Err(E::from(`[`Mismatch`]`))`.
    Mismatch,
}

impl<E> Error<E> {
    /// The work's own error, if that is what this is.
    pub fn failed(self) -> Option<E> {
        match self {
            Error::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// Turns a panic back into a panic on the current thread, with the
    /// original message, and returns every other error unchanged.
    ///
    /// This is what [`#[idempotent]`](crate::idempotent) does so that a
    /// panic in coalesced work is a panic for each of its callers.
    ///
    /// # Panics
    ///
    /// If `self` is [`Error::Panicked`]: that is its purpose.
    pub fn resume_panic(self) -> Self {
        match self {
            Error::Panicked(p) => std::panic::resume_unwind(Box::new(p.message().to_owned())),
            other => other,
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
            Error::Panicked(p) => f.debug_tuple("Panicked").field(&p.message()).finish(),
            Error::Aborted => f.write_str("Aborted"),
            Error::Full { retry_after } => f
                .debug_struct("Full")
                .field("retry_after", retry_after)
                .finish(),
            Error::Busy => f.write_str("Busy"),
            Error::Mismatch => f.write_str("Mismatch"),
        }
    }
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Failed(e) => fmt::Display::fmt(e, f),
            Error::Panicked(p) => fmt::Display::fmt(p, f),
            Error::Aborted => f.write_str("detached work was dropped before it finished"),
            Error::Full {
                retry_after: Some(d),
            } => write!(
                f,
                "the table is full of results kept for retries: nothing ran; retry in {d:?}"
            ),
            Error::Full { retry_after: None } => {
                f.write_str("the table is full of running flights: nothing ran; retry later")
            }
            Error::Busy => f.write_str(
                "too many flights are running (max_in_flight): nothing ran; retry later",
            ),
            Error::Mismatch => f.write_str(
                "the key was used for a different request (its fingerprint differs): nothing ran",
            ),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for Error<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Failed(e) => Some(e),
            _ => None,
        }
    }
}

/// The panic of a flight's work, with its message.
///
/// ```
/// use idem::{Error, SingleFlight};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let flight: SingleFlight<u8, u8> = SingleFlight::new();
/// let res = flight.run(1, || async { panic!("boom") }).await;
/// let Err(Error::Panicked(p)) = res else { panic!("expected a panic") };
/// assert_eq!(p.message(), "boom");
/// # }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Panicked {
    message: Arc<str>,
}

impl Panicked {
    pub(crate) fn from_payload(payload: &(dyn Any + Send)) -> Self {
        let message: Arc<str> = if let Some(s) = payload.downcast_ref::<&'static str>() {
            Arc::from(*s)
        } else if let Some(s) = payload.downcast_ref::<String>() {
            Arc::from(s.as_str())
        } else {
            Arc::from("<panic payload is not a string>")
        };
        Self { message }
    }

    pub(crate) fn from_message(message: String) -> Self {
        Self {
            message: Arc::from(message),
        }
    }

    /// The panic message, or `<panic payload is not a string>` when the
    /// payload was neither a `&str` nor a `String`.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for Panicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Panicked").field(&self.message()).finish()
    }
}

impl fmt::Display for Panicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "work panicked: {}", self.message)
    }
}

impl std::error::Error for Panicked {}

/// Why the table of an [`#[idempotent]`](crate::idempotent) fn refused a
/// call, without running its body: what the function's error type must be
/// convertible from (`E: From<Refused>`) for the function to return a
/// refusal as an `Err`.
///
/// A table refuses calls only when it is bounded so: with
/// `#[idempotent(eviction = "never", max_entries = N)]` a new key is
/// refused when `N` results are held ([`Refused::Full`]), and with
/// `max_in_flight = N` a call that would start another execution is refused
/// while `N` are running ([`Refused::Busy`]). Calls that join a running
/// execution or get a stored result are never refused. These are the
/// table's [`Error::Full`] and [`Error::Busy`], as the function returns
/// them; a function with `flight = ...` returns them so too if its error
/// type implements `From<Refused>`, and panics otherwise.
///
/// Nothing ran: the caller may retry the same call later.
///
/// ```
/// use idem::{idempotent, Refused};
///
/// #[derive(Debug, Clone, PartialEq)]
/// enum PayError {
///     Declined,
///     TryLater(Refused),
/// }
///
/// impl From<Refused> for PayError {
///     fn from(r: Refused) -> Self {
///         PayError::TryLater(r)
///     }
/// }
///
/// // At most 2 receipts, each kept for its whole day: never dropped early.
/// #[idempotent(key = order, ttl = "1d", max_entries = 2, eviction = "never")]
/// async fn pay(order: u64) -> Result<String, PayError> {
///     if order == 0 {
///         return Err(PayError::Declined);
///     }
///     Ok(format!("receipt {order}"))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(pay(1).await, Ok("receipt 1".to_string()));
/// assert_eq!(pay(2).await, Ok("receipt 2".to_string()));
/// // Full: a third order is refused, and its body does not run.
/// let Err(PayError::TryLater(Refused::Full { retry_after })) = pay(3).await else {
///     panic!("expected a refusal");
/// };
/// assert!(retry_after.is_some(), "the oldest receipt expires within the day");
/// // The receipts stay: retries of orders 1 and 2 still get them.
/// assert_eq!(pay(1).await, Ok("receipt 1".to_string()));
/// # }
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The table holds `max_entries` stored results and running executions
    /// (`eviction = "never"`), and this call's key is new: see
    /// [`Error::Full`]. Retry after `retry_after`, when the oldest stored
    /// result expires and frees its slot; `None` when the table holds only
    /// running executions, whose end cannot be known.
    Full {
        /// How long until the oldest stored result expires.
        retry_after: Option<std::time::Duration>,
    },
    /// `max_in_flight` executions are running already, and this call would
    /// start another: see [`Error::Busy`]. Retry once one of them has
    /// ended.
    Busy,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Full {
                retry_after: Some(d),
            } => write!(
                f,
                "refused: the table is full of results kept for retries; nothing ran; retry in {d:?}"
            ),
            Refused::Full { retry_after: None } => f.write_str(
                "refused: the table is full of running executions; nothing ran; retry later",
            ),
            Refused::Busy => f.write_str(
                "refused: too many executions are running (max_in_flight); nothing ran; retry later",
            ),
        }
    }
}

impl std::error::Error for Refused {}

/// What an [`#[idempotent]`](crate::idempotent) fn with a `fingerprint`
/// returns, as `Err(E::from(Mismatch))`, when its key is running or stored
/// for a call with another fingerprint: the same key reused for a different
/// request (an order id sent again with another amount). Its body does not
/// run, and the other call's result is not given out.
///
/// This is the table's [`Error::Mismatch`] as the function returns it, so
/// the function's error type must be convertible from it
/// (`E: From<Mismatch>`; `Mismatch` itself will do). Not retryable as is:
/// the caller must use a new key, or send the original request again.
///
/// ```
/// use idem::{idempotent, Mismatch};
///
/// #[derive(Debug, Clone, PartialEq)]
/// enum PayError {
///     KeyReused(Mismatch),
/// }
///
/// impl From<Mismatch> for PayError {
///     fn from(m: Mismatch) -> Self {
///         PayError::KeyReused(m)
///     }
/// }
///
/// #[derive(Clone)]
/// struct Order {
///     id: u64,
///     cents: u64,
///     currency: String,
/// }
///
/// #[idempotent(key = order.id, fingerprint = (order.cents, &order.currency), ttl = "1h")]
/// async fn pay(order: Order) -> Result<String, PayError> {
///     Ok(format!("charged {} {}", order.cents, order.currency))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let order = Order { id: 7, cents: 1_250, currency: "EUR".into() };
/// assert_eq!(pay(order.clone()).await, Ok("charged 1250 EUR".to_string()));
/// // The same order id with another amount: caught, and nothing is charged.
/// let reused = Order { cents: 9_999, ..order.clone() };
/// assert_eq!(pay(reused).await, Err(PayError::KeyReused(Mismatch)));
/// // The genuine retry gets the stored receipt.
/// assert_eq!(pay(order).await, Ok("charged 1250 EUR".to_string()));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mismatch;

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the key was used for a different request (its fingerprint differs): nothing ran",
        )
    }
}

impl std::error::Error for Mismatch {}
