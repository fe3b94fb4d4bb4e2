//! The context queries: `SELECT t0.<key>, <context columns> FROM <changed table> t0 JOIN ...
//! WHERE t0.<key> <is one of the keys>`, one per event and changed model.

use std::borrow::Cow;

use mercure_track::{ContextPath, Model};

use crate::dialect::{Dialect, TrackedKey, quote};

/// Builds the `SELECT` of one event's contexts for rows of one model, column by column,
/// sharing the joins of paths that share their links.
pub(crate) struct ContextSelect {
    columns: Vec<String>,
    joins: String,
    /// Aliases of the joined tables, by the path of links that leads to them.
    aliases: Vec<(Vec<(&'static str, &'static str)>, String)>,
}

impl ContextSelect {
    pub(crate) fn new() -> Self {
        Self {
            columns: Vec::new(),
            joins: String::new(),
            aliases: Vec::new(),
        }
    }

    /// Selects the column `context` leads to (joining its path); returns its index in the
    /// query's row (the changed row's key is column 0).
    pub(crate) fn column(&mut self, context: &ContextPath) -> usize {
        let alias = self.join_path(context);
        self.columns
            .push(format!("{alias}.{}", quote(context.column.column)));
        self.columns.len()
    }

    /// Whether any column is selected (otherwise no query is needed).
    pub(crate) fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// The query, reading the changed rows from `M`'s table, or from `from` (a relation with
    /// `M`'s columns) when given.
    pub(crate) fn finish<DB: Dialect, M: Model>(self, from: Option<&str>) -> ContextQuery
    where
        M::Key: TrackedKey<DB>,
    {
        let key = format!("t0.{}", quote(M::info().primary_key_column().name));
        let mut select = format!("SELECT {key}");
        for column in &self.columns {
            select.push_str(", ");
            select.push_str(column);
        }
        select.push_str(" FROM ");
        select.push_str(&from.map_or_else(|| quote(M::TABLE), str::to_owned));
        select.push_str(" t0");
        select.push_str(&self.joins);
        select.push_str(" WHERE ");
        let mut one = select.clone();
        <M::Key as TrackedKey<DB>>::push_any_of(&mut one, &key, 1, 1);
        // One parameter for any number of keys (an array): the text for several keys never
        // changes, and is built here once.
        let many = (<M::Key as TrackedKey<DB>>::key_params(2) == 1).then(|| {
            let mut many = select.clone();
            <M::Key as TrackedKey<DB>>::push_any_of(&mut many, &key, 1, 2);
            many
        });
        ContextQuery {
            select,
            key,
            one,
            many,
        }
    }

    fn join_path(&mut self, context: &ContextPath) -> String {
        let mut path = Vec::new();
        let mut current = "t0".to_owned();
        for link in &context.links {
            path.push((link.from.table, link.foreign_key.name));
            current = match self.aliases.iter().find(|(p, _)| *p == path) {
                Some((_, alias)) => alias.clone(),
                None => {
                    let alias = format!("t{}", self.aliases.len() + 1);
                    self.joins.push_str(&format!(
                        " JOIN {} {alias} ON {alias}.{} = {current}.{}",
                        quote(link.to.table),
                        quote(link.to.primary_key_column().name),
                        quote(link.foreign_key.name),
                    ));
                    self.aliases.push((path.clone(), alias.clone()));
                    alias
                }
            };
        }
        current
    }
}

/// A context query, ready for any number of keys.
pub(crate) struct ContextQuery {
    /// Everything up to the `WHERE`'s condition.
    select: String,
    /// `t0.<key column>`.
    key: String,
    /// The statement for one key.
    one: String,
    /// The statement for any number of keys above one, when it does not depend on the number
    /// (PostgreSQL).
    many: Option<String>,
}

impl ContextQuery {
    /// The statement for `count` keys, bound as [`TrackedKey::bind_keys`] binds them.
    pub(crate) fn sql<DB: Dialect, M: Model>(&self, count: usize) -> Cow<'_, str>
    where
        M::Key: TrackedKey<DB>,
    {
        if count == 1 {
            return Cow::Borrowed(&self.one);
        }
        if let Some(many) = &self.many {
            return Cow::Borrowed(many);
        }
        let mut sql = String::with_capacity(self.select.len() + self.key.len() + 8 + 3 * count);
        sql.push_str(&self.select);
        <M::Key as TrackedKey<DB>>::push_any_of(&mut sql, &self.key, 1, count);
        Cow::Owned(sql)
    }
}
