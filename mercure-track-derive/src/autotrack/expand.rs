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
    let auto_tracked = |body: TokenStream| {
        quote! {
            #[automatically_derived]
            impl #impl_generics #p::AutoTracked for #ident #ty_generics #where_clause {
                fn tracked_events() -> ::std::vec::Vec<&'static #p::EventDescriptor> {
                    ::std::vec![#(#descriptors),*]
                }

                fn __mercure_autotrack(&mut self) {
                    #body
                }
            }
        }
    };
    // Without a session or events there is nothing to track: the error was reported; the
    // implementation stays so that the `impl` block's calls do not cascade.
    let Some(session_ty) = service.session_ty.as_ref().filter(|_| !events.is_empty()) else {
        let implementation = auto_tracked(TokenStream::new());
        return quote!(#item #implementation);
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
    let implementation = auto_tracked(quote! {
        #session_check
        #(#track)*
    });
    quote! {
        #item

        const _: () = {
            #[allow(dead_code)]
            fn __mercure_autotrack_impl_check #impl_generics () #where_clause {
                #impl_check
            }
        };

        #implementation
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
                let statement: syn::Stmt = if receiver.reference.is_some() {
                    syn::parse_quote!(#p::AutoTracked::__mercure_autotrack(&mut *self);)
                } else {
                    syn::parse_quote!(#p::AutoTracked::__mercure_autotrack(&mut self);)
                };
                function.block.stmts.insert(0, statement);
            }
            Some(_) => {}
            None if returns_self(&function.sig.output) => {
                let body = &function.block;
                let wrapped: syn::Block = if function.sig.asyncness.is_some() {
                    syn::parse_quote!({
                        let mut __service: Self = async move #body.await;
                        #p::AutoTracked::__mercure_autotrack(&mut __service);
                        __service
                    })
                } else {
                    syn::parse_quote!({
                        #[allow(clippy::redundant_closure_call)]
                        let mut __service: Self = (move || -> Self #body)();
                        #p::AutoTracked::__mercure_autotrack(&mut __service);
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
