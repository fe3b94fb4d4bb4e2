//! The statements of the generated setters, `find`, `insert` and `delete`: one row by key.

use mercure_track::Model;

use super::{Kind, cached};
use crate::dialect::{Dialect, quote};

fn key_column<M: Model>() -> String {
    quote(M::info().primary_key_column().name)
}

fn column_list<M: Model>() -> String {
    M::COLUMNS
        .iter()
        .map(|c| quote(c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A setter's statement for column `index`: `$1` the value, `$2` the key.
///
/// With [`Dialect::WRITABLE_CTE`] (PostgreSQL) it returns one row, `(changed, found)`: whether
/// the value changed (0 or 1) and whether the row exists, so that one statement tells
/// "changed", "unchanged" and "missing" apart. Otherwise (SQLite, whose `WITH` cannot hold an
/// `UPDATE`) it is the bare `UPDATE`, whose affected-row count says "changed"; the caller
/// then runs [`exists`] only when nothing changed (an in-process call, no network round trip).
pub(crate) fn set_column<DB: Dialect, M: Model>(index: usize) -> &'static str {
    cached::<DB, M>(Kind::Set(index), || {
        let table = quote(M::TABLE);
        let column = quote(M::COLUMNS[index].name);
        let key = key_column::<M>();
        let distinct = DB::DISTINCT_FROM;
        // The database decides whether the value changes, in the statement itself: a
        // concurrent writer cannot make an unchanged value look changed, or the reverse.
        let update =
            format!("UPDATE {table} SET {column} = $1 WHERE {key} = $2 AND {column} {distinct} $1");
        if DB::WRITABLE_CTE {
            format!(
                "WITH __changed AS ({update} RETURNING 1) \
                 SELECT (SELECT COUNT(*) FROM __changed), \
                 EXISTS (SELECT 1 FROM {table} WHERE {key} = $2)"
            )
        } else {
            update
        }
    })
}

/// `SELECT 1 FROM t WHERE key = $1`.
pub(crate) fn exists<DB: Dialect, M: Model>() -> &'static str {
    cached::<DB, M>(Kind::Exists, || {
        format!(
            "SELECT 1 FROM {} WHERE {} = $1",
            quote(M::TABLE),
            key_column::<M>()
        )
    })
}

/// `SELECT <every column> FROM t WHERE key = $1`.
pub(crate) fn find<DB: Dialect, M: Model>() -> &'static str {
    cached::<DB, M>(Kind::Find, || {
        format!(
            "SELECT {} FROM {} WHERE {} = $1",
            column_list::<M>(),
            quote(M::TABLE),
            key_column::<M>()
        )
    })
}

/// `INSERT INTO t (<every column>) VALUES ($1, ...)`.
pub(crate) fn insert<DB: Dialect, M: Model>() -> &'static str {
    cached::<DB, M>(Kind::Insert, || {
        let params: Vec<String> = (1..=M::COLUMNS.len()).map(|n| format!("${n}")).collect();
        format!(
            "INSERT INTO {} ({}) VALUES ({})",
            quote(M::TABLE),
            column_list::<M>(),
            params.join(", ")
        )
    })
}

/// `DELETE FROM t WHERE key = $1`.
pub(crate) fn delete<DB: Dialect, M: Model>() -> &'static str {
    cached::<DB, M>(Kind::Delete, || {
        format!(
            "DELETE FROM {} WHERE {} = $1",
            quote(M::TABLE),
            key_column::<M>()
        )
    })
}
