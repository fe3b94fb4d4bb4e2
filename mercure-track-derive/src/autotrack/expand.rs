//! Stage 3: the generated code of `#[mercure_autotrack]`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::model::Service;

pub(crate) fn service(service: &Service) -> TokenStream {
    let p = &service.private;
    let item = &service.item;
    let ident = &item.ident;
    let (impl_generics, ty_generics, where_clause) = item.generics.split_for_impl();
    let events = &service.events;
    let descriptors = events.iter().map(|event| {
        quote_spanned! {event.span()=> <#event as #p::MercureEvent>::descriptor() }
    });
    // Without a session or events there is nothing to track: the struct alone, and the
    // error already reported.
    let Some(session_ty) = service.session_ty.as_ref().filter(|_| !events.is_empty()) else {
        return quote!(#item);
    };
    let track = events.iter().map(|event| {
        quote_spanned! {event.span()=>
            <#session_ty as #p::TrackingSession>::track_event::<#event>(&mut self.session);
        }
    });
    let session_check = quote_spanned! {session_ty.span()=>
        #p::assert_tracking_session::<#session_ty>();
    };
    // The struct's attribute alone would track nothing: require the `impl` block's.
    let impl_check = quote_spanned! {ident.span()=>
        #p::assert_autotrack_impl::<#ident #ty_generics>();
    };
    quote! {
        #item

        const _: () = {
            #[allow(dead_code)]
            fn __mercure_autotrack_impl_check #impl_generics () #where_clause {
                #impl_check
            }
        };

        #[automatically_derived]
        impl #impl_generics #p::AutoTracked for #ident #ty_generics #where_clause {
            fn tracked_events() -> ::std::vec::Vec<&'static #p::EventDescriptor> {
                ::std::vec![#(#descriptors),*]
            }
        }

        #[automatically_derived]
        impl #impl_generics #ident #ty_generics #where_clause {
            /// Tracks the service's events on its session. Called by the code that
            /// `#[mercure_autotrack]` puts in the `impl` block.
            #[doc(hidden)]
            #[allow(dead_code)]
            fn __mercure_autotrack(&mut self) {
                #session_check
                #(#track)*
            }
        }
    }
}

/// Every method taking `&mut self` or `mut self` starts by tracking; every function returning
/// `Self` tracks on the value it builds. The block also implements the marker the struct's
/// attribute requires.
pub(crate) fn impl_block(mut block: syn::ItemImpl, p: &TokenStream) -> TokenStream {
    for item in &mut block.items {
        let syn::ImplItem::Fn(function) = item else {
            continue;
        };
        match function.sig.receiver() {
            // `&mut self` and `mut self` both carry `mutability`.
            Some(receiver) if receiver.mutability.is_some() => {
                let statement: syn::Stmt = syn::parse_quote!(self.__mercure_autotrack(););
                function.block.stmts.insert(0, statement);
            }
            Some(_) => {}
            None if returns_self(&function.sig.output) => {
                let body = &function.block;
                let wrapped: syn::Block = if function.sig.asyncness.is_some() {
                    syn::parse_quote!({
                        let mut __service: Self = async move #body.await;
                        __service.__mercure_autotrack();
                        __service
                    })
                } else {
                    syn::parse_quote!({
                        #[allow(clippy::redundant_closure_call)]
                        let mut __service: Self = (move || -> Self #body)();
                        __service.__mercure_autotrack();
                        __service
                    })
                };
                function.block = wrapped;
            }
            None => {}
        }
    }
    let (impl_generics, _, where_clause) = block.generics.split_for_impl();
    let self_ty = &block.self_ty;
    quote! {
        #block

        #[automatically_derived]
        impl #impl_generics #p::AutotrackImpl for #self_ty #where_clause {}
    }
}

fn returns_self(output: &syn::ReturnType) -> bool {
    match output {
        syn::ReturnType::Type(_, ty) => match &**ty {
            syn::Type::Path(path) => path.qself.is_none() && path.path.is_ident("Self"),
            _ => false,
        },
        syn::ReturnType::Default => false,
    }
}
