//! The example application in headless Chromium (Debian's `chromium`), driven by
//! `tests/browser/e2e.mjs` with `playwright-core`: the list and order pages update live, with
//! no reload, while orders change through the API and through services, while a coloring is
//! generated, and when one set-based write approves every order ready for review — with direct
//! delivery and through the outbox. With `CAPTURE=1` the script also changes an order, an svg
//! and an image with plain SQL from another program (`plain-sql`, no session), and the pages
//! follow. SQLite always; PostgreSQL with `MERCURE_TRACK_PG_URL`. Screenshots land in
//! `target/e2e/<database>-<delivery>[-capture]/`.
//!
//! Needs Chromium, Node and `playwright-core` (`npm ci` in `tests/browser`): without them the
//! test is reported as ignored (`examples/build.rs` sets `cfg(mercure_track_browser)` when they
//! are installed), unless `MERCURE_TRACK_REQUIRE_BROWSER` is set, as in CI: then it runs and
//! fails with "missing service" when one is missing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mercure_track::ProtocolVersion;
use mercure_track_examples::app;
use mercure_track_examples::config::AppConfig;
use mercure_track_examples::load::Scratch;

mod support;

fn missing_prerequisite(script_dir: &Path) -> Option<String> {
    let chromium =
        std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    if !Path::new(&chromium).exists() {
        return Some(format!(
            "no browser at {chromium} (apt-get install -y chromium)"
        ));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("no node on the PATH".to_owned());
    }
    if !script_dir.join("node_modules/playwright-core").exists() {
        return Some(format!(
            "playwright-core is not installed (cd {} && npm ci)",
            script_dir.display()
        ));
    }
    None
}

/// One run of the script: the application started as configured here, on `database`.
struct Run {
    outbox: bool,
    protocol: ProtocolVersion,
    capture: bool,
}

/// Runs the script against the application on a new database (`postgres`: a schema of that
/// server; otherwise a SQLite file), once per run.
async fn drive(postgres: Option<&str>, runs: &[Run]) {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let script_dir = manifest.join("tests/browser");
    if let Some(reason) = missing_prerequisite(&script_dir) {
        panic!("missing service: {reason}");
    }
    for run in runs {
        let database = match postgres {
            Some(server) => Scratch::postgres(server)
                .await
                .expect("missing service: PostgreSQL schema"),
            None => Scratch::sqlite(),
        };
        let mut config = AppConfig::embedded_on_free_port(Duration::from_millis(400));
        config.database_url = Some(database.url().to_owned());
        config.outbox = run.outbox;
        config.capture = run.capture;
        config.set_protocol(run.protocol);
        let running = app::start(config).await.expect("start the application");
        let mode = format!(
            "{}-{}{}",
            if postgres.is_some() {
                "postgres"
            } else {
                "sqlite"
            },
            if run.outbox { "outbox" } else { "direct" },
            if run.capture { "-capture" } else { "" },
        );
        let protocol = run.protocol;
        let screenshots = manifest.join("../target/e2e").join(&mode);
        let mut command = Command::new("node");
        command
            .arg(script_dir.join("e2e.mjs"))
            .arg(&running.url)
            .arg(&screenshots)
            .env_remove("PLAIN_SQL");
        if run.capture {
            // The outside writer: another process, on the application's database.
            command
                .env("PLAIN_SQL", env!("CARGO_BIN_EXE_plain-sql"))
                .env("DATABASE_URL", database.url());
        }
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("join")
            .expect("run node");
        println!(
            "[{mode}, {protocol}] {}",
            String::from_utf8_lossy(&output.stdout)
        );
        eprintln!(
            "[{mode}, {protocol}] {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let unfinished = running.shutdown(Duration::from_secs(10)).await;
        database.finish().await;
        assert!(
            output.status.success(),
            "the browser test failed ({mode}, protocol {protocol}): {}",
            output.status
        );
        assert_eq!(unfinished, 0, "background tasks left at shutdown ({mode})");
    }
}

/// SQLite: each delivery mode without capture, and each with `CAPTURE=1` (the protocol
/// generations alternate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mercure_track_browser),
    ignore = "needs Chromium, Node and playwright-core (cd examples/tests/browser && npm ci)"
)]
async fn pages_follow_orders_and_colorings_live_in_chromium() {
    drive(
        None,
        &[
            Run {
                outbox: false,
                protocol: ProtocolVersion::V0,
                capture: false,
            },
            Run {
                outbox: true,
                protocol: ProtocolVersion::V1,
                capture: false,
            },
            Run {
                outbox: false,
                protocol: ProtocolVersion::V1,
                capture: true,
            },
            Run {
                outbox: true,
                protocol: ProtocolVersion::V0,
                capture: true,
            },
        ],
    )
    .await;
}

/// PostgreSQL, with `CAPTURE=1` in each delivery mode (the capture loop woken by `NOTIFY`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// One `ignore` for both needs: two would be a duplicate attribute when both are missing.
#[cfg_attr(
    not(all(mercure_track_browser, mercure_track_pg)),
    ignore = "needs Chromium, Node and playwright-core (cd examples/tests/browser && npm ci) \
              and PostgreSQL (set MERCURE_TRACK_PG_URL)"
)]
async fn pages_follow_orders_live_in_chromium_on_postgres() {
    let server = support::pg_server();
    drive(
        Some(&server),
        &[
            Run {
                outbox: false,
                protocol: ProtocolVersion::V0,
                capture: true,
            },
            Run {
                outbox: true,
                protocol: ProtocolVersion::V1,
                capture: true,
            },
        ],
    )
    .await;
}
