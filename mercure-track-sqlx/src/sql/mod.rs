//! The SQL text of the session, one module per concern. Values are always bound (`$N`), never
//! written into the text; identifiers come from the derive, which accepts only plain names.
//!
//! A statement whose text depends only on the model (and the dialect) is built once for the
//! program, by [`cached`], and shared afterwards.

pub(crate) mod resolve;
pub(crate) mod session;
pub(crate) mod set_based;
pub(crate) mod write;

use std::any::TypeId;
use std::sync::{OnceLock, RwLock};

use mercure_track::registry::ProgramKeyMap;

/// What a cached statement is for: the statement kind and a column index where it matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// A setter's `UPDATE` of one column.
    Set(usize),
    /// `SELECT 1 ... WHERE key = $1`.
    Exists,
    /// `SELECT <columns> ... WHERE key = $1`.
    Find,
    /// `INSERT` of one row.
    Insert,
    /// `DELETE ... WHERE key = $1`.
    Delete,
}

type Cache = RwLock<ProgramKeyMap<(TypeId, TypeId, Kind), &'static str>>;

/// The statement `kind` of model `M` on database `DB`: built by `build` the first time, then
/// shared for the rest of the program (each distinct statement is leaked once: there are
/// finitely many models, columns and kinds).
pub(crate) fn cached<DB: 'static, M: 'static>(
    kind: Kind,
    build: impl FnOnce() -> String,
) -> &'static str {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Cache::default);
    let key = (TypeId::of::<DB>(), TypeId::of::<M>(), kind);
    if let Some(sql) = cache.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return sql;
    }
    let mut write = cache.write().unwrap_or_else(|e| e.into_inner());
    write
        .entry(key)
        .or_insert_with(|| Box::leak(build().into_boxed_str()))
}
