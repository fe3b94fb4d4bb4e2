//! The statements behind the generated setters, `find`, `insert` and `delete`. Values are
//! always bound, never written into the SQL.

use mercure_track::session::{BindColumns, BindValue};
use mercure_track::{
    Column, DeleteRow, FindRow, InsertRow, Model, RowChange, RowTrigger, Trigger, WriteColumn,
};
use sqlx::{Encode, FromRow, Type};

use crate::dialect::{Dialect, SqlQuery, TrackedKey};
use crate::error::Error;
use crate::session::TrackedSession;
use crate::sql::write as sql;

impl<DB, M, T> WriteColumn<M, T> for TrackedSession<DB>
where
    DB: Dialect,
    M: Model,
    M::Key: TrackedKey<DB>,
    T: for<'q> Encode<'q, DB> + Type<DB> + Send + Sync,
{
    type Error = Error;

    async fn write_column<'a>(
        &'a mut self,
        column: Column<M, T>,
        key: &'a M::Key,
        value: &'a T,
    ) -> Result<bool, Error> {
        let sql = sql::set_column::<DB, M>(column.index());
        let conn = self.conn().await?;
        let query = sqlx::query(sql).bind(value).bind(key);
        let changed = if DB::WRITABLE_CTE {
            match DB::fetch_optional(conn, query).await? {
                Some(row) => DB::decode_bool(&row, 0)?,
                None => return Err(not_found::<M>(key)),
            }
        } else {
            let affected = DB::execute(conn, query).await?;
            if affected == 0 {
                // Boxed: the changed value's path does not carry the check's code inline.
                Box::pin(ensure_exists::<DB, M>(conn, key)).await?;
            }
            affected > 0
        };
        if changed {
            self.record::<M>(column.trigger_key(), key);
        }
        Ok(changed)
    }
}

async fn ensure_exists<DB, M>(conn: &mut DB::Connection, key: &M::Key) -> Result<(), Error>
where
    DB: Dialect,
    M: Model,
    M::Key: TrackedKey<DB>,
{
    match DB::fetch_optional(conn, sqlx::query(sql::exists::<DB, M>()).bind(key)).await? {
        Some(_) => Ok(()),
        None => Err(not_found::<M>(key)),
    }
}

#[cold]
#[inline(never)]
fn not_found<M: Model>(key: &M::Key) -> Error {
    Error::RowNotFound {
        table: M::TABLE,
        key: format!("{key:?}"),
    }
}

impl<DB, M> FindRow<M> for TrackedSession<DB>
where
    DB: Dialect,
    M: Model + for<'r> FromRow<'r, DB::Row> + Unpin,
    M::Key: TrackedKey<DB>,
{
    type Error = Error;

    async fn find_row<'a>(&'a mut self, key: &'a M::Key) -> Result<M, Error> {
        let sql = sql::find::<DB, M>();
        let row = DB::fetch_optional(self.conn().await?, sqlx::query(sql).bind(key))
            .await?
            .ok_or_else(|| not_found::<M>(key))?;
        Ok(M::from_row(&row)?)
    }
}

/// Collects the values of a row into a query.
pub struct Binder<'q, DB: Dialect> {
    query: SqlQuery<'q, DB>,
}

impl<'q, DB: Dialect> Binder<'q, DB> {
    /// A binder for the statement `sql`.
    pub(crate) fn new(sql: &'q str) -> Self {
        Self {
            query: sqlx::query(sql),
        }
    }

    /// The statement with its values.
    pub(crate) fn into_query(self) -> SqlQuery<'q, DB> {
        self.query
    }
}

impl<'q, DB, T> BindValue<T> for Binder<'q, DB>
where
    DB: Dialect,
    T: for<'e> Encode<'e, DB> + Type<DB> + Clone + Send + 'q,
{
    fn bind_value(&mut self, value: &T) {
        // `bind` takes the query by value: an empty statement stands in for the instant.
        let query = std::mem::replace(&mut self.query, sqlx::query(""));
        self.query = query.bind(value.clone());
    }
}

impl<DB, M> InsertRow<M> for TrackedSession<DB>
where
    DB: Dialect,
    M: Model + for<'q> BindColumns<Binder<'q, DB>>,
    M::Key: TrackedKey<DB>,
{
    type Error = Error;

    async fn insert_row<'a>(&'a mut self, row: &'a M) -> Result<(), Error> {
        let mut binder = Binder::new(sql::insert::<DB, M>());
        row.bind_columns(&mut binder);
        let affected = DB::execute(self.conn().await?, binder.query).await?;
        if affected == 0 {
            // A trigger (`RAISE(IGNORE)`, a `BEFORE` trigger returning NULL) dropped the row.
            return Err(Error::NotInserted {
                table: M::TABLE,
                key: format!("{:?}", row.key()),
            });
        }
        self.record::<M>(
            RowTrigger::<M>::__new(RowChange::Insert).trigger_key(),
            row.key(),
        );
        Ok(())
    }
}

impl<DB, M> DeleteRow<M> for TrackedSession<DB>
where
    DB: Dialect,
    M: Model,
    M::Key: TrackedKey<DB>,
{
    type Error = Error;

    async fn delete_row<'a>(&'a mut self, key: &'a M::Key) -> Result<(), Error> {
        // The row is still there: resolve the contexts of its DELETE events now, and record
        // them only once the row is gone.
        let trigger = RowTrigger::<M>::__new(RowChange::Delete).trigger_key();
        let mut resolved = self.resolve_now::<M>(trigger, key).await?;
        if self.fails_unresolved()
            && let Some(error) = resolved.failure()
        {
            // Fail before deleting, unless there is nothing to delete.
            ensure_exists::<DB, M>(self.conn().await?, key).await?;
            return Err(error);
        }
        let sql = sql::delete::<DB, M>();
        let affected = DB::execute(self.conn().await?, sqlx::query(sql).bind(key)).await?;
        if affected == 0 {
            return Err(not_found::<M>(key));
        }
        self.record_resolved(resolved);
        Ok(())
    }
}
