//! `#[derive(Tracked)]`: parse → model → expand.

mod attr;
mod expand;
mod model;

use proc_macro2::TokenStream;

use crate::errors::Errors;

pub(crate) fn derive(input: &syn::DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let parsed = attr::parse(input, &mut errors);
    let model = model::build(input, parsed, &mut errors);
    let mut tokens = expand::expand(&model);
    tokens.extend(errors.to_compile_errors());
    tokens
}
