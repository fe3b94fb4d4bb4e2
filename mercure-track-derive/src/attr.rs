//! Helpers shared by the attribute parsers.

use std::collections::HashSet;

use syn::meta::ParseNestedMeta;

use crate::errors::Errors;

/// Remembers which keys an attribute scope has seen, to report duplicates.
#[derive(Default)]
pub(crate) struct SeenKeys {
    seen: HashSet<String>,
}

impl SeenKeys {
    /// Records `key`; reports a duplicate on its token and returns `false` when seen before.
    pub(crate) fn first(
        &mut self,
        meta: &ParseNestedMeta<'_>,
        key: &str,
        errors: &mut Errors,
    ) -> bool {
        if self.seen.insert(key.to_owned()) {
            true
        } else {
            errors.push(meta.error(format_args!("duplicate `{key}`")));
            false
        }
    }
}

/// The name of the key of `meta`, for messages.
pub(crate) fn key_name(meta: &ParseNestedMeta<'_>) -> String {
    meta.path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}

/// Reports an unknown key, listing the valid ones, and consumes its value so that parsing goes
/// on with the next key.
pub(crate) fn unknown_key(
    meta: &ParseNestedMeta<'_>,
    valid: &str,
    errors: &mut Errors,
) -> syn::Result<()> {
    errors.push(meta.error(format_args!(
        "unknown key `{}`; expected one of: {valid}",
        key_name(meta)
    )));
    skip_value(meta)
}

/// Consumes `= value` or `(...)` after a key, whatever it holds.
pub(crate) fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        let _: syn::Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        let _: proc_macro2::TokenStream = content.parse()?;
    }
    Ok(())
}

/// Parses `key = "string"`, reporting a non-string value on its token.
pub(crate) fn string_value(meta: &ParseNestedMeta<'_>, expected: &str) -> syn::Result<syn::LitStr> {
    let value = meta.value()?;
    let expr: syn::Expr = value.parse()?;
    match expr {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(lit),
            ..
        }) => Ok(lit),
        other => Err(syn::Error::new_spanned(
            other,
            format_args!("expected `{expected}`"),
        )),
    }
}

/// Reports a flag that was given a value (`skip = true`).
pub(crate) fn flag(meta: &ParseNestedMeta<'_>, errors: &mut Errors) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) || meta.input.peek(syn::token::Paren) {
        let key = key_name(meta);
        errors.push(meta.error(format_args!("`{key}` takes no value; write `{key}`")));
        skip_value(meta)?;
    }
    Ok(())
}

/// Parses the attributes named `name` with `parse`, collecting errors.
pub(crate) fn parse_attrs(
    attrs: &[syn::Attribute],
    name: &str,
    errors: &mut Errors,
    mut parse: impl FnMut(&ParseNestedMeta<'_>, &mut Errors) -> syn::Result<()>,
) {
    for attr in attrs.iter().filter(|a| a.path().is_ident(name)) {
        if let syn::Meta::Path(path) = &attr.meta {
            errors.spanned(path, format_args!("expected `#[{name}(...)]`"));
            continue;
        }
        let result = attr.parse_nested_meta(|meta| parse(&meta, errors));
        errors.push_result(result);
    }
}
