//! Context resolution: from changed rows to events, per row, with one query per event and
//! changed model for all the rows of a commit.

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock, RwLock};

use futures_util::future::BoxFuture;
use mercure_track::{
    AnyEvent, ColumnKey, ContextError, ContextSource, Model, Predicate, TriggerKey, TriggerSpec,
};
use sqlx::{Database, Decode, Type};

use mercure_track::registry::ProgramKeyMap;

use crate::dialect::{Dialect, TrackedKey};
use crate::error::Error;
use crate::sql::resolve::{ContextQuery, ContextSelect};
use crate::tracked::{TrackedEvent, TrackedEvents};

/// A changed row's primary key, type-erased (its model's resolver knows the type).
pub(crate) type ErasedKey = Arc<dyn Any + Send + Sync>;

/// One recorded change.
#[derive(Clone)]
pub(crate) struct Change {
    pub(crate) key: ErasedKey,
    pub(crate) trigger: TriggerKey,
}

/// What a resolver needs besides the changes.
pub(crate) struct ResolveScope<'a, DB: Dialect> {
    pub(crate) tracked: &'a TrackedEvents<DB>,
    /// The context predicates of the open transaction: checked against what the database
    /// says, never used as values.
    pub(crate) predicates: &'a [Predicate],
}

/// The events of some changes, how many queries it took, and what could not be resolved or
/// contradicted a predicate (reported by [`Resolved::settle`], once the caller knows the rows
/// exist).
#[derive(Default)]
pub(crate) struct Resolved {
    pub(crate) events: Vec<Box<dyn AnyEvent>>,
    pub(crate) queries: usize,
    pub(crate) unresolved: Vec<Unresolved>,
    contradictions: Vec<Contradiction>,
}

/// An event that could not be built for a changed row.
pub(crate) struct Unresolved {
    event: &'static str,
    table: &'static str,
    key: String,
    reason: Reason,
}

enum Reason {
    /// The resolution query returned no row for the key.
    NoRow,
    /// The row was read but a context value could not be taken from it.
    Context(ContextError),
    /// A captured change whose key the capture's shadow table no longer holds: neither the
    /// key nor the context can be read (see `crate::capture`).
    NoSavedRow,
}

/// A context predicate that the database contradicts for one changed row.
struct Contradiction {
    event: &'static str,
    table: &'static str,
    key: String,
    found: Found,
}

/// Appends `more` to `events`; when `events` is empty (most commits: one model, nothing
/// resolved before), `more` moves in, uncopied.
pub(crate) fn append_events(events: &mut Vec<Box<dyn AnyEvent>>, more: Vec<Box<dyn AnyEvent>>) {
    if events.is_empty() {
        *events = more;
    } else {
        events.extend(more);
    }
}

impl Unresolved {
    /// Event `event` of the captured change in log row `seq` of `table`, whose key the
    /// capture's shadow table does not hold.
    pub(crate) fn no_saved_row(event: &'static str, table: &'static str, seq: i64) -> Self {
        Self {
            event,
            table,
            key: format!("(log row {seq})"),
            reason: Reason::NoSavedRow,
        }
    }
}

impl Resolved {
    pub(crate) fn extend(&mut self, other: Resolved) {
        append_events(&mut self.events, other.events);
        self.queries += other.queries;
        self.unresolved.extend(other.unresolved);
        self.contradictions.extend(other.contradictions);
    }

    /// The first event that could not be resolved, as the error of a session configured to
    /// fail then.
    pub(crate) fn failure(&mut self) -> Option<Error> {
        if self.unresolved.is_empty() {
            return None;
        }
        let unresolved = self.unresolved.swap_remove(0);
        Some(match unresolved.reason {
            Reason::NoRow | Reason::NoSavedRow => Error::UnresolvedContext {
                event: unresolved.event,
                table: unresolved.table,
                key: unresolved.key,
            },
            Reason::Context(source) => Error::Context {
                event: unresolved.event,
                source,
            },
        })
    }

    /// Logs every contradicted predicate and every event skipped because it could not be
    /// resolved (naming the event, the table and the key). Returns the events and how many
    /// were skipped.
    pub(crate) fn settle(self) -> (Vec<Box<dyn AnyEvent>>, usize) {
        for c in &self.contradictions {
            tracing::warn!(
                event = c.event,
                table = c.table,
                key = %c.key,
                column = %c.found.column,
                asserted = %c.found.asserted,
                found = %c.found.found,
                "context predicate contradicted by the database; the event carries the database's value"
            );
        }
        for unresolved in &self.unresolved {
            let reason = match &unresolved.reason {
                Reason::NoRow => "no row joins it to its context".to_owned(),
                Reason::NoSavedRow => {
                    "the capture's shadow table does not hold the changed row's key".to_owned()
                }
                Reason::Context(error) => error.to_string(),
            };
            tracing::warn!(
                event = unresolved.event,
                table = unresolved.table,
                key = %unresolved.key,
                reason,
                "event skipped: its context could not be resolved"
            );
        }
        (self.events, self.unresolved.len())
    }
}

/// Resolves the changes of one model; monomorphized per model when a change is recorded.
pub(crate) type Resolver<DB> = for<'a> fn(
    &'a mut <DB as Database>::Connection,
    &'a [Change],
    &'a ResolveScope<'a, DB>,
) -> BoxFuture<'a, Result<Resolved, Error>>;

/// A tracked event, the keys it needs in first-changed order, and the same keys as a set once
/// they are many.
type EventKeys<'e, DB, K> = (&'e TrackedEvent<DB>, Vec<K>, Option<HashSet<K>>);

/// Up to this many keys per event, a new key is searched in the list instead of a set.
const SEARCHED_KEYS: usize = 8;

/// The resolver of model `M`.
pub(crate) fn resolver<DB, M>() -> Resolver<DB>
where
    DB: Dialect,
    M: Model,
    M::Key: TrackedKey<DB>,
{
    resolve_model::<DB, M>
}

/// Resolves the changes of several models, one resolver call each, in first-changed order.
pub(crate) async fn resolve_all<DB: Dialect>(
    conn: &mut DB::Connection,
    groups: &[(TypeId, Resolver<DB>, Vec<Change>)],
    scope: &ResolveScope<'_, DB>,
) -> Result<Resolved, Error> {
    let mut all = Resolved::default();
    for (_, resolver, changes) in groups {
        all.extend(resolver(&mut *conn, changes, scope).await?);
    }
    Ok(all)
}

fn resolve_model<'a, DB, M>(
    conn: &'a mut DB::Connection,
    changes: &'a [Change],
    scope: &'a ResolveScope<'a, DB>,
) -> BoxFuture<'a, Result<Resolved, Error>>
where
    DB: Dialect,
    M: Model,
    M::Key: TrackedKey<DB>,
{
    resolve_model_from::<DB, M>(conn, changes, scope, None)
}

/// As the resolver of `M`, reading the changed rows from `from` (a relation with `M`'s
/// columns, such as the capture's copy of deleted rows) instead of `M`'s table when given.
pub(crate) fn resolve_model_from<'a, DB, M>(
    conn: &'a mut DB::Connection,
    changes: &'a [Change],
    scope: &'a ResolveScope<'a, DB>,
    from: Option<String>,
) -> BoxFuture<'a, Result<Resolved, Error>>
where
    DB: Dialect,
    M: Model,
    M::Key: TrackedKey<DB>,
{
    Box::pin(async move {
        // The keys each tracked event needs, unique, in the order they changed.
        let mut per_event: Vec<EventKeys<'_, DB, M::Key>> = Vec::new();
        for change in changes {
            let Some(key) = change.key.downcast_ref::<M::Key>() else {
                // The session records a change with `resolver::<DB, M>` and a key of
                // `M::Key` together, so this cannot happen; say so loudly if it does.
                log_wrong_key(M::TABLE, change.trigger);
                continue;
            };
            for event in scope.tracked.triggered_by(change.trigger) {
                let index = match per_event.iter().position(|(e, ..)| std::ptr::eq(*e, event)) {
                    Some(index) => index,
                    None => {
                        per_event.push((event, Vec::new(), None));
                        per_event.len() - 1
                    }
                };
                let (_, keys, seen) = &mut per_event[index];
                // A short list is searched; a longer one gets a set, filled once.
                let new = if keys.len() < SEARCHED_KEYS {
                    !keys.contains(key)
                } else {
                    insert_into_set(keys, seen, key)
                };
                if new {
                    keys.push(key.clone());
                }
            }
        }

        let key_column = ColumnKey {
            table: M::TABLE,
            column: M::info().primary_key_column().name,
        };
        let mut resolved = Resolved::default();
        for (event, keys, _) in per_event {
            let Some(spec) = event.spec_for_table(M::TABLE) else {
                // The registry indexes an event under a trigger only with its spec.
                log_no_spec(event.descriptor.type_name, M::TABLE, keys.len());
                continue;
            };
            let plan = Plan::new::<M>(
                shape::<DB, M>(event, spec, from.as_deref()),
                scope.predicates,
            );
            let mut rows = Rows::<DB, M::Key>::default();
            if let Some(query) = &plan.shape.query {
                for chunk in keys.chunks(<M::Key as TrackedKey<DB>>::MAX_KEYS_PER_STATEMENT) {
                    let sql = query.sql::<DB, M>(chunk.len());
                    let query = <M::Key as TrackedKey<DB>>::bind_keys(sqlx::query(&sql), chunk);
                    // Only the first row of a key is read (`Rows::take`; every join is on a
                    // primary key, so there is one): with one key the query stops at its
                    // first row. (`fetch_all` would step on to the end of the rows and wait
                    // for that answer too: on SQLite a second wake-up of the caller.)
                    if chunk.len() == 1 {
                        if let Some(row) = DB::fetch_optional(conn, query).await? {
                            rows.push(row)?;
                        }
                    } else {
                        for row in DB::fetch_all(conn, query).await? {
                            rows.push(row)?;
                        }
                    }
                    resolved.queries += 1;
                }
            }
            let needs_query = plan.shape.query.is_some();
            let event_type = event.descriptor.type_name;
            for key in keys {
                let row = match (needs_query, rows.take(&key)) {
                    (false, _) => None,
                    (true, Some(row)) => Some(row),
                    (true, None) => {
                        resolved
                            .unresolved
                            .push(unresolved::<M>(event_type, &key, Reason::NoRow));
                        continue;
                    }
                };
                let mut source = ContextRow {
                    row,
                    plan: plan.clone(),
                    // Kept only for the fields that read it.
                    key: plan
                        .shape
                        .key_field
                        .then(|| Arc::new(key.clone()) as ErasedKey),
                    contradictions: Vec::new(),
                };
                // The changed row's own key is known: check the predicates on it too.
                check(
                    &mut source.contradictions,
                    &key_column,
                    plan.key_predicates(),
                    &key,
                );
                match (event.build)(&mut source) {
                    Ok(built) => resolved.events.push(built),
                    Err(error) => {
                        let reason = Reason::Context(error);
                        resolved
                            .unresolved
                            .push(unresolved::<M>(event_type, &key, reason));
                        continue;
                    }
                }
                if !source.contradictions.is_empty() {
                    contradicted::<M>(&mut resolved, event_type, &key, source.contradictions);
                }
            }
        }
        Ok(resolved)
    })
}

/// Inserts `key` into the set of `keys` (built from them the first time); whether it is new.
/// Out of line: a commit of a few rows does not carry the set's code inline.
#[inline(never)]
fn insert_into_set<K: Clone + Eq + std::hash::Hash>(
    keys: &[K],
    seen: &mut Option<HashSet<K>>,
    key: &K,
) -> bool {
    seen.get_or_insert_with(|| keys.iter().cloned().collect())
        .insert(key.clone())
}

/// Event `event` of the row of `M` with key `key`, unresolved for `reason`.
#[cold]
#[inline(never)]
fn unresolved<M: Model>(event: &'static str, key: &M::Key, reason: Reason) -> Unresolved {
    Unresolved {
        event,
        table: M::TABLE,
        key: format!("{key:?}"),
        reason,
    }
}

/// Keeps the predicates contradicted for event `event` of the row of `M` with key `key`.
#[cold]
#[inline(never)]
fn contradicted<M: Model>(
    resolved: &mut Resolved,
    event: &'static str,
    key: &M::Key,
    found: Vec<Found>,
) {
    for found in found {
        resolved.contradictions.push(Contradiction {
            event,
            table: M::TABLE,
            key: format!("{key:?}"),
            found,
        });
    }
}

/// Logs a change whose key is not its model's key type (a bug). Out of line: the resolver's
/// code stays compact.
#[cold]
#[inline(never)]
fn log_wrong_key(table: &'static str, trigger: TriggerKey) {
    tracing::error!(
        table,
        ?trigger,
        "change dropped: its key is not the key type of its model (a bug)"
    );
}

/// Logs an event tracked for a table it has no context paths from (a bug).
#[cold]
#[inline(never)]
fn log_no_spec(event: &'static str, table: &'static str, rows: usize) {
    tracing::error!(
        event,
        table,
        rows,
        "events dropped: no context paths from this table (a bug)"
    );
}

/// The rows of a context query, taken by key: searched while they are few, indexed once they
/// are many.
struct Rows<DB: Dialect, K> {
    found: Vec<(K, DB::Row)>,
    /// Built once there are more than [`SEARCHED_KEYS`] rows.
    by_key: Option<HashMap<K, DB::Row>>,
}

impl<DB: Dialect, K> Default for Rows<DB, K> {
    fn default() -> Self {
        Self {
            found: Vec::new(),
            by_key: None,
        }
    }
}

impl<DB: Dialect, K: Eq + std::hash::Hash> Rows<DB, K> {
    /// Adds a row of the query, known by its first column (the changed row's key).
    fn push(&mut self, row: DB::Row) -> Result<(), sqlx::Error>
    where
        K: TrackedKey<DB>,
    {
        let key: K = DB::decode(&row, 0)?;
        self.found.push((key, row));
        Ok(())
    }

    fn take(&mut self, key: &K) -> Option<DB::Row> {
        if self.found.len() > SEARCHED_KEYS {
            self.by_key
                .get_or_insert_with(HashMap::new)
                .extend(self.found.drain(..));
        }
        match &mut self.by_key {
            Some(by_key) => by_key.remove(key),
            None => {
                let index = self.found.iter().position(|(k, _)| k == key)?;
                Some(self.found.swap_remove(index).1)
            }
        }
    }
}

/// What one context value contradicted.
struct Found {
    column: ColumnKey,
    asserted: String,
    found: String,
}

/// Checks `value`, read from `column`, against the predicates on that column: it must equal
/// one of them (none: nothing is asserted). A predicate of another type than the value
/// asserts nothing it can compare, and counts as contradicted.
fn check<T: PartialEq + std::fmt::Debug + 'static>(
    found: &mut Vec<Found>,
    column: &ColumnKey,
    predicates: &[Predicate],
    value: &T,
) {
    if predicates.is_empty() || predicates.iter().any(|p| p.value::<T>() == Some(value)) {
        return;
    }
    contradiction(found, column, predicates, value);
}

/// Keeps what `value` contradicted of `predicates`.
#[cold]
#[inline(never)]
fn contradiction<T: PartialEq + std::fmt::Debug + 'static>(
    found: &mut Vec<Found>,
    column: &ColumnKey,
    predicates: &[Predicate],
    value: &T,
) {
    let asserted: Vec<String> = predicates
        .iter()
        .map(|p| match p.value::<T>() {
            Some(v) => format!("{v:?}"),
            None => "a value of another type".to_owned(),
        })
        .collect();
    found.push(Found {
        column: *column,
        asserted: asserted.join(" or "),
        found: format!("{value:?}"),
    });
}

/// Where each context field's value comes from: always the database (or the changed row's
/// key), never a predicate.
#[derive(Clone, Copy)]
enum Source {
    /// Column `n` of the resolution query's row.
    Column(usize),
    /// The changed row's own primary key.
    Key,
}

/// How to resolve one event's contexts for rows of one model, whatever the transaction:
/// planned once for the program per database, model and event (see [`shape`]).
struct Shape {
    /// Per context field: where its value comes from, and the column it reads.
    fields: Vec<(Source, ColumnKey)>,
    /// The context query; `None` when every field is the changed row's key.
    query: Option<ContextQuery>,
    /// Whether a field is the changed row's key (which then checks the key's predicates).
    key_field: bool,
}

impl Shape {
    fn new<DB: Dialect, M: Model>(spec: &TriggerSpec, from: Option<&str>) -> Self
    where
        M::Key: TrackedKey<DB>,
    {
        let key_column = M::info().primary_key_column().name;
        let mut select = ContextSelect::new();
        let fields: Vec<(Source, ColumnKey)> = spec
            .contexts
            .iter()
            .map(|context| {
                let source = if context.links.is_empty() && context.column.column == key_column {
                    Source::Key
                } else {
                    Source::Column(select.column(context))
                };
                (source, context.column)
            })
            .collect();
        let key_field = fields.iter().any(|(s, _)| matches!(s, Source::Key));
        let query = (!select.is_empty()).then(|| select.finish::<DB, M>(from));
        Self {
            fields,
            query,
            key_field,
        }
    }
}

type ShapeCache = RwLock<ProgramKeyMap<(TypeId, TypeId, TypeId), Arc<Shape>>>;

/// The shape of `event` for rows of `M`: planned the first time, then shared for the rest of
/// the program. Reading from another relation (`from`) plans it for this call only.
fn shape<DB, M>(event: &TrackedEvent<DB>, spec: &TriggerSpec, from: Option<&str>) -> Arc<Shape>
where
    DB: Dialect,
    M: Model,
    M::Key: TrackedKey<DB>,
{
    if from.is_some() {
        return Arc::new(Shape::new::<DB, M>(spec, from));
    }
    static CACHE: OnceLock<ShapeCache> = OnceLock::new();
    let cache = CACHE.get_or_init(ShapeCache::default);
    let key = (
        TypeId::of::<DB>(),
        TypeId::of::<M>(),
        (event.descriptor.type_id)(),
    );
    if let Some(shape) = cache.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return shape.clone();
    }
    cache
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key)
        .or_insert_with(|| Arc::new(Shape::new::<DB, M>(spec, None)))
        .clone()
}

/// A shape with the open transaction's predicates: what the context rows of one event and
/// model read, shared by them. Two reference counts, no allocation of its own: a transaction
/// without predicates (most) shares nothing else.
#[derive(Clone)]
struct Plan {
    shape: Arc<Shape>,
    /// The predicates of the fields' columns; `None` when the transaction has none.
    checks: Option<Arc<Checks>>,
}

/// The open transaction's predicates, by what they check.
struct Checks {
    /// Per field, the predicates on its column.
    fields: Vec<Vec<Predicate>>,
    /// The predicates on the changed model's key, when no field checks them already.
    key: Vec<Predicate>,
}

impl Plan {
    fn new<M: Model>(shape: Arc<Shape>, predicates: &[Predicate]) -> Self {
        if predicates.is_empty() {
            return Self {
                shape,
                checks: None,
            };
        }
        let on = |column: ColumnKey| -> Vec<Predicate> {
            predicates
                .iter()
                .filter(|p| p.column() == column)
                .cloned()
                .collect()
        };
        let key = ColumnKey {
            table: M::TABLE,
            column: M::info().primary_key_column().name,
        };
        let checks = Checks {
            fields: shape.fields.iter().map(|(_, column)| on(*column)).collect(),
            key: if shape.key_field { Vec::new() } else { on(key) },
        };
        Self {
            shape,
            checks: Some(Arc::new(checks)),
        }
    }

    /// The predicates on field `index`'s column.
    fn predicates(&self, index: usize) -> &[Predicate] {
        self.checks
            .as_ref()
            .and_then(|checks| checks.fields.get(index))
            .map_or(&[], Vec::as_slice)
    }

    /// The predicates on the changed model's key that no field checks.
    fn key_predicates(&self) -> &[Predicate] {
        self.checks.as_ref().map_or(&[], |checks| &checks.key)
    }
}

/// The context of one changed row, as the event's `FromContext` reads it: the values the
/// database holds for the row, checked against the transaction's context predicates.
pub struct ContextRow<DB: Dialect> {
    row: Option<DB::Row>,
    plan: Plan,
    /// The changed row's key, when a field reads it.
    key: Option<ErasedKey>,
    contradictions: Vec<Found>,
}

impl<DB: Dialect> std::fmt::Debug for ContextRow<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextRow")
            .field("fields", &self.plan.shape.fields.len())
            .finish_non_exhaustive()
    }
}

/// Context values are compared with the transaction's predicates, so their types are
/// `PartialEq` and `Debug` (as keys are).
impl<DB, T> ContextSource<T> for ContextRow<DB>
where
    DB: Dialect,
    T: for<'r> Decode<'r, DB> + Type<DB> + Clone + PartialEq + std::fmt::Debug + 'static,
{
    fn context_value(&mut self, field: usize, name: &'static str) -> Result<T, ContextError> {
        let plan = &self.plan;
        let (source, column) = plan
            .shape
            .fields
            .get(field)
            .ok_or(ContextError::Missing { field: name })?;
        let value: T = match *source {
            Source::Column(index) => {
                let row = self
                    .row
                    .as_ref()
                    .ok_or(ContextError::Missing { field: name })?;
                DB::decode(row, index).map_err(|error| ContextError::Decode {
                    field: name,
                    source: Box::new(error),
                })?
            }
            Source::Key => self
                .key
                .as_ref()
                .and_then(|key| key.downcast_ref::<T>())
                .cloned()
                .ok_or(ContextError::Missing { field: name })?,
        };
        check(
            &mut self.contradictions,
            column,
            plan.predicates(field),
            &value,
        );
        Ok(value)
    }
}
