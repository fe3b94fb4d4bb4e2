//! Tracked models: table metadata, typed column markers and context predicates.
//!
//! Everything here is produced by `#[derive(Tracked)]`; users name the generated values
//! (`Order::status`, `Order::id`, `Order::INSERT`) and call the row methods of [`Model`]
//! (`Order::find`, `order.insert`, `order.delete`); they rarely implement these traits by hand.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::session::{DeleteRow, FindRow, InsertRow};

/// A database table whose writes are tracked.
///
/// Implemented by `#[derive(Tracked)]`.
pub trait Model: Sized + Send + Sync + 'static {
    /// The Rust name of the model (`"Order"`), used in logs and error messages.
    const NAME: &'static str;
    /// The SQL table (`"orders"`).
    const TABLE: &'static str;
    /// Every column of the model, in field declaration order (skipped fields excluded).
    const COLUMNS: &'static [ColumnInfo];
    /// Index of the primary key in [`Model::COLUMNS`].
    const PRIMARY_KEY: usize;
    /// The primary key's Rust type.
    type Key: Clone + Send + Sync + fmt::Debug + 'static;
    /// The declared `belongs_to` links to other models, as a type-level list searched by the
    /// compiler (see [`crate::reach`]). Not public API.
    #[doc(hidden)]
    type Parents;

    /// The primary key of this row.
    fn key(&self) -> &Self::Key;

    /// Loads the row with key `key` through a session; a missing row is an error.
    ///
    /// A method of this trait rather than of the model itself, so that it never hides a method
    /// of your own: with both in scope, the compiler asks which one you mean.
    fn find<S>(
        session: &mut S,
        key: impl Into<Self::Key>,
    ) -> impl Future<Output = Result<Self, S::Error>> + Send
    where
        S: FindRow<Self>,
    {
        let key = key.into();
        async move { session.find_row(&key).await }
    }

    /// Inserts this row (every column) through a tracked session, recording `Model::INSERT`
    /// for the events it triggers. A failed insert records nothing.
    fn insert<'a, S>(
        &'a self,
        session: &'a mut S,
    ) -> impl Future<Output = Result<(), S::Error>> + Send + 'a
    where
        S: InsertRow<Self>,
    {
        session.insert_row(self)
    }

    /// Deletes this row through a tracked session, recording `Model::DELETE` for the events
    /// it triggers. A missing row is an error and records nothing.
    fn delete<'a, S>(
        &'a self,
        session: &'a mut S,
    ) -> impl Future<Output = Result<(), S::Error>> + Send + 'a
    where
        S: DeleteRow<Self>,
    {
        session.delete_row(self.key())
    }

    /// A set-based update of this model's rows, typed by its column markers:
    /// `Order::update().set(Order::status, "DONE").filter(Order::id.in_keys(keys))`.
    /// See [`crate::set_based`].
    fn update<V>() -> crate::set_based::UpdateWhere<Self, V> {
        crate::set_based::UpdateWhere::default()
    }

    /// A set-based delete of this model's rows:
    /// `LineItem::delete_where().filter(LineItem::order_id.is("A"))`. See [`crate::set_based`].
    fn delete_where<V>() -> crate::set_based::DeleteWhere<Self, V> {
        crate::set_based::DeleteWhere::default()
    }

    /// Inserts `rows` through a tracked session in as few statements as the database allows
    /// (multi-row `VALUES`), recording `Model::INSERT` for each. An empty slice runs nothing.
    fn insert_all<'a, S>(
        rows: &'a [Self],
        session: &'a mut S,
    ) -> impl Future<Output = Result<(), S::Error>> + Send + 'a
    where
        S: crate::set_based::InsertRows<Self>,
    {
        session.insert_rows(rows)
    }

    /// Static metadata of the model, for code that works on erased models.
    fn info() -> ModelInfo {
        ModelInfo {
            name: Self::NAME,
            table: Self::TABLE,
            columns: Self::COLUMNS,
            primary_key: Self::PRIMARY_KEY,
        }
    }
}

/// Type-erased metadata of a [`Model`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModelInfo {
    /// The Rust name of the model.
    pub name: &'static str,
    /// The SQL table.
    pub table: &'static str,
    /// The columns, in field order.
    pub columns: &'static [ColumnInfo],
    /// Index of the primary key in `columns`.
    pub primary_key: usize,
}

impl ModelInfo {
    /// The primary key column.
    pub fn primary_key_column(&self) -> &'static ColumnInfo {
        &self.columns[self.primary_key]
    }
}

/// Static description of one column of a [`Model`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ColumnInfo {
    /// The Rust field name (`"selected_coloring_id"`).
    pub field: &'static str,
    /// The SQL column name (the field name unless `#[tracked(column = "...")]`).
    pub name: &'static str,
    /// Whether this column is the primary key.
    pub primary_key: bool,
    /// The table this column points to when declared `#[tracked(belongs_to = Parent)]`.
    pub belongs_to: Option<&'static str>,
}

/// Identifies a column across the whole program: table and column name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ColumnKey {
    /// The SQL table.
    pub table: &'static str,
    /// The SQL column.
    pub column: &'static str,
}

impl fmt::Display for ColumnKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.table, self.column)
    }
}

/// A typed column marker: `Order::status` is a `Column<Order, OrderStatus>`.
///
/// It names the column and carries its Rust type, so that triggers, contexts and predicates
/// are checked by the compiler.
pub struct Column<M, T> {
    index: usize,
    _marker: PhantomData<fn() -> (M, T)>,
}

// Manual impls: a derive would require `M: Clone` and `T: Clone`.
impl<M, T> Clone for Column<M, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M, T> Copy for Column<M, T> {}

impl<M: Model, T> fmt::Debug for Column<M, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}::{}", M::NAME, self.info().field)
    }
}

impl<M, T> Column<M, T> {
    /// The marker of the column at `index` in `M::COLUMNS`. Called by the derive only.
    #[doc(hidden)]
    pub const fn __new(index: usize) -> Self {
        Self {
            index,
            _marker: PhantomData,
        }
    }

    /// Index of the column in [`Model::COLUMNS`].
    pub const fn index(&self) -> usize {
        self.index
    }
}

impl<M: Model, T> Column<M, T> {
    /// The static description of this column.
    pub fn info(&self) -> &'static ColumnInfo {
        &M::COLUMNS[self.index]
    }

    /// The SQL column name.
    pub fn name(&self) -> &'static str {
        self.info().name
    }

    /// Table and column, as used by the event registry.
    pub fn key(&self) -> ColumnKey {
        ColumnKey {
            table: M::TABLE,
            column: self.name(),
        }
    }

    /// A context predicate `column = value`, e.g. `Order::id.eq("abc")`.
    ///
    /// The value must convert into the column's type: `Order::id.eq(42)` does not compile
    /// when the key is a `String`.
    pub fn eq(self, value: impl Into<T>) -> Predicate
    where
        T: Send + Sync + 'static,
    {
        Predicate {
            column: self.key(),
            value: Arc::new(value.into()),
        }
    }
}

/// The marker of a `#[tracked(belongs_to = Parent)]` column: a [`Column`] that also knows, at
/// the type level, the model it points to. It can name the first link of a context path
/// (`#[context(Order::id, via(Image::line_item_id))]`) where the compiler cannot choose one.
///
/// It dereferences to its [`Column`], so `Image::line_item_id.eq(3)` and `.name()` work as on
/// any column.
pub struct ForeignKeyColumn<M, T, Parent> {
    column: Column<M, T>,
    _parent: PhantomData<fn() -> Parent>,
}

impl<M, T, Parent> Clone for ForeignKeyColumn<M, T, Parent> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M, T, Parent> Copy for ForeignKeyColumn<M, T, Parent> {}

impl<M, T, Parent> ForeignKeyColumn<M, T, Parent> {
    /// The marker of the foreign key at `index` in `M::COLUMNS`. Called by the derive only.
    #[doc(hidden)]
    pub const fn __new(index: usize) -> Self {
        Self {
            column: Column::__new(index),
            _parent: PhantomData,
        }
    }

    /// The column.
    pub const fn column(&self) -> Column<M, T> {
        self.column
    }
}

impl<M, T, Parent> std::ops::Deref for ForeignKeyColumn<M, T, Parent> {
    type Target = Column<M, T>;

    fn deref(&self) -> &Column<M, T> {
        &self.column
    }
}

impl<M: Model, T, Parent> fmt::Debug for ForeignKeyColumn<M, T, Parent> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.column.fmt(f)
    }
}

impl<M: Model, T, Parent: Model> ForeignKeyColumn<M, T, Parent> {
    /// The join this foreign key makes: `M.column = Parent.<primary key>`.
    pub fn link(&self) -> crate::reach::Link {
        crate::reach::Link {
            from: M::info(),
            foreign_key: self.column.info(),
            to: Parent::info(),
        }
    }
}

impl<M: Model, T, Parent> Trigger for ForeignKeyColumn<M, T, Parent> {
    type Model = M;

    fn trigger_key(&self) -> TriggerKey {
        self.column.trigger_key()
    }
}

/// The marker of a model's primary key: `Order::id`. A [`Column`] (it dereferences to one,
/// so `Order::id.eq("abc")` and `.name()` work) that can fill a context but cannot trigger an
/// event: no setter writes a key, so such a trigger would never fire. Use `Model::INSERT` or
/// `Model::DELETE` to react to rows appearing or disappearing.
pub struct KeyColumn<M, T> {
    column: Column<M, T>,
}

impl<M, T> Clone for KeyColumn<M, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M, T> Copy for KeyColumn<M, T> {}

impl<M, T> KeyColumn<M, T> {
    /// The marker of the primary key at `index` in `M::COLUMNS`. Called by the derive only.
    #[doc(hidden)]
    pub const fn __new(index: usize) -> Self {
        Self {
            column: Column::__new(index),
        }
    }

    /// The column.
    pub const fn column(&self) -> Column<M, T> {
        self.column
    }
}

impl<M, T> std::ops::Deref for KeyColumn<M, T> {
    type Target = Column<M, T>;

    fn deref(&self) -> &Column<M, T> {
        &self.column
    }
}

impl<M: Model, T> fmt::Debug for KeyColumn<M, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.column.fmt(f)
    }
}

/// What `#[derive(Tracked)]` generates for a `#[tracked(skip)]` field, so that naming it in
/// `#[trigger(...)]` or `#[context(...)]` says why it cannot be used. Not public API.
#[doc(hidden)]
pub struct SkippedField<M> {
    field: &'static str,
    _marker: PhantomData<fn() -> M>,
}

impl<M> Clone for SkippedField<M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M> Copy for SkippedField<M> {}

impl<M> SkippedField<M> {
    /// The skipped field `field`. Called by the derive only.
    #[doc(hidden)]
    pub const fn __new(field: &'static str) -> Self {
        Self {
            field,
            _marker: PhantomData,
        }
    }
}

impl<M: Model> fmt::Debug for SkippedField<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}::{} (skipped)", M::NAME, self.field)
    }
}

/// A typed context predicate `column = value`, built by [`Column::eq`].
///
/// A session checks its predicates against the context values it reads from the database,
/// and never uses them as values (see `TrackedSession::add_tracking_context` in
/// `mercure-track-sqlx`).
#[derive(Clone)]
pub struct Predicate {
    column: ColumnKey,
    value: Arc<dyn Any + Send + Sync>,
}

impl Predicate {
    /// The column the predicate constrains.
    pub fn column(&self) -> ColumnKey {
        self.column
    }

    /// The value, if it has type `T`.
    pub fn value<T: 'static>(&self) -> Option<&T> {
        self.value.downcast_ref()
    }
}

impl fmt::Debug for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Predicate({} = ..)", self.column)
    }
}

/// What happened to a row: the trigger of `Order::INSERT` and `Order::DELETE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RowChange {
    /// A row was inserted.
    Insert,
    /// A row was deleted.
    Delete,
}

/// A row-level trigger marker: `Order::INSERT` and `Order::DELETE`.
pub struct RowTrigger<M> {
    change: RowChange,
    _marker: PhantomData<fn() -> M>,
}

impl<M> Clone for RowTrigger<M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M> Copy for RowTrigger<M> {}

impl<M> RowTrigger<M> {
    /// The marker of a row-level change. Called by the derive only.
    #[doc(hidden)]
    pub const fn __new(change: RowChange) -> Self {
        Self {
            change,
            _marker: PhantomData,
        }
    }
}

impl<M: Model> fmt::Debug for RowTrigger<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}::{:?}", M::NAME, self.change)
    }
}

/// What a change to the database looks like to the event registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TriggerKey {
    /// A column of an existing row changed value.
    Column(ColumnKey),
    /// A row was inserted into or deleted from a table.
    Row {
        /// The SQL table.
        table: &'static str,
        /// Insert or delete.
        change: RowChange,
    },
}

impl fmt::Display for TriggerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Column(column) => column.fmt(f),
            Self::Row { table, change } => write!(f, "{table}:{change:?}"),
        }
    }
}

/// Something that can be named in `#[trigger(...)]`: a column marker or a row marker.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a tracked column",
    label = "expected a column marker such as `Order::status`, or `Order::INSERT` / `Order::DELETE`",
    note = "trigger columns are the fields of a `#[derive(Tracked)]` model that are not `#[tracked(skip)]`"
)]
pub trait Trigger: Copy {
    /// The model whose rows fire the trigger.
    type Model: Model;

    /// The registry key of the trigger.
    fn trigger_key(&self) -> TriggerKey;
}

impl<M: Model, T> Trigger for Column<M, T> {
    type Model = M;

    fn trigger_key(&self) -> TriggerKey {
        TriggerKey::Column(self.key())
    }
}

impl<M: Model> Trigger for RowTrigger<M> {
    type Model = M;

    fn trigger_key(&self) -> TriggerKey {
        TriggerKey::Row {
            table: M::TABLE,
            change: self.change,
        }
    }
}

/// What generated code checks on the paths of `#[trigger(...)]` and `#[context(...)]`; not
/// public API. Every column marker is a `Marker`; the associated types say, at the type
/// level, whether it is a primary key or a skipped field, so that the compiler's message
/// names the reason rather than a missing implementation.
#[doc(hidden)]
pub mod check {
    use super::{
        Column, ColumnKey, ForeignKeyColumn, KeyColumn, Model, RowTrigger, SkippedField, Trigger,
        TriggerKey,
    };

    /// A marker that passes a check.
    pub struct Valid;
    /// The check of a primary key marker.
    pub struct PrimaryKey;
    /// The check of a skipped field.
    pub struct Skipped;

    /// Anything `#[derive(Tracked)]` generates as `Model::name`.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not a tracked column",
        label = "expected a column marker such as `Order::status`, or `Order::INSERT` / `Order::DELETE`",
        note = "columns are the fields of a `#[derive(Tracked)]` model"
    )]
    pub trait Marker: Copy {
        /// The model whose rows the marker names.
        type Model: Model;
        /// [`Valid`], or [`PrimaryKey`] for the primary key.
        type IfKey;
        /// [`Valid`], or [`Skipped`] for a `#[tracked(skip)]` field.
        type IfSkipped;
        /// The registry key of a change of the marker.
        fn marker_key(&self) -> TriggerKey;
    }

    /// Passed by every marker but the primary key's.
    #[diagnostic::on_unimplemented(
        message = "a primary key cannot trigger an event: no setter writes a key, so the event would never fire",
        label = "the primary key",
        note = "to react to rows appearing or disappearing, trigger on `Model::INSERT` or `Model::DELETE`"
    )]
    pub trait NotPrimaryKey {}
    impl NotPrimaryKey for Valid {}

    /// Passed by every marker but a skipped field's.
    #[diagnostic::on_unimplemented(
        message = "a `#[tracked(skip)]` field is not a column: no write changes it and no query reads it",
        label = "a skipped field",
        note = "remove `#[tracked(skip)]` to make it a column, or name another column"
    )]
    pub trait NotSkipped {}
    impl NotSkipped for Valid {}

    impl<M: Model, T> Marker for Column<M, T> {
        type Model = M;
        type IfKey = Valid;
        type IfSkipped = Valid;
        fn marker_key(&self) -> TriggerKey {
            self.trigger_key()
        }
    }

    impl<M: Model, T, P> Marker for ForeignKeyColumn<M, T, P> {
        type Model = M;
        type IfKey = Valid;
        type IfSkipped = Valid;
        fn marker_key(&self) -> TriggerKey {
            self.trigger_key()
        }
    }

    impl<M: Model> Marker for RowTrigger<M> {
        type Model = M;
        type IfKey = Valid;
        type IfSkipped = Valid;
        fn marker_key(&self) -> TriggerKey {
            self.trigger_key()
        }
    }

    impl<M: Model, T> Marker for KeyColumn<M, T> {
        type Model = M;
        type IfKey = PrimaryKey;
        type IfSkipped = Valid;
        fn marker_key(&self) -> TriggerKey {
            self.column().trigger_key()
        }
    }

    impl<M: Model> Marker for SkippedField<M> {
        type Model = M;
        type IfKey = Valid;
        type IfSkipped = Skipped;
        fn marker_key(&self) -> TriggerKey {
            // Never used: naming a skipped field is a compile error. The key names no column.
            TriggerKey::Column(ColumnKey {
                table: M::TABLE,
                column: self.field,
            })
        }
    }

    /// A marker whose column holds values of type `T` (primary keys included; skipped fields
    /// are refused by [`NotSkipped`]).
    #[diagnostic::on_unimplemented(
        message = "the context field has type `{T}`, which does not match the column `{Self}`",
        label = "the field's type must be the column's type"
    )]
    pub trait ContextColumn<T>: Marker {
        /// The column's registry key.
        fn context_key(&self) -> ColumnKey;
    }

    impl<M: Model, T> ContextColumn<T> for Column<M, T> {
        fn context_key(&self) -> ColumnKey {
            self.key()
        }
    }
    impl<M: Model, T, P> ContextColumn<T> for ForeignKeyColumn<M, T, P> {
        fn context_key(&self) -> ColumnKey {
            self.key()
        }
    }
    impl<M: Model, T> ContextColumn<T> for KeyColumn<M, T> {
        fn context_key(&self) -> ColumnKey {
            self.key()
        }
    }
    impl<M: Model, T> ContextColumn<T> for SkippedField<M> {
        fn context_key(&self) -> ColumnKey {
            // Never used: naming a skipped field is a compile error.
            ColumnKey {
                table: M::TABLE,
                column: self.field,
            }
        }
    }
}
