//! Stage 3: the generated code of `#[derive(Tracked)]`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::model::Model;

pub(crate) fn expand(model: &Model) -> TokenStream {
    let ident = &model.ident;
    let table = &model.table;
    let name = ident.to_string();
    let p = quote!(::mercure_track::__private);

    let markers = model.columns.iter().enumerate().map(|(index, column)| {
        let field = &column.field;
        let vis = &column.vis;
        let ty = &column.ty;
        let doc = format!("The column `{}` of `{}` (field `{field}`).", column.name, table);
        quote_spanned! {field.span()=>
            #[doc = #doc]
            #[allow(non_upper_case_globals)]
            #vis const #field: #p::Column<#ident, #ty> = #p::Column::__new(#index);
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
            (quote!(#ty), quote!(&self.#field), model.primary_key.unwrap_or_default())
        }
        // An error was reported; keep the impl so that uses of the model do not cascade.
        None => (quote!(()), quote!(&()), 0),
    };

    quote! {
        #[automatically_derived]
        impl #ident {
            #(#markers)*
            /// Fires for rows inserted through a tracked session.
            pub const INSERT: #p::RowTrigger<#ident> = #p::RowTrigger::__new(#p::RowChange::Insert);
            /// Fires for rows deleted through a tracked session.
            pub const DELETE: #p::RowTrigger<#ident> = #p::RowTrigger::__new(#p::RowChange::Delete);
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
    }
}
