//! Set-based writes on a tracked session: `UPDATE`/`DELETE ... WHERE` and multi-row
//! `INSERT`, recorded per row exactly as the setters, `delete` and `insert` record.

use std::collections::HashSet;

use mercure_track::session::BindColumns;
use mercure_track::set_based::{
    DeleteRows, DeleteWhere, InsertRows, SetValue, UpdateRows, UpdateWhere,
};
use mercure_track::{Column, Model, RowChange, RowTrigger, Trigger};
use sqlx::{Encode, Type};

use crate::dialect::{Dialect, SqlQuery, TrackedKey};
use crate::error::Error;
use crate::session::TrackedSession;
use crate::sql::set_based::{self as sql, Shape};
use crate::write::Binder;

/// A value bound by a set-based write on `DB`: any type the database encodes. Built by the
/// write's `set` and `filter`; not named by users.
pub struct BoundValue<DB: Dialect>(Box<dyn BindBoxed<DB>>);

impl<DB: Dialect> std::fmt::Debug for BoundValue<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may be secrets: never printed.
        f.write_str("BoundValue(..)")
    }
}

trait BindBoxed<DB: Dialect>: Send + Sync {
    fn bind_to<'q>(&'q self, query: SqlQuery<'q, DB>) -> SqlQuery<'q, DB>;
}

impl<DB, T> BindBoxed<DB> for T
where
    DB: Dialect,
    T: for<'e> Encode<'e, DB> + Type<DB> + Send + Sync + 'static,
{
    fn bind_to<'q>(&'q self, query: SqlQuery<'q, DB>) -> SqlQuery<'q, DB> {
        query.bind(self)
    }
}

impl<DB, T> SetValue<T> for BoundValue<DB>
where
    DB: Dialect,
    T: for<'e> Encode<'e, DB> + Type<DB> + Send + Sync + 'static,
{
    fn set_value(value: T) -> Self {
        Self(Box::new(value))
    }
}

fn bind_all<'q, 'v: 'q, DB: Dialect>(
    mut query: SqlQuery<'q, DB>,
    values: impl IntoIterator<Item = &'v BoundValue<DB>>,
) -> SqlQuery<'q, DB> {
    for value in values {
        query = value.0.bind_to(query);
    }
    query
}

/// The key chunks of a filter's statements: one chunk of the keys per statement (below the
/// parameter limit once `other` parameters are bound), or a single `None` without a key
/// condition.
fn key_chunks<DB: Dialect, K: TrackedKey<DB>>(
    keys: Option<&[K]>,
    other: usize,
) -> Vec<Option<&[K]>> {
    match keys {
        None => vec![None],
        Some(keys) => {
            let room = DB::MAX_PARAMETERS.saturating_sub(other).max(1);
            keys.chunks(K::MAX_KEYS_PER_STATEMENT.min(room))
                .map(Some)
                .collect()
        }
    }
}

/// Binds a statement's arguments in the order of [`crate::sql::set_based`]: the keys, then
/// `values`.
fn bind_keys_then<'q, 'v: 'q, DB, K>(
    text: &'q str,
    keys: Option<&'q [K]>,
    values: impl IntoIterator<Item = &'v BoundValue<DB>>,
) -> SqlQuery<'q, DB>
where
    DB: Dialect,
    K: TrackedKey<DB>,
{
    let mut query = sqlx::query(text);
    if let Some(keys) = keys {
        query = K::bind_keys(query, keys);
    }
    bind_all(query, values)
}

impl<DB, M> UpdateRows<M> for TrackedSession<DB>
where
    DB: Dialect,
    M: Model,
    M::Key: TrackedKey<DB>,
{
    type Error = Error;
    type Value = BoundValue<DB>;

    async fn update_rows(
        &mut self,
        update: UpdateWhere<M, BoundValue<DB>>,
    ) -> Result<Vec<M::Key>, Error> {
        if update.assignments.is_empty() || update.filter.is_empty() {
            return Ok(Vec::new());
        }
        let assigned: Vec<usize> = update.assignments.iter().map(|(i, _)| *i).collect();
        let equals: Vec<usize> = update.filter.equals.iter().map(|(i, _)| *i).collect();
        let other = assigned.len() + equals.len();
        let triggers: Vec<_> = assigned
            .iter()
            .map(|index| Column::<M, ()>::__new(*index).trigger_key())
            .collect();
        let assigned_values = || update.assignments.iter().map(|(_, v)| v);
        let mut changed = Vec::new();
        for chunk in key_chunks::<DB, M::Key>(update.filter.keys.as_deref(), other) {
            let shape = Shape {
                assigned: &assigned,
                equals: &equals,
                keys: chunk.map(<[_]>::len),
            };
            let values = assigned_values().chain(update.filter.equals.iter().map(|(_, v)| v));
            if assigned.len() == 1 {
                // One statement: the rows returned are the rows whose value changed.
                let text = sql::update_returning::<DB, M>(&shape);
                let query = bind_keys_then(&text, chunk, values);
                for row in DB::fetch_all(self.conn().await?, query).await? {
                    let key: M::Key = DB::decode(&row, 0)?;
                    self.record::<M>(triggers[0], &key);
                    changed.push(key);
                }
                continue;
            }
            // Several columns: which of them differ, per row, is read first (the rows locked),
            // then one UPDATE writes the rows where any differs. Triggers fire per column that
            // changed, never for a column that kept its value.
            let text = sql::select_differing::<DB, M>(&shape);
            let query = bind_keys_then(&text, chunk, values);
            let mut differing: Vec<(M::Key, Vec<bool>)> = Vec::new();
            for row in DB::fetch_all(self.conn().await?, query).await? {
                let key: M::Key = DB::decode(&row, 0)?;
                let flags = (1..=assigned.len())
                    .map(|n| DB::decode_bool(&row, n))
                    .collect::<Result<Vec<bool>, _>>()?;
                differing.push((key, flags));
            }
            let keys: Vec<M::Key> = differing.iter().map(|(k, _)| k.clone()).collect();
            for part in key_chunks::<DB, M::Key>(Some(&keys), assigned.len())
                .into_iter()
                .flatten()
            {
                let by_key = Shape {
                    assigned: &assigned,
                    equals: &[],
                    keys: Some(part.len()),
                };
                let text = sql::update_returning::<DB, M>(&by_key);
                let query = bind_keys_then(&text, Some(part), assigned_values());
                DB::fetch_all(self.conn().await?, query).await?;
            }
            for (key, flags) in differing {
                for (flag, trigger) in flags.iter().zip(&triggers) {
                    if *flag {
                        self.record::<M>(*trigger, &key);
                    }
                }
                changed.push(key);
            }
        }
        Ok(changed)
    }
}

impl<DB, M> DeleteRows<M> for TrackedSession<DB>
where
    DB: Dialect,
    M: Model,
    M::Key: TrackedKey<DB>,
{
    type Error = Error;
    type Value = BoundValue<DB>;

    async fn delete_rows(
        &mut self,
        delete: DeleteWhere<M, BoundValue<DB>>,
    ) -> Result<Vec<M::Key>, Error> {
        if delete.filter.is_empty() {
            return Ok(Vec::new());
        }
        let equals: Vec<usize> = delete.filter.equals.iter().map(|(i, _)| *i).collect();
        // The rows that will go, locked on PostgreSQL.
        let mut keys: Vec<M::Key> = Vec::new();
        for chunk in key_chunks::<DB, M::Key>(delete.filter.keys.as_deref(), equals.len()) {
            let shape = Shape {
                assigned: &[],
                equals: &equals,
                keys: chunk.map(<[_]>::len),
            };
            let text = sql::select_keys::<DB, M>(&shape);
            let query = bind_keys_then(&text, chunk, delete.filter.equals.iter().map(|(_, v)| v));
            for row in DB::fetch_all(self.conn().await?, query).await? {
                keys.push(DB::decode(&row, 0)?);
            }
        }
        if keys.is_empty() {
            return Ok(keys);
        }
        // The rows are still there: resolve the contexts of their DELETE events now, and
        // record them only once the rows are gone (as `delete` does for one row).
        let trigger = RowTrigger::<M>::__new(RowChange::Delete).trigger_key();
        let mut resolved = self.resolve_now_keys::<M>(trigger, &keys).await?;
        if self.fails_unresolved()
            && let Some(error) = resolved.failure()
        {
            return Err(error);
        }
        let mut deleted = 0;
        for chunk in key_chunks::<DB, M::Key>(Some(&keys), 0)
            .into_iter()
            .flatten()
        {
            let text = sql::delete_keys::<DB, M>(chunk.len());
            let query = <M::Key as TrackedKey<DB>>::bind_keys(sqlx::query(&text), chunk);
            deleted += DB::execute(self.conn().await?, query).await?;
        }
        if deleted != keys.len() as u64 {
            // Cannot happen with the rows locked by this transaction.
            tracing::error!(
                table = M::TABLE,
                selected = keys.len(),
                deleted,
                "a set-based delete removed fewer rows than it selected (a bug)"
            );
        }
        self.record_resolved(resolved);
        Ok(keys)
    }
}

impl<DB, M> InsertRows<M> for TrackedSession<DB>
where
    DB: Dialect,
    M: Model + for<'q> BindColumns<Binder<'q, DB>>,
    M::Key: TrackedKey<DB>,
{
    type Error = Error;

    async fn insert_rows<'a>(&'a mut self, rows: &'a [M]) -> Result<(), Error> {
        let per_statement = (DB::MAX_PARAMETERS / M::COLUMNS.len().max(1)).max(1);
        let trigger = RowTrigger::<M>::__new(RowChange::Insert).trigger_key();
        for chunk in rows.chunks(per_statement) {
            let text = sql::insert_rows::<DB, M>(chunk.len());
            let mut binder = Binder::new(&text);
            for row in chunk {
                row.bind_columns(&mut binder);
            }
            let returned = DB::fetch_all(self.conn().await?, binder.into_query()).await?;
            let mut inserted = HashSet::with_capacity(returned.len());
            for row in &returned {
                inserted.insert(DB::decode::<M::Key>(row, 0)?);
            }
            // A trigger of the database may drop rows: record the rows that were written, and
            // say which one was not.
            for row in chunk {
                if inserted.contains(row.key()) {
                    self.record::<M>(trigger, row.key());
                }
            }
            if let Some(missing) = chunk.iter().find(|row| !inserted.contains(row.key())) {
                return Err(Error::NotInserted {
                    table: M::TABLE,
                    key: format!("{:?}", missing.key()),
                });
            }
        }
        Ok(())
    }
}
