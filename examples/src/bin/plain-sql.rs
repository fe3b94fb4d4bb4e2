//! Runs SQL on the example's database with no session and no library in the way: what
//! `sqlite3` or `psql` would do, for machines without them. With the application started with
//! `CAPTURE=1`, the page that shows the changed row updates live.
//!
//! ```text
//! DATABASE_URL=sqlite:///tmp/mercure-track-demo-1234-0.sqlite \
//!   cargo run -p mercure-track-examples --bin plain-sql -- \
//!   "UPDATE orders SET status = 'NEW' WHERE id = 'ord-1004'"
//! ```
//!
//! `DATABASE_URL` is the database the application printed at start (`sqlite:...` or
//! `postgres://...`); the statements are the arguments, run in one transaction.

use std::process::ExitCode;

use mercure_track_examples::app::sqlite_options;
use mercure_track_examples::config::{redact_secrets_of, redact_url};
use sqlx::Connection;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) else {
        eprintln!("error: set DATABASE_URL to the database the application printed at start");
        return ExitCode::FAILURE;
    };
    let sql = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    if sql.trim().is_empty() {
        eprintln!("usage: plain-sql \"UPDATE orders SET status = 'NEW' WHERE id = 'ord-1004'\"");
        return ExitCode::FAILURE;
    }
    match run(&url, &sql).await {
        Ok(rows) => {
            println!("{rows} row(s) changed in {}", redact_url(&url));
            ExitCode::SUCCESS
        }
        Err(error) => {
            // The error may quote the URL: its password is never printed.
            eprintln!("error: {}", redact_secrets_of(&url, &error.to_string()));
            ExitCode::FAILURE
        }
    }
}

/// Runs `sql` in one transaction on `url`; returns how many rows it changed.
async fn run(url: &str, sql: &str) -> Result<u64, sqlx::Error> {
    if url.starts_with("sqlite:") {
        // The file must exist: this program writes into the application's database.
        let options = sqlite_options(url)?.create_if_missing(false);
        let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
        let mut tx = conn.begin().await?;
        let rows = sqlx::raw_sql(sql).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(rows)
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        let mut tx = conn.begin().await?;
        let rows = sqlx::raw_sql(sql).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(rows)
    }
}
