//! A development hub that records every publish it receives and can be made slow or failing
//! on demand, for the fault tests and the relay bench. What it counts is what reached the
//! hub, independent of the library's own reports.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mercure_track::hub::{DevHub, DevHubConfig};
use mercure_track::publisher::JwtKey;

/// The hub's key in the fault tests.
pub const KEY: &str = "fault-test-key-0123456789abcdef";

/// One publish request as the hub received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The `id` field.
    pub id: Option<String>,
    /// The `topic` fields.
    pub topics: Vec<String>,
    /// The `data` field.
    pub data: String,
    /// What the hub answered.
    pub status: u16,
    /// When the request arrived, since the hub started.
    pub arrived: Duration,
    /// When the answer left, since the hub started.
    pub answered: Duration,
}

impl Received {
    /// Whether the hub accepted it.
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// How the hub misbehaves, changeable while it runs.
#[derive(Debug, Default)]
pub struct Faults {
    /// Answer every publish with this status instead (0: behave).
    pub status: AtomicU16,
    /// Wait this many milliseconds before answering a publish.
    pub delay_ms: AtomicU64,
    /// Add up to this many milliseconds, pseudo-random per request, to the delay.
    pub jitter_ms: AtomicU64,
}

/// A hub on loopback; see the module documentation. Stopped on drop.
pub struct FlakyHub {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Make publishes answer 500 (kept for the older tests; same as `faults.status = 500`).
    pub failing: Arc<AtomicBool>,
    /// Publish requests received, failed ones included.
    pub publishes: Arc<AtomicUsize>,
    /// The faults to inject.
    pub faults: Arc<Faults>,
    received: Arc<Mutex<Vec<Received>>>,
    started: Instant,
    server: tokio::task::JoinHandle<()>,
}

fn form_fields(body: &[u8]) -> (Option<String>, Vec<String>, String) {
    let mut id = None;
    let mut topics = Vec::new();
    let mut data = String::new();
    for (key, value) in url::form_urlencoded::parse(body) {
        match &*key {
            "id" => id = Some(value.into_owned()),
            "topic" => topics.push(value.into_owned()),
            "data" => data = value.into_owned(),
            _ => {}
        }
    }
    (id, topics, data)
}

impl FlakyHub {
    /// Starts a hub on `addr` (port 0 for any).
    pub async fn start(addr: SocketAddr) -> Self {
        let key = JwtKey::new(KEY);
        let hub = DevHub::new(DevHubConfig::new(key.clone(), key)).expect("hub");
        let failing = Arc::new(AtomicBool::new(false));
        let publishes = Arc::new(AtomicUsize::new(0));
        let faults = Arc::new(Faults::default());
        let received = Arc::new(Mutex::new(Vec::new()));
        let started = Instant::now();
        let counter = Arc::new(AtomicU64::new(0));
        let (fail, count, injected, record) = (
            failing.clone(),
            publishes.clone(),
            faults.clone(),
            received.clone(),
        );
        let router: axum::Router = hub.router().layer(axum::middleware::from_fn(
            move |request: Request, next: Next| {
                let (fail, count, faults, record, counter) = (
                    fail.clone(),
                    count.clone(),
                    injected.clone(),
                    record.clone(),
                    counter.clone(),
                );
                async move {
                    if request.method() != Method::POST {
                        return next.run(request).await;
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    let arrived = started.elapsed();
                    let (parts, body) = request.into_parts();
                    let Ok(bytes) = axum::body::to_bytes(body, 16 << 20).await else {
                        return StatusCode::BAD_REQUEST.into_response();
                    };
                    let (id, topics, data) = form_fields(&bytes);
                    let jitter = faults.jitter_ms.load(Ordering::SeqCst);
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let extra = if jitter == 0 {
                        0
                    } else {
                        n.wrapping_mul(2_654_435_761) % (jitter + 1)
                    };
                    let delay = faults.delay_ms.load(Ordering::SeqCst) + extra;
                    if delay > 0 {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    let forced = match faults.status.load(Ordering::SeqCst) {
                        0 if fail.load(Ordering::SeqCst) => 500,
                        status => status,
                    };
                    let response: Response = if forced != 0 {
                        let status = StatusCode::from_u16(forced)
                            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                        (status, "induced failure").into_response()
                    } else {
                        next.run(Request::from_parts(parts, Body::from(bytes)))
                            .await
                    };
                    record
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(Received {
                            id,
                            topics,
                            data,
                            status: response.status().as_u16(),
                            arrived,
                            answered: started.elapsed(),
                        });
                    response
                }
            },
        ));
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            addr,
            failing,
            publishes,
            faults,
            received,
            started,
            server,
        }
    }

    /// The hub URL.
    pub fn url(&self) -> String {
        format!("http://{}/.well-known/mercure", self.addr)
    }

    /// Every publish received so far, in the order the answers left.
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The publishes the hub accepted, in the order the answers left.
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(Received::accepted)
            .collect()
    }

    /// Time since the hub started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for FlakyHub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A loopback address with a port that nothing listens on, to start a hub on later.
///
/// The port is taken below Linux's ephemeral range (32 768 and up): the listeners that other
/// tests bind to port 0 cannot be handed the same port in the meantime.
pub fn unused_addr() -> SocketAddr {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 2_000) as u16 * 5;
    loop {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % 10_000;
        let addr = SocketAddr::from(([127, 0, 0, 1], base.wrapping_add(offset).max(20_000)));
        if std::net::TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
}

/// One outbox row, as the delivery checks need it.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    /// Position in the outbox.
    pub seq: i64,
    /// The event id.
    pub id: String,
    /// The lane (the topics as JSON).
    pub lane: String,
    /// Whether it is a batch event (may be merged).
    pub batch: bool,
    /// The event JSON.
    pub data: String,
}

/// Every row of the outbox, in outbox order.
pub async fn outbox_rows<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> Vec<OutboxRow>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    (i64, String, String, bool, String): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    sqlx::query_as::<DB, (i64, String, String, bool, String)>(
        "SELECT seq, id, lane, batch, data FROM mercure_outbox ORDER BY seq",
    )
    .fetch_all(pool)
    .await
    .expect("outbox rows")
    .into_iter()
    .map(|(seq, id, lane, batch, data)| OutboxRow {
        seq,
        id,
        lane,
        batch,
        data,
    })
    .collect()
}

/// What [`check_delivery`] counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delivery {
    /// Updates the hub accepted.
    pub accepted: usize,
    /// Accepted updates whose id had been accepted before.
    pub duplicates: usize,
    /// Accepted updates that carried several merged batch events.
    pub merged: usize,
}

fn list_items(data: &str) -> std::collections::BTreeSet<String> {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_str::<serde_json::Value>(data)
    else {
        return Default::default();
    };
    fields
        .values()
        .filter_map(serde_json::Value::as_array)
        .flatten()
        .map(ToString::to_string)
        .collect()
}

/// Checks what the hub accepted against the outbox, and panics naming the broken promise:
/// every accepted update is an outbox event (a merged one carries its first event's id);
/// an id accepted twice carries the same data, and only when `duplicates_allowed` (after a
/// crash); every individual event was accepted; every batch event's ids were accepted in its
/// lane, in an update whose id is that event's or an earlier one's; and, in each lane whose
/// order is promised (`ordered_lane`), the first acceptances follow the outbox order.
pub fn check_delivery(
    rows: &[OutboxRow],
    accepted: &[Received],
    duplicates_allowed: bool,
    ordered_lane: impl Fn(&OutboxRow) -> bool,
) -> Delivery {
    use std::collections::{BTreeSet, HashMap};
    let by_id: HashMap<&str, &OutboxRow> = rows.iter().map(|row| (row.id.as_str(), row)).collect();
    let mut first: HashMap<&str, &Received> = HashMap::new();
    let mut delivery = Delivery::default();
    let mut lane_seqs: HashMap<&str, Vec<i64>> = HashMap::new();
    let mut lane_items: HashMap<&str, Vec<(i64, BTreeSet<String>)>> = HashMap::new();
    for received in accepted {
        delivery.accepted += 1;
        let id = received
            .id
            .as_deref()
            .expect("every relayed update has an id");
        let row = by_id
            .get(id)
            .unwrap_or_else(|| panic!("the hub accepted {id}, which is no outbox event"));
        assert_eq!(
            serde_json::to_string(&received.topics).expect("topics"),
            row.lane,
            "{id} went to other topics than its lane"
        );
        if let Some(previous) = first.get(id) {
            delivery.duplicates += 1;
            assert!(duplicates_allowed, "{id} was accepted twice");
            assert_eq!(
                previous.data, received.data,
                "{id} was sent twice with other data"
            );
            continue;
        }
        first.insert(id, received);
        lane_seqs
            .entry(row.lane.as_str())
            .or_default()
            .push(row.seq);
        if row.batch {
            if received.data != row.data {
                delivery.merged += 1;
            }
            lane_items
                .entry(row.lane.as_str())
                .or_default()
                .push((row.seq, list_items(&received.data)));
        } else {
            assert_eq!(received.data, row.data, "{id} changed on the way");
        }
    }
    for row in rows {
        if row.batch {
            let covered: BTreeSet<String> = lane_items
                .get(row.lane.as_str())
                .into_iter()
                .flatten()
                .filter(|(seq, _)| *seq <= row.seq)
                .flat_map(|(_, items)| items.iter().cloned())
                .collect();
            let missing: Vec<_> = list_items(&row.data)
                .difference(&covered)
                .cloned()
                .collect();
            assert!(
                missing.is_empty(),
                "batch event {} ({}): {missing:?} never reached the hub",
                row.id,
                row.data
            );
        } else {
            assert!(
                first.contains_key(row.id.as_str()),
                "event {} ({}) never reached the hub",
                row.id,
                row.data
            );
        }
    }
    for row in rows.iter().filter(|row| ordered_lane(row)) {
        if let Some(seqs) = lane_seqs.get(row.lane.as_str()) {
            assert!(
                seqs.windows(2).all(|pair| pair[0] < pair[1]),
                "lane {} left out of outbox order: {seqs:?}",
                row.lane
            );
        }
    }
    delivery
}

/// Whether two accepted publishes were at the hub at the same time (the relay published
/// concurrently).
pub fn overlapped(received: &[Received]) -> bool {
    let mut spans: Vec<(Duration, Duration)> =
        received.iter().map(|r| (r.arrived, r.answered)).collect();
    spans.sort();
    spans.windows(2).any(|pair| pair[1].0 < pair[0].1)
}

/// Panics when one update id was sent with different data on different attempts (failed ones
/// included): a retry or a takeover must re-send the very same update.
pub fn assert_same_data_per_id(received: &[Received]) {
    let mut seen: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for r in received {
        let Some(id) = r.id.as_deref() else { continue };
        if let Some(data) = seen.insert(id, &r.data) {
            assert_eq!(data, r.data, "{id} was sent again with other data");
        }
    }
}
