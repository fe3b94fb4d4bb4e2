//! The load test of the example application at full size: 30 clients for 30 s on SQLite (a
//! file, WAL) and PostgreSQL, with direct and outbox delivery (8 clients for 5 s with
//! `--quick`). Each run's verdict (no 5xx, every committed change's events at the hub) is
//! `mercure_track_examples::load`'s; the small size runs as tests (`examples/tests/load.rs`).

use std::time::Duration;

use mercure_track_examples::load::{self, LoadConfig, Scratch};
use serde_json::{Value, json};

/// Runs the four combinations; returns their figures.
pub async fn run(quick: bool, verbose: bool) -> Value {
    let (clients, seconds) = if quick { (8, 5) } else { (30, 30) };
    let postgres = std::env::var("MERCURE_TRACK_PG_URL")
        .ok()
        .filter(|url| !url.is_empty());
    let mut runs = Vec::new();
    for database in ["sqlite", "postgres"] {
        for outbox in [false, true] {
            let scratch = match (database, &postgres) {
                ("sqlite", _) => Scratch::sqlite(),
                (_, Some(server)) => match Scratch::postgres(server).await {
                    Ok(scratch) => scratch,
                    Err(error) => {
                        runs.push(json!({ "label": database, "error": error.to_string() }));
                        continue;
                    }
                },
                (_, None) => {
                    if verbose && outbox {
                        println!("load postgres: skipped (set MERCURE_TRACK_PG_URL)");
                    }
                    continue;
                }
            };
            let mut config = LoadConfig::new(clients, Duration::from_secs(seconds));
            config.outbox = outbox;
            let report = load::run(scratch.url(), &config).await;
            scratch.finish().await;
            match report {
                Ok(report) => {
                    if verbose {
                        println!("load {report}");
                    }
                    runs.push(report.to_json());
                }
                Err(error) => {
                    if verbose {
                        println!("load {database}: could not run: {error}");
                    }
                    runs.push(json!({ "label": database, "error": error.to_string() }));
                }
            }
        }
    }
    Value::Array(runs)
}
