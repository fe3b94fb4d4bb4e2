//! mercure-track benchmarks: tracked sessions against hand-written code doing the same work,
//! measured side by side in one run, on SQLite and PostgreSQL, against the development hub
//! on loopback.
//!
//! ```text
//! cargo run --release -p mercure-track-bench -- [--json] [--quick] [--one-row] [--load] [--relay] [--capture]
//! ```
//!
//! `--one-row` runs only the one-row commits (section 1 of BENCHMARKS.md): no set-based sizes,
//! throughput or load.
//! `--capture` runs only the capture bench (`capture.rs`).
//! `--instructions <tracked|hand> <commits> [postgres]` runs only one-row commits of one side
//! (on SQLite, or PostgreSQL), for an instruction count under `valgrind --tool=callgrind` (see BENCHMARKS.md).
//! `--load` runs only the load test of the example application (`load.rs`).
//! `--relay` runs only the outbox relay bench (`relay.rs`).
//!
//! PostgreSQL runs when `MERCURE_TRACK_PG_URL` is set. The last line of output is one JSON
//! object with every figure and ratio; `--json` prints only that line.

// A binary: `pub` marks what each module offers the others.
#![allow(unreachable_pub)]

mod capture;
mod count;
mod domain;
mod hand;
mod load;
mod relay;
mod runner;

use std::sync::Arc;
use std::time::Duration;

use mercure_track::hub::{DevHub, DevHubConfig};
use mercure_track::publisher::{Algorithm, HubConfig, JwtKey, JwtSigner};
use mercure_track::{HubPublisher, Publisher};
use serde_json::json;

const KEY: &str = "bench-key-0123456789abcdef0123456789";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json_only = args.iter().any(|a| a == "--json");
    let quick = args.iter().any(|a| a == "--quick");
    // Only the one-row commits (section 1): no set-based sizes, throughput or load.
    let one_row_only = args.iter().any(|a| a == "--one-row");
    if args.iter().any(|a| a == "--load") {
        println!("{}", json!({ "load": load::run(quick, !json_only).await }));
        return Ok(());
    }
    if args.iter().any(|a| a == "--relay") {
        return relay::main(quick, json_only).await;
    }
    let options = runner::Options {
        overhead_rounds: if quick { 30 } else { 2_000 },
        scaling_rows: if one_row_only {
            Vec::new()
        } else if quick {
            vec![1, 10, 100]
        } else {
            vec![1, 10, 100, 1_000, 10_000]
        },
        concurrency: mercure_track_sqlx::DEFAULT_PUBLISH_CONCURRENCY,
        verbose: !json_only,
    };

    // The hub keeps a short history: its memory is not what is measured. The publishes it
    // accepts are counted in front of its routes.
    let key = JwtKey::new(KEY);
    let dev_hub = DevHub::new(DevHubConfig::new(key.clone(), key.clone()).history_size(100))?;
    let router: axum::Router = dev_hub
        .router()
        .layer(axum::middleware::from_fn(count::hub_counter));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hub_url = format!("http://{}/.well-known/mercure", listener.local_addr()?);
    let hub = tokio::spawn(async move { axum::serve(listener, router).await });
    let publisher: Arc<dyn Publisher> = Arc::new(HubPublisher::new(
        HubConfig::new(&hub_url)?.key(key.clone()),
    )?);
    if args.iter().any(|a| a == "--capture") {
        let report = capture::run(&publisher, quick).await?;
        println!("{}", json!({ "capture": report }));
        return Ok(());
    }
    let token = JwtSigner::publisher(&key, Algorithm::Hs256, vec!["*".into()], None)?.token()?;
    let hand = hand::HandPublisher::new(&hub_url, token);
    if let Some(at) = args.iter().position(|a| a == "--instructions") {
        let side = match args.get(at + 1).map(String::as_str) {
            Some("tracked") => 0,
            Some("hand") => 2,
            _ => return Err("--instructions takes `tracked` or `hand`, then a count".into()),
        };
        let commits: usize = args.get(at + 2).map_or(Ok(100), |n| n.parse())?;
        // Warm up (statements prepared, connections open), then the commits under count.
        if args.get(at + 3).map(String::as_str) == Some("postgres") {
            let url = std::env::var("MERCURE_TRACK_PG_URL")?;
            let postgres = runner::postgres_pool(&url, 20_000).await?;
            runner::postgres::repeat_one_row(side, 20, &postgres.pool, &publisher, &hand).await?;
            runner::postgres::repeat_one_row(side, commits, &postgres.pool, &publisher, &hand)
                .await?;
            postgres.drop_schema().await;
        } else {
            let sqlite = runner::sqlite_pool(20_000).await?;
            runner::sqlite::repeat_one_row(side, 20, &sqlite.pool, &publisher, &hand).await?;
            runner::sqlite::repeat_one_row(side, commits, &sqlite.pool, &publisher, &hand).await?;
        }
        hub.abort();
        return Ok(());
    }
    count::install_statement_log();

    let mut report = serde_json::Map::new();
    report.insert(
        "machine".into(),
        json!({ "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) }),
    );

    let sqlite = runner::sqlite_pool(20_000).await?;
    let result = runner::sqlite::run(
        "sqlite",
        &sqlite.pool,
        &sqlite.counting,
        &publisher,
        &hand,
        &options,
    )
    .await?;
    report.insert("sqlite".into(), result);
    drop(sqlite);

    match std::env::var("MERCURE_TRACK_PG_URL") {
        Ok(url) if !url.is_empty() => {
            let postgres = runner::postgres_pool(&url, 20_000).await?;
            let result = runner::postgres::run(
                "postgres",
                &postgres.pool,
                &postgres.counting,
                &publisher,
                &hand,
                &options,
            )
            .await?;
            report.insert("postgres".into(), result);
            postgres.drop_schema().await;
        }
        _ => {
            if !json_only {
                println!("postgres: skipped (set MERCURE_TRACK_PG_URL)");
            }
        }
    }

    if !one_row_only {
        let throughput = runner::throughput(
            &publisher,
            &hand,
            if quick { 1_000 } else { 5_000 },
            options.concurrency,
            options.verbose,
        )
        .await;
        report.insert("throughput".into(), throughput);
        report.insert("load".into(), load::run(quick, options.verbose).await);
    }
    // The targets of issue 13, each under a name of its own (tracked ÷ hand-written: the
    // set-based ratio of medians, the one-row and `find`-then-set ratios paired, see
    // `runner::paired_ratio`).
    for database in ["sqlite", "postgres"] {
        let figures = report.get(database).cloned().unwrap_or_default();
        let set_based_10000 = figures["set_based"]
            .as_array()
            .and_then(|points| points.iter().find(|p| p["rows"] == 10_000))
            .map(|p| p["ratio"].clone())
            .unwrap_or_default();
        report.insert(format!("set_based_10000_{database}_ratio"), set_based_10000);
        report.insert(
            format!("one_row_same_statements_{database}_ratio"),
            figures["one_row"]["same_statements_ratio"].clone(),
        );
        report.insert(
            format!("find_then_set_{database}_ratio"),
            figures["find_then_set"]["ratio"].clone(),
        );
    }
    hub.abort();
    tokio::time::sleep(Duration::from_millis(10)).await;
    println!("{}", serde_json::Value::Object(report));
    Ok(())
}
