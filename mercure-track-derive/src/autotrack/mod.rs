//! `#[mercure_autotrack(...)]`: on a service struct (declares the events, checks the `session`
//! field) and on its `impl` block (activates tracking in methods and constructors).
//! Parse → model → expand, per item kind.

mod expand;
mod model;

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::punctuated::Punctuated;

use crate::errors::Errors;

pub(crate) fn attribute(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let mut args_invalid = false;
    let events = match syn::parse::Parser::parse2(
        Punctuated::<syn::Path, syn::Token![,]>::parse_terminated,
        args.clone(),
    ) {
        Ok(events) => events.into_iter().collect(),
        Err(error) => {
            errors.push(syn::Error::new(
                error.span(),
                "expected `#[mercure_autotrack(EventA, EventB)]`: the event types the service tracks",
            ));
            args_invalid = true;
            Vec::new()
        }
    };
    let mut tokens = match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Struct(service)) => {
            let service = model::service(service, events, &args, args_invalid, &mut errors);
            expand::service(&service)
        }
        Ok(syn::Item::Impl(block)) => {
            if events.is_empty() && !args_invalid {
                expand::impl_block(block)
            } else {
                errors.spanned(
                    &args,
                    "on an `impl` block, `#[mercure_autotrack]` takes no events: list them on the struct",
                );
                quote::quote!(#block)
            }
        }
        Ok(other) => {
            errors.spanned(
                &other,
                "`#[mercure_autotrack]` applies to a service struct (with its events) or to its `impl` block",
            );
            other.into_token_stream()
        }
        Err(error) => {
            errors.push(error);
            item
        }
    };
    tokens.extend(errors.to_compile_errors());
    tokens
}
