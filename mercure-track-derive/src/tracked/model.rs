//! Stage 2: the validated model of a tracked struct.

use super::attr::Parsed;
use crate::errors::Errors;

pub(crate) struct Model {
    pub(crate) ident: syn::Ident,
    /// The struct's visibility: that of the generated row methods and row markers.
    pub(crate) vis: syn::Visibility,
    pub(crate) table: String,
    pub(crate) columns: Vec<Column>,
    /// Index into `columns`; `None` only when an error was reported.
    pub(crate) primary_key: Option<usize>,
}

pub(crate) struct Column {
    pub(crate) field: syn::Ident,
    pub(crate) vis: syn::Visibility,
    pub(crate) ty: syn::Type,
    pub(crate) name: String,
    pub(crate) primary_key: bool,
    pub(crate) belongs_to: Option<syn::Path>,
}

pub(crate) fn build(input: &syn::DeriveInput, parsed: Parsed, errors: &mut Errors) -> Model {
    let ident = input.ident.clone();
    if !input.generics.params.is_empty() {
        errors.spanned(
            &input.generics,
            "`#[derive(Tracked)]` does not support generic models: a model maps one table",
        );
    }
    let named = match &input.data {
        syn::Data::Struct(syn::DataStruct {
            fields: syn::Fields::Named(named),
            ..
        }) => Some(named),
        syn::Data::Struct(_) => {
            errors.spanned(
                &ident,
                "`#[derive(Tracked)]` expects a struct with named fields",
            );
            None
        }
        syn::Data::Enum(e) => {
            errors.spanned(
                e.enum_token,
                "`#[derive(Tracked)]` expects a struct, not an enum",
            );
            None
        }
        syn::Data::Union(u) => {
            errors.spanned(
                u.union_token,
                "`#[derive(Tracked)]` expects a struct, not a union",
            );
            None
        }
    };

    let table = match parsed.attrs.table {
        Some(table) => {
            check_identifier(&table, "table", errors);
            table.value()
        }
        None => {
            if named.is_some() {
                errors.spanned(
                    &ident,
                    format_args!("missing `#[tracked(table = \"...\")]` on model `{ident}`"),
                );
            }
            String::new()
        }
    };

    let mut columns = Vec::new();
    let mut primary_key = None;
    if let Some(named) = named {
        for (field, attrs) in named.named.iter().zip(parsed.fields) {
            let Some(field_ident) = field.ident.clone() else {
                continue;
            };
            if let Some(skip) = &attrs.skip {
                for (present, what) in [
                    (attrs.primary_key.is_some(), "primary_key"),
                    (attrs.belongs_to.is_some(), "belongs_to"),
                    (attrs.column.is_some(), "column"),
                ] {
                    if present {
                        errors
                            .spanned(skip, format_args!("a `skip` field cannot also be `{what}`"));
                    }
                }
                continue;
            }
            let name = match &attrs.column {
                Some(column) => {
                    check_identifier(column, "column", errors);
                    column.value()
                }
                None => field_ident.to_string().trim_start_matches("r#").to_owned(),
            };
            if let Some(pk) = &attrs.primary_key {
                if primary_key.is_some() {
                    errors.spanned(
                        pk,
                        "a model has one `primary_key`; composite keys are not supported",
                    );
                } else {
                    primary_key = Some(columns.len());
                }
            }
            if let (Some(pk), Some(_)) = (&attrs.primary_key, &attrs.belongs_to) {
                errors.spanned(
                    pk,
                    "the primary key cannot also be a `belongs_to` foreign key",
                );
            }
            columns.push(Column {
                field: field_ident,
                vis: field.vis.clone(),
                ty: field.ty.clone(),
                name,
                primary_key: attrs.primary_key.is_some(),
                belongs_to: attrs.belongs_to,
            });
        }
        let mut names = std::collections::HashSet::new();
        for column in &columns {
            if !names.insert(column.name.clone()) {
                errors.spanned(
                    &column.field,
                    format_args!("two fields map to the column `{}`", column.name),
                );
            }
        }
        if primary_key.is_none() {
            errors.spanned(
                &ident,
                format_args!(
                    "model `{ident}` has no primary key: mark its key field `#[tracked(primary_key)]`"
                ),
            );
        }
    }

    Model {
        ident,
        vis: input.vis.clone(),
        table,
        columns,
        primary_key,
    }
}

/// SQL identifiers are quoted when used, but a quote inside one would still end the quoting:
/// accept only plain names (and `schema.table`).
fn check_identifier(lit: &syn::LitStr, what: &str, errors: &mut Errors) {
    let value = lit.value();
    let valid = !value.is_empty()
        && value.split('.').all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if !valid {
        errors.spanned(
            lit,
            format_args!(
                "expected `{what} = \"...\"` with a plain SQL name (letters, digits, `_`, and `.` between schema and name)"
            ),
        );
    }
}
