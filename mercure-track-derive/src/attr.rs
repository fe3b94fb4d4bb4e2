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

/// Parses `crate = path` (the path of the `mercure_track` crate when renamed).
pub(crate) fn crate_value(meta: &ParseNestedMeta<'_>) -> syn::Result<syn::Path> {
    meta.value()?.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected `crate = path`, the path of the `mercure_track` crate (such as `crate = ::mt`)",
        )
    })
}

/// The path of the generated code's support module in the runtime crate, versioned so that a
/// derive of another version fails to compile instead of misbehaving.
pub(crate) fn private_path(krate: Option<&syn::Path>) -> proc_macro2::TokenStream {
    match krate {
        Some(path) => quote::quote!(#path::__private_v0_1),
        None => quote::quote!(::mercure_track::__private_v0_1),
    }
}

/// The field's name as serde and SQL see it: `r#ref` is `ref`.
pub(crate) fn unraw(ident: &syn::Ident) -> String {
    let name = ident.to_string();
    match name.strip_prefix("r#") {
        Some(name) => name.to_owned(),
        None => name,
    }
}

/// The identifier for a field named `name` as serde would name it: `ref` is `r#ref`. `None`
/// when `name` cannot be a field name.
pub(crate) fn ident_from_name(name: &str, span: proc_macro2::Span) -> Option<syn::Ident> {
    if let Ok(mut ident) = syn::parse_str::<syn::Ident>(name) {
        ident.set_span(span);
        return Some(ident);
    }
    // A keyword: valid as a raw identifier, except those that cannot be raw.
    let keyword = syn::parse::Parser::parse_str(syn::ext::IdentExt::parse_any, name).ok()?;
    let _: syn::Ident = keyword;
    if ["self", "Self", "super", "crate", "_"].contains(&name) {
        return None;
    }
    Some(syn::Ident::new_raw(name, span))
}

/// `tokens` with every token spanned at `span`: a path into the runtime put in a
/// `quote_spanned!` so that the compiler's message points at the user's token, not at the
/// derive.
pub(crate) fn respan(
    tokens: &proc_macro2::TokenStream,
    span: proc_macro2::Span,
) -> proc_macro2::TokenStream {
    use proc_macro2::{Group, TokenTree};
    tokens
        .clone()
        .into_iter()
        .map(|token| match token {
            TokenTree::Group(group) => {
                let mut respanned = Group::new(group.delimiter(), respan(&group.stream(), span));
                respanned.set_span(span);
                TokenTree::Group(respanned)
            }
            mut other => {
                other.set_span(span);
                other
            }
        })
        .collect()
}
