//! [`PostgresStore`]: the store protocol on a PostgreSQL table.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use idem::store::{Claimed, Lease, Owner, Record, Store, StoreError, StoreKey};
use idem::Fingerprint;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{AssertSqlSafe, Row};

use crate::names::{InvalidName, Names};
use crate::sql::Statements;

/// The records table when none is named.
pub(crate) const DEFAULT_TABLE: &str = "idem_records";

/// How long a claim waits for a row lock unless told otherwise.
const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a transactional claim's record is kept unless told otherwise.
const DEFAULT_RETAIN: Duration = Duration::from_secs(24 * 3600);

/// The longest duration the store writes: a thousand years, in
/// microseconds (far inside `bigint` and `timestamptz`).
const MAX_US: i64 = 1_000 * 366 * 24 * 3600 * 1_000_000;

/// How many times a claim looks again when the key changed hands between
/// its read and its write, before it gives up.
pub(crate) const MAX_ROUNDS: usize = 8;

/// The [`Store`] protocol on a PostgreSQL table, over a [`PgPool`]; and
/// [claims in your own transaction](PostgresStore::claim_in).
///
/// See the [crate docs](crate) for the schema, the statements, and when to
/// use which mode.
///
/// ```no_run
/// use std::time::Duration;
/// use idem::store::{Claimed, Owner, Store, StoreKey};
/// use idem_postgres::PostgresStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/test").await?;
/// let store = PostgresStore::new(pool);
/// store.migrate().await?;
///
/// let key = StoreKey { namespace: "payments", key: "order-7" };
/// match store.claim(key, None, Owner::random(), Duration::from_secs(30)).await? {
///     Claimed::Leased(lease) => {
///         // ... charge, passing `lease.fence` to the payment service ...
///         store.complete(key, &lease, b"receipt-1", Duration::from_secs(86_400)).await?;
///     }
///     Claimed::Completed(record) => println!("replayed: {:?}", record.payload),
///     Claimed::Running { retry_after } => println!("running elsewhere, retry in {retry_after:?}"),
///     Claimed::Mismatch => println!("order-7 was used for another request"),
///     _ => {}
/// }
/// # Ok(())
/// # }
/// ```
///
/// # Errors and retries
///
/// A failed connection, a pool that timed out, or an error of the
/// database gives [`StoreError::Unavailable`], wrapping the
/// [`sqlx::Error`]. When it came after the statement was sent, the outcome
/// is **ambiguous**: the statement may have committed and only its reply
/// been lost. Every method is safe to retry with the same owner and lease:
/// a claim finds its own lease and gets it back, a completion finds its
/// own record and succeeds, a renewal renews again, and a release finds
/// the key released ([`StoreError::Fenced`]) or releases it. A table that
/// does not exist is reported as unavailable too, with a word on
/// [`migrate`](Self::migrate).
///
/// A row this version cannot read (a negative fencing token, an unknown
/// state: written by hand, or by a newer version) gives
/// [`StoreError::Corrupt`].
///
/// # Cancel safety
///
/// Dropping a future of this store after its statement was sent is the
/// same ambiguity as a lost reply: the statement may or may not have
/// committed. Retry under the same owner and lease, or let the lease
/// expire.
#[derive(Clone)]
#[must_use]
pub struct PostgresStore {
    pub(crate) pool: PgPool,
    pub(crate) names: Arc<Names>,
    pub(crate) sql: Arc<Statements>,
    /// `lock_timeout` as PostgreSQL reads it ("0" for none).
    pub(crate) lock_timeout: Arc<str>,
    pub(crate) lock_wait: Duration,
    pub(crate) retain: Duration,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("table", &self.names.table)
            .field("lock_timeout", &self.lock_wait)
            .field("retain", &self.retain)
            .finish_non_exhaustive()
    }
}

/// Configures a [`PostgresStore`]: from [`PostgresStore::builder`].
#[derive(Debug)]
#[must_use]
pub struct Builder {
    pool: PgPool,
    schema: Option<String>,
    table: String,
    lock_timeout: Duration,
    retain: Duration,
}

impl Builder {
    /// The schema of the table, its sequence and its migrations table
    /// (default: none given, so the first schema of the connection's
    /// `search_path`, usually `public`). It must exist before
    /// [`migrate`](PostgresStore::migrate).
    pub fn schema(mut self, schema: &str) -> Self {
        self.schema = Some(schema.to_owned());
        self
    }

    /// The records table (default `idem_records`). The sequence is
    /// `<table>_fence`, the index `<table>_expires_at`, the migrations
    /// table `<table>_migrations`.
    ///
    /// Any name is taken as it is written (quoted: capitals, spaces and
    /// quotes are part of it); [`build`](Self::build) refuses the empty
    /// name, a NUL, and a name longer than 52 bytes (63 for the schema),
    /// which PostgreSQL would truncate.
    pub fn table(mut self, table: &str) -> Self {
        table.clone_into(&mut self.table);
        self
    }

    /// How long a claim waits for another transaction's hold on the key
    /// (default 5 s; zero waits without end), after which it answers that
    /// the key is in progress: [`Claimed::Running`] with this as
    /// `retry_after`, or [`TxClaim::InProgress`](crate::TxClaim::InProgress).
    ///
    /// A claim waits when the key is held by a transaction that has not
    /// ended: a [transactional claim](PostgresStore::claim_in) of the same
    /// key, or the takeover of an expired entry. It is set for the claim's
    /// own statements only (`set_config('lock_timeout', …, true)`, the
    /// function form of `SET LOCAL`), and the transaction's own setting is
    /// restored after them.
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// How long the record of a [transactional
    /// claim](PostgresStore::claim_in) is kept after its completion
    /// (default 24 hours). The [`Store`] methods take theirs per call.
    pub fn retain(mut self, retain: Duration) -> Self {
        self.retain = retain;
        self
    }

    /// The store.
    ///
    /// # Errors
    ///
    /// [`InvalidName`] for a table or schema name PostgreSQL would not
    /// keep as written (see [`table`](Self::table)).
    pub fn build(self) -> Result<PostgresStore, InvalidName> {
        let names = Names::new(self.schema.as_deref(), &self.table)?;
        Ok(PostgresStore {
            pool: self.pool,
            sql: Arc::new(Statements::new(&names)),
            names: Arc::new(names),
            lock_timeout: lock_timeout_setting(self.lock_timeout).into(),
            lock_wait: self.lock_timeout,
            retain: self.retain,
        })
    }
}

impl PostgresStore {
    /// A store on table `idem_records` of `pool`'s database, with the
    /// defaults of [`builder`](Self::builder).
    ///
    /// Run [`migrate`](Self::migrate) once (at start-up, say) to create
    /// the table.
    pub fn new(pool: PgPool) -> Self {
        Self::builder(pool)
            .build()
            .expect("the default table name is valid")
    }

    /// A store to configure: schema, table, lock timeout, retention of
    /// transactional claims.
    pub fn builder(pool: PgPool) -> Builder {
        Builder {
            pool,
            schema: None,
            table: DEFAULT_TABLE.to_owned(),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            retain: DEFAULT_RETAIN,
        }
    }

    /// The pool the store runs its statements on.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The records table, quoted and qualified as it appears in the
    /// store's SQL (`"idem_records"`, `"app"."records"`).
    pub fn table(&self) -> &str {
        &self.names.table
    }

    /// A database error as a store error.
    pub(crate) fn error(&self, e: sqlx::Error) -> StoreError {
        if has_code(&e, "42P01") {
            return StoreError::Unavailable(
                format!(
                    "{e} (create the table {} with PostgresStore::migrate, or with the SQL of PostgresStore::schema_sql)",
                    self.names.table
                )
                .into(),
            );
        }
        unavailable(e)
    }
}

pub(crate) fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

/// Whether `e` is a database error with SQLSTATE `code`.
pub(crate) fn has_code(e: &sqlx::Error, code: &str) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some(code))
}

/// Whether `e` is `lock_not_available` (55P03): `lock_timeout` passed.
pub(crate) fn is_lock_timeout(e: &sqlx::Error) -> bool {
    has_code(e, "55P03")
}

/// A duration as whole microseconds, rounded up, within `1..=MAX_US`.
pub(crate) fn micros(d: Duration) -> i64 {
    let us = d.as_micros() + u128::from(!d.subsec_nanos().is_multiple_of(1_000));
    i64::try_from(us).unwrap_or(MAX_US).clamp(1, MAX_US)
}

/// Microseconds left as a duration; none when past.
pub(crate) fn left(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

/// `lock_timeout` for `d`: whole milliseconds, rounded up; "0" disables it.
pub(crate) fn lock_timeout_setting(d: Duration) -> String {
    if d.is_zero() {
        return "0".to_owned();
    }
    let ms = d.as_millis() + u128::from(!d.subsec_nanos().is_multiple_of(1_000_000));
    // PostgreSQL takes at most INT_MAX milliseconds.
    format!("{}ms", ms.min(i32::MAX as u128))
}

/// A call's fingerprint as the table keeps it: the 64 bits as a `bigint`,
/// 0 for none.
pub(crate) fn fingerprint_column(fp: Option<Fingerprint>) -> i64 {
    fp.map_or(0, |f| f.get() as i64)
}

/// Whether an entry stored with fingerprint `stored` may answer a call
/// with `call` (0 for none, on either side).
fn fingerprints_match(stored: i64, call: i64) -> bool {
    stored == call || stored == 0 || call == 0
}

/// A row of [`Statements::read`].
pub(crate) struct Entry {
    completed: bool,
    fingerprint: i64,
    fence: u64,
    mine: bool,
    payload: Option<Vec<u8>>,
    left_us: i64,
}

impl Entry {
    pub(crate) fn parse(row: &PgRow, key: StoreKey<'_>) -> Result<Self, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            key: key.to_string(),
            reason,
        };
        let get = |e: sqlx::Error| corrupt(format!("its row is not one idem-postgres reads: {e}"));
        let state: String = row.try_get("state").map_err(get)?;
        let completed = match state.as_str() {
            "completed" => true,
            "leased" => false,
            other => return Err(corrupt(format!("its row has the unknown state {other:?}"))),
        };
        let fence: i64 = row.try_get("fence").map_err(get)?;
        Ok(Self {
            completed,
            fingerprint: row.try_get("fingerprint").map_err(get)?,
            fence: fence_of(fence)
                .ok_or_else(|| corrupt(format!("its fencing token {fence} is not positive")))?,
            mine: row.try_get("mine").map_err(get)?,
            payload: row.try_get("payload").map_err(get)?,
            left_us: row.try_get("left_us").map_err(get)?,
        })
    }

    /// Whether the entry has not expired.
    pub(crate) fn is_live(&self) -> bool {
        self.left_us > 0
    }

    /// Whether a call with fingerprint `fp` may be answered by this entry.
    pub(crate) fn matches(&self, fp: i64) -> bool {
        fingerprints_match(self.fingerprint, fp)
    }

    pub(crate) fn is_completed(&self) -> bool {
        self.completed
    }

    pub(crate) fn left(&self) -> Duration {
        left(self.left_us)
    }

    /// The record of a completed entry (a transactional claim committed
    /// without a completion has an empty payload).
    pub(crate) fn into_record(self) -> Record {
        Record {
            fence: self.fence,
            payload: self.payload.unwrap_or_default(),
        }
    }

    /// What a claim by `owner` with fingerprint `fp` finds in this live
    /// entry.
    fn answer(self, owner: Owner, fp: i64) -> Claimed {
        if self.completed {
            return if self.matches(fp) {
                Claimed::Completed(self.into_record())
            } else {
                Claimed::Mismatch
            };
        }
        if self.mine {
            // The caller's own claim, whose reply was lost: the same lease.
            return Claimed::Leased(Lease {
                fence: self.fence,
                owner,
                ttl: self.left(),
            });
        }
        if self.matches(fp) {
            Claimed::Running {
                retry_after: self.left(),
            }
        } else {
            Claimed::Mismatch
        }
    }
}

/// A fencing token as read: positive, or not one of ours.
pub(crate) fn fence_of(column: i64) -> Option<u64> {
    u64::try_from(column).ok().filter(|f| *f > 0)
}

fn no_fence(key: StoreKey<'_>, fence: i64) -> StoreError {
    StoreError::Corrupt {
        key: key.to_string(),
        reason: format!("the sequence gave the fencing token {fence}, not a positive one"),
    }
}

impl Store for PostgresStore {
    async fn claim(
        &self,
        key: StoreKey<'_>,
        fingerprint: Option<Fingerprint>,
        owner: Owner,
        lease: Duration,
    ) -> Result<Claimed, StoreError> {
        let fp = fingerprint_column(fingerprint);
        let owner_hex = owner.to_hex();
        for _ in 0..MAX_ROUNDS {
            // A plain read first: a replay, or a key running elsewhere,
            // writes nothing and takes no lock.
            let row = sqlx::query(AssertSqlSafe(Arc::clone(&self.sql.read)))
                .bind(key.namespace)
                .bind(key.key)
                .bind(&owner_hex)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| self.error(e))?;
            if let Some(row) = row {
                let entry = Entry::parse(&row, key)?;
                if entry.is_live() {
                    return Ok(entry.answer(owner, fp));
                }
            }
            // Vacant or expired: a new lease, unless someone else's write
            // got there first (then no row, and the next read sees it).
            let row = sqlx::query(AssertSqlSafe(Arc::clone(&self.sql.lease)))
                .bind(key.namespace)
                .bind(key.key)
                .bind(fp)
                .bind(&owner_hex)
                .bind(micros(lease))
                .bind(&*self.lock_timeout)
                .fetch_optional(&self.pool)
                .await;
            match row {
                Ok(Some(row)) => {
                    let fence: i64 = row.try_get("fence").map_err(unavailable)?;
                    let left_us: i64 = row.try_get("left_us").map_err(unavailable)?;
                    return Ok(Claimed::Leased(Lease {
                        fence: fence_of(fence).ok_or_else(|| no_fence(key, fence))?,
                        owner,
                        ttl: left(left_us),
                    }));
                }
                Ok(None) => {}
                Err(e) if is_lock_timeout(&e) => {
                    return Ok(Claimed::Running {
                        retry_after: self.lock_wait,
                    })
                }
                Err(e) => return Err(self.error(e)),
            }
        }
        Err(StoreError::Unavailable(
            format!(
                "the key {key} changed hands {MAX_ROUNDS} times during one claim (leases shorter than a round trip?)"
            )
            .into(),
        ))
    }

    async fn renew(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(AssertSqlSafe(Arc::clone(&self.sql.renew)))
            .bind(key.namespace)
            .bind(key.key)
            .bind(fence_column(lease.fence))
            .bind(lease.owner.to_hex())
            .bind(micros(ttl))
            .execute(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        fenced_unless(done.rows_affected() == 1)
    }

    async fn complete(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
        payload: &[u8],
        retain: Duration,
    ) -> Result<(), StoreError> {
        let done: bool = sqlx::query_scalar(AssertSqlSafe(Arc::clone(&self.sql.complete)))
            .bind(key.namespace)
            .bind(key.key)
            .bind(fence_column(lease.fence))
            .bind(lease.owner.to_hex())
            .bind(payload)
            .bind(micros(retain))
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        fenced_unless(done)
    }

    async fn release(&self, key: StoreKey<'_>, lease: &Lease) -> Result<(), StoreError> {
        let done = sqlx::query(AssertSqlSafe(Arc::clone(&self.sql.release)))
            .bind(key.namespace)
            .bind(key.key)
            .bind(fence_column(lease.fence))
            .bind(lease.owner.to_hex())
            .execute(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        fenced_unless(done.rows_affected() == 1)
    }
}

/// A fencing token as the `bigint` column holds it. A token above
/// `i64::MAX` was not issued by this store, and matches no row.
pub(crate) fn fence_column(fence: u64) -> i64 {
    i64::try_from(fence).unwrap_or(-1)
}

fn fenced_unless(done: bool) -> Result<(), StoreError> {
    if done {
        Ok(())
    } else {
        Err(StoreError::Fenced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_whole_microseconds_within_bounds() {
        assert_eq!(micros(Duration::ZERO), 1);
        assert_eq!(micros(Duration::from_nanos(1)), 1);
        assert_eq!(micros(Duration::from_nanos(1_001)), 2);
        assert_eq!(micros(Duration::from_millis(400)), 400_000);
        assert_eq!(micros(Duration::MAX), MAX_US);
        assert_eq!(left(-5), Duration::ZERO);
        assert_eq!(left(1_500), Duration::from_micros(1_500));
    }

    #[test]
    fn lock_timeouts_are_whole_milliseconds() {
        assert_eq!(lock_timeout_setting(Duration::ZERO), "0");
        assert_eq!(lock_timeout_setting(Duration::from_micros(1)), "1ms");
        assert_eq!(lock_timeout_setting(Duration::from_millis(250)), "250ms");
        assert_eq!(lock_timeout_setting(Duration::MAX), "2147483647ms");
    }

    #[test]
    fn fingerprints_keep_their_64_bits() {
        assert_eq!(fingerprint_column(None), 0);
        let high = Fingerprint::from_u64(u64::MAX);
        assert_eq!(fingerprint_column(Some(high)), -1);
        assert!(fingerprints_match(-1, -1));
        assert!(fingerprints_match(0, -1) && fingerprints_match(-1, 0));
        assert!(!fingerprints_match(1, -1));
    }

    #[test]
    fn fences_are_positive_bigints() {
        assert_eq!(fence_of(0), None);
        assert_eq!(fence_of(-3), None);
        assert_eq!(fence_of(7), Some(7));
        assert_eq!(fence_column(7), 7);
        assert_eq!(fence_column(u64::MAX), -1);
    }
}
