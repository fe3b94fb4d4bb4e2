//! Stage 1: the `#[mercure(...)]`, `#[trigger(...)]` and `#[context(...)]` attributes as
//! written.

use syn::punctuated::Punctuated;

use crate::attr::{SeenKeys, flag, parse_attrs, skip_value, string_value, unknown_key};
use crate::errors::Errors;

const STRUCT_KEYS: &str = "`type = \"...\"`, `topic = \"...\"`, `private`, `collect(Event, ...)`, `from_collected = path`, `crate = path`";
const FIELD_KEYS: &str = "`from = \"...\"` (on a field of a batch event)";

pub(crate) struct StructAttrs {
    pub(crate) type_name: Option<syn::LitStr>,
    pub(crate) topics: Vec<syn::LitStr>,
    pub(crate) private: Option<syn::Path>,
    pub(crate) collect: Option<(syn::Path, Vec<syn::Path>)>,
    pub(crate) from_collected: Option<syn::Path>,
    pub(crate) krate: Option<syn::Path>,
    /// Every path of every `#[trigger(...)]`, with the attribute's own path for messages.
    pub(crate) triggers: Vec<syn::ExprPath>,
    pub(crate) trigger_attr: Option<syn::Path>,
}

/// `#[context(Model::column)]` or `#[context(Model::column, via(Model::foreign_key, ...))]`.
pub(crate) struct ContextArgs {
    pub(crate) column: syn::ExprPath,
    pub(crate) via: Vec<syn::ExprPath>,
}

impl syn::parse::Parse for ContextArgs {
    fn parse(input: syn::parse::ParseStream<'_>) -> syn::Result<Self> {
        let column = input.parse()?;
        let mut via = Vec::new();
        if input.parse::<Option<syn::Token![,]>>()?.is_some() && !input.is_empty() {
            let key: syn::Ident = input.parse()?;
            if key != "via" {
                return Err(syn::Error::new(
                    key.span(),
                    "expected `via(Model::foreign_key, ...)` after the column",
                ));
            }
            let content;
            syn::parenthesized!(content in input);
            via = Punctuated::<syn::ExprPath, syn::Token![,]>::parse_terminated(&content)?
                .into_iter()
                .collect();
            input.parse::<Option<syn::Token![,]>>()?;
        }
        Ok(Self { column, via })
    }
}

pub(crate) struct FieldAttrs {
    pub(crate) context: Option<syn::ExprPath>,
    pub(crate) via: Vec<syn::ExprPath>,
    pub(crate) context_attr: Option<syn::Path>,
    pub(crate) from: Option<syn::LitStr>,
}

pub(crate) struct Parsed {
    pub(crate) attrs: StructAttrs,
    pub(crate) fields: Vec<FieldAttrs>,
}

pub(crate) fn parse(input: &syn::DeriveInput, errors: &mut Errors) -> Parsed {
    let mut attrs = StructAttrs {
        type_name: None,
        topics: Vec::new(),
        private: None,
        collect: None,
        from_collected: None,
        krate: None,
        triggers: Vec::new(),
        trigger_attr: None,
    };
    let mut seen = SeenKeys::default();
    parse_attrs(&input.attrs, "mercure", errors, |meta, errors| {
        if meta.path.is_ident("type") {
            let value = string_value(meta, "type = \"...\"")?;
            if seen.first(meta, "type", errors) {
                attrs.type_name = Some(value);
            }
        } else if meta.path.is_ident("topic") {
            // Repeatable: one key per topic.
            attrs.topics.push(string_value(meta, "topic = \"...\"")?);
        } else if meta.path.is_ident("private") {
            flag(meta, errors)?;
            if seen.first(meta, "private", errors) {
                attrs.private = Some(meta.path.clone());
            }
        } else if meta.path.is_ident("collect") {
            if !meta.input.peek(syn::token::Paren) {
                errors.push(meta.error("expected `collect(Event, ...)`"));
                return skip_value(meta);
            }
            let content;
            syn::parenthesized!(content in meta.input);
            let events = Punctuated::<syn::Path, syn::Token![,]>::parse_terminated(&content)?;
            if events.is_empty() {
                errors.push(meta.error("expected `collect(Event, ...)` with at least one event"));
            }
            if seen.first(meta, "collect", errors) {
                attrs.collect = Some((meta.path.clone(), events.into_iter().collect()));
            }
        } else if meta.path.is_ident("from_collected") {
            let path: syn::Path = meta.value()?.parse().map_err(|e| {
                syn::Error::new(e.span(), "expected `from_collected = path::to::function`")
            })?;
            if seen.first(meta, "from_collected", errors) {
                attrs.from_collected = Some(path);
            }
        } else if meta.path.is_ident("crate") {
            let value = crate::attr::crate_value(meta)?;
            if seen.first(meta, "crate", errors) {
                attrs.krate = Some(value);
            }
        } else if meta.path.is_ident("from") {
            errors.push(
                meta.error(
                    "`from` belongs on a field of a batch event; on the struct, expected one of: "
                        .to_owned()
                        + STRUCT_KEYS,
                ),
            );
            skip_value(meta)?;
        } else {
            unknown_key(meta, STRUCT_KEYS, errors)?;
        }
        Ok(())
    });

    for attr in input.attrs.iter().filter(|a| a.path().is_ident("trigger")) {
        if attrs.trigger_attr.is_some() {
            errors.spanned(
                attr,
                "duplicate `#[trigger(...)]`: list every trigger in one attribute",
            );
            continue;
        }
        attrs.trigger_attr = Some(attr.path().clone());
        let parsed =
            attr.parse_args_with(Punctuated::<syn::ExprPath, syn::Token![,]>::parse_terminated);
        match parsed {
            Ok(paths) if paths.is_empty() => errors.spanned(
                attr,
                "expected `#[trigger(Model::field, ...)]` with at least one column",
            ),
            Ok(paths) => attrs.triggers.extend(paths),
            Err(error) => errors.push(syn::Error::new(
                error.span(),
                "expected `#[trigger(Model::field, ...)]`: column markers such as `Order::status`",
            )),
        }
    }

    let fields = match &input.data {
        syn::Data::Struct(syn::DataStruct {
            fields: syn::Fields::Named(named),
            ..
        }) => named.named.iter().map(|f| parse_field(f, errors)).collect(),
        _ => Vec::new(),
    };
    Parsed { attrs, fields }
}

fn parse_field(field: &syn::Field, errors: &mut Errors) -> FieldAttrs {
    let mut attrs = FieldAttrs {
        context: None,
        via: Vec::new(),
        context_attr: None,
        from: None,
    };
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("context")) {
        if attrs.context.is_some() {
            errors.spanned(
                attr,
                "duplicate `#[context(...)]`: a field has one source column",
            );
            continue;
        }
        match attr.parse_args::<ContextArgs>() {
            Ok(args) => {
                attrs.context = Some(args.column);
                attrs.via = args.via;
                attrs.context_attr = Some(attr.path().clone());
            }
            Err(error) => {
                errors.push(syn::Error::new(
                    error.span(),
                    format_args!(
                        "{error}; expected `#[context(Model::column)]` or `#[context(Model::column, via(Model::foreign_key))]`"
                    ),
                ));
                // Present, if malformed: not also reported as missing.
                attrs.context_attr = Some(attr.path().clone());
            }
        }
    }
    let mut seen = SeenKeys::default();
    parse_attrs(&field.attrs, "mercure", errors, |meta, errors| {
        if meta.path.is_ident("from") {
            let value = string_value(meta, "from = \"...\"")?;
            if seen.first(meta, "from", errors) {
                attrs.from = Some(value);
            }
        } else {
            unknown_key(meta, FIELD_KEYS, errors)?;
        }
        Ok(())
    });
    attrs
}
