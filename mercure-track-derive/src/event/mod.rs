//! `#[derive(MercureEvent)]`: parse → model → expand.

mod attr;
mod expand;
mod model;

use proc_macro2::TokenStream;

use crate::errors::Errors;

pub(crate) fn derive(input: &syn::DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let parsed = attr::parse(input, &mut errors);
    let event = model::build(input, parsed, &mut errors);
    if !input.generics.params.is_empty() {
        // Nothing sensible to generate for a generic type: only the error.
        return errors.to_compile_errors();
    }
    let mut tokens = expand::expand(&event, errors.has_errors());
    tokens.extend(errors.to_compile_errors());
    tokens
}
