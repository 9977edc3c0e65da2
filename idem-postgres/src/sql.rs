//! Every statement the store sends, with the configured names pasted in.
//!
//! Times are the server's only: `clock_timestamp()` (the time of the
//! statement, not of its transaction: a claim in a long transaction sees
//! the present) in the claims and fenced writes, and `now()` in the
//! reaper, which needs a value the index on `expires_at` can compare
//! with. Durations are bound as microseconds (`$n * interval '1
//! microsecond'`), time left is read as microseconds.

use std::sync::Arc;

use crate::names::Names;

/// The time left until `expires_at`, in microseconds (negative when past).
const LEFT_US: &str = "(extract(epoch FROM r.expires_at - clock_timestamp()) * 1000000)::bigint";

/// The statements of one store, built once.
#[derive(Debug)]
pub(crate) struct Statements {
    /// What a key holds. $1 namespace, $2 key, $3 owner (hex).
    ///
    /// Columns: state, fingerprint, fence, mine, payload, left_us.
    pub(crate) read: Arc<str>,
    /// A new lease, on a vacant key or over an expired entry, in one
    /// statement; no row when the key is live. $1 namespace, $2 key, $3
    /// fingerprint, $4 owner, $5 lease µs, $6 lock_timeout.
    ///
    /// Columns: fence, left_us.
    pub(crate) lease: Arc<str>,
    /// $1 namespace, $2 key, $3 fence, $4 owner, $5 ttl µs. A row when
    /// renewed.
    pub(crate) renew: Arc<str>,
    /// $1 namespace, $2 key, $3 fence, $4 owner, $5 payload, $6 retain µs.
    /// One boolean: done (now or by an earlier attempt).
    pub(crate) complete: Arc<str>,
    /// $1 namespace, $2 key, $3 fence, $4 owner. A row when released.
    pub(crate) release: Arc<str>,
    /// The transactional claim of a vacant key. $1 namespace, $2 key, $3
    /// fingerprint, $4 owner, $5 retain µs, $6 lock_timeout.
    ///
    /// Columns: fence (NULL when the key is taken), prev (the
    /// transaction's `lock_timeout` before, restored).
    pub(crate) tx_insert: Arc<str>,
    /// The transactional takeover of an expired entry. $1 namespace, $2
    /// key, $3 fingerprint, $4 owner, $5 retain µs, $6 lock_timeout, $7
    /// the `lock_timeout` to restore.
    ///
    /// Columns: fence (NULL when the entry is live again).
    pub(crate) tx_take_over: Arc<str>,
    /// The transactional completion. $1 namespace, $2 key, $3 fence, $4
    /// owner, $5 payload. A row when done.
    ///
    /// It writes the payload only: the claim set the retention end, and an
    /// update of no indexed column can be a HOT update (no new index
    /// entries, less WAL).
    pub(crate) tx_complete: Arc<str>,
    /// Deletes up to $1 expired entries.
    pub(crate) reap: Arc<str>,
}

impl Statements {
    pub(crate) fn new(n: &Names) -> Self {
        let Names {
            table,
            fence_literal: seq,
            ..
        } = n;
        let read = format!(
            "SELECT r.state, r.fingerprint, r.fence, r.owner = $3::uuid AS mine, r.payload, {LEFT_US} AS left_us \
             FROM {table} AS r WHERE r.namespace = $1 AND r.key = $2"
        );
        // `nextval` in VALUES is drawn before the insertion: a statement
        // that waits on another's uncommitted insert of the key, which
        // then rolls back, inserts a token drawn before that one's. In the
        // takeover it is drawn in SET, once the row is locked, so it is
        // above every token the row ever held.
        let lease = format!(
            "WITH cfg AS (SELECT set_config('lock_timeout', $6, true)) \
             INSERT INTO {table} AS r (namespace, key, state, fingerprint, fence, owner, expires_at) \
             SELECT $1, $2, 'leased', $3, nextval({seq}), $4::uuid, clock_timestamp() + $5 * interval '1 microsecond' FROM cfg \
             ON CONFLICT (namespace, key) DO UPDATE \
             SET state = 'leased', fingerprint = EXCLUDED.fingerprint, fence = nextval({seq}), owner = EXCLUDED.owner, \
                 expires_at = clock_timestamp() + $5 * interval '1 microsecond', payload = NULL \
             WHERE r.expires_at <= clock_timestamp() \
             RETURNING r.fence, {LEFT_US} AS left_us"
        );
        let is_lease =
            "namespace = $1 AND key = $2 AND state = 'leased' AND fence = $3 AND owner = $4::uuid \
                        AND expires_at > clock_timestamp()";
        let renew = format!(
            "UPDATE {table} SET expires_at = clock_timestamp() + $5 * interval '1 microsecond' \
             WHERE {is_lease} RETURNING fence"
        );
        let complete = format!(
            "WITH done AS (\
               UPDATE {table} SET state = 'completed', payload = $5, \
                   expires_at = clock_timestamp() + $6 * interval '1 microsecond' \
               WHERE {is_lease} RETURNING fence) \
             SELECT EXISTS (SELECT FROM done) OR EXISTS (\
               SELECT FROM {table} WHERE namespace = $1 AND key = $2 AND state = 'completed' AND fence = $3 \
               AND expires_at > clock_timestamp())"
        );
        let release = format!(
            "UPDATE {table} SET expires_at = clock_timestamp() WHERE {is_lease} RETURNING fence"
        );
        let tx_insert = format!(
            "WITH cfg AS (\
               SELECT current_setting('lock_timeout') AS prev, set_config('lock_timeout', $6, true)), \
             ins AS (\
               INSERT INTO {table} (namespace, key, state, fingerprint, fence, owner, expires_at) \
               SELECT $1, $2, 'completed', $3, nextval({seq}), $4::uuid, \
                   clock_timestamp() + $5 * interval '1 microsecond' FROM cfg \
               ON CONFLICT (namespace, key) DO NOTHING RETURNING fence) \
             SELECT ins.fence, cfg.prev, set_config('lock_timeout', cfg.prev, true) \
             FROM cfg LEFT JOIN ins ON true"
        );
        let tx_take_over = format!(
            "WITH cfg AS (SELECT set_config('lock_timeout', $6, true)), \
             up AS (\
               UPDATE {table} AS r SET state = 'completed', fingerprint = $3, fence = nextval({seq}), \
                   owner = $4::uuid, expires_at = clock_timestamp() + $5 * interval '1 microsecond', payload = NULL \
               FROM cfg WHERE r.namespace = $1 AND r.key = $2 AND r.expires_at <= clock_timestamp() \
               RETURNING r.fence) \
             SELECT up.fence, set_config('lock_timeout', $7, true) FROM (SELECT) AS one LEFT JOIN up ON true"
        );
        let tx_complete = format!(
            "UPDATE {table} SET payload = $5 \
             WHERE namespace = $1 AND key = $2 AND state = 'completed' AND fence = $3 AND owner = $4::uuid \
             RETURNING fence"
        );
        // The rows are locked (FOR UPDATE) with their expiry checked again
        // on the latest version, so an entry taken over meanwhile is not
        // deleted; SKIP LOCKED passes the rows a claim is writing.
        let reap = format!(
            "DELETE FROM {table} AS r USING (\
               SELECT namespace, key FROM {table} WHERE expires_at <= now() \
               LIMIT $1 FOR UPDATE SKIP LOCKED) AS old \
             WHERE r.namespace = old.namespace AND r.key = old.key AND r.expires_at <= now()"
        );
        Self {
            read: read.into(),
            lease: lease.into(),
            renew: renew.into(),
            complete: complete.into(),
            release: release.into(),
            tx_insert: tx_insert.into(),
            tx_take_over: tx_take_over.into(),
            tx_complete: tx_complete.into(),
            reap: reap.into(),
        }
    }
}
