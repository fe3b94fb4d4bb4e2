//! Stage 3: the generated code of `#[derive(Tracked)]`.
//!
//! Hygiene as in serde_derive: every path is absolute (`::core`, or the runtime's versioned
//! support module, whose path `crate = ...` can change), every local and parameter starts with
//! `__`, and nothing relies on the prelude.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::model::Model;
use crate::attr::unraw;

pub(crate) fn expand(model: &Model) -> TokenStream {
    let ident = &model.ident;
    let vis = &model.vis;
    let table = &model.table;
    let name = ident.to_string();
    let p = &model.private;

    let markers = model.columns.iter().enumerate().map(|(index, column)| {
        let field = &column.field;
        let vis = &column.vis;
        let ty = &column.ty;
        let doc = format!(
            "The column `{}` of `{}` (field `{}`).",
            column.name,
            table,
            unraw(field)
        );
        let marker = match &column.belongs_to {
            _ if column.primary_key => quote!(#p::KeyColumn<#ident, #ty>),
            Some(parent) => quote!(#p::ForeignKeyColumn<#ident, #ty, #parent>),
            None => quote!(#p::Column<#ident, #ty>),
        };
        let constructor = match &column.belongs_to {
            _ if column.primary_key => quote!(#p::KeyColumn),
            Some(_) => quote!(#p::ForeignKeyColumn),
            None => quote!(#p::Column),
        };
        quote_spanned! {field.span()=>
            #[doc = #doc]
            #[allow(non_upper_case_globals)]
            #vis const #field: #marker = #constructor::__new(#index);
        }
    });
    let skipped = model.skipped.iter().map(|(field, vis)| {
        let name = unraw(field);
        quote_spanned! {field.span()=>
            #[doc(hidden)]
            #[allow(non_upper_case_globals)]
            #vis const #field: #p::SkippedField<#ident> = #p::SkippedField::__new(#name);
        }
    });

    let column_infos = model.columns.iter().map(|column| {
        let field = unraw(&column.field);
        let column_name = &column.name;
        let primary_key = column.primary_key;
        let belongs_to = match &column.belongs_to {
            Some(parent) => quote!(::core::option::Option::Some(<#parent as #p::Model>::TABLE)),
            None => quote!(::core::option::Option::None),
        };
        quote! {
            #p::ColumnInfo {
                field: #field,
                name: #column_name,
                primary_key: #primary_key,
                belongs_to: #belongs_to,
            }
        }
    });

    // A link from the model to itself is not searched: a trigger and a context on the same
    // model then need no join whatever path spells the model, and a tree is not ambiguous.
    let parents = model
        .columns
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, column)| !column.self_link)
        .filter_map(|(index, column)| column.belongs_to.as_ref().map(|parent| (index, parent)))
        .fold(quote!(#p::Nil), |tail, (index, parent)| {
            quote!(#p::Cons<#p::ForeignKey<#ident, #parent, #index>, #tail>)
        });

    let foreign_key_checks = model.columns.iter().filter_map(|column| {
        let parent = column.belongs_to.as_ref()?;
        let ty = &column.ty;
        let p = crate::attr::respan(p, parent.span());
        Some(quote_spanned! {parent.span()=>
            #p::assert_foreign_key::<#ty, <#parent as #p::Model>::Key>();
        })
    });

    let (key_ty, key_field, pk_index) = match model.primary_key.map(|i| &model.columns[i]) {
        Some(pk) => {
            let ty = &pk.ty;
            let field = &pk.field;
            (
                quote!(#ty),
                quote!(&self.#field),
                model.primary_key.unwrap_or_default(),
            )
        }
        // An error was reported; keep the impl so that uses of the model do not cascade.
        None => (quote!(()), quote!(&()), 0),
    };

    let methods = session_methods(model);

    quote! {
        #[automatically_derived]
        impl #ident {
            #(#markers)*
            #(#skipped)*
            /// Fires for rows inserted through a tracked session.
            #vis const INSERT: #p::RowTrigger<#ident> = #p::RowTrigger::__new(#p::RowChange::Insert);
            /// Fires for rows deleted through a tracked session.
            #vis const DELETE: #p::RowTrigger<#ident> = #p::RowTrigger::__new(#p::RowChange::Delete);
        }

        #[automatically_derived]
        impl #p::Model for #ident {
            const NAME: &'static str = #name;
            const TABLE: &'static str = #table;
            const COLUMNS: &'static [#p::ColumnInfo] = &[#(#column_infos),*];
            const PRIMARY_KEY: usize = #pk_index;
            type Key = #key_ty;
            type Parents = #parents;

            fn key(&self) -> &Self::Key {
                #key_field
            }
        }

        const _: fn() = || {
            #(#foreign_key_checks)*
        };

        #methods
    }
}

/// The setters, generic over the session (see `mercure_track::session`), and the binding of
/// a row's values for `insert`. `find`, `insert` and `delete` are methods of the `Model` trait,
/// so that they never hide a user's methods of the same names.
fn session_methods(model: &Model) -> TokenStream {
    let p = &model.private;
    let ident = &model.ident;
    let Some(pk) = model.primary_key.map(|i| &model.columns[i]) else {
        return TokenStream::new();
    };
    let key_ty = &pk.ty;
    let key_field = &pk.field;
    let setters = model
        .columns
        .iter()
        .enumerate()
        .filter_map(|(index, column)| Some((index, column, column.setter.as_ref()?)))
        .map(|(index, column, setter)| {
            let field = &column.field;
            let vis = &column.vis;
            let ty = &column.ty;
            let name = unraw(field);
            let by_key = quote::format_ident!("{}_by_key", setter, span = setter.span());
            let doc = format!(
                "Sets `{name}` in the database and in this value, through a tracked session. \
             Returns whether the value changed (decided by the database); a change is recorded \
             for the tracked events `{ident}::{name}` triggers. A missing row is an error."
            );
            let doc_by_key = format!(
                "Sets `{name}` of the row with key `key`, without loading it. Returns whether the \
             value changed."
            );
            quote! {
                #[doc = #doc]
                #vis async fn #setter<__S>(
                    &mut self,
                    __session: &mut __S,
                    __value: impl ::core::convert::Into<#ty>,
                ) -> ::core::result::Result<bool, __S::Error>
                where
                    __S: #p::WriteColumn<#ident, #ty>,
                {
                    let __value: #ty = ::core::convert::Into::into(__value);
                    let __changed = #p::WriteColumn::write_column(
                        __session,
                        #p::Column::__new(#index),
                        &self.#key_field,
                        &__value,
                    )
                    .await?;
                    self.#field = __value;
                    ::core::result::Result::Ok(__changed)
                }

                #[doc = #doc_by_key]
                #vis async fn #by_key<__S>(
                    __session: &mut __S,
                    __key: impl ::core::convert::Into<#key_ty>,
                    __value: impl ::core::convert::Into<#ty>,
                ) -> ::core::result::Result<bool, __S::Error>
                where
                    __S: #p::WriteColumn<#ident, #ty>,
                {
                    let __key: #key_ty = ::core::convert::Into::into(__key);
                    let __value: #ty = ::core::convert::Into::into(__value);
                    #p::WriteColumn::write_column(__session, #p::Column::__new(#index), &__key, &__value)
                        .await
                }
            }
        });
    let bind_bounds = model.columns.iter().map(|column| {
        let ty = &column.ty;
        quote!(#p::BindValue<#ty>)
    });
    let binds = model.columns.iter().map(|column| {
        let field = &column.field;
        let ty = &column.ty;
        quote!(<__B as #p::BindValue<#ty>>::bind_value(__binder, &self.#field);)
    });
    quote! {
        #[automatically_derived]
        impl #ident {
            #(#setters)*
        }

        #[automatically_derived]
        impl<__B> #p::BindColumns<__B> for #ident
        where
            __B: #(#bind_bounds)+*
        {
            fn bind_columns(&self, __binder: &mut __B) {
                #(#binds)*
            }
        }
    }
}
