//! mercure-track benchmarks: tracked sessions against hand-written code doing the same work,
//! measured side by side in one run, on SQLite and PostgreSQL, against the development hub
//! on loopback.
//!
//! ```text
//! cargo run --release -p mercure-track-bench -- [--json] [--quick] [--load]
//! ```
//!
//! `--load` runs only the load test of the example application (`load.rs`).
//!
//! PostgreSQL runs when `MERCURE_TRACK_PG_URL` is set. The last line of output is one JSON
//! object with every figure and ratio; `--json` prints only that line.

// A binary: `pub` marks what each module offers the others.
#![allow(unreachable_pub)]

mod domain;
mod hand;
mod load;
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
    if args.iter().any(|a| a == "--load") {
        println!("{}", json!({ "load": load::run(quick, !json_only).await }));
        return Ok(());
    }
    let options = runner::Options {
        overhead_rounds: if quick { 30 } else { 400 },
        scaling_rows: if quick {
            vec![1, 10, 100]
        } else {
            vec![1, 10, 100, 1_000, 10_000]
        },
        concurrency: mercure_track_sqlx::DEFAULT_PUBLISH_CONCURRENCY,
        verbose: !json_only,
    };

    // The hub keeps a short history: its memory is not what is measured.
    let key = JwtKey::new(KEY);
    let hub = DevHub::new(DevHubConfig::new(key.clone(), key.clone()).history_size(100))?
        .bind("127.0.0.1:0".parse()?)
        .await?;
    let publisher: Arc<dyn Publisher> = Arc::new(HubPublisher::new(
        HubConfig::new(&hub.url())?.key(key.clone()),
    )?);
    let token = JwtSigner::publisher(&key, Algorithm::Hs256, vec!["*".into()], None)?.token()?;
    let hand = hand::HandPublisher::new(&hub.url(), token);

    let mut report = serde_json::Map::new();
    report.insert(
        "machine".into(),
        json!({ "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) }),
    );

    let sqlite = runner::sqlite_pool(20_000).await?;
    let result = runner::run("sqlite", &sqlite.pool, &publisher, &hand, &options).await?;
    report.insert("sqlite".into(), result);
    drop(sqlite);

    match std::env::var("MERCURE_TRACK_PG_URL") {
        Ok(url) if !url.is_empty() => {
            let postgres = runner::postgres_pool(&url, 20_000).await?;
            let result =
                runner::run("postgres", &postgres.pool, &publisher, &hand, &options).await?;
            report.insert("postgres".into(), result);
            postgres.drop_schema().await;
        }
        _ => {
            if !json_only {
                println!("postgres: skipped (set MERCURE_TRACK_PG_URL)");
            }
        }
    }

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
    drop(hub);
    tokio::time::sleep(Duration::from_millis(10)).await;
    println!("{}", serde_json::Value::Object(report));
    Ok(())
}
