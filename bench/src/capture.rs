//! The cost of capture: a 10 000-row `UPDATE` with and without the capture triggers
//! (interleaved rounds, the order alternating; ratio of medians), and the latency from a
//! commit to the hub (median, p99) through a capture loop publishing to the development hub:
//! writes of another connection on both databases, and on SQLite also a tracked session's
//! commit in the same process (its in-process wake-up).
//!
//! ```text
//! cargo run --release -p mercure-track-bench -- --capture [--quick] [--json]
//! ```

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mercure_track::publisher::BoxFuture;
use mercure_track::{PublishError, PublishOutcome, Publisher, Update};
use mercure_track_sqlx::capture::{self, Capture, CaptureConfig, CaptureLoop};
use mercure_track_sqlx::{Dialect, TrackedSession};
use serde_json::json;
use sqlx::Pool;

use crate::domain::{ColoringVersion, ImageUpdate};
use crate::runner;

const ROWS: usize = 10_000;

/// Publishes through the hub and notes when each `image_update` was accepted.
struct Timed {
    inner: Arc<dyn Publisher>,
    accepted: Arc<Mutex<Vec<Instant>>>,
}

impl Publisher for Timed {
    fn publish_update(
        &self,
        update: Update,
    ) -> BoxFuture<'_, Result<PublishOutcome, PublishError>> {
        Box::pin(async move {
            let individual = update.data.contains("\"image_update\"");
            let outcome = self.inner.publish_update(update).await;
            if individual && outcome.is_ok() {
                self.accepted
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Instant::now());
            }
            outcome
        })
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return f64::NAN;
    }
    let rank = ((values.len() as f64) * p).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

async fn exec<DB: Dialect>(pool: &Pool<DB>, sql: &str) -> Result<(), sqlx::Error>
where
    for<'c> &'c Pool<DB>: sqlx::Executor<'c, Database = DB>,
{
    sqlx::raw_sql(sql).execute(pool).await?;
    Ok(())
}

/// Where the latency bench's writes come from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Writer {
    /// A plain connection of the pool, as `psql` or another program: on SQLite the loop sees
    /// it at its next poll, on PostgreSQL the trigger's notification wakes it.
    Outside,
    /// Plain SQL in a tracked session of this process (without the capture): its commit wakes
    /// the loop (SQLite's in-process wake-up).
    Session,
}

/// The trigger's cost: `rounds` interleaved pairs of the same 10 000-row `UPDATE`, without
/// then with the capture (the order alternates each round).
async fn update_cost<DB: Dialect>(
    pool: &Pool<DB>,
    rounds: usize,
) -> Result<serde_json::Value, Box<dyn std::error::Error>>
where
    for<'c> &'c Pool<DB>: sqlx::Executor<'c, Database = DB>,
{
    let (mut plain, mut captured, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let mut pair = [0.0_f64; 2];
        for with in [round % 2 == 1, round % 2 == 0] {
            if with {
                capture::install::<DB, ColoringVersion>(pool).await?;
            } else {
                capture::uninstall::<DB, ColoringVersion>(pool).await?;
            }
            let start = Instant::now();
            exec(
                pool,
                &format!("UPDATE coloring_versions SET status = '{with}{round}'"),
            )
            .await?;
            pair[usize::from(with)] = start.elapsed().as_secs_f64() * 1e3;
            if with {
                let mut conn = pool.acquire().await?;
                let count = sqlx::query("SELECT COUNT(*) FROM mercure_capture_log");
                let logged = match DB::fetch_optional(&mut conn, count).await? {
                    Some(row) => DB::decode_i64(&row, 0)?,
                    None => 0,
                };
                drop(conn);
                assert_eq!(logged, ROWS as i64, "every changed row logged once");
                capture::uninstall::<DB, ColoringVersion>(pool).await?;
            }
        }
        plain.push(pair[0]);
        captured.push(pair[1]);
        ratios.push(pair[1] / pair[0]);
    }
    let (plain_ms, captured_ms) = (median(&mut plain), median(&mut captured));
    Ok(json!({
        "update_rows": ROWS,
        "rounds": rounds,
        "update_ms_without_capture": plain_ms,
        "update_ms_with_capture": captured_ms,
        "ratio": captured_ms / plain_ms,
        "ratio_min": ratios.iter().copied().fold(f64::INFINITY, f64::min),
        "ratio_max": ratios.iter().copied().fold(0.0, f64::max),
        "per_row_us": (captured_ms - plain_ms) * 1e3 / ROWS as f64,
    }))
}

/// The latency from a write's statement to the hub accepting its event, one write at a time,
/// through a capture loop polling every `poll`.
async fn latency<DB: Dialect>(
    pool: &Pool<DB>,
    publisher: &Arc<dyn Publisher>,
    capture: Arc<Capture<DB>>,
    writer: Writer,
    poll: Duration,
    commits: usize,
) -> Result<serde_json::Value, Box<dyn std::error::Error>>
where
    for<'c> &'c Pool<DB>: sqlx::Executor<'c, Database = DB>,
{
    capture::install::<DB, ColoringVersion>(pool).await?;
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let timed: Arc<dyn Publisher> = Arc::new(Timed {
        inner: publisher.clone(),
        accepted: accepted.clone(),
    });
    let worker = CaptureLoop::new(
        pool.clone(),
        capture,
        timed,
        CaptureConfig::default().poll_interval(poll),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(worker.run(async {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut latencies = Vec::new();
    for n in 0..commits {
        let before = accepted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        // A new value each time, and never one an earlier run wrote: a real change.
        let tag = if writer == Writer::Outside { 'o' } else { 's' };
        let sql = format!(
            "UPDATE coloring_versions SET status = '{tag}{n}' WHERE id = {}",
            n % ROWS
        );
        let start = Instant::now();
        match writer {
            Writer::Outside => exec(pool, &sql).await?,
            Writer::Session => {
                let mut session = TrackedSession::new(pool.clone(), publisher.clone());
                DB::execute(session.conn().await?, sqlx::query(&sql)).await?;
                session.commit().await?;
            }
        }
        let deadline = start + Duration::from_secs(10);
        loop {
            let done = accepted
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(before)
                .copied();
            if let Some(at) = done {
                latencies.push(at.duration_since(start).as_secs_f64() * 1e3);
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("commit {n} did not reach the hub in 10 s").into());
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    drop(stop);
    task.await?;
    Ok(json!({
        "commits": commits,
        "poll_interval_ms": poll.as_millis() as u64,
        "median_ms": median(&mut latencies.clone()),
        "p99_ms": percentile(&mut latencies, 0.99),
    }))
}

/// Runs the capture bench on SQLite, and on PostgreSQL when `MERCURE_TRACK_PG_URL` is set.
pub async fn run(
    publisher: &Arc<dyn Publisher>,
    quick: bool,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let (rounds, commits) = if quick { (3, 50) } else { (21, 500) };
    let mut report = serde_json::Map::new();
    // The captured model, and the event its changes publish.
    macro_rules! capture {
        () => {
            Arc::new(
                Capture::new()
                    .model::<ColoringVersion>()
                    .track::<ImageUpdate>(),
            )
        };
    }
    let sqlite = runner::sqlite_pool(ROWS).await?;
    let pool = &sqlite.pool;
    // No notification between SQLite connections: an outside write waits for the poll; a
    // session's commit in this process wakes the loop (whose poll is then left at 1 s).
    let result = json!({
        "update": update_cost(pool, rounds).await?,
        "latency_outside": latency(pool, publisher, capture!(), Writer::Outside, Duration::from_millis(50), commits).await?,
        "latency_session": latency(pool, publisher, capture!(), Writer::Session, Duration::from_secs(1), commits).await?,
    });
    println!("capture sqlite: {result}");
    report.insert("sqlite".into(), result);
    drop(sqlite);
    if let Ok(url) = std::env::var("MERCURE_TRACK_PG_URL")
        && !url.is_empty()
    {
        let postgres = runner::postgres_pool(&url, ROWS).await?;
        let pool = &postgres.pool;
        // Commits notify the loop; the poll is only a fallback.
        let result = json!({
            "update": update_cost(pool, rounds).await?,
            "latency_outside": latency(pool, publisher, capture!(), Writer::Outside, Duration::from_secs(60), commits).await?,
        });
        println!("capture postgres: {result}");
        report.insert("postgres".into(), result);
        postgres.drop_schema().await;
    }
    Ok(serde_json::Value::Object(report))
}
