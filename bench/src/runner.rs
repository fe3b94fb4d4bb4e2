//! The measurements. Each compares the tracked session with the hand-written code in the same
//! run, interleaved, and reports medians and their ratio; statements are counted at the
//! database and publishes at the hub (`count.rs`), on one extra run of each side.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use mercure_track::{Publisher, Update};
use mercure_track_sqlx::{Error, TrackedSession};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, Postgres};
use sqlx::sqlite::{Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Connection, Database, Executor, Pool};

use crate::count::Counts;
use crate::domain::{ColoringVersion, ImageUpdate, SCHEMA, seed};
use crate::hand::HandPublisher;

/// What to run.
pub struct Options {
    /// Single-row commits measured for the overhead, per side.
    pub overhead_rounds: usize,
    /// Rows per commit for the set-based runs.
    pub scaling_rows: Vec<usize>,
    /// Publishes in flight, for both sides.
    pub concurrency: usize,
    /// Print a human-readable table.
    pub verbose: bool,
}

/// A SQLite database in a temporary file, removed on drop.
pub struct SqliteBench {
    /// The pool.
    pub pool: Pool<Sqlite>,
    /// A pool on the same database whose statements and commits are counted.
    pub counting: Pool<Sqlite>,
    path: std::path::PathBuf,
}

impl Drop for SqliteBench {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

/// A seeded SQLite database.
pub async fn sqlite_pool(rows: usize) -> Result<SqliteBench, sqlx::Error> {
    let path =
        std::env::temp_dir().join(format!("mercure-track-bench-{}.sqlite", std::process::id()));
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Normal);
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options.clone())
        .await?;
    sqlx::raw_sql(SCHEMA).execute(&pool).await?;
    sqlx::raw_sql(&seed(rows)).execute(&pool).await?;
    let counting = SqlitePoolOptions::new()
        .max_connections(4)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.lock_handle()
                    .await?
                    .set_commit_hook(crate::count::sqlite_commit);
                Ok(())
            })
        })
        .connect_with(options)
        .await?;
    Ok(SqliteBench {
        pool,
        counting,
        path,
    })
}

/// A seeded PostgreSQL schema of its own.
pub struct PostgresBench {
    /// The pool.
    pub pool: Pool<Postgres>,
    /// A pool on the same schema through the counting proxy.
    pub counting: Pool<Postgres>,
    url: String,
    schema: String,
}

impl PostgresBench {
    /// Drops the schema.
    pub async fn drop_schema(self) {
        self.pool.close().await;
        self.counting.close().await;
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.url).await {
            let _ = conn
                .execute(format!("DROP SCHEMA \"{}\" CASCADE", self.schema).as_str())
                .await;
        }
    }
}

async fn schema_pool(
    options: PgConnectOptions,
    schema: &str,
) -> Result<Pool<Postgres>, sqlx::Error> {
    let search_path = format!("SET search_path TO \"{schema}\"");
    PgPoolOptions::new()
        .max_connections(4)
        .after_connect(move |conn, _| {
            let search_path = search_path.clone();
            Box::pin(async move {
                conn.execute(search_path.as_str()).await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await
}

/// A seeded PostgreSQL schema, and a pool on it through the counting proxy.
pub async fn postgres_pool(
    url: &str,
    rows: usize,
) -> Result<PostgresBench, Box<dyn std::error::Error>> {
    let schema = format!("bench_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(url).await?;
    admin
        .execute(
            format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE; CREATE SCHEMA \"{schema}\"")
                .as_str(),
        )
        .await?;
    let options: PgConnectOptions = url.parse()?;
    let pool = schema_pool(options.clone(), &schema).await?;
    sqlx::raw_sql(SCHEMA).execute(&pool).await?;
    sqlx::raw_sql(&seed(rows)).execute(&pool).await?;
    let upstream = format!("{}:{}", options.get_host(), options.get_port());
    let proxy = crate::count::pg_proxy(upstream).await?;
    let counting = schema_pool(
        options
            .host(&proxy.ip().to_string())
            .port(proxy.port())
            .ssl_mode(sqlx::postgres::PgSslMode::Disable),
        &schema,
    )
    .await?;
    Ok(PostgresBench {
        pool,
        counting,
        url: url.to_owned(),
        schema,
    })
}

/// The hand-written SQL that differs between the databases: how many ids are bound.
pub trait HandSql: Database {
    /// `UPDATE coloring_versions SET status = <first argument> WHERE id <is one of count ids>`.
    fn set_based_update(count: usize) -> String;
    /// The contexts of `count` coloring versions (the ids the only arguments).
    fn set_based_contexts(count: usize) -> String;
    /// Binds the ids as the statements above expect.
    fn bind_ids<'q>(query: HandQuery<'q, Self>, ids: &'q [i64]) -> HandQuery<'q, Self>;
    /// As [`HandSql::bind_ids`], for the context query.
    fn bind_ids_as<'q>(query: ContextsQuery<'q, Self>, ids: &'q [i64]) -> ContextsQuery<'q, Self>;
}

/// A hand-written statement with its arguments.
pub type HandQuery<'q, DB> = sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>;
/// A hand-written context query with its arguments.
pub type ContextsQuery<'q, DB> =
    sqlx::query::QueryAs<'q, DB, (String, i64), <DB as Database>::Arguments<'q>>;

/// The contexts of coloring versions, as the issue's hand-written program reads them.
const CONTEXTS: &str = "SELECT li.order_id, i.id FROM coloring_versions cv \
     JOIN images i ON i.id = cv.image_id JOIN line_items li ON li.id = i.line_item_id WHERE ";

/// The contexts of one coloring version, also joining `orders` as the session does (a
/// dangling foreign key is an unresolvable context, not an event).
const CONTEXT_CHECKED: &str = "SELECT o.id, i.id FROM coloring_versions cv \
     JOIN images i ON i.id = cv.image_id JOIN line_items li ON li.id = i.line_item_id \
     JOIN orders o ON o.id = li.order_id WHERE cv.id = $1";

/// The same without the join of `orders`.
const CONTEXT_PLAIN: &str = "SELECT li.order_id, i.id FROM coloring_versions cv \
     JOIN images i ON i.id = cv.image_id JOIN line_items li ON li.id = i.line_item_id \
     WHERE cv.id = $1";

/// The hand-written UPDATE of one row: it does not check that the value changes.
const PLAIN_UPDATE: &str = "UPDATE coloring_versions SET status = $1 WHERE id = $2";

/// The hand-written UPDATE doing what a setter does: no change, no write.
const CHECKED_UPDATE: &str =
    "UPDATE coloring_versions SET status = $1 WHERE id = $2 AND status IS DISTINCT FROM $1";

/// Does the row exist? (SQLite's second statement, after a checked `UPDATE` that changed nothing.)
const EXISTS: &str = "SELECT 1 FROM coloring_versions WHERE id = $1";

/// The setter's one statement on PostgreSQL: TRUE when the value changed, FALSE when the row
/// held it already, no row when there is no such row.
const PG_SETTER: &str = "WITH changed AS (UPDATE coloring_versions SET status = $1 \
     WHERE id = $2 AND status IS DISTINCT FROM $1 RETURNING 1) \
     SELECT TRUE FROM changed \
     UNION ALL SELECT FALSE FROM coloring_versions WHERE id = $2 AND NOT EXISTS (SELECT FROM changed)";

/// A setter's statements on SQLite, by hand: the checked `UPDATE`; when it changed nothing,
/// whether the row exists. Whether the value changed; `RowNotFound` for a missing row.
async fn sqlite_setter(
    conn: &mut sqlx::SqliteConnection,
    status: &str,
    id: i64,
) -> Result<bool, sqlx::Error> {
    let changed = sqlx::query(CHECKED_UPDATE)
        .bind(status)
        .bind(id)
        .execute(&mut *conn)
        .await?
        .rows_affected()
        > 0;
    if !changed {
        sqlx::query(EXISTS).bind(id).fetch_one(&mut *conn).await?;
    }
    Ok(changed)
}

/// A setter's statement on PostgreSQL, by hand ([`PG_SETTER`]).
async fn postgres_setter(
    conn: &mut sqlx::PgConnection,
    status: &str,
    id: i64,
) -> Result<bool, sqlx::Error> {
    let row: Option<(bool,)> = sqlx::query_as(PG_SETTER)
        .bind(status)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|(changed,)| changed)
        .ok_or(sqlx::Error::RowNotFound)
}

/// The hand-written read of one row, as `find` reads it.
const FIND: &str = "SELECT id, image_id, status FROM coloring_versions WHERE id = $1";

/// `?, ?, ...`: SQLite's anonymous parameters, which it prepares faster than numbered ones.
fn question_marks(count: usize) -> String {
    let mut marks = String::with_capacity(count * 3);
    for n in 0..count {
        if n > 0 {
            marks.push_str(", ");
        }
        marks.push('?');
    }
    marks
}

impl HandSql for Sqlite {
    fn set_based_update(count: usize) -> String {
        format!(
            "UPDATE coloring_versions SET status = ? WHERE id IN ({})",
            question_marks(count)
        )
    }
    fn set_based_contexts(count: usize) -> String {
        format!("{CONTEXTS}cv.id IN ({})", question_marks(count))
    }
    fn bind_ids<'q>(mut query: HandQuery<'q, Self>, ids: &'q [i64]) -> HandQuery<'q, Self> {
        for id in ids {
            query = query.bind(id);
        }
        query
    }
    fn bind_ids_as<'q>(
        mut query: ContextsQuery<'q, Self>,
        ids: &'q [i64],
    ) -> ContextsQuery<'q, Self> {
        for id in ids {
            query = query.bind(id);
        }
        query
    }
}

impl HandSql for Postgres {
    fn set_based_update(_count: usize) -> String {
        "UPDATE coloring_versions SET status = $1 WHERE id = ANY($2)".to_owned()
    }
    fn set_based_contexts(_count: usize) -> String {
        format!("{CONTEXTS}cv.id = ANY($1)")
    }
    fn bind_ids<'q>(query: HandQuery<'q, Self>, ids: &'q [i64]) -> HandQuery<'q, Self> {
        query.bind(ids)
    }
    fn bind_ids_as<'q>(query: ContextsQuery<'q, Self>, ids: &'q [i64]) -> ContextsQuery<'q, Self> {
        query.bind(ids)
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn ratio(tracked: Duration, hand: Duration) -> f64 {
    tracked.as_secs_f64() / hand.as_secs_f64()
}

/// The order of the sides in each round: a new permutation per round, from a fixed seed (the
/// same orders in every run). A rotation would put each side after the same other side in
/// almost every round, and what a side leaves behind (its connection going back to the pool
/// in a task, the hub finishing its answer, SQLite's WAL) would always fall on the same next
/// side; shuffled, every side follows every other about equally often.
struct Order {
    sides: Vec<usize>,
    state: u64,
}

impl Order {
    fn new(sides: usize) -> Self {
        Self::with_seed(sides, 0x9E37_79B9_7F4A_7C15)
    }

    fn with_seed(sides: usize, seed: u64) -> Self {
        Self {
            sides: (0..sides).collect(),
            state: seed,
        }
    }

    /// The next round's order (Fisher–Yates, with xorshift64* as the generator).
    fn next_round(&mut self) -> &[usize] {
        for i in (1..self.sides.len()).rev() {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            let random = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D);
            // `i + 1` sides left to place: a modulo bias of (i + 1) / 2^64 does not matter.
            let j = (random % (i as u64 + 1)) as usize;
            self.sides.swap(i, j);
        }
        &self.sides
    }
}

/// How many consecutive blocks of rounds the one-row samples are cut into, for the spread of
/// a ratio within one run.
const BLOCKS: usize = 10;

/// The lowest and the highest paired ratio ([`paired_ratio`]) over [`BLOCKS`] consecutive
/// blocks of rounds (`tracked[i]` and `hand[i]` come from the same round): how far one run's
/// ratio moves.
fn block_spread(tracked: &[Duration], hand: &[Duration]) -> (f64, f64) {
    let size = (tracked.len().min(hand.len()) / BLOCKS).max(1);
    let ratios: Vec<f64> = tracked
        .chunks(size)
        .zip(hand.chunks(size))
        .map(|(t, h)| paired_ratio(t, h))
        .collect();
    let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let high = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (low, high)
}

/// The ratio of two sides sampled round by round (`tracked[i]` and `hand[i]` from the same
/// round): 1 + the median of the per-round differences over the hand-written median.
///
/// The one-row comparisons use it rather than the ratio of the two medians: on PostgreSQL a
/// commit's time is mostly the server's WAL flush, which on this machine has two modes (the
/// `COMMIT` step's median was 86 µs in one run, 230–430 µs in others), and a median of such
/// totals jumps between the modes with a few samples more or less on one side. The control
/// (two sides running the same code) showed it: over 27 runs its ratio of medians ranged from
/// 0.956 to 1.024, its paired ratio from 0.988 to 1.007 (2026-12-07, BENCHMARKS.md).
/// A difference taken within one round cancels what the two samples share. Both figures are
/// in the JSON.
fn paired_ratio(tracked: &[Duration], hand: &[Duration]) -> f64 {
    let mut differences: Vec<f64> = tracked
        .iter()
        .zip(hand)
        .map(|(t, h)| t.as_secs_f64() - h.as_secs_f64())
        .collect();
    differences.sort_by(f64::total_cmp);
    let difference = differences
        .get(differences.len() / 2)
        .copied()
        .unwrap_or(0.0);
    1.0 + difference / median(hand.to_vec()).as_secs_f64()
}

/// Two sides sampled round by round, as JSON: their medians, the paired ratio (`ratio`, see
/// [`paired_ratio`]) with its spread over blocks of rounds, and the ratio of the medians.
fn compared(tracked: &[Duration], hand: &[Duration]) -> Value {
    let (low, high) = block_spread(tracked, hand);
    let (tracked_median, hand_median) = (median(tracked.to_vec()), median(hand.to_vec()));
    json!({
        "tracked_ms": millis(tracked_median),
        "hand_ms": millis(hand_median),
        "ratio": paired_ratio(tracked, hand),
        "ratio_blocks": [low, high],
        "ratio_of_medians": ratio(tracked_median, hand_median),
        "samples": tracked.len().min(hand.len()),
    })
}

/// Resets the kernel's peak-RSS counter of this process (Linux).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The peak RSS since the last reset, in KiB (Linux; 0 elsewhere).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Statements (at the database) and publishes (at the hub) of one run of each side.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counted {
    /// Statements the database ran.
    pub statements: u64,
    /// PostgreSQL `Parse` messages (0 on SQLite).
    pub parses: u64,
    /// Publishes the hub accepted.
    pub publishes: u64,
}

impl Counted {
    fn json(self) -> Value {
        json!({
            "statements": self.statements,
            "parses": self.parses,
            "hub_publishes": self.publishes,
        })
    }
}

/// The sides of the one-row measurements, in the order of the samples. The last is the
/// control: the same code as `hand_same_statements`, so that the ratio of
/// the two shows the resolution of the run (1.000 on a perfectly quiet machine).
const ONE_ROW_SIDES: [&str; 6] = [
    "tracked",
    "hand",
    "hand_same_statements",
    "find_then_set_tracked",
    "find_then_set_hand",
    "hand_same_statements_control",
];

/// The rows of the one-row measurements: 10 000 to 10 005 (one heap page), one per side in
/// each round, dealt in a new order each round (see [`Order`]: a seed of its own), so that
/// every side writes every row, after every other side, about equally often. A row of its own
/// per side made the control ratio (two sides running the same code) above 1 on PostgreSQL in
/// 13 of 14 runs on 2026-12-07 (0.996 to 1.034, rows 10 002 against 10 001; SQLite 0.994 to
/// 1.004): the state of a row's page and of its update chain belonged to one side. The counted
/// runs write row `ONE_ROW_BASE + side`.
const ONE_ROW_BASE: i64 = 10_000;

/// The seed of the rows' order (the sides' is [`Order::new`]'s).
const ROWS_SEED: u64 = 0xD1B5_4A32_D192_ED03;

/// The measurements on one database, written once for both: `$db` is the sqlx database,
/// `$statements` the counter of its statements in [`Counts`], `$begin` the session's `BEGIN`,
/// `$setter` a setter's statements written by hand.
macro_rules! measurements {
    ($module:ident, $db:ty, $statements:ident, $begin:literal, $setter:ident) => {
        /// The measurements on this database.
        pub mod $module {
            use super::*;
            use mercure_track::Model as _;

            type Db = $db;

            /// The session's `BEGIN` on this database (SQLite: `BEGIN IMMEDIATE`, the write
            /// lock taken at once), for the hand-written sides that issue its statements.
            const SESSION_BEGIN: &str = $begin;

            fn session(
                pool: &Pool<Db>,
                publisher: &Arc<dyn Publisher>,
                concurrency: usize,
            ) -> TrackedSession<Db> {
                let mut session = TrackedSession::with_publisher(pool.clone(), publisher.clone())
                    .publish_concurrency(concurrency);
                session.track_changes::<ImageUpdate>();
                session
            }

            /// Tracked, one row: the setter by key, commit, publish (awaited); with `find`,
            /// seed-shaped: `find`, then the setter on the row.
            async fn tracked_one_row(
                pool: &Pool<Db>,
                publisher: &Arc<dyn Publisher>,
                id: i64,
                status: &str,
                find: bool,
            ) -> Result<(), Error> {
                let mut session = session(pool, publisher, 1);
                if find {
                    let mut version = ColoringVersion::find(&mut session, id).await?;
                    version.set_status(&mut session, status).await?;
                } else {
                    ColoringVersion::set_status_by_key(&mut session, id, status).await?;
                }
                session.commit().await?;
                Ok(())
            }

            /// By hand, one row, as a developer writes it: `BEGIN`, `UPDATE`, one context
            /// `SELECT`, `COMMIT`, one `POST`.
            async fn hand_one_row(
                pool: &Pool<Db>,
                hand: &HandPublisher,
                id: i64,
                status: &str,
            ) -> Result<(), sqlx::Error> {
                let mut tx = pool.begin().await?;
                sqlx::query(PLAIN_UPDATE)
                    .bind(status)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let context: Option<(String, i64)> = sqlx::query_as(CONTEXT_PLAIN)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                tx.commit().await?;
                hand.post_all(context.into_iter().collect(), 1).await;
                Ok(())
            }

            /// By hand, the session's statements: its `BEGIN`; with `find`, the row read
            /// first as `find` reads it (seed-shaped); its setter's statement; the context
            /// `SELECT` joining `orders`, only when the value changed; `COMMIT`; one `POST`.
            async fn hand_same_statements(
                pool: &Pool<Db>,
                hand: &HandPublisher,
                id: i64,
                status: &str,
                find: bool,
            ) -> Result<(), sqlx::Error> {
                let mut tx = pool.begin_with(SESSION_BEGIN).await?;
                if find {
                    let _row: (i64, i64, String) =
                        sqlx::query_as(FIND).bind(id).fetch_one(&mut *tx).await?;
                }
                let mut contexts = Vec::new();
                if $setter(&mut *tx, status, id).await? {
                    contexts.extend(
                        sqlx::query_as::<Db, (String, i64)>(CONTEXT_CHECKED)
                            .bind(id)
                            .fetch_optional(&mut *tx)
                            .await?,
                    );
                }
                tx.commit().await?;
                hand.post_all(contexts, 1).await;
                Ok(())
            }

            /// Tracked, many rows: one set-based write, commit, publish.
            async fn tracked_set_based(
                pool: &Pool<Db>,
                publisher: &Arc<dyn Publisher>,
                ids: &[i64],
                status: &str,
                concurrency: usize,
            ) -> Result<(), Error> {
                let mut session = session(pool, publisher, concurrency);
                ColoringVersion::update()
                    .set(ColoringVersion::status, status)
                    .filter(ColoringVersion::id.in_keys(ids.iter().copied()))
                    .execute(&mut session)
                    .await?;
                session.commit().await?;
                Ok(())
            }

            /// By hand, many rows: one `UPDATE`, one context `SELECT`, `COMMIT`, the same
            /// publishes.
            async fn hand_set_based(
                pool: &Pool<Db>,
                hand: &HandPublisher,
                ids: &[i64],
                status: &str,
                concurrency: usize,
            ) -> Result<(), sqlx::Error> {
                let mut tx = pool.begin().await?;
                let update = <Db as HandSql>::set_based_update(ids.len());
                <Db as HandSql>::bind_ids(sqlx::query(&update).bind(status), ids)
                    .execute(&mut *tx)
                    .await?;
                let select = <Db as HandSql>::set_based_contexts(ids.len());
                let contexts: Vec<(String, i64)> =
                    <Db as HandSql>::bind_ids_as(sqlx::query_as(&select), ids)
                        .fetch_all(&mut *tx)
                        .await?;
                tx.commit().await?;
                hand.post_all(contexts, concurrency).await;
                Ok(())
            }

            /// Microseconds per setter call, tracked and by hand (the checked `UPDATE` alone,
            /// what a developer writes), `calls` of each in one transaction each (rolled
            /// back), interleaved over `rounds`. `changing`: every call writes a new value;
            /// otherwise every call writes the value the row already holds (then the setter
            /// runs a second statement on SQLite, and its one statement's existence check on
            /// PostgreSQL).
            ///
            /// Both sides run on one connection of their own: on this 2-core machine one
            /// connection of a pool at a time can run its statements about 12 times slower
            /// (its thread's placement; BENCHMARKS.md, "Setter cost"), and alternating
            /// transactions would give it to whichever side goes first.
            async fn setter_cost(
                shared: &Pool<Db>,
                publisher: &Arc<dyn Publisher>,
                calls: usize,
                rounds: usize,
                changing: bool,
            ) -> Result<(f64, f64), Box<dyn std::error::Error>> {
                let pool = &shared
                    .options()
                    .clone()
                    .max_connections(1)
                    .connect_with((*shared.connect_options()).clone())
                    .await?;
                let (id, value) = (19_002_i64, "UNCHANGED");
                sqlx::query(PLAIN_UPDATE).bind(value).bind(id).execute(pool).await?;
                let values: Vec<String> = (0..calls)
                    .map(|n| if changing { format!("C{n}") } else { value.to_owned() })
                    .collect();
                let (mut tracked, mut handwritten) = (Vec::new(), Vec::new());
                for round in 0..rounds {
                    for side_is_hand in [round % 2 == 0, round % 2 == 1] {
                        let start = Instant::now();
                        if side_is_hand {
                            let mut tx = pool.begin().await?;
                            for value in &values {
                                sqlx::query(CHECKED_UPDATE)
                                    .bind(value)
                                    .bind(id)
                                    .execute(&mut *tx)
                                    .await?;
                            }
                            tx.rollback().await?;
                            handwritten.push(start.elapsed());
                        } else {
                            let mut session = session(pool, publisher, 1);
                            for value in &values {
                                ColoringVersion::set_status_by_key(&mut session, id, value.as_str())
                                    .await?;
                            }
                            session.rollback().await?;
                            tracked.push(start.elapsed());
                        }
                    }
                }
                pool.close().await;
                let per_call = |samples| median(samples).as_secs_f64() * 1e6 / calls as f64;
                Ok((per_call(tracked), per_call(handwritten)))
            }

            /// One sample of one-row side `side` (see [`ONE_ROW_SIDES`]), writing `status`
            /// into row `row` (see [`one_row`]).
            async fn one_row_side(
                side: usize,
                row: i64,
                pool: &Pool<Db>,
                publisher: &Arc<dyn Publisher>,
                hand: &HandPublisher,
                status: &str,
            ) -> Result<(), Box<dyn std::error::Error>> {
                match side {
                    0 => tracked_one_row(pool, publisher, row, status, false).await?,
                    1 => hand_one_row(pool, hand, row, status).await?,
                    2 => hand_same_statements(pool, hand, row, status, false).await?,
                    3 => tracked_one_row(pool, publisher, row, status, true).await?,
                    4 => hand_same_statements(pool, hand, row, status, true).await?,
                    _ => hand_same_statements(pool, hand, row, status, false).await?,
                }
                Ok(())
            }

            /// The statements and publishes of one run of `run` on the `counting` pool, after
            /// one uncounted run (connections opened, statements prepared). `run` takes the
            /// status to write, new for each run so that every write changes its rows.
            async fn count<F, Fut>(
                counting: &Pool<Db>,
                run: F,
            ) -> Result<Counted, Box<dyn std::error::Error>>
            where
                F: Fn(String) -> Fut,
                Fut: std::future::Future<Output = Result<(), Box<dyn std::error::Error>>>,
            {
                run("warm-up".to_owned()).await?;
                // sqlx returns a released connection to its pool in a task of its own: until
                // then the pool would open a new connection, whose set-up statements (the
                // schema's `SET search_path`, SQLite's commit) would be counted as the run's.
                let deadline = Instant::now() + Duration::from_secs(5);
                while counting.num_idle() < counting.size() as usize {
                    if Instant::now() > deadline {
                        return Err("the counting pool's connections did not come back".into());
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                crate::count::listen_to_sqlite(true);
                let before = Counts::now();
                // The hub counts a publish before it answers: every publish awaited is counted.
                let result = run("counted".to_owned()).await;
                let counted = Counts::now().since(before);
                crate::count::listen_to_sqlite(false);
                result?;
                Ok(Counted {
                    statements: counted.$statements,
                    parses: counted.pg_parses,
                    publishes: counted.hub_publishes,
                })
            }

            /// Runs every measurement: `pool` is timed, `counting` (the same database, seen
            /// through the counters) is used for one counted run of each side.
            pub async fn run(
                name: &str,
                pool: &Pool<Db>,
                counting: &Pool<Db>,
                publisher: &Arc<dyn Publisher>,
                hand: &HandPublisher,
                options: &Options,
            ) -> Result<Value, Box<dyn std::error::Error>> {
                let concurrency = options.concurrency;
                // One row per commit, the sides interleaved in a new order each round (see
                // `Order`); a new status each round, so that every write changes its row.
                let warmup = options.overhead_rounds / 10 + 1;
                let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); ONE_ROW_SIDES.len()];
                let mut order = Order::new(ONE_ROW_SIDES.len());
                let mut rows = Order::with_seed(ONE_ROW_SIDES.len(), ROWS_SEED);
                for round in 0..options.overhead_rounds + warmup {
                    let status = format!("R{round}");
                    let row_of: Vec<i64> =
                        rows.next_round().iter().map(|&n| ONE_ROW_BASE + n as i64).collect();
                    for &side in order.next_round() {
                        let start = Instant::now();
                        one_row_side(side, row_of[side], pool, publisher, hand, &status).await?;
                        if round >= warmup {
                            samples[side].push(start.elapsed());
                        }
                    }
                }
                let mut one_row_counts = serde_json::Map::new();
                for (side, name) in ONE_ROW_SIDES.iter().enumerate() {
                    let counted = count(counting, |status| async move {
                        let row = ONE_ROW_BASE + side as i64;
                        one_row_side(side, row, counting, publisher, hand, &status).await
                    })
                    .await?;
                    one_row_counts.insert((*name).to_owned(), counted.json());
                }
                // Tracked against plain hand-written statements, against the session's
                // statements by hand (the target), and the control against the latter.
                let mut one_row = compared(&samples[0], &samples[1]);
                let same = compared(&samples[0], &samples[2]);
                let control = compared(&samples[5], &samples[2]);
                one_row["hand_same_statements_ms"] = same["hand_ms"].clone();
                one_row["same_statements_ratio"] = same["ratio"].clone();
                one_row["same_statements_ratio_blocks"] = same["ratio_blocks"].clone();
                one_row["same_statements_ratio_of_medians"] = same["ratio_of_medians"].clone();
                one_row["control_ratio"] = control["ratio"].clone();
                one_row["control_ratio_blocks"] = control["ratio_blocks"].clone();
                one_row["control_ratio_of_medians"] = control["ratio_of_medians"].clone();
                one_row["counted"] = json!({
                    "tracked": one_row_counts["tracked"],
                    "hand": one_row_counts["hand"],
                    "hand_same_statements": one_row_counts["hand_same_statements"],
                });
                let mut find_then_set = compared(&samples[3], &samples[4]);
                find_then_set["counted"] = json!({
                    "tracked": one_row_counts["find_then_set_tracked"],
                    "hand": one_row_counts["find_then_set_hand"],
                });
                if options.verbose {
                    let line = |what: &str, figures: &Value| {
                        println!(
                            "{name}: {what} {:.3} ms against {:.3} ms  ratio {:.3} (blocks {:.3}–{:.3}; ratio of medians {:.3})",
                            figures["tracked_ms"].as_f64().unwrap_or_default(),
                            figures["hand_ms"].as_f64().unwrap_or_default(),
                            figures["ratio"].as_f64().unwrap_or_default(),
                            figures["ratio_blocks"][0].as_f64().unwrap_or_default(),
                            figures["ratio_blocks"][1].as_f64().unwrap_or_default(),
                            figures["ratio_of_medians"].as_f64().unwrap_or_default(),
                        );
                    };
                    line("one-row commit, tracked against hand-written with the session's statements:", &same);
                    line("one-row commit, tracked against hand-written plain statements:           ", &one_row);
                    line("find then set, tracked against hand-written:                             ", &find_then_set);
                    line("control, hand-written with the session's statements, twice:             ", &control);
                    println!("{name}: counted (statements at the database, publishes at the hub): {}",
                        Value::Object(one_row_counts.clone()));
                }

                let mut setters = serde_json::Map::new();
                for (key, changing) in [("changed_setter", true), ("unchanged_setter", false)] {
                    let (tracked_us, hand_us) =
                        setter_cost(pool, publisher, 200, 41, changing).await?;
                    setters.insert(
                        key.to_owned(),
                        json!({
                            "tracked_us": tracked_us,
                            "hand_us": hand_us,
                            "ratio": tracked_us / hand_us,
                        }),
                    );
                    if options.verbose {
                        let what = if changing { "a new value  " } else { "an unchanged value" };
                        println!(
                            "{name}: setter of {what}  tracked {tracked_us:.1} µs  \
                             hand-written checked UPDATE {hand_us:.1} µs per call"
                        );
                    }
                }

                // Set-based writes of n rows: tracked rows 0.., hand-written rows 10 000...
                let mut points = Vec::new();
                for &rows in &options.scaling_rows {
                    let repetitions = if rows <= 100 { 31 } else { 15 };
                    let tracked_ids: Vec<i64> = (0..rows as i64).collect();
                    let hand_ids: Vec<i64> = (10_000..10_000 + rows as i64).collect();
                    let (mut tracked, mut handwritten) = (Vec::new(), Vec::new());
                    let (mut tracked_rss, mut hand_rss) = (0, 0);
                    for repetition in 0..repetitions {
                        let status = format!("S{rows}-{repetition}");
                        // Alternate which side goes first: a WAL checkpoint or a vacuum of the
                        // previous side's writes then falls on both alike.
                        let mut sides = [false, true];
                        if repetition % 2 == 1 {
                            sides.reverse();
                        }
                        for side_is_hand in sides {
                            reset_peak_rss();
                            let start = Instant::now();
                            if side_is_hand {
                                hand_set_based(pool, hand, &hand_ids, &status, concurrency).await?;
                                handwritten.push(start.elapsed());
                                hand_rss = hand_rss.max(peak_rss_kib());
                            } else {
                                tracked_set_based(pool, publisher, &tracked_ids, &status, concurrency)
                                    .await?;
                                tracked.push(start.elapsed());
                                tracked_rss = tracked_rss.max(peak_rss_kib());
                            }
                        }
                    }
                    let (tracked_ids, hand_ids) = (&tracked_ids, &hand_ids);
                    let tracked_counted = count(counting, |status| async move {
                        let status = format!("S{rows}-{status}");
                        tracked_set_based(counting, publisher, tracked_ids, &status, concurrency)
                            .await?;
                        Ok(())
                    })
                    .await?;
                    let hand_counted = count(counting, |status| async move {
                        let status = format!("S{rows}-{status}");
                        hand_set_based(counting, hand, hand_ids, &status, concurrency).await?;
                        Ok(())
                    })
                    .await?;
                    let (tracked, handwritten) = (median(tracked), median(handwritten));
                    let set_ratio = ratio(tracked, handwritten);
                    if options.verbose {
                        println!(
                            "{name}: {rows:>6} rows set-based  tracked {:>9.2} ms ({} statements, {} publishes, peak RSS {tracked_rss} KiB)  \
                             hand-written {:>9.2} ms ({} statements, {} publishes, peak RSS {hand_rss} KiB)  ratio {set_ratio:.3}  ({repetitions} samples each)",
                            millis(tracked),
                            tracked_counted.statements,
                            tracked_counted.publishes,
                            millis(handwritten),
                            hand_counted.statements,
                            hand_counted.publishes,
                        );
                    }
                    points.push(json!({
                        "rows": rows,
                        "samples": repetitions,
                        "tracked_ms": millis(tracked),
                        "hand_ms": millis(handwritten),
                        "ratio": set_ratio,
                        "tracked_counted": tracked_counted.json(),
                        "hand_counted": hand_counted.json(),
                        "tracked_peak_rss_kib": tracked_rss,
                        "hand_peak_rss_kib": hand_rss,
                    }));
                }
                Ok(json!({
                    "one_row": one_row,
                    "find_then_set": find_then_set,
                    "changed_setter": setters["changed_setter"],
                    "unchanged_setter": setters["unchanged_setter"],
                    "set_based": points,
                }))
            }

            /// One-row commits of one side, for an instruction count (`--instructions`):
            /// `side` 0 tracked, 2 hand-written with the session's statements.
            pub async fn repeat_one_row(
                side: usize,
                commits: usize,
                pool: &Pool<Db>,
                publisher: &Arc<dyn Publisher>,
                hand: &HandPublisher,
            ) -> Result<(), Box<dyn std::error::Error>> {
                for round in 0..commits {
                    let row = ONE_ROW_BASE + (round % ONE_ROW_SIDES.len()) as i64;
                    one_row_side(side, row, pool, publisher, hand, &format!("I{round}")).await?;
                }
                Ok(())
            }
        }
    };
}

measurements!(
    sqlite,
    Sqlite,
    sqlite_statements,
    "BEGIN IMMEDIATE",
    sqlite_setter
);
measurements!(postgres, Postgres, pg_statements, "BEGIN", postgres_setter);

/// Updates per second through the publisher against a raw reqwest loop, same concurrency,
/// same hub; two interleaved rounds each, the better of each side kept.
pub async fn throughput(
    publisher: &Arc<dyn Publisher>,
    hand: &HandPublisher,
    updates: usize,
    concurrency: usize,
    verbose: bool,
) -> Value {
    let data = r#"{"type":"image_update","order_id":"o1","image_id":1}"#;
    let (mut best_publisher, mut best_raw) = (0.0_f64, 0.0_f64);
    for _ in 0..2 {
        let start = Instant::now();
        futures_util::stream::iter(0..updates)
            .for_each_concurrent(concurrency, |n| {
                let update = Update::new([format!("orders/{n}")], data);
                async move {
                    if let Err(error) = publisher.publish_update(update).await {
                        eprintln!("publish failed: {error}");
                    }
                }
            })
            .await;
        best_publisher = best_publisher.max(updates as f64 / start.elapsed().as_secs_f64());

        let start = Instant::now();
        futures_util::stream::iter(0..updates)
            .for_each_concurrent(concurrency, |n| async move {
                if let Err(error) = hand.post_raw(&format!("orders/{n}"), data).await {
                    eprintln!("raw publish failed: {error}");
                }
            })
            .await;
        best_raw = best_raw.max(updates as f64 / start.elapsed().as_secs_f64());
    }
    let ratio = best_publisher / best_raw;
    if verbose {
        println!(
            "throughput: HubPublisher {best_publisher:.0} updates/s  raw reqwest {best_raw:.0} updates/s  ratio {ratio:.3} ({updates} updates, {concurrency} in flight)"
        );
    }
    json!({
        "publisher_per_s": best_publisher,
        "raw_per_s": best_raw,
        "ratio": ratio,
        "updates": updates,
        "concurrency": concurrency,
    })
}
