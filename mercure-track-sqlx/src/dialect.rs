//! Everything that differs between SQLite and PostgreSQL, in one place.

use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use sqlx::{Database, Decode, Encode, Postgres, Row as _, Sqlite, Type};

/// A query with its bound arguments (machinery of the session, not API).
#[doc(hidden)]
pub type SqlQuery<'q, DB> = sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>;

/// The future of [`Dialect::execute`]: sqlx's own, answering the number of rows affected.
#[doc(hidden)]
#[must_use = "futures do nothing unless awaited"]
pub struct Executed<'c, DB: Database> {
    statement: BoxFuture<'c, Result<DB::QueryResult, sqlx::Error>>,
    rows_affected: fn(&DB::QueryResult) -> u64,
}

impl<DB: Database> Future for Executed<'_, DB> {
    type Output = Result<u64, sqlx::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let rows_affected = self.rows_affected;
        self.statement
            .as_mut()
            .poll(cx)
            .map(|result| result.map(|done| rows_affected(&done)))
    }
}

/// A database the tracked session runs on: SQLite or PostgreSQL.
///
/// Both accept `$N` placeholders (sqlx maps SQLite's `$N` to argument N), so statements differ
/// only where this trait says.
///
/// Sealed: implemented for [`sqlx::Sqlite`] and [`sqlx::Postgres`] only. Name it as a bound in
/// code generic over the database (`TrackedSession<DB>` where `DB: Dialect`); its members are
/// the session's machinery and hidden from these docs.
pub trait Dialect: Database + Sized + sealed::Sealed {
    /// The null-safe "differs from" operator of the setters' `UPDATE`.
    #[doc(hidden)]
    const DISTINCT_FROM: &'static str;

    /// The statement that opens a session's transaction.
    ///
    /// SQLite: `BEGIN IMMEDIATE`, which takes the database's write lock at once (waiting up to
    /// the busy timeout for it). A deferred `BEGIN` would read first and then fail at its first
    /// write, without waiting, whenever another connection committed in between (`SQLITE_BUSY`,
    /// "database is locked"). PostgreSQL: `BEGIN` (row locks are taken by each write).
    #[doc(hidden)]
    const BEGIN: &'static str;

    /// The most bound parameters one statement may carry (SQLite 32 766 since 3.32,
    /// PostgreSQL 65 535). Set-based writes split their keys and rows to stay below it.
    #[doc(hidden)]
    const MAX_PARAMETERS: usize;

    /// Appended to a `SELECT` whose rows a set-based write then changes: ` FOR UPDATE` on
    /// PostgreSQL; nothing on SQLite, whose session already holds the database's write lock.
    #[doc(hidden)]
    const LOCK_ROWS: &'static str;

    /// Whether a statement whose arguments are all bound in text order may use anonymous `?`
    /// parameters (SQLite, where numbered ones cost a scan each; see [`TrackedKey`]).
    #[doc(hidden)]
    const ANONYMOUS_PARAMETERS: bool;

    /// Whether a `WITH` may hold an `UPDATE ... RETURNING` (PostgreSQL; not SQLite): a setter
    /// then tells "changed", "unchanged" and "missing" apart in one statement.
    #[doc(hidden)]
    const WRITABLE_CTE: bool;

    /// Runs a statement; returns the number of rows it affected.
    ///
    /// These futures are named types, never `impl Future`: an opaque `impl Future + Send`
    /// here makes the futures of the generated setters fail to prove `Send` in generic code
    /// (rust-lang/rust#100013), and a session's future could no longer be spawned. They are
    /// sqlx's own boxed futures, handed on as they are (no second box, no `async` layer
    /// around them: each layer is polled again at every wake-up of the statement).
    #[doc(hidden)]
    fn execute<'c, 'q: 'c>(
        conn: &'c mut Self::Connection,
        query: SqlQuery<'q, Self>,
    ) -> Executed<'c, Self>;

    /// Runs a query; returns its rows.
    #[doc(hidden)]
    fn fetch_all<'c, 'q: 'c>(
        conn: &'c mut Self::Connection,
        query: SqlQuery<'q, Self>,
    ) -> BoxFuture<'c, Result<Vec<Self::Row>, sqlx::Error>>;

    /// Runs a query; returns its first row, if any.
    #[doc(hidden)]
    fn fetch_optional<'c, 'q: 'c>(
        conn: &'c mut Self::Connection,
        query: SqlQuery<'q, Self>,
    ) -> BoxFuture<'c, Result<Option<Self::Row>, sqlx::Error>>;

    /// Decodes column `index` of `row`.
    #[doc(hidden)]
    fn decode<T>(row: &Self::Row, index: usize) -> Result<T, sqlx::Error>
    where
        T: for<'r> Decode<'r, Self> + Type<Self>;

    /// The outbox's statements on this database.
    #[doc(hidden)]
    const OUTBOX: &'static crate::outbox::OutboxSql;

    /// The capture's statements on this database (see [`crate::capture`]).
    #[doc(hidden)]
    const CAPTURE: &'static crate::capture::CaptureSql<Self>;

    /// Binds a text value.
    #[doc(hidden)]
    fn bind_text<'q>(query: SqlQuery<'q, Self>, value: &'q str) -> SqlQuery<'q, Self>;
    /// Binds an integer.
    #[doc(hidden)]
    fn bind_i64<'q>(query: SqlQuery<'q, Self>, value: i64) -> SqlQuery<'q, Self>;
    /// Binds a boolean.
    #[doc(hidden)]
    fn bind_bool<'q>(query: SqlQuery<'q, Self>, value: bool) -> SqlQuery<'q, Self>;
    /// Decodes a text column.
    #[doc(hidden)]
    fn decode_text(row: &Self::Row, index: usize) -> Result<String, sqlx::Error>;
    /// Decodes an integer column.
    #[doc(hidden)]
    fn decode_i64(row: &Self::Row, index: usize) -> Result<i64, sqlx::Error>;
    /// Decodes a boolean column.
    #[doc(hidden)]
    fn decode_bool(row: &Self::Row, index: usize) -> Result<bool, sqlx::Error>;
    /// Decodes a nullable text column.
    #[doc(hidden)]
    fn decode_optional_text(row: &Self::Row, index: usize) -> Result<Option<String>, sqlx::Error>;
}

/// The methods whose bodies are the same on every database, but whose types are not.
macro_rules! shared_dialect_methods {
    () => {
        fn execute<'c, 'q: 'c>(
            conn: &'c mut Self::Connection,
            query: SqlQuery<'q, Self>,
        ) -> Executed<'c, Self> {
            Executed {
                statement: sqlx::Executor::execute(conn, query),
                rows_affected: |done| done.rows_affected(),
            }
        }

        fn fetch_all<'c, 'q: 'c>(
            conn: &'c mut Self::Connection,
            query: SqlQuery<'q, Self>,
        ) -> BoxFuture<'c, Result<Vec<Self::Row>, sqlx::Error>> {
            sqlx::Executor::fetch_all(conn, query)
        }

        fn fetch_optional<'c, 'q: 'c>(
            conn: &'c mut Self::Connection,
            query: SqlQuery<'q, Self>,
        ) -> BoxFuture<'c, Result<Option<Self::Row>, sqlx::Error>> {
            sqlx::Executor::fetch_optional(conn, query)
        }

        fn decode<T>(row: &Self::Row, index: usize) -> Result<T, sqlx::Error>
        where
            T: for<'r> Decode<'r, Self> + Type<Self>,
        {
            row.try_get(index)
        }

        fn bind_text<'q>(query: SqlQuery<'q, Self>, value: &'q str) -> SqlQuery<'q, Self> {
            query.bind(value)
        }

        fn bind_i64<'q>(query: SqlQuery<'q, Self>, value: i64) -> SqlQuery<'q, Self> {
            query.bind(value)
        }

        fn bind_bool<'q>(query: SqlQuery<'q, Self>, value: bool) -> SqlQuery<'q, Self> {
            query.bind(value)
        }

        fn decode_text(row: &Self::Row, index: usize) -> Result<String, sqlx::Error> {
            row.try_get(index)
        }

        fn decode_i64(row: &Self::Row, index: usize) -> Result<i64, sqlx::Error> {
            row.try_get(index)
        }

        fn decode_bool(row: &Self::Row, index: usize) -> Result<bool, sqlx::Error> {
            row.try_get(index)
        }

        fn decode_optional_text(
            row: &Self::Row,
            index: usize,
        ) -> Result<Option<String>, sqlx::Error> {
            row.try_get(index)
        }
    };
}

/// A value that can serve as a key on `DB`: bound, decoded, compared and hashed. Implemented
/// for every type with those traits.
pub trait KeyValue<DB: Database>:
    Clone
    + Eq
    + Hash
    + Debug
    + Send
    + Sync
    + 'static
    + for<'q> Encode<'q, DB>
    + Type<DB>
    + for<'r> Decode<'r, DB>
{
}

impl<K, DB: Database> KeyValue<DB> for K where
    K: Clone
        + Eq
        + Hash
        + Debug
        + Send
        + Sync
        + 'static
        + for<'q> Encode<'q, DB>
        + Type<DB>
        + for<'r> Decode<'r, DB>
{
}

/// A primary key type the session can track: it is bound and decoded, compared and hashed.
///
/// Implemented for every type with the needed sqlx traits (on PostgreSQL, also an array type,
/// for `= ANY($1)`).
pub trait TrackedKey<DB: Dialect>: KeyValue<DB> {
    /// Appends "`column` is one of `count` keys" to `sql`, with parameters from `$first`.
    ///
    /// The keys must be the **first** arguments bound to the statement (`first` is 1): on
    /// SQLite they are anonymous `?` parameters, which sqlx binds to the arguments in order
    /// from the first, whatever `$N` the statement also holds. The statement's other values
    /// are numbered from `$(key_params(count) + 1)`.
    #[doc(hidden)]
    fn push_any_of(sql: &mut String, column: &str, first: usize, count: usize);

    /// How many parameters `count` keys take: 1 on PostgreSQL (the key, or an array of them),
    /// `count` on SQLite.
    #[doc(hidden)]
    fn key_params(count: usize) -> usize;

    /// Binds `keys` as [`TrackedKey::push_any_of`] expects.
    #[doc(hidden)]
    fn bind_keys<'q>(query: SqlQuery<'q, DB>, keys: &'q [Self]) -> SqlQuery<'q, DB>;

    /// The most keys one statement can take (the rest go in further statements).
    #[doc(hidden)]
    const MAX_KEYS_PER_STATEMENT: usize;
}

mod sealed {
    /// Keeps [`super::Dialect`] to the databases this crate implements it for.
    pub trait Sealed {}
    impl Sealed for sqlx::Sqlite {}
    impl Sealed for sqlx::Postgres {}
}

impl Dialect for Sqlite {
    // `IS DISTINCT FROM` needs SQLite 3.39; `IS NOT` is the same test on every version.
    const DISTINCT_FROM: &'static str = "IS NOT";
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
    const MAX_PARAMETERS: usize = 32_766;
    const LOCK_ROWS: &'static str = "";
    const ANONYMOUS_PARAMETERS: bool = true;
    const WRITABLE_CTE: bool = false;
    const OUTBOX: &'static crate::outbox::OutboxSql = &crate::outbox::SQLITE_OUTBOX;
    const CAPTURE: &'static crate::capture::CaptureSql<Self> = &crate::capture::SQLITE_CAPTURE;

    shared_dialect_methods!();
}

impl<K> TrackedKey<Sqlite> for K
where
    K: KeyValue<Sqlite>,
{
    /// Anonymous `?` parameters, bound by sqlx to the first arguments (see the trait).
    /// Numbered parameters (`$N`, `?N`) cost SQLite a scan of the parameters already seen,
    /// each: preparing 30 000 keys took 5 to 21 s numbered and 0.07 s as `?` (Python's
    /// `sqlite3`, this machine).
    fn push_any_of(sql: &mut String, column: &str, _first: usize, count: usize) {
        sql.push_str(column);
        sql.push_str(" IN (");
        for n in 0..count {
            if n > 0 {
                sql.push_str(", ");
            }
            sql.push('?');
        }
        sql.push(')');
    }

    fn key_params(count: usize) -> usize {
        count
    }

    fn bind_keys<'q>(mut query: SqlQuery<'q, Sqlite>, keys: &'q [Self]) -> SqlQuery<'q, Sqlite> {
        for key in keys {
            query = query.bind(key);
        }
        query
    }

    // SQLite allows 32 766 parameters per statement since 3.32.
    const MAX_KEYS_PER_STATEMENT: usize = 30_000;
}

impl Dialect for Postgres {
    const DISTINCT_FROM: &'static str = "IS DISTINCT FROM";
    const BEGIN: &'static str = "BEGIN";
    const MAX_PARAMETERS: usize = 65_535;
    const LOCK_ROWS: &'static str = " FOR UPDATE";
    const ANONYMOUS_PARAMETERS: bool = false;
    const WRITABLE_CTE: bool = true;
    const OUTBOX: &'static crate::outbox::OutboxSql = &crate::outbox::POSTGRES_OUTBOX;
    const CAPTURE: &'static crate::capture::CaptureSql<Self> = &crate::capture::POSTGRES_CAPTURE;

    shared_dialect_methods!();
}

impl<K> TrackedKey<Postgres> for K
where
    K: KeyValue<Postgres> + sqlx::postgres::PgHasArrayType,
{
    /// One key: `column = $first`; several: one array parameter, `column = ANY($first)`, the
    /// same statement for 2 or 10 000 keys.
    ///
    /// One key is not written as a one-element array: PostgreSQL estimates `= ANY($1)` at
    /// ten rows in a prepared statement's generic plan, finds that plan dearer than a custom
    /// one, and so plans a context query's joins again at every execution (measured: about
    /// 0.3 ms per one-row commit, the whole difference from hand-written code). `= $1` gets
    /// the generic plan after five executions, as hand-written code does.
    fn push_any_of(sql: &mut String, column: &str, first: usize, count: usize) {
        sql.push_str(column);
        sql.push_str(if count == 1 { " = $" } else { " = ANY($" });
        sql.push_str(&first.to_string());
        if count != 1 {
            sql.push(')');
        }
    }

    fn key_params(_count: usize) -> usize {
        1
    }

    fn bind_keys<'q>(query: SqlQuery<'q, Postgres>, keys: &'q [Self]) -> SqlQuery<'q, Postgres> {
        match keys {
            [key] => query.bind(key),
            _ => query.bind(keys),
        }
    }

    const MAX_KEYS_PER_STATEMENT: usize = usize::MAX;
}

/// A quoted SQL identifier; `schema.table` is quoted part by part. The derive accepts only
/// plain names, so there is nothing to escape.
pub(crate) fn quote(name: &str) -> String {
    let mut quoted = String::with_capacity(name.len() + 2);
    for (i, part) in name.split('.').enumerate() {
        if i > 0 {
            quoted.push('.');
        }
        quoted.push('"');
        quoted.push_str(part);
        quoted.push('"');
    }
    quoted
}
