//! Tells the tests whether PostgreSQL is configured: `cfg(mercure_track_pg)` is set when
//! `MERCURE_TRACK_PG_URL` is, or when `MERCURE_TRACK_REQUIRE_PG` requires it (CI). Without
//! it the PostgreSQL tests are reported as ignored, never as passed.

fn set(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| !v.is_empty() && v != "0")
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=MERCURE_TRACK_PG_URL");
    println!("cargo::rerun-if-env-changed=MERCURE_TRACK_REQUIRE_PG");
    println!("cargo::rustc-check-cfg=cfg(mercure_track_pg)");
    if set("MERCURE_TRACK_PG_URL") || set("MERCURE_TRACK_REQUIRE_PG") {
        println!("cargo::rustc-cfg=mercure_track_pg");
    }
}
