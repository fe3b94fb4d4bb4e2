//! Set-based writes: many rows in one statement, typed by the column markers and tracked like
//! the setters.
//!
//! ```
//! # use mercure_track::prelude::*;
//! # use mercure_track::{SetValue, UpdateRows};
//! # #[derive(Debug, Clone, Tracked)]
//! # #[tracked(table = "orders")]
//! # pub struct Order { #[tracked(primary_key)] pub id: String, pub status: String }
//! async fn approve<S>(session: &mut S) -> Result<Vec<String>, S::Error>
//! where
//!     S: UpdateRows<Order>,
//!     S::Value: SetValue<String>,
//! {
//!     // UPDATE orders SET status = $1 WHERE status = $2 AND status IS DISTINCT FROM $1
//!     // RETURNING id
//!     Order::update()
//!         .set(Order::status, "APPROVED")
//!         .filter(Order::status.is("READY_FOR_REVIEW"))
//!         .execute(session)
//!         .await
//! }
//! ```
//!
//! Every value is bound, never written into the SQL. The session returns the keys of the rows
//! whose value really changed (the database decides, in the statement), and records exactly
//! those for the commit, as a setter does: each changed row gets its own context, resolved
//! with the other rows of its model in one query per event.
//!
//! # Bad input
//!
//! - An empty key list (`Order::id.in_keys([])`) selects no row: no statement runs, nothing
//!   is recorded, the result is empty. It never means "every row".
//! - Any number of keys is accepted: on SQLite, whose statements take at most 32 766
//!   parameters, the keys are split across statements of the same transaction.
//! - A write without any filter writes every row of the table, as SQL's `UPDATE` does.

use std::fmt;
use std::future::Future;

use crate::model::{Column, ForeignKeyColumn, KeyColumn, Model};

/// A value of column type `T`, as the session binds it. Implemented by the session's bound
/// value type (`UpdateRows::Value`) for every `T` its database can encode; code generic over
/// the session bounds on it (`S::Value: SetValue<String>`).
pub trait SetValue<T>: Sized {
    /// The bound value.
    fn set_value(value: T) -> Self;
}

/// A column a set-based write may assign: any column marker but the primary key's.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be assigned by a set-based write",
    label = "expected a non-key column marker of this model, such as `Order::status`",
    note = "a primary key is never written; the model of the column must be the model of the write"
)]
pub trait Assignable<M, T>: Copy {
    /// The column.
    fn assigned(self) -> Column<M, T>;
}

impl<M, T> Assignable<M, T> for Column<M, T> {
    fn assigned(self) -> Column<M, T> {
        self
    }
}

impl<M, T, P> Assignable<M, T> for ForeignKeyColumn<M, T, P> {
    fn assigned(self) -> Column<M, T> {
        self.column()
    }
}

/// A typed condition of a set-based write: built by `Order::id.in_keys(...)` or
/// `Order::status.is(...)`.
pub struct Condition<M: Model, T> {
    kind: ConditionKind<M, T>,
}

enum ConditionKind<M: Model, T> {
    Keys(Vec<M::Key>),
    Equals(usize, T),
}

impl<M: Model, T> fmt::Debug for Condition<M, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ConditionKind::Keys(keys) => write!(f, "{}.key IN ({} keys)", M::NAME, keys.len()),
            ConditionKind::Equals(index, _) => {
                write!(f, "{}::{} = ..", M::NAME, M::COLUMNS[*index].field)
            }
        }
    }
}

impl<M: Model> KeyColumn<M, M::Key> {
    /// The rows whose primary key is one of `keys`. An empty list selects no row.
    pub fn in_keys<K>(self, keys: impl IntoIterator<Item = K>) -> Condition<M, M::Key>
    where
        K: Into<M::Key>,
    {
        Condition {
            kind: ConditionKind::Keys(keys.into_iter().map(Into::into).collect()),
        }
    }
}

impl<M: Model, T> Column<M, T> {
    /// The rows whose column equals `value` (SQL `=`: a NULL column matches nothing).
    pub fn is(self, value: impl Into<T>) -> Condition<M, T> {
        Condition {
            kind: ConditionKind::Equals(self.index(), value.into()),
        }
    }
}

/// Which rows a set-based write touches: every condition holds (none: every row).
pub struct Filter<M: Model, V> {
    /// The intersection of the key lists given, if any was.
    pub keys: Option<Vec<M::Key>>,
    /// `(column index, value)`: the column equals the value.
    pub equals: Vec<(usize, V)>,
}

impl<M: Model, V> Default for Filter<M, V> {
    fn default() -> Self {
        Self {
            keys: None,
            equals: Vec::new(),
        }
    }
}

impl<M: Model, V> fmt::Debug for Filter<M, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter")
            .field("keys", &self.keys.as_ref().map(Vec::len))
            .field(
                "equals",
                &self
                    .equals
                    .iter()
                    .map(|(i, _)| M::COLUMNS[*i].name)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl<M: Model, V> Filter<M, V>
where
    M::Key: PartialEq,
{
    fn add<T>(&mut self, condition: Condition<M, T>)
    where
        V: SetValue<T>,
    {
        match condition.kind {
            ConditionKind::Keys(keys) => {
                self.keys = Some(match self.keys.take() {
                    None => keys,
                    Some(previous) => previous.into_iter().filter(|k| keys.contains(k)).collect(),
                });
            }
            ConditionKind::Equals(index, value) => {
                self.equals.push((index, V::set_value(value)));
            }
        }
    }

    /// Whether the filter selects no row without asking the database (an empty key list).
    pub fn is_empty(&self) -> bool {
        self.keys.as_ref().is_some_and(Vec::is_empty)
    }
}

/// `UPDATE <model> SET ... WHERE ...`, built by [`Model::update`] and run by
/// [`UpdateWhere::execute`]. `V` is the session's bound value type, inferred from `execute`.
#[must_use = "a set-based write does nothing until `execute`"]
pub struct UpdateWhere<M: Model, V> {
    /// `(column index, value)` in the order given; a column set twice keeps its last value.
    pub assignments: Vec<(usize, V)>,
    /// The rows written.
    pub filter: Filter<M, V>,
}

impl<M: Model, V> fmt::Debug for UpdateWhere<M, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpdateWhere")
            .field("model", &M::NAME)
            .field(
                "set",
                &self
                    .assignments
                    .iter()
                    .map(|(i, _)| M::COLUMNS[*i].name)
                    .collect::<Vec<_>>(),
            )
            .field("filter", &self.filter)
            .finish()
    }
}

impl<M: Model, V> Default for UpdateWhere<M, V> {
    fn default() -> Self {
        Self {
            assignments: Vec::new(),
            filter: Filter::default(),
        }
    }
}

impl<M: Model, V> UpdateWhere<M, V>
where
    M::Key: PartialEq,
{
    /// Sets `column` to `value` in every selected row. The value must convert into the
    /// column's type, and the column must belong to `M`.
    pub fn set<T>(mut self, column: impl Assignable<M, T>, value: impl Into<T>) -> Self
    where
        V: SetValue<T>,
    {
        let index = column.assigned().index();
        self.assignments.retain(|(i, _)| *i != index);
        self.assignments.push((index, V::set_value(value.into())));
        self
    }

    /// Restricts the write to the rows meeting `condition` (conditions add up with AND).
    pub fn filter<T>(mut self, condition: Condition<M, T>) -> Self
    where
        V: SetValue<T>,
    {
        self.filter.add(condition);
        self
    }

    /// Runs the write through a tracked session. Returns the keys of the rows whose value
    /// changed (a row already holding every value is not returned, and not recorded). An
    /// update that sets no column, or selects no row by an empty key list, runs nothing.
    pub fn execute<S>(
        self,
        session: &mut S,
    ) -> impl Future<Output = Result<Vec<M::Key>, S::Error>> + Send + '_
    where
        S: UpdateRows<M, Value = V>,
    {
        session.update_rows(self)
    }
}

/// `DELETE FROM <model> WHERE ...`, built by [`Model::delete_where`].
#[must_use = "a set-based delete does nothing until `execute`"]
pub struct DeleteWhere<M: Model, V> {
    /// The rows deleted.
    pub filter: Filter<M, V>,
}

impl<M: Model, V> fmt::Debug for DeleteWhere<M, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeleteWhere")
            .field("model", &M::NAME)
            .field("filter", &self.filter)
            .finish()
    }
}

impl<M: Model, V> Default for DeleteWhere<M, V> {
    fn default() -> Self {
        Self {
            filter: Filter::default(),
        }
    }
}

impl<M: Model, V> DeleteWhere<M, V>
where
    M::Key: PartialEq,
{
    /// Restricts the delete to the rows meeting `condition` (conditions add up with AND).
    pub fn filter<T>(mut self, condition: Condition<M, T>) -> Self
    where
        V: SetValue<T>,
    {
        self.filter.add(condition);
        self
    }

    /// Runs the delete through a tracked session: the contexts of the `M::DELETE` events of
    /// the selected rows are resolved while the rows are still there, then the rows go.
    /// Returns the keys of the deleted rows.
    pub fn execute<S>(
        self,
        session: &mut S,
    ) -> impl Future<Output = Result<Vec<M::Key>, S::Error>> + Send + '_
    where
        S: DeleteRows<M, Value = V>,
    {
        session.delete_rows(self)
    }
}

/// A session that runs set-based updates of `M`.
pub trait UpdateRows<M: Model>: Send {
    /// The session's error.
    type Error;
    /// A bound value of this session's database.
    type Value: Send;

    /// Runs `update`; returns the keys of the rows whose value changed.
    fn update_rows(
        &mut self,
        update: UpdateWhere<M, Self::Value>,
    ) -> impl Future<Output = Result<Vec<M::Key>, Self::Error>> + Send + '_;
}

/// A session that runs set-based deletes of `M`.
pub trait DeleteRows<M: Model>: Send {
    /// The session's error.
    type Error;
    /// A bound value of this session's database.
    type Value: Send;

    /// Runs `delete`; returns the keys of the deleted rows.
    fn delete_rows(
        &mut self,
        delete: DeleteWhere<M, Self::Value>,
    ) -> impl Future<Output = Result<Vec<M::Key>, Self::Error>> + Send + '_;
}

/// A session that inserts many rows of `M` in few statements.
pub trait InsertRows<M: Model>: Send {
    /// The session's error.
    type Error;

    /// Inserts `rows` (every column) and records `M::INSERT` for each.
    fn insert_rows<'a>(
        &'a mut self,
        rows: &'a [M],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'a;
}
