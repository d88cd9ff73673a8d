//! PostgreSQL through sqlx: a parameterized query and a table round trip.

use sqlx::postgres::PgPoolOptions;

use crate::{env_or, unreachable, WAIT};

#[tokio::test]
async fn postgres_runs_a_parameterized_query_and_keeps_a_row() {
    let url = env_or(
        "DATABASE_URL",
        "postgres://confab:confab@127.0.0.1:5432/confab",
    );
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(WAIT)
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("{}", unreachable("Postgres", "DATABASE_URL", e)));

    let (sum,): (i32,) = sqlx::query_as("SELECT $1::int4 + $2::int4")
        .bind(40)
        .bind(2)
        .fetch_one(&pool)
        .await
        .expect("SELECT with parameters");
    assert_eq!(sum, 42);

    // A temporary table is private to this connection and dropped with the transaction, so
    // concurrent runs never see each other's rows.
    let mut tx = pool.begin().await.expect("BEGIN");
    sqlx::query(
        "CREATE TEMP TABLE smoke_rows (id uuid PRIMARY KEY, body text NOT NULL) ON COMMIT DROP",
    )
    .execute(&mut *tx)
    .await
    .expect("CREATE TEMP TABLE");
    let id = uuid::Uuid::new_v4();
    sqlx::query("INSERT INTO smoke_rows (id, body) VALUES ($1, $2)")
        .bind(id)
        .bind("hello from confab")
        .execute(&mut *tx)
        .await
        .expect("INSERT");
    let (body,): (String,) = sqlx::query_as("SELECT body FROM smoke_rows WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .expect("SELECT the row back");
    tx.commit().await.expect("COMMIT");
    assert_eq!(body, "hello from confab");
}
