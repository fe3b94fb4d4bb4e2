//! The statements of set-based writes (`UPDATE`/`DELETE ... WHERE`, multi-row `INSERT`).
//!
//! Arguments are bound in one order for every statement of a write: the keys first (one
//! array on PostgreSQL, one `?` each on SQLite: see [`TrackedKey::push_any_of`]), then the
//! assigned values, then the values of the equality conditions.

use mercure_track::Model;

use crate::dialect::{Dialect, TrackedKey, quote};

/// The shape of a set-based write: its assigned columns, its equality columns, and how many
/// keys the statement carries (`None`: no key condition).
pub(crate) struct Shape<'a> {
    /// Indices in `Model::COLUMNS` of the assigned columns.
    pub(crate) assigned: &'a [usize],
    /// Indices in `Model::COLUMNS` of the `column = value` conditions.
    pub(crate) equals: &'a [usize],
    /// The keys of this statement, if the write has a key condition.
    pub(crate) keys: Option<usize>,
}

impl Shape<'_> {
    /// The parameter number of the first value after the keys.
    fn base<DB: Dialect, M: Model>(&self) -> usize
    where
        M::Key: TrackedKey<DB>,
    {
        self.keys.map_or(0, <M::Key as TrackedKey<DB>>::key_params)
    }

    /// The parameter of assigned value `n`.
    fn assigned_param<DB: Dialect, M: Model>(&self, n: usize) -> String
    where
        M::Key: TrackedKey<DB>,
    {
        format!("${}", self.base::<DB, M>() + n + 1)
    }

    fn push_where<DB: Dialect, M: Model>(&self, sql: &mut String)
    where
        M::Key: TrackedKey<DB>,
    {
        let first_equal = self.base::<DB, M>() + self.assigned.len() + 1;
        let mut and = " WHERE ";
        if let Some(count) = self.keys {
            sql.push_str(and);
            let key = quote(M::info().primary_key_column().name);
            <M::Key as TrackedKey<DB>>::push_any_of(sql, &key, 1, count);
            and = " AND ";
        }
        for (n, index) in self.equals.iter().enumerate() {
            sql.push_str(and);
            sql.push_str(&quote(M::COLUMNS[*index].name));
            sql.push_str(" = $");
            sql.push_str(&(first_equal + n).to_string());
            and = " AND ";
        }
        if and == " WHERE " {
            sql.push_str(" WHERE TRUE");
        }
    }

    /// `a IS DISTINCT FROM $n`: assigned column `n` differs.
    fn push_differs<DB: Dialect, M: Model>(&self, sql: &mut String, n: usize)
    where
        M::Key: TrackedKey<DB>,
    {
        sql.push_str(&quote(M::COLUMNS[self.assigned[n]].name));
        sql.push(' ');
        sql.push_str(DB::DISTINCT_FROM);
        sql.push(' ');
        sql.push_str(&self.assigned_param::<DB, M>(n));
    }

    /// ` AND (a IS DISTINCT FROM $1 OR ...)`: some assigned value differs.
    fn push_any_differs<DB: Dialect, M: Model>(&self, sql: &mut String)
    where
        M::Key: TrackedKey<DB>,
    {
        sql.push_str(" AND (");
        for n in 0..self.assigned.len() {
            if n > 0 {
                sql.push_str(" OR ");
            }
            self.push_differs::<DB, M>(sql, n);
        }
        sql.push(')');
    }
}

/// `UPDATE t SET a = $1, ... WHERE <filter> AND (a IS DISTINCT FROM $1 OR ...) RETURNING key`:
/// the rows returned are those whose value changed.
pub(crate) fn update_returning<DB: Dialect, M: Model>(shape: &Shape<'_>) -> String
where
    M::Key: TrackedKey<DB>,
{
    let mut sql = format!("UPDATE {} SET ", quote(M::TABLE));
    for (n, index) in shape.assigned.iter().enumerate() {
        if n > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&quote(M::COLUMNS[*index].name));
        sql.push_str(" = ");
        sql.push_str(&shape.assigned_param::<DB, M>(n));
    }
    shape.push_where::<DB, M>(&mut sql);
    shape.push_any_differs::<DB, M>(&mut sql);
    sql.push_str(" RETURNING ");
    sql.push_str(&quote(M::info().primary_key_column().name));
    sql
}

/// `SELECT key, a IS DISTINCT FROM $1, ... FROM t WHERE <filter> AND (...)`: which assigned
/// column of each selected row differs, read before a several-column update (the rows locked
/// on PostgreSQL).
pub(crate) fn select_differing<DB: Dialect, M: Model>(shape: &Shape<'_>) -> String
where
    M::Key: TrackedKey<DB>,
{
    let mut sql = format!("SELECT {}", quote(M::info().primary_key_column().name));
    for n in 0..shape.assigned.len() {
        sql.push_str(", ");
        shape.push_differs::<DB, M>(&mut sql, n);
    }
    sql.push_str(" FROM ");
    sql.push_str(&quote(M::TABLE));
    shape.push_where::<DB, M>(&mut sql);
    shape.push_any_differs::<DB, M>(&mut sql);
    sql.push_str(DB::LOCK_ROWS);
    sql
}

/// `SELECT key FROM t WHERE <filter>` (no assigned columns), locked on PostgreSQL: the rows a
/// delete will remove.
pub(crate) fn select_keys<DB: Dialect, M: Model>(shape: &Shape<'_>) -> String
where
    M::Key: TrackedKey<DB>,
{
    let mut sql = format!(
        "SELECT {} FROM {}",
        quote(M::info().primary_key_column().name),
        quote(M::TABLE)
    );
    shape.push_where::<DB, M>(&mut sql);
    sql.push_str(DB::LOCK_ROWS);
    sql
}

/// `DELETE FROM t WHERE key IN (...)` for `count` keys.
pub(crate) fn delete_keys<DB: Dialect, M: Model>(count: usize) -> String
where
    M::Key: TrackedKey<DB>,
{
    let mut sql = format!("DELETE FROM {}", quote(M::TABLE));
    Shape {
        assigned: &[],
        equals: &[],
        keys: Some(count),
    }
    .push_where::<DB, M>(&mut sql);
    sql
}

/// `INSERT INTO t (cols) VALUES ($1, ...), (...) RETURNING key` for `rows` rows.
pub(crate) fn insert_rows<DB: Dialect, M: Model>(rows: usize) -> String {
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
            if DB::ANONYMOUS_PARAMETERS {
                sql.push('?');
            } else {
                sql.push('$');
                sql.push_str(&(row * columns + n + 1).to_string());
            }
        }
        sql.push(')');
    }
    sql.push_str(" RETURNING ");
    sql.push_str(&quote(M::info().primary_key_column().name));
    sql
}
