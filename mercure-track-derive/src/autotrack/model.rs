//! Stage 2: the validated model of an auto-tracked service.

use proc_macro2::TokenStream;

use crate::errors::Errors;

pub(crate) struct Service {
    pub(crate) item: syn::ItemStruct,
    pub(crate) events: Vec<syn::Path>,
    /// The `session` field's type; `None` when missing (an error was reported).
    pub(crate) session_ty: Option<syn::Type>,
    /// `::mercure_track::__private_v0_1`, or under the path given by `crate = ...`.
    pub(crate) private: TokenStream,
}

pub(crate) fn service(
    item: syn::ItemStruct,
    events: Vec<syn::Path>,
    args: &TokenStream,
    args_invalid: bool,
    private: TokenStream,
    errors: &mut Errors,
) -> Service {
    // Invalid arguments were reported already.
    if events.is_empty() && !args_invalid {
        errors.spanned(
            if args.is_empty() { quote::quote!(#item) } else { args.clone() },
            "expected `#[mercure_autotrack(EventA, EventB)]` on a service struct: list the events it tracks",
        );
    }
    let session_ty = match &item.fields {
        syn::Fields::Named(named) => named
            .named
            .iter()
            .find(|f| f.ident.as_ref().is_some_and(|i| i == "session"))
            .map(|f| f.ty.clone()),
        _ => None,
    };
    if session_ty.is_none() {
        errors.spanned(
            &item.ident,
            format_args!(
                "`#[mercure_autotrack]` requires a field `session: TrackedSession<DB>` in `{}`, the session whose changes are tracked",
                item.ident
            ),
        );
    }
    Service {
        item,
        events,
        session_ty,
        private,
    }
}
