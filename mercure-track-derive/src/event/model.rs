//! Stage 2: the validated model of an event.

use super::attr::Parsed;
use crate::attr::{ident_from_name, private_path, unraw};
use crate::errors::Errors;

pub(crate) struct Event {
    pub(crate) ident: syn::Ident,
    pub(crate) type_name: String,
    /// The `type = "..."` literal, for the duplicate check's span.
    pub(crate) type_lit: Option<syn::LitStr>,
    /// `::mercure_track::__private_v0_1`, or under the path given by `crate = ...`.
    pub(crate) private: proc_macro2::TokenStream,
    pub(crate) topics: Vec<Topic>,
    /// `#[mercure(private)]`: updates are private.
    pub(crate) private_updates: bool,
    pub(crate) kind: Kind,
    pub(crate) fields: Vec<Field>,
}

pub(crate) enum Kind {
    /// Published by hand only.
    Plain,
    /// Fired by changes of these columns.
    Triggered(Vec<syn::ExprPath>),
    /// Built once per commit from the collected events.
    Batch {
        collects: Vec<syn::Path>,
        rule: Rule,
    },
}

pub(crate) enum Rule {
    BuiltIn,
    Custom(syn::Path),
}

pub(crate) struct Field {
    pub(crate) ident: syn::Ident,
    /// The name in the JSON, the schema and topic placeholders: `ref` for `r#ref`, as serde.
    pub(crate) name: String,
    pub(crate) ty: syn::Type,
    pub(crate) context: Option<syn::ExprPath>,
    /// Foreign keys that start the context path from their model's triggers.
    pub(crate) via: Vec<syn::ExprPath>,
    /// Whether a `#[context]` attribute was written, valid or not.
    pub(crate) context_written: bool,
    /// For the built-in batch rule: the collected events' field gathered into this one.
    pub(crate) from: syn::Ident,
}

pub(crate) struct Topic {
    pub(crate) lit: syn::LitStr,
    pub(crate) parts: Vec<TopicPart>,
}

pub(crate) enum TopicPart {
    Text(String),
    Field(syn::Ident),
}

pub(crate) fn build(input: &syn::DeriveInput, parsed: Parsed, errors: &mut Errors) -> Event {
    let ident = input.ident.clone();
    if !input.generics.params.is_empty() {
        errors.spanned(
            &input.generics,
            "`#[derive(MercureEvent)]` does not support generic events: the registry needs one concrete type per event",
        );
    }
    let named = match &input.data {
        syn::Data::Struct(syn::DataStruct {
            fields: syn::Fields::Named(named),
            ..
        }) => Some(named),
        syn::Data::Struct(syn::DataStruct {
            fields: syn::Fields::Unit,
            ..
        }) => None,
        _ => {
            errors.spanned(
                &ident,
                "`#[derive(MercureEvent)]` expects a struct with named fields",
            );
            None
        }
    };
    let attrs = parsed.attrs;

    let type_name = match &attrs.type_name {
        Some(lit) if lit.value().is_empty() => {
            errors.spanned(
                lit,
                "expected `type = \"...\"` with a non-empty type string",
            );
            String::new()
        }
        Some(lit) => lit.value(),
        None => {
            errors.spanned(
                &ident,
                format_args!("missing `#[mercure(type = \"...\")]` on event `{ident}`"),
            );
            String::new()
        }
    };

    let mut fields = Vec::new();
    if let Some(named) = named {
        for (field, field_attrs) in named.named.iter().zip(parsed.fields) {
            let Some(field_ident) = field.ident.clone() else {
                continue;
            };
            let from = match &field_attrs.from {
                Some(lit) => match ident_from_name(&lit.value(), lit.span()) {
                    Some(ident) => ident,
                    None => {
                        errors.spanned(lit, "expected `from = \"field\"`, a field name");
                        field_ident.clone()
                    }
                },
                None => default_from(&field_ident),
            };
            if let (Some(lit), None) = (&field_attrs.from, &attrs.collect) {
                errors.spanned(
                    lit,
                    "`from` applies to batch events: add `collect(Event, ...)`",
                );
            }
            fields.push(Field {
                name: unraw(&field_ident),
                ident: field_ident,
                ty: field.ty.clone(),
                context: field_attrs.context,
                via: field_attrs.via,
                context_written: field_attrs.context_attr.is_some(),
                from,
            });
        }
    }

    let field_names: Vec<(String, syn::Ident)> = fields
        .iter()
        .map(|f| (f.name.clone(), f.ident.clone()))
        .collect();
    if attrs.topics.is_empty() && attrs.type_name.is_some() {
        errors.spanned(
            &ident,
            format_args!("missing `#[mercure(topic = \"...\")]` on event `{ident}`: an event needs at least one topic"),
        );
    }
    let topics = attrs
        .topics
        .into_iter()
        .map(|lit| parse_topic(lit, &field_names, &ident, errors))
        .collect();

    for path in attrs
        .triggers
        .iter()
        .chain(fields.iter().filter_map(|f| f.context.as_ref()))
        .chain(fields.iter().flat_map(|f| &f.via))
    {
        if path.path.segments.len() < 2 {
            errors.spanned(
                path,
                "expected a column marker `Model::field`, such as `Order::status`",
            );
        }
    }
    let trigger_models: Vec<String> = attrs.triggers.iter().map(model_name).collect();
    for via in fields.iter().flat_map(|f| &f.via) {
        if via.path.segments.len() >= 2 && !trigger_models.contains(&model_name(via)) {
            errors.spanned(
                via,
                "`via` names a foreign key of a model that no `#[trigger(...)]` of this event is on: the path it starts is never taken",
            );
        }
    }
    let kind = match (attrs.triggers.is_empty(), attrs.collect) {
        (true, None) => {
            if let Some(path) = &attrs.from_collected {
                errors.spanned(
                    path,
                    "`from_collected` applies to batch events: add `collect(Event, ...)`",
                );
            }
            Kind::Plain
        }
        (false, None) => {
            if let Some(path) = &attrs.from_collected {
                errors.spanned(
                    path,
                    "`from_collected` applies to batch events: add `collect(Event, ...)`",
                );
            }
            for field in &fields {
                if !field.context_written {
                    errors.spanned(
                        &field.ident,
                        format_args!(
                            "field `{}` of a triggered event needs `#[context(Model::column)]`: where its value comes from",
                            field.ident
                        ),
                    );
                }
            }
            Kind::Triggered(attrs.triggers)
        }
        (triggers_empty, Some((collect_path, collects))) => {
            if !triggers_empty {
                errors.spanned(
                    &collect_path,
                    "a batch event is built from the events it collects and cannot also have `#[trigger(...)]`",
                );
            }
            for field in &fields {
                if let Some(context) = &field.context {
                    errors.spanned(
                        context,
                        "a field of a batch event is gathered from collected events, not read from `#[context(...)]`",
                    );
                }
            }
            let rule = match attrs.from_collected {
                Some(path) => Rule::Custom(path),
                None => {
                    if fields.is_empty() {
                        errors.spanned(
                            &ident,
                            "the built-in batch rule gathers fields of the collected events: add a field such as `order_ids: Vec<String>`, or use `from_collected = function`",
                        );
                    }
                    Rule::BuiltIn
                }
            };
            Kind::Batch { collects, rule }
        }
    };

    Event {
        ident,
        type_name,
        type_lit: attrs.type_name,
        private: private_path(attrs.krate.as_ref()),
        topics,
        private_updates: attrs.private.is_some(),
        kind,
        fields,
    }
}

/// `order_ids` gathers `order_id`.
fn default_from(field: &syn::Ident) -> syn::Ident {
    let name = unraw(field);
    name.strip_suffix('s')
        .filter(|singular| !singular.is_empty())
        .and_then(|singular| ident_from_name(singular, field.span()))
        .unwrap_or_else(|| field.clone())
}

fn parse_topic(
    lit: syn::LitStr,
    fields: &[(String, syn::Ident)],
    event: &syn::Ident,
    errors: &mut Errors,
) -> Topic {
    let value = lit.value();
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '{' => {
                let mut name = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                if !closed {
                    errors.spanned(&lit, "unclosed `{` in topic template; expected `{field}`");
                    break;
                }
                let found = fields.iter().find(|(field, _)| *field == name);
                let bare = name.strip_prefix("r#");
                if let (None, Some(bare)) = (found, bare)
                    && fields.iter().any(|(field, _)| field == bare)
                {
                    errors.spanned(
                        &lit,
                        format_args!(
                            "topic placeholder `{{{name}}}`: write `{{{bare}}}`, the field's name without `r#` (as in the JSON)"
                        ),
                    );
                    continue;
                }
                let Some((_, field)) = found else {
                    let mut known: Vec<_> = fields.iter().map(|(name, _)| name.as_str()).collect();
                    known.sort_unstable();
                    errors.spanned(
                        &lit,
                        format_args!(
                            "topic placeholder `{{{name}}}` names no field of `{event}`; fields: {}",
                            if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                        ),
                    );
                    continue;
                };
                if !text.is_empty() {
                    parts.push(TopicPart::Text(std::mem::take(&mut text)));
                }
                let mut field = field.clone();
                field.set_span(lit.span());
                parts.push(TopicPart::Field(field));
            }
            '}' => {
                errors.spanned(&lit, "unmatched `}` in topic template; expected `{field}`");
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        parts.push(TopicPart::Text(text));
    }
    if value.is_empty() {
        errors.spanned(&lit, "expected `topic = \"...\"` with a non-empty topic");
    }
    Topic { lit, parts }
}

/// The name of the model of a column marker path: `Order` for `Order::status` and
/// `self::models::Order::status`. Only to pair a `via` with its trigger; the compiler then
/// checks that both name the same model type.
pub(crate) fn model_name(path: &syn::ExprPath) -> String {
    let segments = &path.path.segments;
    segments
        .len()
        .checked_sub(2)
        .and_then(|index| segments.iter().nth(index))
        .map(|segment| segment.ident.to_string())
        .unwrap_or_default()
}
