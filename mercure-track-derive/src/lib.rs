//! Procedural macros of `mercure-track`. Use them through the `mercure_track` crate, which
//! documents their attributes; the generated code names only `::mercure_track::__private_v0_1`
//! (or the path given by `crate = ...`), absolute `::core` / `::std` paths and `__`-prefixed
//! locals, so that it compiles in `#[no_implicit_prelude]` modules.
//!
//! Each macro runs in three stages: parse the attributes, build and validate a model, expand.
//! Errors are collected and reported together, each spanned on the offending token; on error
//! the expansion still emits the items other code refers to, so that one mistake does not
//! cascade into many.

mod attr;
mod autotrack;
mod errors;
mod event;
mod tracked;

use proc_macro::TokenStream;

/// Derives `mercure_track::Model` and the typed column markers of a model struct.
#[proc_macro_derive(Tracked, attributes(tracked))]
pub fn derive_tracked(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    tracked::derive(&input).into()
}

/// Derives `mercure_track::MercureEvent` (and `BatchEvent` for `collect(...)`).
#[proc_macro_derive(MercureEvent, attributes(mercure, trigger, context))]
pub fn derive_mercure_event(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    event::derive(&input).into()
}

/// Marks a service struct (with the events it tracks) or its `impl` block (to activate the
/// tracking) as auto-tracked.
#[proc_macro_attribute]
pub fn mercure_autotrack(args: TokenStream, item: TokenStream) -> TokenStream {
    autotrack::attribute(args.into(), item.into()).into()
}
