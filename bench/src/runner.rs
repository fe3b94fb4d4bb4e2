//! The measurements. Each compares the tracked session with the hand-written code in the same
//! run, interleaved, and reports medians and their ratio.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use mercure_track::{Publisher, Update};
use mercure_track_sqlx::{ContextRow, Dialect, Error, TrackedSession};
use serde_json::{Value, json};
use sqlx::postgres::{PgPoolOptions, Postgres};
use sqlx::sqlite::{Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Connection, Database, Encode, Executor, FromRow, IntoArguments, Pool, Type};

use crate::domain::{ColoringVersion, ImageUpdate, SCHEMA, seed};
use crate::hand::HandPublisher;

/// What to run.
pub struct Options {
    /// Single-row commits measured for the overhead, per side.
    pub overhead_rounds: usize,
    /// Rows per commit for the scaling runs.
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
        .connect_with(options)
        .await?;
    sqlx::raw_sql(SCHEMA).execute(&pool).await?;
    sqlx::raw_sql(&seed(rows)).execute(&pool).await?;
    Ok(SqliteBench { pool, path })
}

/// A seeded PostgreSQL schema of its own.
pub struct PostgresBench {
    /// The pool.
    pub pool: Pool<Postgres>,
    url: String,
    schema: String,
}

impl PostgresBench {
    /// Drops the schema.
    pub async fn drop_schema(self) {
        self.pool.close().await;
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.url).await {
            let _ = conn
                .execute(format!("DROP SCHEMA \"{}\" CASCADE", self.schema).as_str())
                .await;
        }
    }
}

/// A seeded PostgreSQL schema.
pub async fn postgres_pool(url: &str, rows: usize) -> Result<PostgresBench, sqlx::Error> {
    let schema = format!("bench_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(url).await?;
    admin
        .execute(
            format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE; CREATE SCHEMA \"{schema}\"")
                .as_str(),
        )
        .await?;
    let search_path = format!("SET search_path TO \"{schema}\"");
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .after_connect(move |conn, _| {
            let search_path = search_path.clone();
            Box::pin(async move {
                conn.execute(search_path.as_str()).await?;
                Ok(())
            })
        })
        .connect(url)
        .await?;
    sqlx::raw_sql(SCHEMA).execute(&pool).await?;
    sqlx::raw_sql(&seed(rows)).execute(&pool).await?;
    Ok(PostgresBench {
        pool,
        url: url.to_owned(),
        schema,
    })
}

/// How the hand-written code selects the contexts of many rows on each database.
pub trait HandSql: Database {
    /// `WHERE` condition on `cv.id` for `count` ids.
    fn ids_condition(count: usize) -> String;
    /// Binds the ids as the condition expects.
    fn bind_ids<'q>(
        query: sqlx::query::QueryAs<'q, Self, (String, i64), Self::Arguments<'q>>,
        ids: &'q [i64],
    ) -> sqlx::query::QueryAs<'q, Self, (String, i64), Self::Arguments<'q>>;
}

impl HandSql for Sqlite {
    fn ids_condition(count: usize) -> String {
        let params: Vec<String> = (1..=count).map(|n| format!("${n}")).collect();
        format!("cv.id IN ({})", params.join(", "))
    }
    fn bind_ids<'q>(
        mut query: sqlx::query::QueryAs<'q, Self, (String, i64), Self::Arguments<'q>>,
        ids: &'q [i64],
    ) -> sqlx::query::QueryAs<'q, Self, (String, i64), Self::Arguments<'q>> {
        for id in ids {
            query = query.bind(id);
        }
        query
    }
}

impl HandSql for Postgres {
    fn ids_condition(_count: usize) -> String {
        "cv.id = ANY($1)".to_owned()
    }
    fn bind_ids<'q>(
        query: sqlx::query::QueryAs<'q, Self, (String, i64), Self::Arguments<'q>>,
        ids: &'q [i64],
    ) -> sqlx::query::QueryAs<'q, Self, (String, i64), Self::Arguments<'q>> {
        query.bind(ids)
    }
}

/// One commit through a tracked session: set the status of `ids`, commit, publish (awaited).
async fn tracked_commit<DB>(
    pool: &Pool<DB>,
    publisher: &Arc<dyn Publisher>,
    ids: &[i64],
    status: &str,
    concurrency: usize,
) -> Result<(usize, usize), Error>
where
    DB: Dialect,
    TrackedSession<DB>: mercure_track::WriteColumn<ColoringVersion, String, Error = Error>,
    ImageUpdate: mercure_track::FromContext<ContextRow<DB>>,
{
    let mut session = TrackedSession::with_publisher(pool.clone(), publisher.clone())
        .publish_concurrency(concurrency);
    session.track_changes::<ImageUpdate>();
    for id in ids {
        ColoringVersion::set_status_by_key(&mut session, *id, status).await?;
    }
    let summary = session.commit().await?;
    Ok((
        summary.context_queries,
        summary.events + summary.batch_events,
    ))
}

/// The hand-written UPDATE: it does not check that the value changes.
const PLAIN_UPDATE: &str = "UPDATE coloring_versions SET status = $1 WHERE id = $2";

/// The hand-written UPDATE doing what a setter does: no change, no write. With it the
/// hand-written side also joins `orders` when reading contexts, as the session does.
const CHECKED_UPDATE: &str =
    "UPDATE coloring_versions SET status = $1 WHERE id = $2 AND status IS DISTINCT FROM $1";

/// The same work by hand: UPDATE each row, SELECT the contexts in one query, COMMIT, POST.
async fn hand_commit<DB>(
    pool: &Pool<DB>,
    hand: &HandPublisher,
    ids: &[i64],
    status: &str,
    concurrency: usize,
    update_sql: &str,
) -> Result<(usize, usize), sqlx::Error>
where
    DB: HandSql,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    (String, i64): for<'r> FromRow<'r, DB::Row>,
{
    let mut tx = pool.begin().await?;
    for id in ids {
        sqlx::query::<DB>(update_sql)
            .bind(status)
            .bind(*id)
            .execute(&mut *tx)
            .await?;
    }
    // The checked variant also joins `orders`, as the session does to make sure the order
    // exists (a dangling foreign key is an unresolvable context, not an event).
    let sql = if update_sql == CHECKED_UPDATE {
        format!(
            "SELECT o.id, i.id FROM coloring_versions cv \
             JOIN images i ON i.id = cv.image_id JOIN line_items li ON li.id = i.line_item_id \
             JOIN orders o ON o.id = li.order_id WHERE {}",
            DB::ids_condition(ids.len())
        )
    } else {
        format!(
            "SELECT li.order_id, i.id FROM coloring_versions cv \
             JOIN images i ON i.id = cv.image_id JOIN line_items li ON li.id = i.line_item_id WHERE {}",
            DB::ids_condition(ids.len())
        )
    };
    let contexts: Vec<(String, i64)> = DB::bind_ids(sqlx::query_as(&sql), ids)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    let requests = hand.post_all(contexts, concurrency).await;
    Ok((1, requests))
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
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

/// Runs the overhead and scaling measurements on one database.
pub async fn run<DB>(
    name: &str,
    pool: &Pool<DB>,
    publisher: &Arc<dyn Publisher>,
    hand: &HandPublisher,
    options: &Options,
) -> Result<Value, Box<dyn std::error::Error>>
where
    DB: Dialect + HandSql,
    TrackedSession<DB>: mercure_track::WriteColumn<ColoringVersion, String, Error = Error>,
    ImageUpdate: mercure_track::FromContext<ContextRow<DB>>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    (String, i64): for<'r> FromRow<'r, DB::Row>,
{
    let concurrency = options.concurrency;
    // Overhead: one row per commit. The two sides write disjoint rows (tracked: 0, hand:
    // 10 000), alternate which goes first, and flip the status so that every write changes.
    let warmup = options.overhead_rounds / 10 + 1;
    let (mut tracked, mut handwritten, mut checked) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..options.overhead_rounds + warmup {
        let status = if round % 2 == 0 { "B" } else { "A" };
        // Rotate the order of the three sides from round to round.
        for turn in 0..3 {
            let side = (turn + round) % 3;
            let start = Instant::now();
            match side {
                0 => {
                    tracked_commit(pool, publisher, &[0], status, concurrency).await?;
                }
                1 => {
                    hand_commit(pool, hand, &[10_000], status, concurrency, PLAIN_UPDATE).await?;
                }
                _ => {
                    hand_commit(pool, hand, &[10_001], status, concurrency, CHECKED_UPDATE).await?;
                }
            }
            let elapsed = start.elapsed();
            if round >= warmup {
                [&mut tracked, &mut handwritten, &mut checked][side].push(elapsed);
            }
        }
    }
    let (tracked, handwritten, checked) = (median(tracked), median(handwritten), median(checked));
    let overhead_ratio = tracked.as_secs_f64() / handwritten.as_secs_f64();
    let same_sql_ratio = tracked.as_secs_f64() / checked.as_secs_f64();
    if options.verbose {
        println!(
            "{name}: one-row commit  tracked {:.3} ms  hand-written {:.3} ms  ratio {overhead_ratio:.3}  \
             (hand-written with the session's statements {:.3} ms, ratio {same_sql_ratio:.3})",
            millis(tracked),
            millis(handwritten),
            millis(checked)
        );
    }

    // Scaling: n distinct rows per commit.
    let mut points = Vec::new();
    for &rows in &options.scaling_rows {
        let repetitions = match rows {
            0..=100 => 31,
            101..=1_000 => 9,
            _ => 5,
        };
        let tracked_ids: Vec<i64> = (0..rows as i64).collect();
        let hand_ids: Vec<i64> = (10_000..10_000 + rows as i64).collect();
        let (mut tracked, mut handwritten) = (Vec::new(), Vec::new());
        let (mut tracked_queries, mut tracked_requests, mut hand_queries, mut hand_requests) =
            (0, 0, 0, 0);
        let (mut tracked_rss, mut hand_rss) = (0, 0);
        for repetition in 0..repetitions {
            let status = if repetition % 2 == 0 { "C" } else { "D" };
            // Alternate which side goes first: a WAL checkpoint or a vacuum of the previous
            // side's writes then falls on both alike.
            let mut sides = [false, true];
            if repetition % 2 == 1 {
                sides.reverse();
            }
            for side_is_hand in sides {
                reset_peak_rss();
                let start = Instant::now();
                if side_is_hand {
                    (hand_queries, hand_requests) =
                        hand_commit(pool, hand, &hand_ids, status, concurrency, PLAIN_UPDATE)
                            .await?;
                    handwritten.push(start.elapsed());
                    hand_rss = hand_rss.max(peak_rss_kib());
                } else {
                    (tracked_queries, tracked_requests) =
                        tracked_commit(pool, publisher, &tracked_ids, status, concurrency).await?;
                    tracked.push(start.elapsed());
                    tracked_rss = tracked_rss.max(peak_rss_kib());
                }
            }
        }
        let (tracked, handwritten) = (median(tracked), median(handwritten));
        let ratio = tracked.as_secs_f64() / handwritten.as_secs_f64();
        if options.verbose {
            println!(
                "{name}: {rows:>6} rows  tracked {:>9.2} ms ({tracked_queries} context queries, {tracked_requests} requests, peak RSS {tracked_rss} KiB)  \
                 hand-written {:>9.2} ms ({hand_queries} context query, {hand_requests} requests, peak RSS {hand_rss} KiB)  ratio {ratio:.3}",
                millis(tracked),
                millis(handwritten)
            );
        }
        points.push(json!({
            "rows": rows,
            "tracked_ms": millis(tracked),
            "hand_ms": millis(handwritten),
            "ratio": ratio,
            "tracked_context_queries": tracked_queries,
            "hand_context_queries": hand_queries,
            "tracked_http_requests": tracked_requests,
            "hand_http_requests": hand_requests,
            "tracked_peak_rss_kib": tracked_rss,
            "hand_peak_rss_kib": hand_rss,
        }));
    }
    Ok(json!({
        "overhead": {
            "tracked_ms": millis(tracked),
            "hand_ms": millis(handwritten),
            "ratio": overhead_ratio,
            "hand_checked_ms": millis(checked),
            "ratio_same_sql": same_sql_ratio,
            "rounds": options.overhead_rounds,
        },
        "scaling": points,
    }))
}

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
