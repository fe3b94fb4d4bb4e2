//! `#[mercure_autotrack(...)]`: on a service struct (declares the events, checks the `session`
//! field) and on its `impl` block (activates tracking in methods and constructors).
//! Parse → model → expand, per item kind.

mod expand;
mod model;

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::punctuated::Punctuated;

use crate::errors::Errors;

/// One argument: an event type, or `crate = path`.
enum Arg {
    Event(syn::Path),
    Crate(syn::Path),
}

impl syn::parse::Parse for Arg {
    fn parse(input: syn::parse::ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(syn::Token![crate]) && input.peek2(syn::Token![=]) {
            input.parse::<syn::Token![crate]>()?;
            input.parse::<syn::Token![=]>()?;
            return input.parse().map(Arg::Crate);
        }
        input.parse().map(Arg::Event)
    }
}

pub(crate) fn attribute(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let mut args_invalid = false;
    let mut krate = None;
    let events = match syn::parse::Parser::parse2(
        Punctuated::<Arg, syn::Token![,]>::parse_terminated,
        args.clone(),
    ) {
        Ok(parsed) => {
            let mut events = Vec::new();
            for arg in parsed {
                match arg {
                    Arg::Event(event) => events.push(event),
                    Arg::Crate(path) if krate.is_none() => krate = Some(path),
                    Arg::Crate(path) => errors.spanned(path, "duplicate `crate`"),
                }
            }
            events
        }
        Err(error) => {
            errors.push(syn::Error::new(
                error.span(),
                "expected `#[mercure_autotrack(EventA, EventB)]`: the event types the service tracks (and optionally `crate = path`)",
            ));
            args_invalid = true;
            Vec::new()
        }
    };
    let private = crate::attr::private_path(krate.as_ref());
    let mut tokens = match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Struct(service)) => {
            let service =
                model::service(service, events, &args, args_invalid, private, &mut errors);
            expand::service(&service)
        }
        Ok(syn::Item::Impl(block)) => {
            if let Some(event) = events.first() {
                errors.spanned(
                    event,
                    "on an `impl` block, `#[mercure_autotrack]` takes no events: list them on the struct",
                );
                quote::quote!(#block)
            } else if args_invalid {
                quote::quote!(#block)
            } else if block.trait_.is_some() {
                errors.spanned(
                    &block.self_ty,
                    "`#[mercure_autotrack]` goes on the service's own `impl` block, not on a trait implementation",
                );
                quote::quote!(#block)
            } else {
                expand::impl_block(block, &private)
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
