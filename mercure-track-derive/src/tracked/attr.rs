//! Stage 1: the `#[tracked(...)]` attributes as written.

use crate::attr::{SeenKeys, flag, parse_attrs, string_value, unknown_key};
use crate::errors::Errors;

const STRUCT_KEYS: &str = "`table = \"...\"`, `crate = path`";
const FIELD_KEYS: &str =
    "`primary_key`, `belongs_to = Parent`, `column = \"...\"`, `setter = \"...\"`, `skip`";

pub(crate) struct StructAttrs {
    pub(crate) table: Option<syn::LitStr>,
    pub(crate) krate: Option<syn::Path>,
}

pub(crate) struct FieldAttrs {
    pub(crate) primary_key: Option<syn::Path>,
    pub(crate) belongs_to: Option<syn::Path>,
    pub(crate) column: Option<syn::LitStr>,
    pub(crate) setter: Option<syn::LitStr>,
    pub(crate) skip: Option<syn::Path>,
}

pub(crate) struct Parsed {
    pub(crate) attrs: StructAttrs,
    /// One entry per named field, in order; empty when the input is not a struct with named
    /// fields.
    pub(crate) fields: Vec<FieldAttrs>,
}

pub(crate) fn parse(input: &syn::DeriveInput, errors: &mut Errors) -> Parsed {
    let mut attrs = StructAttrs {
        table: None,
        krate: None,
    };
    let mut seen = SeenKeys::default();
    parse_attrs(&input.attrs, "tracked", errors, |meta, errors| {
        if meta.path.is_ident("table") {
            let value = string_value(meta, "table = \"...\"")?;
            if seen.first(meta, "table", errors) {
                attrs.table = Some(value);
            }
            Ok(())
        } else if meta.path.is_ident("crate") {
            let value = crate::attr::crate_value(meta)?;
            if seen.first(meta, "crate", errors) {
                attrs.krate = Some(value);
            }
            Ok(())
        } else if ["primary_key", "belongs_to", "column", "setter", "skip"]
            .iter()
            .any(|key| meta.path.is_ident(key))
        {
            errors.push(meta.error(format_args!(
                "`{}` belongs on a field; on the struct, expected {STRUCT_KEYS}",
                crate::attr::key_name(meta)
            )));
            crate::attr::skip_value(meta)
        } else {
            unknown_key(meta, STRUCT_KEYS, errors)
        }
    });

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
        primary_key: None,
        belongs_to: None,
        column: None,
        setter: None,
        skip: None,
    };
    let mut seen = SeenKeys::default();
    parse_attrs(&field.attrs, "tracked", errors, |meta, errors| {
        if meta.path.is_ident("primary_key") {
            flag(meta, errors)?;
            if seen.first(meta, "primary_key", errors) {
                attrs.primary_key = Some(meta.path.clone());
            }
        } else if meta.path.is_ident("skip") {
            flag(meta, errors)?;
            if seen.first(meta, "skip", errors) {
                attrs.skip = Some(meta.path.clone());
            }
        } else if meta.path.is_ident("belongs_to") {
            let parent: syn::Path = meta.value()?.parse().map_err(|e| {
                syn::Error::new(e.span(), "expected `belongs_to = Parent`, a model type")
            })?;
            if seen.first(meta, "belongs_to", errors) {
                attrs.belongs_to = Some(parent);
            }
        } else if meta.path.is_ident("column") {
            let value = string_value(meta, "column = \"...\"")?;
            if seen.first(meta, "column", errors) {
                attrs.column = Some(value);
            }
        } else if meta.path.is_ident("setter") {
            let value = string_value(meta, "setter = \"...\"")?;
            if seen.first(meta, "setter", errors) {
                attrs.setter = Some(value);
            }
        } else if meta.path.is_ident("table") || meta.path.is_ident("crate") {
            errors.push(meta.error(format_args!(
                "`{}` belongs on the struct; on a field, expected one of: {FIELD_KEYS}",
                crate::attr::key_name(meta)
            )));
            crate::attr::skip_value(meta)?;
        } else {
            unknown_key(meta, FIELD_KEYS, errors)?;
        }
        Ok(())
    });
    attrs
}
