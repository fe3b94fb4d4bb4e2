//! The order/image application of the original design, on mercure-track: an operator's
//! browser follows orders and their images live while they are processed.

pub mod app;
pub mod config;
pub mod domain;
pub mod load;
pub mod services;
pub mod session;
mod web;

/// The README's code, compiled as a doctest so that it cannot drift from the API.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
