//! Stage 3: the generated code of `#[derive(MercureEvent)]`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::model::{Event, Kind, Rule, Topic, TopicPart, model_path_string};

pub(crate) fn expand(event: &Event, has_errors: bool) -> TokenStream {
    let p = quote!(::mercure_track::__private);
    let ident = &event.ident;
    let rust_name = ident.to_string();
    let type_name = &event.type_name;
    let private = event.private;
    let templates = event.topics.iter().map(|t| &t.lit);
    let topics = event.topics.iter().map(topic_expr);
    let field_count = event.fields.len() + 1;

    let serialize_fields = event.fields.iter().map(|field| {
        let name = field.ident.to_string();
        let field_ident = &field.ident;
        quote_spanned! {field.ty.span()=>
            #p::serde::ser::SerializeStruct::serialize_field(&mut state, #name, &self.#field_ident)?;
        }
    });
    let schema_fields = event.fields.iter().map(|field| {
        let name = field.ident.to_string();
        let ty = &field.ty;
        quote_spanned! {ty.span()=>
            (#name, generator.subschema_for::<#ty>())
        }
    });

    let triggers = match &event.kind {
        Kind::Triggered(triggers) if !has_errors => triggers_fn(event, triggers),
        // On error, register no trigger: the checks below would only repeat the error.
        _ => quote!(fn __triggers() -> ::std::vec::Vec<#p::TriggerSpec> { ::std::vec::Vec::new() }),
    };
    let from_context = from_context_impl(event);
    let context_checks = context_type_checks(event);
    let (batch_spec, batch_impl) = batch(event);

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
                    out: &mut ::std::vec::Vec<u8>,
                ) -> ::core::result::Result<(), #p::serde_json::Error> {
                    let mut serializer = #p::serde_json::Serializer::new(out);
                    let mut state = #p::serde::Serializer::serialize_struct(
                        &mut serializer, #rust_name, #field_count,
                    )?;
                    #p::serde::ser::SerializeStruct::serialize_field(&mut state, "type", #type_name)?;
                    #(#serialize_fields)*
                    #p::serde::ser::SerializeStruct::end(state)
                }

                fn json_schema(
                    generator: &mut #p::schemars::SchemaGenerator,
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
        quote!(::std::string::String::from(#format))
    } else {
        quote!(::std::format!(#format, #(#args),*))
    }
}

/// The model part of a column marker path: `Order` in `Order::status`.
fn model_path(path: &syn::ExprPath) -> syn::Path {
    let mut model = path.path.clone();
    model.segments.pop();
    model.segments.pop_punct();
    model
}

fn triggers_fn(event: &Event, triggers: &[syn::ExprPath]) -> TokenStream {
    let p = quote!(::mercure_track::__private);
    let specs = triggers.iter().map(|trigger| {
        let trigger_model = model_path(trigger);
        let trigger_model_text = model_path_string(trigger);
        let contexts = event.fields.iter().filter_map(|field| {
            let context = field.context.as_ref()?;
            let name = field.ident.to_string();
            let ty = &field.ty;
            let context_model = model_path(context);
            let via = field
                .via
                .iter()
                .find(|via| model_path_string(via) == trigger_model_text);
            // Same model when the paths are the same tokens: no search then, so that a model
            // that belongs to itself is not ambiguous.
            let links = if model_path_string(context) == trigger_model_text {
                quote!(::std::vec::Vec::new())
            } else if let Some(via) = via {
                quote_spanned! {via.span()=>
                    #p::path_via::<_, _, _, #context_model, _>(#via)
                }
            } else {
                quote_spanned! {context.span()=>
                    #p::path::<#trigger_model, #context_model, _>()
                }
            };
            Some(quote_spanned! {context.span()=>
                #p::ContextPath {
                    field: #name,
                    column: #p::context_column::<#ty, _>(#context),
                    links: #links,
                }
            })
        });
        quote_spanned! {trigger.span()=>
            #p::trigger(#trigger, ::std::vec![#(#contexts),*])
        }
    });
    quote! {
        fn __triggers() -> ::std::vec::Vec<#p::TriggerSpec> {
            ::std::vec![#(#specs),*]
        }
    }
}

fn from_context_impl(event: &Event) -> TokenStream {
    let p = quote!(::mercure_track::__private);
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
        let name = field_ident.to_string();
        let ty = &field.ty;
        quote! {
            #field_ident: <__S as #p::ContextSource<#ty>>::context_value(source, #index, #name)?
        }
    });
    quote! {
        #[automatically_derived]
        impl<__S> #p::FromContext<__S> for #ident
        where
            __S: #(#bounds)+*
        {
            fn from_context(
                source: &mut __S,
            ) -> ::core::result::Result<Self, #p::ContextError> {
                ::core::result::Result::Ok(Self { #(#reads),* })
            }
        }
    }
}

/// Events published by hand may still declare context columns: check their types.
fn context_type_checks(event: &Event) -> TokenStream {
    let p = quote!(::mercure_track::__private);
    if !matches!(event.kind, Kind::Plain) {
        return TokenStream::new();
    }
    let checks = event.fields.iter().filter_map(|field| {
        let context = field.context.as_ref()?;
        let ty = &field.ty;
        Some(quote_spanned! {context.span()=> #p::context_column::<#ty, _>(#context); })
    });
    quote!(const _: fn() = || { #(#checks)* };)
}

fn batch(event: &Event) -> (TokenStream, TokenStream) {
    let p = quote!(::mercure_track::__private);
    let Kind::Batch { collects, rule } = &event.kind else {
        return (quote!(::core::option::Option::None), TokenStream::new());
    };
    let ident = &event.ident;
    let type_ids = collects.iter().map(|c| {
        quote_spanned! {c.span()=> ::core::any::TypeId::of::<#c>() }
    });
    let body = match rule {
        Rule::Custom(function) => quote_spanned! {function.span()=> #function(collected) },
        Rule::BuiltIn => {
            let gathers = event.fields.iter().map(|field| {
                let field_ident = &field.ident;
                let from = &field.from;
                let extends = collects.iter().map(|c| {
                    quote_spanned! {c.span()=>
                        #field_ident.extend(collected.of::<#c>().map(|event| ::core::clone::Clone::clone(&event.#from)));
                    }
                });
                quote! {
                    let mut #field_ident = ::std::vec::Vec::new();
                    #(#extends)*
                }
            });
            let empties: Vec<TokenStream> = event
                .fields
                .iter()
                .map(|f| {
                    let field_ident = &f.ident;
                    quote!(#field_ident.is_empty())
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
                quote!(#field_ident: #p::sorted_unique(#field_ident))
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
                fn __is_event<E: #p::MercureEvent>() {}
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
                collected: &#p::Collected<'_>,
            ) -> ::core::option::Option<Self> {
                #body
            }
        }

        fn __collects() -> ::std::vec::Vec<::core::any::TypeId> {
            #event_checks
            ::std::vec![#(#type_ids),*]
        }

        fn __build(
            collected: &#p::Collected<'_>,
        ) -> ::core::option::Option<::std::boxed::Box<dyn #p::AnyEvent>> {
            <#ident as #p::BatchEvent>::from_collected(collected)
                .map(|event| ::std::boxed::Box::new(event) as ::std::boxed::Box<dyn #p::AnyEvent>)
        }
    };
    (spec, implementation)
}
