//! Cross-crate tests of mercure-track: the order/image domain of the original design as test
//! fixtures, the compile-fail suite (`tests/ui`), and integration tests (`tests/*.rs`).

pub mod domain;
pub mod sse;
