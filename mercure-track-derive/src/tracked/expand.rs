//! Stage 3: the generated code of `#[derive(Tracked)]`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::model::Model;

pub(crate) fn expand(model: &Model) -> TokenStream {
    let ident = &model.ident;
    let vis = &model.vis;
    let table = &model.table;
    let name = ident.to_string();
    let p = quote!(::mercure_track::__private);

    let markers = model.columns.iter().enumerate().map(|(index, column)| {
        let field = &column.field;
        let vis = &column.vis;
        let ty = &column.ty;
        let doc = format!(
            "The column `{}` of `{}` (field `{field}`).",
            column.name, table
        );
        match &column.belongs_to {
            Some(parent) => quote_spanned! {field.span()=>
                #[doc = #doc]
                #[allow(non_upper_case_globals)]
                #vis const #field: #p::ForeignKeyColumn<#ident, #ty, #parent> =
                    #p::ForeignKeyColumn::__new(#index);
            },
            None => quote_spanned! {field.span()=>
                #[doc = #doc]
                #[allow(non_upper_case_globals)]
                #vis const #field: #p::Column<#ident, #ty> = #p::Column::__new(#index);
            },
        }
    });

    let column_infos = model.columns.iter().map(|column| {
        let field = column.field.to_string();
        let field = field.trim_start_matches("r#");
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

    let parents = model
        .columns
        .iter()
        .enumerate()
        .rev()
        .filter_map(|(index, column)| column.belongs_to.as_ref().map(|parent| (index, parent)))
        .fold(quote!(#p::Nil), |tail, (index, parent)| {
            quote!(#p::Cons<#p::ForeignKey<#ident, #parent, #index>, #tail>)
        });

    let foreign_key_checks = model.columns.iter().filter_map(|column| {
        let parent = column.belongs_to.as_ref()?;
        let ty = &column.ty;
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

/// Setters, `find`, `insert` and `delete`, generic over the session (see
/// `mercure_track::session`).
fn session_methods(model: &Model) -> TokenStream {
    let p = quote!(::mercure_track::__private);
    let ident = &model.ident;
    let vis = &model.vis;
    let Some(pk) = model.primary_key.map(|i| &model.columns[i]) else {
        return TokenStream::new();
    };
    let key_ty = &pk.ty;
    let key_field = &pk.field;
    let setters = model
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.primary_key)
        .map(|(index, column)| {
            let field = &column.field;
            let vis = &column.vis;
            let ty = &column.ty;
            let name = field.to_string();
            let name = name.trim_start_matches("r#");
            let setter = format_ident!("set_{}", name, span = field.span());
            let by_key = format_ident!("set_{}_by_key", name, span = field.span());
            let doc = format!(
                "Sets `{name}` in the database and in this value, through a tracked session. \
             Returns whether the value changed (decided by the database); a change is recorded \
             for the events `{ident}::{name}` triggers. A missing row is an error."
            );
            let doc_by_key = format!(
                "Sets `{name}` of the row with key `key`, without loading it. Returns whether the \
             value changed."
            );
            quote! {
                #[doc = #doc]
                #vis async fn #setter<__S>(
                    &mut self,
                    session: &mut __S,
                    value: impl ::core::convert::Into<#ty>,
                ) -> ::core::result::Result<bool, __S::Error>
                where
                    __S: #p::WriteColumn<#ident, #ty>,
                {
                    let value: #ty = value.into();
                    let changed = session
                        .write_column(#p::Column::__new(#index), &self.#key_field, &value)
                        .await?;
                    self.#field = value;
                    ::core::result::Result::Ok(changed)
                }

                #[doc = #doc_by_key]
                #vis async fn #by_key<__S>(
                    session: &mut __S,
                    key: impl ::core::convert::Into<#key_ty>,
                    value: impl ::core::convert::Into<#ty>,
                ) -> ::core::result::Result<bool, __S::Error>
                where
                    __S: #p::WriteColumn<#ident, #ty>,
                {
                    let key: #key_ty = key.into();
                    let value: #ty = value.into();
                    session.write_column(#p::Column::__new(#index), &key, &value).await
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
        quote!(<__B as #p::BindValue<#ty>>::bind_value(binder, &self.#field);)
    });
    quote! {
        #[automatically_derived]
        impl #ident {
            #(#setters)*

            /// Loads the row with key `key` through a session; a missing row is an error.
            #vis async fn find<__S>(
                session: &mut __S,
                key: impl ::core::convert::Into<#key_ty>,
            ) -> ::core::result::Result<Self, __S::Error>
            where
                __S: #p::FindRow<#ident>,
            {
                let key: #key_ty = key.into();
                session.find_row(&key).await
            }

            /// Inserts this row through a tracked session, recording `INSERT` for the events it
            /// triggers.
            #vis async fn insert<__S>(&self, session: &mut __S) -> ::core::result::Result<(), __S::Error>
            where
                __S: #p::InsertRow<#ident>,
            {
                session.insert_row(self).await
            }

            /// Deletes this row through a tracked session; the contexts of the events `DELETE`
            /// triggers are resolved before the row disappears. A missing row is an error.
            #vis async fn delete<__S>(&self, session: &mut __S) -> ::core::result::Result<(), __S::Error>
            where
                __S: #p::DeleteRow<#ident>,
            {
                session.delete_row(&self.#key_field).await
            }
        }

        #[automatically_derived]
        impl<__B> #p::BindColumns<__B> for #ident
        where
            __B: #(#bind_bounds)+*
        {
            fn bind_columns(&self, binder: &mut __B) {
                #(#binds)*
            }
        }
    }
}
