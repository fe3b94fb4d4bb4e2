//! The load test of the example application: `clients` concurrent clients click the pages'
//! actions for `duration` against the application running in this process with its embedded
//! development hub, then the database is checked against what reached the hub.
//!
//! What reached the hub is counted **at the hub**: a subscriber to every topic (`*`, with a JWT
//! for the private updates) records each update it receives. What was committed is read **from
//! the database**: before the load starts, triggers are installed that write every change an
//! event is triggered by (an order's status; a coloring version inserted or its status or
//! progress changed; an svg's status; an image's selections) into an audit table, inside the
//! transaction that makes it, so the audit holds exactly the committed changes. Each audit row
//! is labelled with its transaction: on PostgreSQL by `txid_current()` in the trigger; on SQLite
//! (which has no transaction id) by the connection's update hook (the audit rows a transaction
//! inserts) and commit hook (they committed together), on the application's own pool. So the
//! events each commit must publish are known exactly: one `order_update` / `image_update` per
//! changed order / image, one `list_update` naming the orders whose status changed. With the
//! outbox, its rows are the committed events themselves, checked one by one as well.
//!
//! The verdict ([`LoadReport::failures`]): no answer 5xx and no transport error; no event lost
//! (every committed change's events reached the hub), none invented; with direct delivery each
//! exactly once (no update id twice, per-commit counts equal on PostgreSQL); with the outbox at
//! least once, duplicates only with the same id and the same data, and no row left undelivered.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mercure_track::publisher::{Algorithm, HubConfig, JwtKey, JwtSigner};
use mercure_track::{HubPublisher, Publisher};
use serde_json::Value;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqlitePool, SqlitePoolOptions};

use crate::app::{self, AppError, RunningApp};
use crate::config::{AppConfig, DEVELOPMENT_KEY};

/// Why a load run could not be carried out (a failed verdict is not an error: see
/// [`LoadReport::failures`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The application did not start.
    #[error("the application did not start: {0}")]
    App(#[from] AppError),
    /// The audit could not be installed or read.
    #[error("audit: {0}")]
    Database(#[from] sqlx::Error),
    /// The hub subscription or the final marker failed.
    #[error("hub: {0}")]
    Hub(String),
}

/// The size and mode of a run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Concurrent clients.
    pub clients: usize,
    /// How long they click.
    pub duration: Duration,
    /// Outbox delivery (else direct).
    pub outbox: bool,
    /// The simulated duration of each processing step of the services.
    pub step: Duration,
    /// How long to wait for the background work and the deliveries after the load.
    pub settle: Duration,
}

impl LoadConfig {
    /// `clients` clients for `duration`, direct delivery, 5 ms steps.
    pub fn new(clients: usize, duration: Duration) -> Self {
        Self {
            clients,
            duration,
            outbox: false,
            step: Duration::from_millis(5),
            settle: Duration::from_secs(120),
        }
    }
}

/// A database made for one run: a new SQLite file, or a new schema on a PostgreSQL server.
pub struct Scratch {
    url: String,
    place: Place,
}

enum Place {
    File(std::path::PathBuf),
    Schema { server: String, schema: String },
}

impl Scratch {
    /// A new SQLite file in the temporary directory (the application opens it in WAL mode).
    pub fn sqlite() -> Self {
        let path = std::env::temp_dir().join(format!("mercure-track-load-{}.sqlite", unique()));
        Self {
            url: format!("sqlite://{}", path.display()),
            place: Place::File(path),
        }
    }

    /// A new schema on the PostgreSQL server at `server` (`postgres://...`); the URL it gives
    /// selects it with `search_path`.
    pub async fn postgres(server: &str) -> Result<Self, sqlx::Error> {
        let schema = format!("load_{}", unique().replace('-', "_"));
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(server)
            .await?;
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&pool)
            .await?;
        pool.close().await;
        let separator = if server.contains('?') { '&' } else { '?' };
        Ok(Self {
            url: format!("{server}{separator}options=-c%20search_path%3D{schema}"),
            place: Place::Schema {
                server: server.to_owned(),
                schema,
            },
        })
    }

    /// The `DATABASE_URL` of the database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Removes the database.
    pub async fn finish(self) {
        match self.place {
            Place::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Place::Schema { server, schema } => {
                if let Ok(pool) = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&server)
                    .await
                {
                    let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                        .execute(&pool)
                        .await;
                    pool.close().await;
                }
            }
        }
    }
}

fn unique() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The figures of a run and its verdict.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// `sqlite` or `postgres`, `direct` or `outbox`, clients and duration.
    pub label: String,
    /// Requests answered.
    pub requests: usize,
    /// Answers by status code.
    pub statuses: BTreeMap<u16, usize>,
    /// Requests that got no answer (transport errors).
    pub transport_errors: usize,
    /// The first few 5xx answers and transport errors: what was asked and what came back.
    pub server_errors: Vec<String>,
    /// Committed changes in the audit.
    pub changes: usize,
    /// Committed transactions in the audit.
    pub commits: Option<usize>,
    /// Events the committed changes call for.
    pub expected_events: usize,
    /// Updates received at the hub (deliveries, duplicates included).
    pub received: usize,
    /// Distinct update ids received.
    pub distinct_ids: usize,
    /// Deliveries of an id received before.
    pub duplicates: usize,
    /// With the outbox: the list updates the commits call for, and how many reached the hub
    /// (the relay merges list updates waiting for the same topic into one: fewer arrive than
    /// were committed, each order named all the same).
    pub merged_lists: Option<(usize, usize)>,
    /// Seconds the load ran, and from its end until every event had reached the hub.
    pub load_secs: f64,
    /// See [`LoadReport::load_secs`].
    pub settle_secs: f64,
    /// Everything that failed the verdict.
    pub failures: Vec<String>,
}

impl LoadReport {
    /// Responses with a 5xx status.
    pub fn server_error_count(&self) -> usize {
        self.statuses
            .iter()
            .filter(|(status, _)| **status >= 500)
            .map(|(_, count)| count)
            .sum()
    }

    /// What failed: empty when the run passed.
    pub fn failures(&self) -> &[String] {
        &self.failures
    }

    /// The figures as one JSON object.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "label": self.label,
            "requests": self.requests,
            "requests_per_s": self.requests as f64 / self.load_secs.max(f64::EPSILON),
            "statuses": self.statuses.iter().map(|(s, n)| (s.to_string(), Value::from(*n))).collect::<serde_json::Map<_, _>>(),
            "server_errors": self.server_error_count(),
            "transport_errors": self.transport_errors,
            "changes": self.changes,
            "commits": self.commits,
            "expected_events": self.expected_events,
            "merged_lists": self.merged_lists.map(|(committed, received)| serde_json::json!({
                "committed": committed,
                "received": received,
            })),
            "received": self.received,
            "distinct_ids": self.distinct_ids,
            "duplicates": self.duplicates,
            "load_secs": self.load_secs,
            "settle_secs": self.settle_secs,
            "failures": self.failures,
        })
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} requests ({:.0}/s), statuses {:?}, 5xx {}, transport errors {}; {} changes",
            self.label,
            self.requests,
            self.requests as f64 / self.load_secs.max(f64::EPSILON),
            self.statuses,
            self.server_error_count(),
            self.transport_errors,
            self.changes,
        )?;
        if let Some(commits) = self.commits {
            write!(f, " in {commits} commits")?;
        }
        write!(
            f,
            "; {} events expected, {} received ({} ids, {} duplicates)",
            self.expected_events, self.received, self.distinct_ids, self.duplicates,
        )?;
        if let Some((committed, received)) = self.merged_lists {
            write!(
                f,
                ", of which list updates {committed} committed, merged by the relay into {received}"
            )?;
        }
        write!(
            f,
            ", settled in {:.2} s; {}",
            self.settle_secs,
            if self.failures.is_empty() {
                "PASS".to_owned()
            } else {
                format!("FAIL: {}", self.failures.join("; "))
            }
        )
    }
}

/// Runs the load against the application on `database_url` (a [`Scratch`] database: the run
/// installs its audit triggers there).
pub async fn run(database_url: &str, config: &LoadConfig) -> Result<LoadReport, LoadError> {
    let postgres = !database_url.starts_with("sqlite:");
    let mut app_config = AppConfig::embedded_on_free_port(config.step);
    app_config.database_url = Some(database_url.to_owned());
    app_config.outbox = config.outbox;
    let labels = Arc::new(Mutex::new(TxLabels::default()));
    let running = if postgres {
        app::start(app_config).await?
    } else {
        let hooks = labels.clone();
        let pool = app::sqlite_pool()
            .after_connect(move |conn, _| {
                let hooks = hooks.clone();
                Box::pin(async move { label_transactions(conn, hooks).await })
            })
            .connect_with(app::sqlite_options(database_url)?)
            .await?;
        app::start_on_sqlite(app_config, pool, database_url.to_owned()).await?
    };

    let audit = if postgres {
        AuditDb::Postgres(
            PgPoolOptions::new()
                .max_connections(2)
                .connect(database_url)
                .await?,
        )
    } else {
        AuditDb::Sqlite(
            SqlitePoolOptions::new()
                .max_connections(1)
                .connect(database_url)
                .await?,
        )
    };
    audit.install().await?;

    let mut report = LoadReport {
        label: format!(
            "{} {} {}x{}s",
            if postgres { "postgres" } else { "sqlite" },
            if config.outbox { "outbox" } else { "direct" },
            config.clients,
            config.duration.as_secs_f64()
        ),
        ..LoadReport::default()
    };
    let result = drive_and_check(&running, &audit, &labels, config, &mut report).await;
    running.shutdown(Duration::from_secs(30)).await;
    audit.close().await;
    result.map(|()| report)
}

async fn drive_and_check(
    running: &RunningApp,
    audit: &AuditDb,
    labels: &Mutex<TxLabels>,
    config: &LoadConfig,
    report: &mut LoadReport,
) -> Result<(), LoadError> {
    let hub_url = format!("{}{}", running.url, mercure_track::wire::HUB_PATH);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(config.clients.max(1))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|error| LoadError::Hub(error.to_string()))?;
    let subscriber = HubRecorder::subscribe(&hub_url).await?;

    // The load.
    let started = Instant::now();
    let deadline = started + config.duration;
    let clients: Vec<_> = (0..config.clients)
        .map(|n| {
            let http = http.clone();
            let base = running.url.clone();
            tokio::spawn(client(http, base, n as u64, deadline))
        })
        .collect();
    for client in clients {
        let tally = client
            .await
            .map_err(|error| LoadError::Hub(format!("a client panicked: {error}")))?;
        report.requests += tally.requests;
        report.transport_errors += tally.transport_errors;
        for (status, count) in tally.statuses {
            *report.statuses.entry(status).or_default() += count;
        }
        for error in tally.errors {
            if report.server_errors.len() < 10 {
                report.server_errors.push(error);
            }
        }
    }
    report.load_secs = started.elapsed().as_secs_f64();

    // Settle: the services finish, the outbox empties, then a marker published last reaches
    // the subscriber after everything published before it.
    let settle_started = Instant::now();
    let settle_until = settle_started + config.settle;
    if !running.wait_idle(config.settle).await {
        report
            .failures
            .push("background work still running after the settle time".to_owned());
    }
    if config.outbox {
        loop {
            let pending = audit.outbox_pending().await?;
            if pending == 0 {
                break;
            }
            if Instant::now() >= settle_until {
                report.failures.push(format!(
                    "{pending} outbox rows undelivered after the settle time"
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let received = subscriber
        .finish(
            &hub_url,
            settle_until.saturating_duration_since(Instant::now()),
        )
        .await?;
    report.settle_secs = settle_started.elapsed().as_secs_f64();

    let changes = audit.changes(labels).await?;
    let outbox = if config.outbox {
        Some(audit.outbox_rows().await?)
    } else {
        None
    };
    verdict(report, &changes, &received, outbox.as_deref());
    Ok(())
}

/// What one client did.
#[derive(Default)]
struct Tally {
    requests: usize,
    transport_errors: usize,
    statuses: BTreeMap<u16, usize>,
    errors: Vec<String>,
}

const ORDERS: [&str; 3] = ["ord-1001", "ord-1002", "ord-1003"];
const IMAGES: i64 = 4;

/// One client: clicks a random action of the list or order page until `deadline`, one request
/// at a time, as a person at a browser would (quickly).
async fn client(http: reqwest::Client, base: String, seed: u64, deadline: Instant) -> Tally {
    let mut random =
        XorShift(0x9E37_79B9_7F4A_7C15 ^ (seed + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    let mut colorings: Vec<(i64, i64)> = Vec::new();
    let mut tally = Tally::default();
    while Instant::now() < deadline {
        let order = ORDERS[random.below(ORDERS.len() as u64) as usize];
        let image = 1 + random.below(IMAGES as u64) as i64;
        let (post, path) = match random.below(10) {
            0 => (false, "/".to_owned()),
            1 => (false, "/api/orders".to_owned()),
            2 => (false, format!("/orders/{order}")),
            3 => (false, format!("/api/orders/{order}")),
            4 => (true, format!("/api/orders/{order}/advance")),
            5 => {
                let form = if random.below(2) == 0 {
                    "by_hand"
                } else {
                    "autotracked"
                };
                (true, format!("/api/orders/{order}/ingest?form={form}"))
            }
            6 => (true, format!("/api/images/{image}/colorings")),
            7 => match colorings.get(random.below(colorings.len().max(1) as u64) as usize) {
                // Sometimes another image's coloring: a 422 is part of the load.
                Some((owner, version)) if random.below(4) > 0 => (
                    true,
                    format!("/api/images/{owner}/select-coloring/{version}"),
                ),
                Some((_, version)) => (
                    true,
                    format!("/api/images/{image}/select-coloring/{version}"),
                ),
                None => (true, format!("/api/images/{image}/colorings")),
            },
            8 => (
                true,
                format!("/api/images/{image}/select-svg/{}", 1 + random.below(2)),
            ),
            _ => (true, format!("/api/orders/{order}/advance")),
        };
        let url = format!("{base}{path}");
        let request = if post {
            http.post(&url)
        } else {
            http.get(&url)
        };
        tally.requests += 1;
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                *tally.statuses.entry(status).or_default() += 1;
                let body = response.text().await.unwrap_or_default();
                if status >= 500 {
                    tally.errors.push(format!(
                        "{} {path} -> {status} {body}",
                        if post { "POST" } else { "GET" }
                    ));
                } else if status == 202 && path.ends_with("/colorings") {
                    let id = serde_json::from_str::<Value>(&body)
                        .ok()
                        .and_then(|v| v["coloring_version_id"].as_i64());
                    let owner = path
                        .trim_start_matches("/api/images/")
                        .split('/')
                        .next()
                        .and_then(|s| s.parse().ok());
                    if let (Some(owner), Some(id)) = (owner, id) {
                        colorings.push((owner, id));
                    }
                }
            }
            Err(error) => {
                tally.transport_errors += 1;
                tally.errors.push(format!("{path}: {error}"));
            }
        }
    }
    tally
}

/// A small deterministic generator: the load needs variety, not statistics.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        if n == 0 { 0 } else { self.0 % n }
    }
}

/// The key of an event: its type and what it names.
type EventKey = (String, String, Option<i64>);

/// One change of the audit.
struct Change {
    tx: Option<i64>,
    key: EventKey,
}

/// One update received at the hub.
#[derive(Debug, Clone)]
struct Delivery {
    /// The topic it was received on.
    topic: String,
    id: String,
    data: String,
}

/// What an update's data names: an individual event's key, or a list update's orders.
enum Named {
    One(EventKey),
    List(Vec<String>),
}

fn parse_event(data: &str) -> Option<Named> {
    let value: Value = serde_json::from_str(data).ok()?;
    let kind = value["type"].as_str()?;
    match kind {
        "list_update" => Some(Named::List(
            value["order_ids"]
                .as_array()?
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        )),
        _ => Some(Named::One((
            kind.to_owned(),
            value["order_id"].as_str()?.to_owned(),
            value["image_id"].as_i64(),
        ))),
    }
}

/// The events committed changes call for, per commit (when commits are known).
fn expected_per_commit(changes: &[Change]) -> Option<(Vec<EventKey>, Vec<Vec<String>>, usize)> {
    let mut commits: BTreeMap<i64, BTreeSet<EventKey>> = BTreeMap::new();
    for change in changes {
        commits
            .entry(change.tx?)
            .or_default()
            .insert(change.key.clone());
    }
    let mut singles = Vec::new();
    let mut lists = Vec::new();
    for keys in commits.values() {
        let orders: Vec<String> = keys
            .iter()
            .filter(|(kind, _, _)| kind == "order_update")
            .map(|(_, order, _)| order.clone())
            .collect();
        if !orders.is_empty() {
            lists.push(orders);
        }
        singles.extend(keys.iter().cloned());
    }
    Some((singles, lists, commits.len()))
}

fn count<T: Ord + Clone>(items: impl IntoIterator<Item = T>) -> BTreeMap<T, usize> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(item).or_insert(0) += 1;
    }
    counts
}

fn verdict(
    report: &mut LoadReport,
    changes: &[Change],
    received: &[Delivery],
    outbox: Option<&[(String, String)]>,
) {
    let mut failures = std::mem::take(&mut report.failures);
    verdict_into(report, changes, received, outbox, &mut failures);
    report.failures = failures;
}

fn verdict_into(
    report: &mut LoadReport,
    changes: &[Change],
    received: &[Delivery],
    outbox: Option<&[(String, String)]>,
    failures: &mut Vec<String>,
) {
    if report.server_error_count() > 0 {
        failures.push(format!(
            "{} answers 5xx, e.g. {:?}",
            report.server_error_count(),
            report.server_errors
        ));
    }
    if report.transport_errors > 0 {
        failures.push(format!(
            "{} requests got no answer",
            report.transport_errors
        ));
    }
    report.changes = changes.len();
    report.received = received.len();

    // Each update on its own topic: list updates on `orders`, the others on their order's.
    let misplaced: Vec<String> = received
        .iter()
        .filter(|delivery| {
            let expected = match parse_event(&delivery.data) {
                Some(Named::List(_)) => "orders".to_owned(),
                Some(Named::One((_, order, _))) => format!("orders/{order}"),
                None => return false,
            };
            delivery.topic != expected
        })
        .map(|delivery| format!("{} on {}", delivery.data, delivery.topic))
        .collect();
    if !misplaced.is_empty() {
        failures.push(format!(
            "{} updates on the wrong topic, e.g. {:?}",
            misplaced.len(),
            &misplaced[..misplaced.len().min(3)]
        ));
    }

    // Deliveries by id: a duplicate must repeat its first delivery exactly.
    let mut by_id: BTreeMap<&str, &str> = BTreeMap::new();
    for delivery in received {
        match by_id.get(delivery.id.as_str()) {
            Some(data) => {
                report.duplicates += 1;
                if *data != delivery.data {
                    failures.push(format!(
                        "update {} delivered with different data: {data} / {}",
                        delivery.id, delivery.data
                    ));
                }
            }
            None => {
                by_id.insert(&delivery.id, &delivery.data);
            }
        }
    }
    report.distinct_ids = by_id.len();
    let outbox_mode = outbox.is_some();
    if !outbox_mode && report.duplicates > 0 {
        failures.push(format!(
            "{} updates delivered twice with direct delivery",
            report.duplicates
        ));
    }

    // The distinct updates, by what they name.
    let mut singles: Vec<EventKey> = Vec::new();
    let mut lists: Vec<Vec<String>> = Vec::new();
    for data in by_id.values() {
        match parse_event(data) {
            Some(Named::One(key)) => singles.push(key),
            Some(Named::List(orders)) => lists.push(orders),
            None => failures.push(format!("an update the application does not send: {data}")),
        }
    }

    // With the outbox, its rows are the committed events: each must have reached the hub
    // (with its data), and nothing else may have.
    if let Some(rows) = outbox {
        let rows_by_id: BTreeMap<&str, &str> = rows
            .iter()
            .map(|(id, data)| (id.as_str(), data.as_str()))
            .collect();
        let lost: Vec<&str> = rows_by_id
            .iter()
            .filter(|(id, data)| by_id.get(*id) != Some(*data))
            // The relay merges list updates waiting for `orders` (the union of their ids,
            // under the first one's id): those are checked below by the orders they name.
            .filter(|(_, data)| !matches!(parse_event(data), Some(Named::List(_))))
            .map(|(id, _)| *id)
            .collect();
        if !lost.is_empty() {
            failures.push(format!(
                "{} committed outbox events never reached the hub (or with other data), e.g. {:?}",
                lost.len(),
                &lost[..lost.len().min(5)]
            ));
        }
        let invented = by_id
            .keys()
            .filter(|id| !rows_by_id.contains_key(*id))
            .count();
        if invented > 0 {
            failures.push(format!(
                "{invented} updates at the hub are not in the outbox"
            ));
        }
    }

    // The audit against the distinct updates.
    let received_singles = count(singles.iter().cloned());
    let received_lists = count(lists.iter().map(|orders| {
        let mut orders = orders.clone();
        orders.sort();
        orders
    }));
    match expected_per_commit(changes) {
        Some((expected_singles, expected_lists, commits)) => {
            report.commits = Some(commits);
            report.expected_events = expected_singles.len() + expected_lists.len();
            compare(
                "event",
                &count(expected_singles),
                &received_singles,
                failures,
            );
            if outbox_mode {
                report.merged_lists = Some((expected_lists.len(), lists.len()));
                // Merged by the relay: every order a committed list update names must be named
                // at the hub, and no other.
                let named = |lists: &[Vec<String>]| -> BTreeSet<String> {
                    lists.iter().flatten().cloned().collect()
                };
                if named(&expected_lists) != named(&lists) {
                    failures.push(format!(
                        "list updates name other orders: {:?} committed, {:?} at the hub",
                        named(&expected_lists),
                        named(&lists)
                    ));
                }
            } else {
                compare(
                    "list update",
                    &count(expected_lists),
                    &received_lists,
                    failures,
                );
            }
        }
        None => failures.push(format!(
            "{} committed changes whose transaction is unknown",
            changes.iter().filter(|c| c.tx.is_none()).count()
        )),
    }
}

/// Fails when `received` differs from `expected` (both counted by key).
fn compare<K: Ord + std::fmt::Debug>(
    what: &str,
    expected: &BTreeMap<K, usize>,
    received: &BTreeMap<K, usize>,
    failures: &mut Vec<String>,
) {
    let keys: BTreeSet<&K> = expected.keys().chain(received.keys()).collect();
    let mut differences = Vec::new();
    for key in keys {
        let want = expected.get(key).copied().unwrap_or(0);
        let got = received.get(key).copied().unwrap_or(0);
        if want != got {
            differences.push(format!("{key:?}: {want} committed, {got} at the hub"));
        }
    }
    if !differences.is_empty() {
        failures.push(format!(
            "{} {what} keys differ ({})",
            differences.len(),
            differences[..differences.len().min(5)].join(", ")
        ));
    }
}

/// The run's own connection to the application's database.
enum AuditDb {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The same statement on either pool.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            AuditDb::Sqlite($pool) => $body,
            AuditDb::Postgres($pool) => $body,
        }
    };
}

/// The audit: which changes trigger which event (see the domain's `#[trigger]`s).
const AUDIT_SQLITE: &str = "
CREATE TABLE load_audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tx BIGINT,
    kind TEXT NOT NULL,
    order_id TEXT NOT NULL,
    image_id BIGINT
);
CREATE TRIGGER load_audit_order AFTER UPDATE OF status ON orders
WHEN OLD.status IS NOT NEW.status BEGIN
    INSERT INTO load_audit (kind, order_id) VALUES ('order_update', NEW.id);
END;
CREATE TRIGGER load_audit_coloring_insert AFTER INSERT ON coloring_versions BEGIN
    INSERT INTO load_audit (kind, order_id, image_id)
    SELECT 'image_update', li.order_id, i.id FROM images i
    JOIN line_items li ON li.id = i.line_item_id WHERE i.id = NEW.image_id;
END;
CREATE TRIGGER load_audit_coloring AFTER UPDATE ON coloring_versions
WHEN OLD.status IS NOT NEW.status OR OLD.progress IS NOT NEW.progress BEGIN
    INSERT INTO load_audit (kind, order_id, image_id)
    SELECT 'image_update', li.order_id, i.id FROM images i
    JOIN line_items li ON li.id = i.line_item_id WHERE i.id = NEW.image_id;
END;
CREATE TRIGGER load_audit_svg AFTER UPDATE OF status ON svg_versions
WHEN OLD.status IS NOT NEW.status BEGIN
    INSERT INTO load_audit (kind, order_id, image_id)
    SELECT 'image_update', li.order_id, i.id FROM images i
    JOIN line_items li ON li.id = i.line_item_id WHERE i.id = NEW.image_id;
END;
CREATE TRIGGER load_audit_image AFTER UPDATE ON images
WHEN OLD.selected_coloring_id IS NOT NEW.selected_coloring_id
  OR OLD.selected_svg_id IS NOT NEW.selected_svg_id BEGIN
    INSERT INTO load_audit (kind, order_id, image_id)
    SELECT 'image_update', li.order_id, NEW.id FROM line_items li WHERE li.id = NEW.line_item_id;
END;
";

/// The same audit on PostgreSQL, with the transaction id of each change.
const AUDIT_POSTGRES: &str = "
CREATE TABLE load_audit (
    seq BIGSERIAL PRIMARY KEY,
    tx BIGINT,
    kind TEXT NOT NULL,
    order_id TEXT NOT NULL,
    image_id BIGINT
);
CREATE FUNCTION load_audit_order() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    INSERT INTO load_audit (tx, kind, order_id) VALUES (txid_current(), 'order_update', NEW.id);
    RETURN NULL;
END $$;
CREATE FUNCTION load_audit_version() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    INSERT INTO load_audit (tx, kind, order_id, image_id)
    SELECT txid_current(), 'image_update', li.order_id, i.id FROM images i
    JOIN line_items li ON li.id = i.line_item_id WHERE i.id = NEW.image_id;
    RETURN NULL;
END $$;
CREATE FUNCTION load_audit_image() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    INSERT INTO load_audit (tx, kind, order_id, image_id)
    SELECT txid_current(), 'image_update', li.order_id, NEW.id FROM line_items li
    WHERE li.id = NEW.line_item_id;
    RETURN NULL;
END $$;
CREATE TRIGGER load_audit_order AFTER UPDATE ON orders FOR EACH ROW
WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION load_audit_order();
CREATE TRIGGER load_audit_coloring_insert AFTER INSERT ON coloring_versions FOR EACH ROW
EXECUTE FUNCTION load_audit_version();
CREATE TRIGGER load_audit_coloring AFTER UPDATE ON coloring_versions FOR EACH ROW
WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.progress IS DISTINCT FROM NEW.progress)
EXECUTE FUNCTION load_audit_version();
CREATE TRIGGER load_audit_svg AFTER UPDATE ON svg_versions FOR EACH ROW
WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION load_audit_version();
CREATE TRIGGER load_audit_image AFTER UPDATE ON images FOR EACH ROW
WHEN (OLD.selected_coloring_id IS DISTINCT FROM NEW.selected_coloring_id
   OR OLD.selected_svg_id IS DISTINCT FROM NEW.selected_svg_id)
EXECUTE FUNCTION load_audit_image();
";

type AuditRow = (i64, Option<i64>, String, String, Option<i64>);

/// The SQLite audit rows' transactions, as the application's connections commit them.
#[derive(Default)]
struct TxLabels {
    /// Transactions committed so far.
    commits: i64,
    /// Audit row (`seq`) → its transaction.
    committed: BTreeMap<i64, i64>,
}

/// Hooks a connection of the application's pool: the audit rows its transaction inserts
/// (update hook) are labelled with one new transaction number when it commits (commit hook)
/// and forgotten when it rolls back. The hooks only record: they never touch the connection.
async fn label_transactions(
    conn: &mut sqlx::SqliteConnection,
    labels: Arc<Mutex<TxLabels>>,
) -> Result<(), sqlx::Error> {
    let pending = Arc::new(Mutex::new(Vec::<i64>::new()));
    let mut handle = conn.lock_handle().await?;
    let inserted = pending.clone();
    handle.set_update_hook(move |change| {
        if change.table == "load_audit"
            && matches!(change.operation, sqlx::sqlite::SqliteOperation::Insert)
        {
            inserted
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(change.rowid);
        }
    });
    let committing = pending.clone();
    handle.set_commit_hook(move || {
        let rows = std::mem::take(&mut *committing.lock().unwrap_or_else(PoisonError::into_inner));
        if !rows.is_empty() {
            let mut labels = labels.lock().unwrap_or_else(PoisonError::into_inner);
            labels.commits += 1;
            let tx = labels.commits;
            for row in rows {
                labels.committed.insert(row, tx);
            }
        }
        true
    });
    handle.set_rollback_hook(move || {
        pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    });
    Ok(())
}

impl AuditDb {
    async fn install(&self) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(pool) => sqlx::raw_sql(AUDIT_SQLITE).execute(pool).await.map(|_| ()),
            Self::Postgres(pool) => sqlx::raw_sql(AUDIT_POSTGRES)
                .execute(pool)
                .await
                .map(|_| ()),
        }
    }

    /// The audit, each change with its transaction (from the trigger on PostgreSQL, from
    /// `labels` on SQLite).
    async fn changes(&self, labels: &Mutex<TxLabels>) -> Result<Vec<Change>, sqlx::Error> {
        const SQL: &str = "SELECT seq, tx, kind, order_id, image_id FROM load_audit ORDER BY seq";
        let rows: Vec<AuditRow> =
            on_pool!(self, pool => sqlx::query_as(SQL).fetch_all(pool).await?);
        let labels = labels.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(rows
            .into_iter()
            .map(|(seq, tx, kind, order_id, image_id)| Change {
                tx: tx.or_else(|| labels.committed.get(&seq).copied()),
                key: (kind, order_id, image_id),
            })
            .collect())
    }

    async fn outbox_pending(&self) -> Result<i64, sqlx::Error> {
        const SQL: &str = "SELECT COUNT(*) FROM mercure_outbox \
                           WHERE delivered_at IS NULL AND dead_at IS NULL";
        let (pending,): (i64,) = on_pool!(self, pool => sqlx::query_as(SQL).fetch_one(pool).await?);
        Ok(pending)
    }

    async fn outbox_rows(&self) -> Result<Vec<(String, String)>, sqlx::Error> {
        const SQL: &str = "SELECT id, data FROM mercure_outbox ORDER BY seq";
        Ok(on_pool!(self, pool => sqlx::query_as(SQL).fetch_all(pool).await?))
    }

    async fn close(&self) {
        on_pool!(self, pool => pool.close().await);
    }
}

/// Subscribers at the hub, one per topic the application publishes to (the list's `orders`
/// and each order's `orders/{id}`), recording each update with the topic it arrived on.
struct HubRecorder {
    streams: Vec<tokio::task::JoinHandle<()>>,
    received: Arc<Mutex<Vec<Delivery>>>,
    marker: String,
}

impl HubRecorder {
    async fn subscribe(hub_url: &str) -> Result<Self, LoadError> {
        let key = JwtKey::new(DEVELOPMENT_KEY);
        let token = JwtSigner::subscriber(&key, Algorithm::Hs256, vec!["*".to_owned()], None)
            .map_err(|error| LoadError::Hub(error.to_string()))?
            .token()
            .map_err(|error| LoadError::Hub(error.to_string()))?;
        let marker = format!("load-marker-{}", unique());
        let received = Arc::new(Mutex::new(Vec::new()));
        let http = reqwest::Client::new();
        let mut streams = Vec::new();
        for topic in topics() {
            let response = http
                .get(hub_url)
                .bearer_auth(&token)
                .query(&[("topic", topic.as_str())])
                .send()
                .await
                .map_err(|error| LoadError::Hub(error.to_string()))?;
            if !response.status().is_success() {
                return Err(LoadError::Hub(format!(
                    "the subscription to {topic} was refused: {}",
                    response.status()
                )));
            }
            streams.push(tokio::spawn(read_stream(
                response,
                topic,
                received.clone(),
                marker.clone(),
            )));
        }
        Ok(Self {
            streams,
            received,
            marker,
        })
    }

    /// Publishes a marker to every topic and waits (at most `wait`) until each stream has it:
    /// the hub delivers in order, so everything published before it has arrived too. Returns
    /// the updates received before the marker.
    async fn finish(self, hub_url: &str, wait: Duration) -> Result<Vec<Delivery>, LoadError> {
        let publisher = HubPublisher::new(
            HubConfig::new(hub_url)
                .map_err(|error| LoadError::Hub(error.to_string()))?
                .key(JwtKey::new(DEVELOPMENT_KEY)),
        )
        .map_err(|error| LoadError::Hub(error.to_string()))?;
        publisher
            .publish_update(mercure_track::wire::Update::new(
                topics(),
                self.marker.clone(),
            ))
            .await
            .map_err(|error| LoadError::Hub(format!("the marker was not published: {error}")))?;
        let until = tokio::time::Instant::now() + wait.max(Duration::from_secs(5));
        for mut stream in self.streams {
            if tokio::time::timeout_at(until, &mut stream).await.is_err() {
                stream.abort();
                return Err(LoadError::Hub(
                    "the marker did not arrive in time".to_owned(),
                ));
            }
        }
        let received =
            std::mem::take(&mut *self.received.lock().unwrap_or_else(PoisonError::into_inner));
        Ok(received)
    }
}

/// The topics the application publishes to.
fn topics() -> Vec<String> {
    std::iter::once("orders".to_owned())
        .chain(ORDERS.iter().map(|order| format!("orders/{order}")))
        .collect()
}

/// Reads server-sent events of the subscription to `topic` into `received` until the marker
/// (whose data is `marker`) arrives or the stream ends.
async fn read_stream(
    mut response: reqwest::Response,
    topic: String,
    received: Arc<Mutex<Vec<Delivery>>>,
    marker: String,
) {
    let mut buffer = String::new();
    let (mut id, mut data) = (String::new(), String::new());
    while let Ok(Some(chunk)) = response.chunk().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find('\n') {
            let line: String = buffer.drain(..=end).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if data == marker {
                    return;
                }
                if !data.is_empty() {
                    received
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(Delivery {
                            topic: topic.clone(),
                            id: std::mem::take(&mut id),
                            data: std::mem::take(&mut data),
                        });
                }
                id.clear();
                data.clear();
            } else if let Some(value) = line.strip_prefix("id:") {
                id = value.trim_start().to_owned();
            } else if let Some(value) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(value.strip_prefix(' ').unwrap_or(value));
            }
        }
    }
}
