//! The load test, small: 8 clients for 5 s on SQLite (a file, WAL) and PostgreSQL, with direct
//! and outbox delivery; each run must answer no 5xx and deliver every committed change's events
//! (see `mercure_track_examples::load`). The full size runs from the bench command:
//! `cargo run --release -p mercure-track-bench -- --load`.

use std::time::Duration;

mod support;

use mercure_track_examples::load::{self, LoadConfig, Scratch};
use support::pg_scratch as postgres;

const CLIENTS: usize = 8;
const SECONDS: u64 = 5;

async fn check(database: Scratch, outbox: bool) {
    let mut config = LoadConfig::new(CLIENTS, Duration::from_secs(SECONDS));
    config.outbox = outbox;
    let report = load::run(database.url(), &config).await;
    database.finish().await;
    let report = report.expect("the load run");
    println!("{report}");
    assert!(report.requests > 0, "no request was made: {report}");
    assert!(report.received > 0, "no update reached the hub: {report}");
    assert!(report.failures().is_empty(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_direct_load_answers_no_5xx_and_loses_no_event() {
    check(Scratch::sqlite(), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_outbox_load_answers_no_5xx_and_loses_no_event() {
    check(Scratch::sqlite(), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mercure_track_pg),
    ignore = "needs PostgreSQL: set MERCURE_TRACK_PG_URL"
)]
async fn postgres_direct_load_answers_no_5xx_and_loses_no_event() {
    check(postgres().await, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mercure_track_pg),
    ignore = "needs PostgreSQL: set MERCURE_TRACK_PG_URL"
)]
async fn postgres_outbox_load_answers_no_5xx_and_loses_no_event() {
    check(postgres().await, true).await;
}
