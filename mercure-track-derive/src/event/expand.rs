//! Stage 3: the generated code of `#[derive(MercureEvent)]`.
//!
//! Hygiene as in serde_derive: every path is absolute (`::core`, `::std`, or the runtime's
//! versioned support module, whose path `crate = ...` can change), trait methods are called
//! through their trait's path, every local and parameter starts with `__`, and nothing relies
//! on the prelude.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::model::{Event, Kind, Rule, Topic, TopicPart, model_name};
use crate::attr::respan;

pub(crate) fn expand(event: &Event, has_errors: bool) -> TokenStream {
    let p = &event.private;
    let ident = &event.ident;
    let rust_name = ident.to_string();
    let type_name = &event.type_name;
    let private = event.private_updates;
    let templates = event.topics.iter().map(|t| &t.lit);
    let topics = event.topics.iter().map(topic_expr);
    let field_count = event.fields.len() + 1;

    let serialize_fields = event.fields.iter().map(|field| {
        let name = &field.name;
        let field_ident = &field.ident;
        quote_spanned! {field.ty.span()=>
            #p::serde::ser::SerializeStruct::serialize_field(&mut __state, #name, &self.#field_ident)?;
        }
    });
    let schema_fields = event.fields.iter().map(|field| {
        let name = &field.name;
        let ty = &field.ty;
        quote_spanned! {ty.span()=>
            (#name, #p::schemars::SchemaGenerator::subschema_for::<#ty>(__generator))
        }
    });

    let triggers = match &event.kind {
        Kind::Triggered(triggers) if !has_errors => triggers_fn(event, triggers),
        // On error, register no trigger: the checks below would only repeat the error.
        _ => quote!(fn __triggers() -> ::std::vec::Vec<#p::TriggerSpec> { ::std::vec::Vec::new() }),
    };
    let from_context = from_context_impl(event);
    let context_checks = context_type_checks(event);
    let (batch_spec, batch_impl) = batch(event, has_errors);
    let unique_type = unique_type_check(event);

    quote! {
        const _: () = {
            #[automatically_derived]
            impl #p::MercureEvent for #ident {
                const TYPE: &'static str = #type_name;

                fn descriptor() -> &'static #p::EventDescriptor {
                    &__DESCRIPTOR
                }

                fn topics(&self) -> ::std::vec::Vec<::std::string::String> {
                    ::std::vec![#(#topics),*]
                }

                fn write_json(
                    &self,
                    __out: &mut ::std::vec::Vec<u8>,
                ) -> ::core::result::Result<(), #p::serde_json::Error> {
                    let mut __serializer = #p::serde_json::Serializer::new(__out);
                    let mut __state = #p::serde::Serializer::serialize_struct(
                        &mut __serializer, #rust_name, #field_count,
                    )?;
                    #p::serde::ser::SerializeStruct::serialize_field(&mut __state, "type", #type_name)?;
                    #(#serialize_fields)*
                    #p::serde::ser::SerializeStruct::end(__state)
                }

                fn json_schema(
                    __generator: &mut #p::schemars::SchemaGenerator,
                ) -> #p::schemars::Schema {
                    #p::object_schema(#rust_name, #type_name, ::std::vec![#(#schema_fields),*])
                }

                fn is_private(&self) -> bool {
                    #private
                }
            }

            static __DESCRIPTOR: #p::EventDescriptor = #p::EventDescriptor {
                type_name: #type_name,
                rust_name: #rust_name,
                topic_templates: &[#(#templates),*],
                type_id: ::core::any::TypeId::of::<#ident>,
                triggers: __triggers,
                batch: #batch_spec,
                json_schema: <#ident as #p::MercureEvent>::json_schema,
            };

            #p::inventory::submit! { #p::Registration(&__DESCRIPTOR) }

            #triggers
            #from_context
            #context_checks
            #batch_impl
        };
        #unique_type
    }
}

/// Two events of one crate with the same `type` string define the same macro name, which the
/// compiler refuses (E0428) on both `type = "..."` literals. Across crates, see
/// `mercure_track::registry::validate`.
fn unique_type_check(event: &Event) -> TokenStream {
    let Some(lit) = &event.type_lit else {
        return TokenStream::new();
    };
    let type_name = &event.type_name;
    if type_name.is_empty() {
        return TokenStream::new();
    }
    let readable = type_name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_');
    let suffix = if readable {
        type_name.clone()
    } else {
        type_name.bytes().map(|b| format!("{b:02x}")).collect()
    };
    let name = format_ident!(
        "__mercure_track_event_type_{}_is_used_by_two_events",
        suffix,
        span = lit.span()
    );
    quote_spanned! {lit.span()=>
        #[doc(hidden)]
        #[macro_export]
        macro_rules! #name { () => {}; }
    }
}

fn topic_expr(topic: &Topic) -> TokenStream {
    let mut format = String::new();
    let mut args = Vec::new();
    for part in &topic.parts {
        match part {
            TopicPart::Text(text) => format.push_str(&text.replace('{', "{{").replace('}', "}}")),
            TopicPart::Field(field) => {
                format.push_str("{}");
                args.push(quote!(self.#field));
            }
        }
    }
    if args.is_empty() {
        quote!(<::std::string::String as ::core::convert::From<&str>>::from(#format))
    } else {
        quote!(::std::format!(#format, #(#args),*))
    }
}

fn triggers_fn(event: &Event, triggers: &[syn::ExprPath]) -> TokenStream {
    let p = &event.private;
    let specs = triggers.iter().map(|trigger| {
        let trigger_model = model_name(trigger);
        let contexts = event.fields.iter().filter_map(|field| {
            let context = field.context.as_ref()?;
            let name = &field.name;
            let ty = &field.ty;
            // The `via` of this trigger's model, paired by name; the compiler checks the types.
            let via = field
                .via
                .iter()
                .find(|via| model_name(via) == trigger_model);
            // The models are compared as types: the same model, however spelled, needs no join.
            // `__from` is the trigger's model, known before the search starts; the context's
            // model is bound first too, so that the search cannot unify one with the other.
            let links = match via {
                Some(via) => {
                    let p = respan(p, via.span());
                    quote_spanned! {via.span()=>
                        {
                            let __to = #p::model_of(&#context);
                            #p::Models(__from, __to).path_via(#via)
                        }
                    }
                }
                None => {
                    let p = respan(p, context.span());
                    quote_spanned! {context.span()=>
                        {
                            let __to = #p::model_of(&#context);
                            #p::Models(__from, __to).path()
                        }
                    }
                }
            };
            let p = respan(p, context.span());
            Some(quote_spanned! {context.span()=>
                #p::ContextPath {
                    field: #name,
                    column: #p::context_column::<#ty, _>(#context),
                    links: #links,
                }
            })
        });
        let p = respan(p, trigger.span());
        quote_spanned! {trigger.span()=>
            #p::trigger(#trigger, |__from| ::std::vec![#(#contexts),*])
        }
    });
    quote! {
        fn __triggers() -> ::std::vec::Vec<#p::TriggerSpec> {
            ::std::vec![#(#specs),*]
        }
    }
}

fn from_context_impl(event: &Event) -> TokenStream {
    let p = &event.private;
    if event.fields.iter().any(|f| f.context.is_none()) || matches!(event.kind, Kind::Batch { .. })
    {
        return TokenStream::new();
    }
    let ident = &event.ident;
    let bounds = event.fields.iter().map(|field| {
        let ty = &field.ty;
        quote!(#p::ContextSource<#ty>)
    });
    let reads = event.fields.iter().enumerate().map(|(index, field)| {
        let field_ident = &field.ident;
        let name = &field.name;
        let ty = &field.ty;
        quote! {
            #field_ident: <__S as #p::ContextSource<#ty>>::context_value(__source, #index, #name)?
        }
    });
    quote! {
        #[automatically_derived]
        impl<__S> #p::FromContext<__S> for #ident
        where
            __S: #(#bounds)+*
        {
            fn from_context(
                __source: &mut __S,
            ) -> ::core::result::Result<Self, #p::ContextError> {
                ::core::result::Result::Ok(Self { #(#reads),* })
            }
        }
    }
}

/// Events published by hand may still declare context columns: check their types.
fn context_type_checks(event: &Event) -> TokenStream {
    let p = &event.private;
    if !matches!(event.kind, Kind::Plain) {
        return TokenStream::new();
    }
    let checks = event.fields.iter().filter_map(|field| {
        let context = field.context.as_ref()?;
        let ty = &field.ty;
        let p = respan(p, context.span());
        Some(quote_spanned! {context.span()=> #p::context_column::<#ty, _>(#context); })
    });
    quote!(const _: fn() = || { #(#checks)* };)
}

fn batch(event: &Event, has_errors: bool) -> (TokenStream, TokenStream) {
    let p = &event.private;
    let Kind::Batch { collects, rule } = &event.kind else {
        return (quote!(::core::option::Option::None), TokenStream::new());
    };
    let ident = &event.ident;
    let type_ids = collects.iter().map(|c| {
        quote_spanned! {c.span()=> ::core::any::TypeId::of::<#c>() }
    });
    let local = |field: &syn::Ident| format_ident!("__{}", crate::attr::unraw(field));
    let body = match rule {
        // The error was reported; a body reading the collected events would only repeat it.
        Rule::BuiltIn if has_errors => quote!(::core::option::Option::None),
        Rule::Custom(function) => quote_spanned! {function.span()=> #function(__collected) },
        Rule::BuiltIn => {
            let gathers = event.fields.iter().map(|field| {
                let gathered = local(&field.ident);
                let from = &field.from;
                let extends = collects.iter().map(|c| {
                    let p = respan(p, c.span());
                    quote_spanned! {c.span()=>
                        ::core::iter::Extend::extend(
                            &mut #gathered,
                            ::core::iter::Iterator::map(
                                #p::Collected::of::<#c>(__collected),
                                |__event| ::core::clone::Clone::clone(&__event.#from),
                            ),
                        );
                    }
                });
                quote! {
                    let mut #gathered = ::std::vec::Vec::new();
                    #(#extends)*
                }
            });
            let empties: Vec<TokenStream> = event
                .fields
                .iter()
                .map(|f| {
                    let gathered = local(&f.ident);
                    quote!(#gathered.is_empty())
                })
                .collect();
            // A batch event without fields was reported; keep the expansion well-formed.
            let nothing_collected = if empties.is_empty() {
                quote!(true)
            } else {
                quote!(#(#empties)&&*)
            };
            let builds = event.fields.iter().map(|f| {
                let field_ident = &f.ident;
                let gathered = local(field_ident);
                quote!(#field_ident: #p::sorted_unique(#gathered))
            });
            quote! {
                #(#gathers)*
                if #nothing_collected {
                    return ::core::option::Option::None;
                }
                ::core::option::Option::Some(Self { #(#builds),* })
            }
        }
    };
    // The built-in rule's `collected.of::<E>()` already requires each collected type to be an
    // event; a hand-written rule may not look at all of them.
    let event_checks = match rule {
        Rule::BuiltIn => TokenStream::new(),
        Rule::Custom(_) => {
            let checks = collects
                .iter()
                .map(|c| quote_spanned! {c.span()=> __is_event::<#c>(); });
            quote! {
                fn __is_event<__E: #p::MercureEvent>() {}
                #(#checks)*
            }
        }
    };
    let spec = quote! {
        ::core::option::Option::Some(#p::BatchSpec {
            collects: __collects,
            build: __build,
        })
    };
    let implementation = quote! {
        #[automatically_derived]
        impl #p::BatchEvent for #ident {
            fn from_collected(
                __collected: &#p::Collected<'_>,
            ) -> ::core::option::Option<Self> {
                #body
            }
        }

        fn __collects() -> ::std::vec::Vec<::core::any::TypeId> {
            #event_checks
            ::std::vec![#(#type_ids),*]
        }

        fn __build(
            __collected: &#p::Collected<'_>,
        ) -> ::core::option::Option<::std::boxed::Box<dyn #p::AnyEvent>> {
            ::core::option::Option::map(
                <#ident as #p::BatchEvent>::from_collected(__collected),
                |__event| ::std::boxed::Box::new(__event) as ::std::boxed::Box<dyn #p::AnyEvent>,
            )
        }
    };
    (spec, implementation)
}
