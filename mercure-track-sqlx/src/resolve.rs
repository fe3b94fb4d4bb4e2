//! Context resolution: from changed rows to events, per row, with one query per event and
//! changed model for all the rows of a commit.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use mercure_track::{
    AnyEvent, ContextError, ContextPath, ContextSource, Model, Predicate, TriggerKey, TriggerSpec,
};
use sqlx::{Database, Decode, Type};

use crate::dialect::{Dialect, TrackedKey, quote};
use crate::error::Error;
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
    pub(crate) predicates: &'a [Predicate],
    pub(crate) fail_unresolved: bool,
}

/// The events of some changes, and how many queries it took.
#[derive(Default)]
pub(crate) struct Resolved {
    pub(crate) events: Vec<Box<dyn AnyEvent>>,
    pub(crate) queries: usize,
}

/// Resolves the changes of one model; monomorphized per model when a change is recorded.
pub(crate) type Resolver<DB> = for<'a> fn(
    &'a mut <DB as Database>::Connection,
    &'a [Change],
    &'a ResolveScope<'a, DB>,
) -> BoxFuture<'a, Result<Resolved, Error>>;

/// A tracked event, the keys it needs in first-changed order, and the same keys as a set.
type EventKeys<'e, DB, K> = (&'e TrackedEvent<DB>, Vec<K>, HashSet<K>);

/// The resolver of model `M`.
pub(crate) fn resolver<DB, M>() -> Resolver<DB>
where
    DB: Dialect,
    M: Model,
    M::Key: TrackedKey<DB>,
{
    resolve_model::<DB, M>
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
    Box::pin(async move {
        // The keys each tracked event needs, unique, in the order they changed.
        let mut per_event: Vec<EventKeys<'_, DB, M::Key>> = Vec::new();
        for change in changes {
            let Some(key) = change.key.downcast_ref::<M::Key>() else {
                continue;
            };
            for event in scope.tracked.triggered_by(change.trigger) {
                let index = match per_event.iter().position(|(e, ..)| std::ptr::eq(*e, event)) {
                    Some(index) => index,
                    None => {
                        per_event.push((event, Vec::new(), HashSet::new()));
                        per_event.len() - 1
                    }
                };
                let (_, keys, seen) = &mut per_event[index];
                if seen.insert(key.clone()) {
                    keys.push(key.clone());
                }
            }
        }

        let mut resolved = Resolved::default();
        for (event, keys, _) in per_event {
            let Some(spec) = event.spec_for_table(M::TABLE) else {
                continue;
            };
            let plan = Plan::new::<M>(spec, scope.predicates);
            let mut rows: HashMap<M::Key, DB::Row> = HashMap::new();
            if plan.needs_query {
                for chunk in keys.chunks(<M::Key as TrackedKey<DB>>::MAX_KEYS_PER_STATEMENT) {
                    let sql = plan.sql::<DB, M>(chunk.len());
                    let query = <M::Key as TrackedKey<DB>>::bind_keys(sqlx::query(&sql), chunk);
                    for row in DB::fetch_all(conn, query).await? {
                        let key: M::Key = DB::decode(&row, 0)?;
                        rows.insert(key, row);
                    }
                    resolved.queries += 1;
                }
            }
            for key in keys {
                let row = match (plan.needs_query, rows.remove(&key)) {
                    (false, _) => None,
                    (true, Some(row)) => Some(row),
                    (true, None) => {
                        unresolved::<M>(
                            event,
                            &key,
                            scope.fail_unresolved,
                            "no row joins it to its context",
                        )?;
                        continue;
                    }
                };
                let mut source = ContextRow {
                    row,
                    slots: plan.slots.clone(),
                    key: Arc::new(key.clone()),
                };
                match (event.build)(&mut source) {
                    Ok(built) => resolved.events.push(built),
                    Err(error) if scope.fail_unresolved => {
                        return Err(Error::Context {
                            event: event.descriptor.type_name,
                            source: error,
                        });
                    }
                    Err(error) => unresolved::<M>(event, &key, false, &error.to_string())?,
                }
            }
        }
        Ok(resolved)
    })
}

fn unresolved<M: Model>(
    event: &TrackedEvent<impl Dialect>,
    key: &M::Key,
    fail: bool,
    reason: &str,
) -> Result<(), Error> {
    if fail {
        return Err(Error::UnresolvedContext {
            event: event.descriptor.type_name,
            table: M::TABLE,
            key: format!("{key:?}"),
        });
    }
    tracing::warn!(
        event = event.descriptor.type_name,
        table = M::TABLE,
        key = ?key,
        reason,
        "event skipped: its context could not be resolved"
    );
    Ok(())
}

/// Where each context field's value comes from.
#[derive(Clone)]
enum Slot {
    /// Column `n` of the resolution query's row.
    Column(usize),
    /// A session predicate on the field's column.
    Predicate(Predicate),
    /// The changed row's own primary key.
    Key,
}

/// How to resolve the contexts of one event for rows of one model.
struct Plan {
    slots: Vec<Slot>,
    needs_query: bool,
    /// `SELECT t0.key, <columns> FROM table t0 JOIN ...`, without the `WHERE`.
    select: String,
}

impl Plan {
    fn new<M: Model>(spec: &TriggerSpec, predicates: &[Predicate]) -> Self {
        let key_column = M::info().primary_key_column().name;
        let mut columns = Vec::new();
        let mut joins = String::new();
        // Aliases of the joined tables, by the path of links that leads to them.
        let mut aliases: Vec<(Vec<(&'static str, &'static str)>, String)> = Vec::new();
        let slots = spec
            .contexts
            .iter()
            .map(|context| {
                let mut matching = predicates.iter().filter(|p| p.column() == context.column);
                if let (Some(predicate), None) = (matching.next(), matching.next()) {
                    // Exactly one value asserted for this column in the session.
                    return Slot::Predicate(predicate.clone());
                }
                if context.links.is_empty() && context.column.column == key_column {
                    return Slot::Key;
                }
                let alias = join_path(context, &mut aliases, &mut joins);
                columns.push(format!("{alias}.{}", quote(context.column.column)));
                Slot::Column(columns.len())
            })
            .collect();
        let needs_query = !columns.is_empty();
        let mut select = format!("SELECT t0.{}", quote(key_column));
        for column in &columns {
            select.push_str(", ");
            select.push_str(column);
        }
        select.push_str(" FROM ");
        select.push_str(&quote(M::TABLE));
        select.push_str(" t0");
        select.push_str(&joins);
        Self {
            slots,
            needs_query,
            select,
        }
    }

    fn sql<DB: Dialect, M: Model>(&self, keys: usize) -> String
    where
        M::Key: TrackedKey<DB>,
    {
        let mut sql = self.select.clone();
        sql.push_str(" WHERE ");
        let key_column = format!("t0.{}", quote(M::info().primary_key_column().name));
        <M::Key as TrackedKey<DB>>::push_any_of(&mut sql, &key_column, 1, keys);
        sql
    }
}

/// Joins the tables of `context`'s path (sharing joins with paths already joined) and returns
/// the alias of the last one.
fn join_path(
    context: &ContextPath,
    aliases: &mut Vec<(Vec<(&'static str, &'static str)>, String)>,
    joins: &mut String,
) -> String {
    let mut path = Vec::new();
    let mut current = "t0".to_owned();
    for link in &context.links {
        path.push((link.from.table, link.foreign_key.name));
        current = match aliases.iter().find(|(p, _)| *p == path) {
            Some((_, alias)) => alias.clone(),
            None => {
                let alias = format!("t{}", aliases.len() + 1);
                joins.push_str(&format!(
                    " JOIN {} {alias} ON {alias}.{} = {current}.{}",
                    quote(link.to.table),
                    quote(link.to.primary_key_column().name),
                    quote(link.foreign_key.name),
                ));
                aliases.push((path.clone(), alias.clone()));
                alias
            }
        };
    }
    current
}

/// The context of one changed row, as the event's `FromContext` reads it.
pub struct ContextRow<DB: Dialect> {
    row: Option<DB::Row>,
    slots: Vec<Slot>,
    key: ErasedKey,
}

impl<DB: Dialect> std::fmt::Debug for ContextRow<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextRow")
            .field("fields", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl<DB, T> ContextSource<T> for ContextRow<DB>
where
    DB: Dialect,
    T: for<'r> Decode<'r, DB> + Type<DB> + Clone + 'static,
{
    fn context_value(&mut self, field: usize, name: &'static str) -> Result<T, ContextError> {
        match self.slots.get(field) {
            Some(Slot::Column(index)) => {
                let row = self
                    .row
                    .as_ref()
                    .ok_or(ContextError::Missing { field: name })?;
                DB::decode(row, *index).map_err(|error| ContextError::Decode {
                    field: name,
                    source: Box::new(error),
                })
            }
            Some(Slot::Predicate(predicate)) => predicate
                .value::<T>()
                .cloned()
                .ok_or(ContextError::Missing { field: name }),
            Some(Slot::Key) => self
                .key
                .downcast_ref::<T>()
                .cloned()
                .ok_or(ContextError::Missing { field: name }),
            None => Err(ContextError::Missing { field: name }),
        }
    }
}
