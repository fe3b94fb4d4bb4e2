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
/// With [`Dialect::WRITABLE_CTE`] (PostgreSQL) it returns at most one row: `TRUE` when the
/// value changed, `FALSE` when the row already held it, no row when there is no such row, so
/// that one statement tells "changed", "unchanged" and "missing" apart. When the value changes,
/// the existence check is not run. Otherwise (SQLite, whose `WITH` cannot hold an `UPDATE`) it
/// is the bare `UPDATE`, whose affected-row count says "changed"; the caller then runs
/// [`exists`] only when nothing changed (an in-process call, no network round trip).
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
            // At most one row: TRUE when the value changed (the second branch's one-time
            // filter then skips its index scan), FALSE when the row holds the value already,
            // none when there is no such row. The order of the branches does not matter.
            format!(
                "WITH __changed AS ({update} RETURNING 1) \
                 SELECT TRUE FROM __changed \
                 UNION ALL SELECT FALSE FROM {table} WHERE {key} = $2 \
                 AND NOT EXISTS (SELECT FROM __changed)"
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
