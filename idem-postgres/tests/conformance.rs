//! The shared store conformance suite, and the schema: migrations, names.

mod support;

use idem::store::{Claimed, Owner, Store, StoreKey};
use idem_tests::conformance::{self, Timing};
use std::time::Duration;
use support::{namespace, Db};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_the_default_table() {
    let db = Db::new("conformance", 8).await;
    let store = db.store().await;
    conformance::run(&store, &namespace("conformance"), Timing::SERVER).await;
}

/// A table name that would be an injection if it were pasted unquoted: it
/// is one table, the suite passes on it, and nothing else is touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_table_name_is_one_quoted_table() {
    let db = Db::new("hostile", 8).await;
    sqlx::query("CREATE TABLE victim (id int)")
        .execute(&db.pool)
        .await
        .unwrap();
    let name = r#"Idem "x"; DROP TABLE victim; --'"#;
    let store = db.builder().table(name).build().unwrap();
    store.migrate().await.unwrap();
    assert_eq!(
        store.table(),
        format!(r#""{}"."Idem ""x""; DROP TABLE victim; --'""#, db.schema)
    );
    conformance::run(&store, &namespace("hostile"), Timing::SERVER).await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_class WHERE relnamespace = current_schema()::regnamespace ORDER BY relname",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        tables,
        [
            name.to_owned(),
            format!("{name}_expires_at"),
            format!("{name}_fence"),
            format!("{name}_migrations"),
            format!("{name}_migrations_pkey"),
            format!("{name}_pkey"),
            "victim".to_owned(),
        ]
    );
}

#[tokio::test]
async fn names_postgres_would_truncate_are_refused() {
    let db = Db::new("names", 1).await;
    let e = db.builder().table(&"t".repeat(53)).build().unwrap_err();
    assert!(e.to_string().contains("too long"), "{e}");
    assert!(db.builder().table("").build().is_err());
    assert!(db.builder().schema("a\0b").build().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_idempotent_and_safe_to_run_at_once() {
    let db = Db::new("migrate", 8).await;
    let store = db.builder().build().unwrap();
    let runs = (0..6).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.migrate().await })
    });
    for run in runs {
        run.await.unwrap().expect("a concurrent migration");
    }
    store.migrate().await.expect("a migration run again");
    let applied: Vec<i32> = sqlx::query_scalar("SELECT version FROM idem_records_migrations")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(applied, [1]);
    let key = StoreKey {
        namespace: "m",
        key: "k",
    };
    let c = store
        .claim(key, None, Owner::random(), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(matches!(c, Claimed::Leased(_)), "{c:?}");
}

/// `schema_sql` gives what `migrate` runs, for users' own migration tools:
/// run by hand, then `migrate` over it records the version and changes
/// nothing.
#[tokio::test]
async fn the_schema_sql_sets_up_a_working_store() {
    let db = Db::new("schema_sql", 2).await;
    let store = db.builder().table("records").build().unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(store.schema_sql()))
        .execute(&db.pool)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let key = StoreKey {
        namespace: "s",
        key: "k",
    };
    let c = store
        .claim(key, None, Owner::random(), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(matches!(c, Claimed::Leased(_)), "{c:?}");
}

/// Without a migration, the store says what to do.
#[tokio::test]
async fn a_missing_table_says_to_migrate() {
    let db = Db::new("missing", 2).await;
    let store = db.builder().build().unwrap();
    let key = StoreKey {
        namespace: "s",
        key: "k",
    };
    let e = store
        .claim(key, None, Owner::random(), Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("PostgresStore::migrate"), "{e}");
}
