//! The cost of capture: a 10 000-row `UPDATE` with and without the capture triggers
//! (interleaved rounds, ratio of medians), and the latency from an outside commit to the hub
//! (median, p99) through a capture loop publishing to the development hub.
//!
//! ```text
//! cargo run --release -p mercure-track-bench -- --capture [--quick] [--json]
//! ```

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mercure_track::publisher::BoxFuture;
use mercure_track::{PublishError, PublishOutcome, Publisher, Update};
use mercure_track_sqlx::Dialect;
use mercure_track_sqlx::capture::{self, Capture, CaptureConfig, CaptureLoop};
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

/// One database: the trigger's cost per row, and the outside-commit-to-hub latency.
async fn measure<DB: Dialect>(
    name: &str,
    pool: &Pool<DB>,
    publisher: &Arc<dyn Publisher>,
    capture: Arc<Capture<DB>>,
    poll: Duration,
    rounds: usize,
    commits: usize,
) -> Result<serde_json::Value, Box<dyn std::error::Error>>
where
    for<'c> &'c Pool<DB>: sqlx::Executor<'c, Database = DB>,
{
    // Interleaved: each round times the UPDATE without triggers, then with them.
    let (mut plain, mut captured) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        capture::uninstall::<DB, ColoringVersion>(pool).await?;
        let start = Instant::now();
        exec(
            pool,
            &format!("UPDATE coloring_versions SET status = 'p{round}'"),
        )
        .await?;
        plain.push(start.elapsed().as_secs_f64() * 1e3);
        capture::install::<DB, ColoringVersion>(pool).await?;
        let start = Instant::now();
        exec(
            pool,
            &format!("UPDATE coloring_versions SET status = 'c{round}'"),
        )
        .await?;
        captured.push(start.elapsed().as_secs_f64() * 1e3);
        let mut conn = pool.acquire().await?;
        let count = sqlx::query("SELECT COUNT(*) FROM mercure_capture_log");
        let logged = match DB::fetch_optional(&mut conn, count).await? {
            Some(row) => DB::decode_i64(&row, 0)?,
            None => 0,
        };
        drop(conn);
        assert_eq!(logged, ROWS as i64, "every changed row logged once");
        exec(pool, "DELETE FROM mercure_capture_log").await?;
    }
    let (plain_ms, captured_ms) = (median(&mut plain), median(&mut captured));

    // Latency: one outside commit at a time, waiting for its event at the hub.
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
        let start = Instant::now();
        exec(
            pool,
            &format!(
                "UPDATE coloring_versions SET status = 'l{n}' WHERE id = {}",
                n % ROWS
            ),
        )
        .await?;
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
                return Err(format!("{name}: commit {n} did not reach the hub in 10 s").into());
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    drop(stop);
    task.await?;
    let result = json!({
        "update_rows": ROWS,
        "rounds": rounds,
        "update_ms_without_capture": plain_ms,
        "update_ms_with_capture": captured_ms,
        "ratio": captured_ms / plain_ms,
        "per_row_us": (captured_ms - plain_ms) * 1e3 / ROWS as f64,
        "latency_commits": commits,
        "poll_interval_ms": poll.as_millis() as u64,
        "latency_median_ms": median(&mut latencies.clone()),
        "latency_p99_ms": percentile(&mut latencies, 0.99),
    });
    println!("capture {name}: {result}");
    Ok(result)
}

/// Runs the capture bench on SQLite, and on PostgreSQL when `MERCURE_TRACK_PG_URL` is set.
pub async fn run(
    publisher: &Arc<dyn Publisher>,
    quick: bool,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let (rounds, commits) = if quick { (3, 50) } else { (11, 500) };
    let mut report = serde_json::Map::new();
    let sqlite = runner::sqlite_pool(ROWS).await?;
    // SQLite has no notification: the loop polls.
    let result = measure(
        "sqlite",
        &sqlite.pool,
        publisher,
        Arc::new(
            Capture::new()
                .model::<ColoringVersion>()
                .track::<ImageUpdate>(),
        ),
        Duration::from_millis(50),
        rounds,
        commits,
    )
    .await?;
    report.insert("sqlite".into(), result);
    drop(sqlite);
    if let Ok(url) = std::env::var("MERCURE_TRACK_PG_URL")
        && !url.is_empty()
    {
        let postgres = runner::postgres_pool(&url, ROWS).await?;
        // Commits notify the loop; the poll is only a fallback.
        let result = measure(
            "postgres",
            &postgres.pool,
            publisher,
            Arc::new(
                Capture::new()
                    .model::<ColoringVersion>()
                    .track::<ImageUpdate>(),
            ),
            Duration::from_secs(60),
            rounds,
            commits,
        )
        .await?;
        report.insert("postgres".into(), result);
        postgres.drop_schema().await;
    }
    Ok(serde_json::Value::Object(report))
}
