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
