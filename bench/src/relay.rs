//! The outbox relay under load, against a recording hub on loopback that answers each publish
//! after a fixed delay (50 ms: a hub across a network).
//!
//! ```text
//! cargo run --release -p mercure-track-bench -- --relay [--quick] [--json]
//! ```
//!
//! - **throughput**: an outbox filled by commits (each changes one of many orders: one
//!   `order_update` to the order's topic, one `list_update` to `orders`) is drained by 1 relay,
//!   then by 3 relays in this process (on PostgreSQL each with a pool of its own), then (on
//!   PostgreSQL) by 3 relay processes (this program started again with
//!   `MERCURE_TRACK_BENCH_RELAY_CHILD` set); delivered events/s, updates sent/s (counted at the
//!   hub), and the ratio of updates/s to what `concurrency` updates per round trip allow
//!   (N ÷ RTT).
//! - **hot topic**: 10 writers commit continuously while one relay runs; the lag of each
//!   event, from its write to the hub's receipt of the update carrying it (merged or not),
//!   for the `orders` topic and for all.
//! - **idle latency**: one commit at a time to an idle relay, hub answering at once: the time
//!   from `commit()` returning to the hub receiving the update (median, p99).
//!
//! The hub records what it received (id, topics, when); figures come from it and from the
//! outbox table, not from the relay's own reports.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::post;
use mercure_track::prelude::*;
use mercure_track::publisher::{HubConfig, JwtKey};
use mercure_track::{HubPublisher, Publisher};
use mercure_track_sqlx::outbox::{self, Relay, RelayConfig};
use mercure_track_sqlx::{Dialect, TrackedSession};
use serde_json::{Value, json};
use sqlx::Pool;

use crate::domain::Order;
use crate::runner;

/// An order changed (the relay bench's individual event).
#[derive(Debug, Clone, MercureEvent)]
#[mercure(type = "order_update", topic = "orders/{order_id}")]
#[trigger(Order::status)]
pub struct OrderUpdate {
    /// The order.
    #[context(Order::id)]
    pub order_id: String,
}

/// Orders of the list changed (the batch event of every commit: the hot topic).
#[derive(Debug, Clone, MercureEvent)]
#[mercure(type = "list_update", topic = "orders", collect(OrderUpdate))]
pub struct ListUpdate {
    /// The changed orders.
    pub order_ids: Vec<String>,
}

const HUB_DELAY: Duration = Duration::from_millis(50);

fn epoch_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// One publish as the hub received it.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    topics: Vec<String>,
    arrived: Instant,
    arrived_ms: i64,
}

/// A hub that accepts everything after `delay` and records it.
struct RecordingHub {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    delay: Arc<Mutex<Duration>>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct HubState {
    received: Arc<Mutex<Vec<Received>>>,
    delay: Arc<Mutex<Duration>>,
}

async fn publish(State(state): State<HubState>, body: axum::body::Bytes) -> String {
    let arrived = Instant::now();
    let arrived_ms = epoch_ms();
    let mut id = String::new();
    let mut topics = Vec::new();
    for (key, value) in url::form_urlencoded::parse(&body) {
        match &*key {
            "id" => id = value.into_owned(),
            "topic" => topics.push(value.into_owned()),
            _ => {}
        }
    }
    let delay = *state.delay.lock().unwrap_or_else(PoisonError::into_inner);
    tokio::time::sleep(delay).await;
    state
        .received
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Received {
            id: id.clone(),
            topics,
            arrived,
            arrived_ms,
        });
    id
}

impl RecordingHub {
    async fn start() -> Result<Self, Box<dyn std::error::Error>> {
        let state = HubState {
            received: Arc::default(),
            delay: Arc::new(Mutex::new(HUB_DELAY)),
        };
        let router = axum::Router::new()
            .route("/.well-known/mercure", post(publish))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/.well-known/mercure", listener.local_addr()?);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self {
            url,
            received: state.received,
            delay: state.delay,
            server,
        })
    }

    fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn reset(&self, delay: Duration) {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        *self.delay.lock().unwrap_or_else(PoisonError::into_inner) = delay;
    }
}

impl Drop for RecordingHub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

/// Commits `count` changes: change `n` (from `first`) sets order `o{n % orders}` to `r{n}`.
async fn commit_changes<DB: Dialect>(
    pool: &Pool<DB>,
    publisher: &Arc<dyn Publisher>,
    first: usize,
    count: usize,
    orders: usize,
) -> Result<(), mercure_track_sqlx::Error>
where
    String: mercure_track_sqlx::TrackedKey<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    OrderUpdate: mercure_track::FromContext<mercure_track_sqlx::ContextRow<DB>>,
{
    let mut session = TrackedSession::with_publisher(pool.clone(), publisher.clone()).outbox();
    session.track_changes::<OrderUpdate>();
    for n in first..first + count {
        Order::set_status_by_key(&mut session, format!("o{}", n % orders), format!("r{n}")).await?;
        session.commit().await?;
    }
    Ok(())
}

async fn clear_outbox<DB: Dialect>(pool: &Pool<DB>) -> Result<(), sqlx::Error>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    sqlx::raw_sql("DELETE FROM mercure_outbox")
        .execute(pool)
        .await?;
    Ok(())
}

async fn wait_drained<DB: Dialect>(pool: &Pool<DB>, deadline: Duration) -> bool {
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        if outbox::pending(pool).await.unwrap_or(1) == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

/// Runs one relay per pool until `stop` is dropped.
fn spawn_relays<DB: Dialect>(
    pools: &[Pool<DB>],
    publisher: &Arc<dyn Publisher>,
) -> (
    tokio::sync::watch::Sender<bool>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let tasks = pools
        .iter()
        .map(|pool| {
            let mut stopped = stopped.clone();
            let relay = Relay::new(pool.clone(), publisher.clone(), RelayConfig::default());
            tokio::spawn(relay.run(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }))
        })
        .collect();
    (stop, tasks)
}

async fn stop_relays(
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
) {
    let _ = stop.send(true);
    for task in tasks {
        let _ = task.await;
    }
}

/// Where the relays of a throughput run live.
enum Relays<'a, DB: Dialect> {
    /// In this process, one per pool.
    Tasks(&'a [Pool<DB>]),
    /// In that many child processes (PostgreSQL: the child connects to `url`, this process's
    /// schema).
    Processes(usize, &'a str),
}

/// Drains a filled outbox with the given relays; delivered/s, sent/s and the ratio.
async fn throughput<DB: Dialect>(
    pool: &Pool<DB>,
    hub: &RecordingHub,
    publisher: &Arc<dyn Publisher>,
    relays: Relays<'_, DB>,
    commits: usize,
    orders: usize,
) -> Result<Value, Box<dyn std::error::Error>>
where
    String: mercure_track_sqlx::TrackedKey<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    OrderUpdate: mercure_track::FromContext<mercure_track_sqlx::ContextRow<DB>>,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    clear_outbox(pool).await?;
    hub.reset(HUB_DELAY);
    commit_changes(pool, publisher, 0, commits, orders).await?;
    let events = outbox::pending(pool).await?;
    let started = Instant::now();
    let (count, processes) = match relays {
        Relays::Tasks(pools) => (pools.len(), false),
        Relays::Processes(count, _) => (count, true),
    };
    let drained;
    let seconds;
    match relays {
        Relays::Tasks(pools) => {
            let (stop, tasks) = spawn_relays(pools, publisher);
            drained = wait_drained(pool, Duration::from_secs(600)).await;
            seconds = started.elapsed().as_secs_f64();
            stop_relays(stop, tasks).await;
        }
        Relays::Processes(count, url) => {
            let mut children = Vec::new();
            for _ in 0..count {
                children.push(
                    std::process::Command::new(std::env::current_exe()?)
                        .arg("--relay")
                        .env(
                            CHILD,
                            format!(
                                "{url}\n{}\n{}",
                                format_args!("bench_{}", std::process::id()),
                                hub.url
                            ),
                        )
                        .spawn()?,
                );
            }
            drained = wait_drained(pool, Duration::from_secs(600)).await;
            seconds = started.elapsed().as_secs_f64();
            for mut child in children {
                // The children stop once the outbox is empty; a stuck one is killed.
                let until = Instant::now() + Duration::from_secs(30);
                while child.try_wait()?.is_none() && Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
    let sent = hub.received().len();
    let ids: std::collections::HashSet<_> = hub.received().into_iter().map(|r| r.id).collect();
    let concurrency = RelayConfig::default().concurrency * count;
    let bound = concurrency as f64 / HUB_DELAY.as_secs_f64();
    let sent_per_s = sent as f64 / seconds;
    Ok(json!({
        "relays": count,
        "processes": processes,
        "events": events,
        "drained": drained,
        "seconds": seconds,
        "delivered_per_s": events as f64 / seconds,
        "sent": sent,
        "sent_twice": sent - ids.len(),
        "sent_per_s": sent_per_s,
        "in_flight_bound_per_s": bound,
        "ratio_sent_to_bound": sent_per_s / bound,
    }))
}

/// Writers commit continuously while a relay runs: lag from write to the hub, per event.
async fn hot_topic<DB: Dialect>(
    pool: &Pool<DB>,
    hub: &RecordingHub,
    publisher: &Arc<dyn Publisher>,
    writers: usize,
    pace: Duration,
    duration: Duration,
    orders: usize,
) -> Result<Value, Box<dyn std::error::Error>>
where
    String: mercure_track_sqlx::TrackedKey<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    OrderUpdate: mercure_track::FromContext<mercure_track_sqlx::ContextRow<DB>>,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    (String, i64, i64, String): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    clear_outbox(pool).await?;
    hub.reset(HUB_DELAY);
    let (stop, tasks) = spawn_relays(std::slice::from_ref(pool), publisher);
    let until = Instant::now() + duration;
    let mut handles = Vec::new();
    for w in 0..writers {
        let (pool, publisher) = (pool.clone(), publisher.clone());
        handles.push(tokio::spawn(async move {
            let mut n = 0;
            let mut failed = 0;
            while Instant::now() < until {
                // Writer `w` changes orders w, w + writers, ...: writers do not wait on each
                // other's row locks; every status is new.
                let change = 10_000_000 * (w + 1) + (n * writers + w) % orders;
                let change = change + orders * 10 * n;
                if commit_changes(&pool, &publisher, change, 1, orders)
                    .await
                    .is_err()
                {
                    failed += 1;
                }
                n += 1;
                tokio::time::sleep(pace).await;
            }
            (n, failed)
        }));
    }
    let mut commits = 0;
    let mut failed = 0;
    for handle in handles {
        let (n, f) = handle.await?;
        commits += n;
        failed += f;
    }
    let pending_at_end = outbox::pending(pool).await?;
    let drained = wait_drained(pool, Duration::from_secs(600)).await;
    stop_relays(stop, tasks).await;
    // Each row's lag: from its write to the hub's receipt of its group's update.
    let arrivals: HashMap<String, i64> = hub
        .received()
        .into_iter()
        .map(|r| (r.id, r.arrived_ms))
        .collect();
    let rows: Vec<(String, i64, i64, String)> = sqlx::query_as(
        "SELECT g.id, o.created_at, o.group_seq, o.lane FROM mercure_outbox o \
         JOIN mercure_outbox g ON g.seq = o.group_seq",
    )
    .fetch_all(pool)
    .await?;
    let mut hot = Vec::new();
    let mut all = Vec::new();
    for (head, created, _, lane) in &rows {
        if let Some(arrived) = arrivals.get(head) {
            let lag = (arrived - created) as f64;
            all.push(lag);
            if lane == "[\"orders\"]" {
                hot.push(lag);
            }
        }
    }
    let (hot, all) = (sorted(hot), sorted(all));
    let hot_updates = hub
        .received()
        .iter()
        .filter(|r| r.topics == ["orders"])
        .count();
    Ok(json!({
        "writers": writers,
        "pause_between_commits_ms": pace.as_secs_f64() * 1e3,
        "seconds": duration.as_secs_f64(),
        "commits": commits,
        "commits_per_s": commits as f64 / duration.as_secs_f64(),
        "failed_commits": failed,
        "pending_when_writers_stopped": pending_at_end,
        "drained": drained,
        "hot_topic_events": hot.len(),
        "hot_topic_updates_sent": hot_updates,
        "hot_topic_lag_ms": { "p50": percentile(&hot, 0.5), "p99": percentile(&hot, 0.99), "max": hot.last() },
        "all_lag_ms": { "p50": percentile(&all, 0.5), "p99": percentile(&all, 0.99), "max": all.last() },
    }))
}

/// One commit at a time to an idle relay; the hub answers at once.
async fn idle_latency<DB: Dialect>(
    pool: &Pool<DB>,
    hub: &RecordingHub,
    publisher: &Arc<dyn Publisher>,
    commits: usize,
) -> Result<Value, Box<dyn std::error::Error>>
where
    String: mercure_track_sqlx::TrackedKey<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    OrderUpdate: mercure_track::FromContext<mercure_track_sqlx::ContextRow<DB>>,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    clear_outbox(pool).await?;
    hub.reset(Duration::ZERO);
    let (stop, tasks) = spawn_relays(std::slice::from_ref(pool), publisher);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut latencies = Vec::with_capacity(commits);
    for n in 0..commits {
        let before = hub.received().len();
        // A status never set before, so that every commit changes its row.
        let change = 900_000_000 + n;
        commit_changes(pool, publisher, change, 1, 1_000).await?;
        let committed = Instant::now();
        let until = committed + Duration::from_secs(10);
        // The order's update (to `orders/o{n}`) is the one timed.
        let topic = format!("orders/o{}", change % 1_000);
        loop {
            let received = hub.received();
            if let Some(r) = received[before.min(received.len())..]
                .iter()
                .find(|r| r.topics == [topic.as_str()])
            {
                latencies.push(r.arrived.saturating_duration_since(committed).as_secs_f64() * 1e3);
                break;
            }
            if Instant::now() > until {
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        // Idle again before the next commit.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_relays(stop, tasks).await;
    let missed = commits - latencies.len();
    let latencies = sorted(latencies);
    Ok(json!({
        "commits": commits,
        "missed": missed,
        "commit_to_hub_ms": { "p50": percentile(&latencies, 0.5), "p99": percentile(&latencies, 0.99), "max": latencies.last() },
    }))
}

/// The database of one run: its pool, the pools of the 3 relays of one process, and the URL
/// for relay processes (PostgreSQL).
struct Database<'a, DB: Dialect> {
    pool: &'a Pool<DB>,
    three: &'a [Pool<DB>],
    processes: Option<&'a str>,
}

async fn run_on<DB: Dialect>(
    name: &str,
    database: Database<'_, DB>,
    hub: &RecordingHub,
    publisher: &Arc<dyn Publisher>,
    quick: bool,
    verbose: bool,
) -> Result<Value, Box<dyn std::error::Error>>
where
    String: mercure_track_sqlx::TrackedKey<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    OrderUpdate: mercure_track::FromContext<mercure_track_sqlx::ContextRow<DB>>,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    (String, i64, i64, String): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let Database {
        pool,
        three,
        processes,
    } = database;
    outbox::create_table(pool).await?;
    let (commits, orders) = if quick { (1_000, 500) } else { (3_000, 1_000) };
    let one_pool = std::slice::from_ref(pool);
    let one = throughput(
        pool,
        hub,
        publisher,
        Relays::Tasks(one_pool),
        commits,
        orders,
    )
    .await?;
    let three_tasks =
        throughput(pool, hub, publisher, Relays::Tasks(three), commits, orders).await?;
    let three_processes = match processes {
        Some(url) => Some(
            throughput(
                pool,
                hub,
                publisher,
                Relays::Processes(3, url),
                commits,
                orders,
            )
            .await?,
        ),
        None => None,
    };
    let seconds = Duration::from_secs(if quick { 3 } else { 10 });
    let paced = hot_topic(
        pool,
        hub,
        publisher,
        10,
        Duration::from_millis(10),
        seconds,
        orders,
    )
    .await?;
    let flat_out = hot_topic(pool, hub, publisher, 10, Duration::ZERO, seconds, orders).await?;
    let idle = idle_latency(pool, hub, publisher, if quick { 30 } else { 200 }).await?;
    let result = json!({
        "throughput_1": one,
        "throughput_3": three_tasks,
        "throughput_3_processes": three_processes,
        "hot_topic_paced": paced,
        "hot_topic_flat_out": flat_out,
        "idle": idle,
    });
    if verbose {
        println!("relay on {name}: {result:#}");
    }
    Ok(result)
}

/// The variable that makes this program a relay process of the throughput run: the
/// PostgreSQL URL, the schema and the hub URL, one per line.
const CHILD: &str = "MERCURE_TRACK_BENCH_RELAY_CHILD";

/// A pool of 4 connections on `schema`.
async fn schema_pool(url: &str, schema: &str) -> Result<Pool<sqlx::Postgres>, sqlx::Error> {
    // The schema is the connections' search path from their start-up on.
    let options = url
        .parse::<sqlx::postgres::PgConnectOptions>()?
        .options([("search_path", schema)]);
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
}

/// A relay process: relays the outbox until it is empty, then stops.
async fn child(spec: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut parts = spec.lines();
    let (Some(url), Some(schema), Some(hub)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("relay child: bad specification".into());
    };
    let pool = schema_pool(url, schema).await?;
    let publisher: Arc<dyn Publisher> = Arc::new(HubPublisher::new(
        HubConfig::new(hub)?.key(JwtKey::new(crate::KEY)),
    )?);
    let (stop, tasks) = spawn_relays(std::slice::from_ref(&pool), &publisher);
    let until = Instant::now() + Duration::from_secs(600);
    while Instant::now() < until && outbox::pending(&pool).await.unwrap_or(1) > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop_relays(stop, tasks).await;
    pool.close().await;
    Ok(())
}

/// Runs the relay bench and prints its JSON on the last line.
pub async fn main(quick: bool, json_only: bool) -> Result<(), Box<dyn std::error::Error>> {
    if let Ok(spec) = std::env::var(CHILD) {
        return child(&spec).await;
    }
    let verbose = !json_only;
    let hub = RecordingHub::start().await?;
    let publisher: Arc<dyn Publisher> = Arc::new(HubPublisher::new(
        HubConfig::new(&hub.url)?.key(JwtKey::new(crate::KEY)),
    )?);
    let mut report = serde_json::Map::new();
    report.insert("hub_delay_ms".into(), json!(HUB_DELAY.as_millis() as u64));
    let sqlite = runner::sqlite_pool(1_000).await?;
    let three = vec![sqlite.pool.clone(); 3];
    let database = Database {
        pool: &sqlite.pool,
        three: &three,
        processes: None,
    };
    let result = run_on("sqlite", database, &hub, &publisher, quick, verbose).await?;
    report.insert("sqlite".into(), result);
    drop(sqlite);
    match std::env::var("MERCURE_TRACK_PG_URL") {
        Ok(url) if !url.is_empty() => {
            let postgres = runner::postgres_pool(&url, 1_000).await?;
            // Three relays of one process, each with a pool of its own (as three instances).
            let mut three = vec![postgres.pool.clone()];
            for _ in 0..2 {
                three.push(schema_pool(&url, &format!("bench_{}", std::process::id())).await?);
            }
            let database = Database {
                pool: &postgres.pool,
                three: &three,
                processes: Some(&url),
            };
            let result = run_on("postgres", database, &hub, &publisher, quick, verbose).await?;
            for pool in &three[1..] {
                pool.close().await;
            }
            report.insert("postgres".into(), result);
            postgres.drop_schema().await;
        }
        _ => {
            if verbose {
                println!("postgres: skipped (set MERCURE_TRACK_PG_URL)");
            }
        }
    }
    println!("{}", Value::Object(report));
    Ok(())
}
