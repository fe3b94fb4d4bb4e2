//! The example application in headless Chromium (Debian's `chromium`), driven by
//! `tests/browser/e2e.mjs` with `playwright-core`: the list and order pages update live, with
//! no reload, while orders change through the API and through services, and while a coloring
//! is generated — with direct delivery, then through the outbox. Screenshots land in
//! `target/e2e/{direct,outbox}/`.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mercure_track_browser),
    ignore = "needs Chromium, Node and playwright-core (cd examples/tests/browser && npm ci)"
)]
async fn pages_follow_orders_and_colorings_live_in_chromium() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let script_dir = manifest.join("tests/browser");
    if let Some(reason) = missing_prerequisite(&script_dir) {
        panic!("missing service: {reason}");
    }

    // Once with direct delivery and protocol 0.x, once through the outbox and its relay with
    // protocol 1.0.
    for (outbox, protocol) in [(false, ProtocolVersion::V0), (true, ProtocolVersion::V1)] {
        let mut config = AppConfig::embedded_on_free_port(Duration::from_millis(400));
        config.outbox = outbox;
        config.set_protocol(protocol);
        let running = app::start(config).await.expect("start the application");
        let mode = if outbox { "outbox" } else { "direct" };
        let screenshots = manifest.join("../target/e2e").join(mode);
        let url = running.url.clone();
        let script = script_dir.join("e2e.mjs");
        let output = tokio::task::spawn_blocking(move || {
            Command::new("node")
                .arg(script)
                .arg(url)
                .arg(&screenshots)
                .output()
        })
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
        assert!(
            output.status.success(),
            "the browser test failed with {mode} delivery, protocol {protocol}: {}",
            output.status
        );
        assert_eq!(unfinished, 0, "background tasks left at shutdown ({mode})");
    }
}
