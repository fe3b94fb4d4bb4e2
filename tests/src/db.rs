//! Fresh databases for tests: a new SQLite file, or a new PostgreSQL schema, per test, with the
//! migrations under `tests/migrations` applied.

use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Connection, Executor};

/// The environment variable naming the PostgreSQL server of the tests.
pub const PG_URL_VAR: &str = "MERCURE_TRACK_PG_URL";
/// Set (to anything but `0`) to make the PostgreSQL tests run, and fail with "missing
/// service", when the server is not configured, instead of being ignored; CI sets it.
pub const PG_REQUIRED_VAR: &str = "MERCURE_TRACK_REQUIRE_PG";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A database made for one test.
pub trait TestDb {
    /// Removes the database (the file, the schema).
    fn finish(self) -> impl std::future::Future<Output = ()>;
}

impl TestDb for SqliteDb {
    async fn finish(self) {
        self.pool.close().await;
    }
}

impl TestDb for PostgresDb {
    async fn finish(self) {
        self.drop_schema().await;
    }
}

/// A SQLite database in a new file, removed on drop.
pub struct SqliteDb {
    /// The pool.
    pub pool: SqlitePool,
    path: std::path::PathBuf,
}

impl Drop for SqliteDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

/// A new SQLite database with the test schema.
pub async fn sqlite() -> SqliteDb {
    let path = std::env::temp_dir().join(format!("{}.db", unique("mercure_track")));
    let pool = sqlite_pool_at(&path).await;
    sqlx::migrate!("./migrations/sqlite")
        .run(&pool)
        .await
        .expect("migrate SQLite");
    SqliteDb { pool, path }
}

impl SqliteDb {
    /// The database file (for a second process).
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

/// A pool on the SQLite file at `path`, created if missing.
pub async fn sqlite_pool_at(path: &std::path::Path) -> SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(std::time::Duration::from_secs(30));
    // As many connections as the concurrency tests run sessions at once.
    SqlitePoolOptions::new()
        .max_connections(20)
        .connect_with(options)
        .await
        .expect("open SQLite")
}

/// A PostgreSQL schema of its own, dropped by [`PostgresDb::drop_schema`].
pub struct PostgresDb {
    /// The pool, whose connections use the schema.
    pub pool: PgPool,
    schema: String,
    url: String,
}

impl PostgresDb {
    /// Drops the schema (call at the end of a test, once its sessions are gone). A schema
    /// still locked by an open transaction is left behind after a few seconds rather than
    /// hanging the test.
    pub async fn drop_schema(self) {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.pool.close()).await;
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.url).await {
            let _ = conn.execute("SET lock_timeout = '5s'").await;
            if let Err(error) = conn
                .execute(format!("DROP SCHEMA \"{}\" CASCADE", self.schema).as_str())
                .await
            {
                eprintln!("schema {} left behind: {error}", self.schema);
            }
        }
    }
}

/// A new PostgreSQL schema with the test schema applied.
///
/// Always `Some` (the `Option` lets the setup macros treat SQLite and PostgreSQL alike): a
/// test that needs PostgreSQL and cannot reach it fails with "missing service". Tests that need
/// PostgreSQL carry `#[cfg_attr(not(mercure_track_pg), ignore = ...)]`, so without
/// `MERCURE_TRACK_PG_URL` they are reported as ignored rather than run (`tests/build.rs`).
pub async fn postgres(test: &str) -> Option<PostgresDb> {
    let url = match std::env::var(PG_URL_VAR) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "missing service: PostgreSQL for {test}: set {PG_URL_VAR} \
             (e.g. postgres://postgres@127.0.0.1:5432/test)"
        ),
    };
    let schema = unique("mt");
    let mut admin = match sqlx::PgConnection::connect(&url).await {
        Ok(admin) => admin,
        Err(error) => panic!("missing service: PostgreSQL at {PG_URL_VAR} for {test}: {error}"),
    };
    admin
        .execute(format!("CREATE SCHEMA \"{schema}\"").as_str())
        .await
        .expect("create schema");
    let pool = postgres_pool_in(&url, &schema).await;
    sqlx::migrate!("./migrations/postgres")
        .run(&pool)
        .await
        .expect("migrate PostgreSQL");
    Some(PostgresDb { pool, schema, url })
}

impl PostgresDb {
    /// The server URL and the schema (for a second process).
    pub fn location(&self) -> (&str, &str) {
        (&self.url, &self.schema)
    }
}

/// A pool whose connections use `schema`.
pub async fn postgres_pool_in(url: &str, schema: &str) -> PgPool {
    let search_path = format!("SET search_path TO \"{schema}\"");
    PgPoolOptions::new()
        .max_connections(20)
        .after_connect(move |conn, _| {
            let search_path = search_path.clone();
            Box::pin(async move {
                conn.execute(search_path.as_str()).await?;
                Ok(())
            })
        })
        .connect(url)
        .await
        .expect("PostgreSQL pool")
}

/// The rows every session test starts from: orders A, B, C with one line item, one image and
/// one coloring version each; order A's image also has an svg version; line item 4 points to
/// an order that does not exist (a dangling foreign key).
pub const SEED: &str = "
INSERT INTO orders (id, status) VALUES ('A', 'NEW'), ('B', 'NEW'), ('C', 'NEW');
INSERT INTO line_items (id, order_id) VALUES (1, 'A'), (2, 'B'), (3, 'C'), (4, 'GONE');
INSERT INTO images (id, line_item_id) VALUES (10, 1), (20, 2), (30, 3), (40, 4);
INSERT INTO coloring_versions (id, image_id, status) VALUES
    (100, 10, 'PENDING'), (101, 10, 'PENDING'), (200, 20, 'PENDING'), (300, 30, 'PENDING'), (400, 40, 'PENDING');
INSERT INTO svg_versions (id, image_id, status) VALUES (1000, 10, 'PENDING');
INSERT INTO categories (id, parent_id, name) VALUES (1, NULL, 'root'), (2, 1, 'child');
";
