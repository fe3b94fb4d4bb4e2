//! Tells the browser test whether it can run: `cfg(mercure_track_browser)` is set when
//! Chromium, Node and `playwright-core` are installed, or when `MERCURE_TRACK_REQUIRE_BROWSER`
//! requires them (CI). Without it the browser test is reported as ignored, never as passed.
//! `cfg(mercure_track_pg)` is set as in `tests/build.rs`, for tests that need PostgreSQL.
//!
//! Cargo reruns this script when one of them appears or goes: it watches each one that is
//! there, and the nearest existing folder of each one that is not.

use std::path::{Path, PathBuf};

fn set(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Whether `path` exists; asks Cargo to watch it, or its nearest existing folder.
fn watch(path: &Path) -> bool {
    let exists = path.exists();
    let watched = path.ancestors().find(|p| p.exists());
    if let Some(watched) = watched.filter(|p| !p.as_os_str().is_empty()) {
        println!("cargo::rerun-if-changed={}", watched.display());
    }
    exists
}

/// Whether `program` is in a folder of `PATH`; watches it, or every folder of `PATH`.
fn watch_on_path(program: &str) -> bool {
    let dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default();
    match dirs.iter().map(|d| d.join(program)).find(|p| p.is_file()) {
        Some(found) => watch(&found),
        None => {
            for dir in dirs.iter().filter(|d| d.is_dir()) {
                println!("cargo::rerun-if-changed={}", dir.display());
            }
            false
        }
    }
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=MERCURE_TRACK_REQUIRE_BROWSER");
    println!("cargo::rerun-if-env-changed=CHROMIUM_PATH");
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rustc-check-cfg=cfg(mercure_track_browser)");
    println!("cargo::rerun-if-env-changed=MERCURE_TRACK_PG_URL");
    println!("cargo::rerun-if-env-changed=MERCURE_TRACK_REQUIRE_PG");
    println!("cargo::rustc-check-cfg=cfg(mercure_track_pg)");
    if set("MERCURE_TRACK_PG_URL") || set("MERCURE_TRACK_REQUIRE_PG") {
        println!("cargo::rustc-cfg=mercure_track_pg");
    }

    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let playwright = manifest.join("tests/browser/node_modules/playwright-core/package.json");
    // Every check runs (each one asks Cargo to watch something).
    let found = [
        watch(Path::new(&chromium)),
        watch_on_path("node"),
        watch(&playwright),
    ];
    if set("MERCURE_TRACK_REQUIRE_BROWSER") || found.iter().all(|&f| f) {
        println!("cargo::rustc-cfg=mercure_track_browser");
    }
}
