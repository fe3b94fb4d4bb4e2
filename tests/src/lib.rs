//! Cross-crate tests of mercure-track: the order/image domain of the original design as test
//! fixtures, the compile-fail suite (`tests/ui`), and integration tests (`tests/*.rs`).

pub mod db;
pub mod domain;
pub mod flaky;
pub mod publishers;
pub mod sse;
