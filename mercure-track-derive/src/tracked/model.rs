//! Stage 2: the validated model of a tracked struct.

use super::attr::Parsed;
use crate::attr::{private_path, unraw};
use crate::errors::Errors;

pub(crate) struct Model {
    pub(crate) ident: syn::Ident,
    /// The struct's visibility: that of the generated row methods and row markers.
    pub(crate) vis: syn::Visibility,
    pub(crate) table: String,
    pub(crate) columns: Vec<Column>,
    /// Index into `columns`; `None` only when an error was reported.
    pub(crate) primary_key: Option<usize>,
    /// `#[tracked(skip)]` fields: markers that say why they cannot be named.
    pub(crate) skipped: Vec<(syn::Ident, syn::Visibility)>,
    /// `::mercure_track::__private_v0_1`, or under the path given by `crate = ...`.
    pub(crate) private: proc_macro2::TokenStream,
}

pub(crate) struct Column {
    pub(crate) field: syn::Ident,
    pub(crate) vis: syn::Visibility,
    pub(crate) ty: syn::Type,
    pub(crate) name: String,
    pub(crate) primary_key: bool,
    pub(crate) belongs_to: Option<syn::Path>,
    /// Whether `belongs_to` names the model itself (a tree): not followed by the reach search.
    pub(crate) self_link: bool,
    /// The setter's name (`set_<field>` unless `#[tracked(setter = "...")]`); `None` for the
    /// key, and for a name taken by another setter (an error was reported).
    pub(crate) setter: Option<syn::Ident>,
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
    let mut skipped = Vec::new();
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
                    (attrs.setter.is_some(), "setter"),
                ] {
                    if present {
                        errors
                            .spanned(skip, format_args!("a `skip` field cannot also be `{what}`"));
                    }
                }
                skipped.push((field_ident, field.vis.clone()));
                continue;
            }
            let name = match &attrs.column {
                Some(column) => {
                    check_identifier(column, "column", errors);
                    column.value()
                }
                None => unraw(&field_ident),
            };
            let setter = match (&attrs.primary_key, &attrs.setter) {
                (Some(_), Some(lit)) => {
                    errors.spanned(
                        lit,
                        "the primary key has no setter: a tracked session never writes a key",
                    );
                    None
                }
                (Some(_), None) => None,
                (None, setter) => Some(setter_name(&field_ident, setter.as_ref(), errors)),
            };
            let self_link = attrs.belongs_to.as_ref().is_some_and(|parent| {
                parent.is_ident("Self")
                    || (parent.segments.last().is_some_and(|s| s.ident == ident)
                        && parent.segments.iter().all(|s| s.arguments.is_none()))
            });
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
                self_link,
                setter,
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

    let mut setters = std::collections::HashSet::new();
    for column in &mut columns {
        let Some(setter) = &column.setter else {
            continue;
        };
        if !setters.insert(setter.to_string()) {
            errors.spanned(
                &column.field,
                format_args!(
                    "two setters are named `{setter}`: rename one with `#[tracked(setter = \"...\")]`"
                ),
            );
            column.setter = None;
        }
    }

    Model {
        ident,
        vis: input.vis.clone(),
        table,
        columns,
        primary_key,
        skipped,
        private: private_path(parsed.attrs.krate.as_ref()),
    }
}

/// `set_<field>`, or the name given with `setter = "..."`.
fn setter_name(
    field: &syn::Ident,
    setter: Option<&syn::LitStr>,
    errors: &mut Errors,
) -> syn::Ident {
    let default = quote::format_ident!("set_{}", unraw(field), span = field.span());
    match setter {
        Some(lit) => match lit.parse::<syn::Ident>() {
            Ok(ident) => ident,
            Err(_) => {
                errors.spanned(lit, "expected `setter = \"name\"`, a method name");
                default
            }
        },
        None => default,
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
