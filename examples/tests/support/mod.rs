//! What the example's test files share: the PostgreSQL server of the tests.
//!
//! The PostgreSQL tests are ignored without `MERCURE_TRACK_PG_URL` (`cfg(mercure_track_pg)`,
//! set by the build script); when they run, a missing server fails them with "missing service".

// Each test file uses its own part of this module.
#![allow(dead_code)]

use mercure_track_examples::load::Scratch;

/// The PostgreSQL server of the tests (`MERCURE_TRACK_PG_URL`).
pub(crate) fn pg_server() -> String {
    std::env::var("MERCURE_TRACK_PG_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .expect("missing service: PostgreSQL: set MERCURE_TRACK_PG_URL")
}

/// A new schema on the PostgreSQL server of the tests.
pub(crate) async fn pg_scratch() -> Scratch {
    Scratch::postgres(&pg_server())
        .await
        .expect("missing service: PostgreSQL schema")
}
