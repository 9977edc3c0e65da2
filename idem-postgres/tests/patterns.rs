//! The classic patterns of `idem_postgres::patterns` on a real
//! PostgreSQL: optimistic versions, guarded transitions and row locks,
//! each against a concurrent transaction held open at the point that
//! matters.

mod support;

use std::time::{Duration, Instant};

use idem_postgres::patterns::{
    Changes, Guarded, PatternError, RowLock, Table, Transition, Versioned, Wait,
};
use sqlx::{Connection, PgPool, Row};
use support::Db;

/// A table with capitals, a space and a quote in its name and in its
/// columns' names: the helpers quote every identifier.
const TABLE: &str = r#"Odd "accounts""#;

async fn setup(test: &str) -> Db {
    let db = Db::new(test, 6).await;
    sqlx::raw_sql(
        r#"CREATE TABLE "Odd ""accounts""" (
               "Id" bigint PRIMARY KEY,
               "Balance" bigint NOT NULL,
               "Version" integer NOT NULL DEFAULT 1,
               "state of it" text NOT NULL DEFAULT 'pending',
               note text);
           INSERT INTO "Odd ""accounts""" ("Id", "Balance") VALUES (1, 100), (2, 0);"#,
    )
    .execute(&db.pool)
    .await
    .unwrap();
    db
}

fn table() -> Table {
    Table::new(TABLE).unwrap()
}

async fn balance_and_version(pool: &PgPool, id: i64) -> (i64, i32) {
    sqlx::query_as(r#"SELECT "Balance", "Version" FROM "Odd ""accounts""" WHERE "Id" = $1"#)
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn state(pool: &PgPool, id: i64) -> (String, Option<String>) {
    sqlx::query_as(r#"SELECT "state of it", note FROM "Odd ""accounts""" WHERE "Id" = $1"#)
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_versioned_update_applies_once_per_version() {
    let db = setup("versioned").await;
    let accounts = Versioned::new(&table(), "Id", "Version").unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    let v = accounts
        .update(&mut conn, 1_i64, 1, Changes::new().set("Balance", 150_i64))
        .await
        .unwrap();
    assert_eq!(v, 2);
    assert_eq!(balance_and_version(&db.pool, 1).await, (150, 2));

    // The same change again, from the version it was computed from: refused.
    let e = accounts
        .update(&mut conn, 1_i64, 1, Changes::new().set("Balance", 150_i64))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            PatternError::Conflict {
                expected: 1,
                current: 2
            }
        ),
        "{e:?}"
    );
    assert_eq!(balance_and_version(&db.pool, 1).await, (150, 2));

    let e = accounts
        .update(&mut conn, 9_i64, 1, Changes::new())
        .await
        .unwrap_err();
    assert!(matches!(e, PatternError::NotFound), "{e:?}");
    // No changes: the version alone moves.
    assert_eq!(
        accounts
            .update(&mut conn, 1_i64, 2, Changes::new())
            .await
            .unwrap(),
        3
    );
}

/// Two transactions computed a change from version 1; the second's update
/// waits on the first's row lock, and once the first commits finds the
/// version moved on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_concurrent_updates_from_one_version_the_second_conflicts() {
    let db = setup("versioned_race").await;
    let accounts = Versioned::new(&table(), "Id", "Version").unwrap();
    let mut first = db.pool.begin().await.unwrap();
    accounts
        .update(&mut first, 1_i64, 1, Changes::new().set("Balance", 110_i64))
        .await
        .unwrap();
    let second = {
        let (accounts, pool) = (accounts.clone(), db.pool.clone());
        tokio::spawn(async move {
            let mut tx = pool.begin().await.unwrap();
            let r = accounts
                .update(&mut tx, 1_i64, 1, Changes::new().set("Balance", 120_i64))
                .await;
            tx.rollback().await.unwrap();
            r
        })
    };
    db.until_waiting_on_locks(1).await;
    first.commit().await.unwrap();
    let e = second.await.unwrap().unwrap_err();
    assert!(
        matches!(
            e,
            PatternError::Conflict {
                expected: 1,
                current: 2
            }
        ),
        "{e:?}"
    );
    assert_eq!(balance_and_version(&db.pool, 1).await, (110, 2));
}

#[tokio::test]
async fn a_guarded_transition_is_done_once_and_then_refused_with_the_state() {
    let db = setup("guarded").await;
    let accounts = Guarded::new(&table(), "Id", "state of it").unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    let pay = |note: &'static str| Changes::new().set("note", note);
    assert_eq!(
        accounts
            .transition(&mut conn, 1_i64, "pending", "paid", pay("first"))
            .await
            .unwrap(),
        Transition::Done
    );
    assert_eq!(
        accounts
            .transition(&mut conn, 1_i64, "pending", "paid", pay("second"))
            .await
            .unwrap(),
        Transition::Refused {
            current: "paid".into()
        }
    );
    assert_eq!(
        state(&db.pool, 1).await,
        ("paid".into(), Some("first".into()))
    );
    let e = accounts
        .transition(&mut conn, 9_i64, "pending", "paid", Changes::new())
        .await
        .unwrap_err();
    assert!(matches!(e, PatternError::NotFound), "{e:?}");
}

/// The second of two concurrent transitions waits for the first: refused
/// if it committed, done if it rolled back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_transition_waits_for_the_first_and_follows_its_outcome() {
    let db = setup("guarded_race").await;
    let accounts = Guarded::new(&table(), "Id", "state of it").unwrap();
    for (id, commit, expected) in [
        (
            1_i64,
            true,
            Transition::Refused {
                current: "paid".into(),
            },
        ),
        (2_i64, false, Transition::Done),
    ] {
        let mut first = db.pool.begin().await.unwrap();
        let done = accounts
            .transition(&mut first, id, "pending", "paid", Changes::new())
            .await
            .unwrap();
        assert_eq!(done, Transition::Done);
        let second = {
            let (accounts, pool) = (accounts.clone(), db.pool.clone());
            tokio::spawn(async move {
                let mut tx = pool.begin().await.unwrap();
                let r = accounts
                    .transition(&mut tx, id, "pending", "paid", Changes::new())
                    .await
                    .unwrap();
                // A refusal leaves the transaction usable.
                sqlx::query("SELECT 1").execute(&mut *tx).await.unwrap();
                tx.commit().await.unwrap();
                r
            })
        };
        db.until_waiting_on_locks(1).await;
        if commit {
            first.commit().await.unwrap();
        } else {
            first.rollback().await.unwrap();
        }
        assert_eq!(second.await.unwrap(), expected, "first committed: {commit}");
        assert_eq!(state(&db.pool, id).await.0, "paid");
    }
}

/// `FOR UPDATE`: a second locker waits for the first, then reads what it
/// committed: the increments of both count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_lock_makes_the_second_read_modify_write_wait_and_see_the_first() {
    let db = setup("lock_wait").await;
    let accounts = RowLock::new(&table(), "Id").unwrap();
    let mut first = db.pool.begin().await.unwrap();
    let row = accounts
        .lock(&mut first, 1_i64, Wait::Indefinitely)
        .await
        .unwrap();
    assert_eq!(row.get::<i64, _>("Balance"), 100);
    let second = {
        let (accounts, pool) = (accounts.clone(), db.pool.clone());
        tokio::spawn(async move {
            let mut tx = pool.begin().await.unwrap();
            let row = accounts
                .lock(&mut tx, 1_i64, Wait::Indefinitely)
                .await
                .unwrap();
            let balance: i64 = row.get("Balance");
            sqlx::query(r#"UPDATE "Odd ""accounts""" SET "Balance" = $1 WHERE "Id" = 1"#)
                .bind(balance + 10)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            balance
        })
    };
    db.until_waiting_on_locks(1).await;
    sqlx::query(r#"UPDATE "Odd ""accounts""" SET "Balance" = 101 WHERE "Id" = 1"#)
        .execute(&mut *first)
        .await
        .unwrap();
    first.commit().await.unwrap();
    assert_eq!(
        second.await.unwrap(),
        101,
        "the second read the first's write"
    );
    assert_eq!(balance_and_version(&db.pool, 1).await.0, 111);
}

#[tokio::test]
async fn nowait_and_a_lock_timeout_give_up_on_a_held_row() {
    let db = setup("lock_nowait").await;
    let accounts = RowLock::new(&table(), "Id").unwrap();
    let mut holder = db.pool.begin().await.unwrap();
    accounts
        .lock(&mut holder, 1_i64, Wait::Indefinitely)
        .await
        .unwrap();

    let mut tx = db.pool.begin().await.unwrap();
    let e = accounts
        .lock(&mut tx, 1_i64, Wait::NoWait)
        .await
        .unwrap_err();
    assert!(matches!(e, PatternError::Locked), "{e:?}");
    tx.rollback().await.unwrap();

    let mut tx = db.pool.begin().await.unwrap();
    let start = Instant::now();
    let e = accounts
        .lock(&mut tx, 1_i64, Wait::AtMost(Duration::from_millis(100)))
        .await
        .unwrap_err();
    assert!(matches!(e, PatternError::Locked), "{e:?}");
    assert!(
        start.elapsed() >= Duration::from_millis(100),
        "gave up after {:?}",
        start.elapsed()
    );
    tx.rollback().await.unwrap();

    // A free row: locked, and the transaction's own setting restored.
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL lock_timeout = '4321ms'")
        .execute(&mut *tx)
        .await
        .unwrap();
    let row = accounts
        .lock(&mut tx, 2_i64, Wait::AtMost(Duration::from_millis(100)))
        .await
        .unwrap();
    assert_eq!(row.get::<i64, _>("Id"), 2);
    let e = accounts
        .lock(&mut tx, 9_i64, Wait::AtMost(Duration::from_millis(100)))
        .await
        .unwrap_err();
    assert!(matches!(e, PatternError::NotFound), "{e:?}");
    let setting: String = sqlx::query_scalar("SELECT current_setting('lock_timeout')")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(setting, "4321ms");
    tx.commit().await.unwrap();
    holder.rollback().await.unwrap();
}

#[tokio::test]
async fn skip_locked_passes_a_held_row_by_and_keeps_the_transaction() {
    let db = setup("lock_skip").await;
    let accounts = RowLock::new(&table(), "Id").unwrap();
    let mut holder = db.pool.begin().await.unwrap();
    assert!(accounts
        .try_lock(&mut holder, 1_i64)
        .await
        .unwrap()
        .is_some());

    let mut tx = db.pool.begin().await.unwrap();
    assert!(accounts.try_lock(&mut tx, 1_i64).await.unwrap().is_none());
    let e = accounts.try_lock(&mut tx, 9_i64).await.unwrap_err();
    assert!(matches!(e, PatternError::NotFound), "{e:?}");
    // Still usable: another row.
    let row = accounts.try_lock(&mut tx, 2_i64).await.unwrap().unwrap();
    assert_eq!(row.get::<i64, _>("Balance"), 0);
    tx.commit().await.unwrap();
    holder.commit().await.unwrap();
    let mut tx = db.pool.begin().await.unwrap();
    assert!(accounts.try_lock(&mut tx, 1_i64).await.unwrap().is_some());
}

#[tokio::test]
async fn a_lock_outside_a_transaction_is_refused_before_anything_is_sent() {
    let db = setup("lock_no_tx").await;
    let accounts = RowLock::new(&table(), "Id").unwrap();
    let mut conn = db.connection().await;
    let e = accounts
        .lock(&mut conn, 1_i64, Wait::NoWait)
        .await
        .unwrap_err();
    assert!(matches!(e, PatternError::NotInTransaction), "{e:?}");
    let e = accounts.try_lock(&mut conn, 1_i64).await.unwrap_err();
    assert!(matches!(e, PatternError::NotInTransaction), "{e:?}");
    // In a transaction on the same connection, it works.
    let mut tx = conn.begin().await.unwrap();
    accounts.lock(&mut tx, 1_i64, Wait::NoWait).await.unwrap();
}

#[tokio::test]
async fn bad_names_and_values_are_refused_before_anything_is_sent() {
    let db = setup("bad_names").await;
    assert!(Versioned::new(&table(), "", "v").is_err());
    assert!(Guarded::new(&table(), "Id", "a\0b").is_err());
    assert!(RowLock::new(&table(), &"c".repeat(64)).is_err());
    let accounts = Versioned::new(&table(), "Id", "Version").unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    let e = accounts
        .update(&mut conn, 1_i64, 1, Changes::new().set("", 5_i64))
        .await
        .unwrap_err();
    assert!(matches!(e, PatternError::InvalidName(_)), "{e:?}");
    // A name that is valid but no column: the database says so.
    let e = accounts
        .update(&mut conn, 1_i64, 1, Changes::new().set("balance", 5_i64))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, PatternError::Database(d) if d.to_string().contains("\"balance\"")),
        "{e:?}"
    );
    assert_eq!(balance_and_version(&db.pool, 1).await, (100, 1));
}
