//! The statements of set-based writes (`UPDATE`/`DELETE ... WHERE`, multi-row `INSERT`).
//!
//! Parameters are numbered in one order for every statement of a write: the assigned values
//! (`$1..$a`), then the values of the equality conditions, then the keys.

use mercure_track::Model;

use crate::dialect::{Dialect, TrackedKey, quote};

/// The shape of a set-based write's `WHERE`: its equality columns, and how many keys (none:
/// no key condition).
pub(crate) struct Where<'a> {
    /// Indices in `Model::COLUMNS` of the `column = $n` conditions.
    pub(crate) equals: &'a [usize],
    /// Number of the first equality parameter.
    pub(crate) first: usize,
    /// The keys of this statement, if the write has a key condition.
    pub(crate) keys: Option<usize>,
}

impl Where<'_> {
    /// Number of the first key parameter.
    fn first_key(&self) -> usize {
        self.first + self.equals.len()
    }

    fn push<DB: Dialect, M: Model>(&self, sql: &mut String)
    where
        M::Key: TrackedKey<DB>,
    {
        let mut and = " WHERE ";
        for (n, index) in self.equals.iter().enumerate() {
            sql.push_str(and);
            sql.push_str(&quote(M::COLUMNS[*index].name));
            sql.push_str(" = $");
            sql.push_str(&(self.first + n).to_string());
            and = " AND ";
        }
        if let Some(count) = self.keys {
            sql.push_str(and);
            let key = quote(M::info().primary_key_column().name);
            <M::Key as TrackedKey<DB>>::push_any_of(sql, &key, self.first_key(), count);
            and = " AND ";
        }
        if and == " WHERE " {
            sql.push_str(" WHERE TRUE");
        }
    }
}

/// `(a IS DISTINCT FROM $1 OR b IS DISTINCT FROM $2)`: some assigned value differs.
fn push_any_differs<DB: Dialect, M: Model>(sql: &mut String, assigned: &[usize]) {
    sql.push_str(" AND (");
    for (n, index) in assigned.iter().enumerate() {
        if n > 0 {
            sql.push_str(" OR ");
        }
        push_differs::<DB, M>(sql, *index, n + 1);
    }
    sql.push(')');
}

fn push_differs<DB: Dialect, M: Model>(sql: &mut String, index: usize, param: usize) {
    sql.push_str(&quote(M::COLUMNS[index].name));
    sql.push(' ');
    sql.push_str(DB::DISTINCT_FROM);
    sql.push_str(" $");
    sql.push_str(&param.to_string());
}

/// `UPDATE t SET a = $1, ... WHERE <where> AND (a IS DISTINCT FROM $1 OR ...) RETURNING key`:
/// the rows returned are those whose value changed.
pub(crate) fn update_returning<DB: Dialect, M: Model>(
    assigned: &[usize],
    filter: &Where<'_>,
) -> String
where
    M::Key: TrackedKey<DB>,
{
    let mut sql = format!("UPDATE {} SET ", quote(M::TABLE));
    for (n, index) in assigned.iter().enumerate() {
        if n > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&quote(M::COLUMNS[*index].name));
        sql.push_str(" = $");
        sql.push_str(&(n + 1).to_string());
    }
    filter.push::<DB, M>(&mut sql);
    push_any_differs::<DB, M>(&mut sql, assigned);
    sql.push_str(" RETURNING ");
    sql.push_str(&quote(M::info().primary_key_column().name));
    sql
}

/// `SELECT key, a IS DISTINCT FROM $1, ... FROM t WHERE <where> AND (...)`: which assigned
/// column of each selected row differs, read before a several-column update (and locked on
/// PostgreSQL).
pub(crate) fn select_differing<DB: Dialect, M: Model>(
    assigned: &[usize],
    filter: &Where<'_>,
) -> String
where
    M::Key: TrackedKey<DB>,
{
    let mut sql = format!("SELECT {}", quote(M::info().primary_key_column().name));
    for (n, index) in assigned.iter().enumerate() {
        sql.push_str(", ");
        push_differs::<DB, M>(&mut sql, *index, n + 1);
    }
    sql.push_str(" FROM ");
    sql.push_str(&quote(M::TABLE));
    filter.push::<DB, M>(&mut sql);
    push_any_differs::<DB, M>(&mut sql, assigned);
    sql.push_str(DB::LOCK_ROWS);
    sql
}

/// `SELECT key FROM t WHERE <where>`, locked on PostgreSQL: the rows a delete will remove.
pub(crate) fn select_keys<DB: Dialect, M: Model>(filter: &Where<'_>) -> String
where
    M::Key: TrackedKey<DB>,
{
    let mut sql = format!(
        "SELECT {} FROM {}",
        quote(M::info().primary_key_column().name),
        quote(M::TABLE)
    );
    filter.push::<DB, M>(&mut sql);
    sql.push_str(DB::LOCK_ROWS);
    sql
}

/// `DELETE FROM t WHERE key IN (...)` for `count` keys from `$1`.
pub(crate) fn delete_keys<DB: Dialect, M: Model>(count: usize) -> String
where
    M::Key: TrackedKey<DB>,
{
    let mut sql = format!("DELETE FROM {}", quote(M::TABLE));
    Where {
        equals: &[],
        first: 1,
        keys: Some(count),
    }
    .push::<DB, M>(&mut sql);
    sql
}

/// `INSERT INTO t (cols) VALUES ($1, ...), (...) RETURNING key` for `rows` rows.
pub(crate) fn insert_rows<M: Model>(rows: usize) -> String {
    let columns = M::COLUMNS.len();
    let mut sql = format!("INSERT INTO {} (", quote(M::TABLE));
    for (n, column) in M::COLUMNS.iter().enumerate() {
        if n > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&quote(column.name));
    }
    sql.push_str(") VALUES ");
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for n in 0..columns {
            if n > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(row * columns + n + 1).to_string());
        }
        sql.push(')');
    }
    sql.push_str(" RETURNING ");
    sql.push_str(&quote(M::info().primary_key_column().name));
    sql
}
