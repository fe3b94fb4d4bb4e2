//! A development hub whose publish endpoint can be made to fail on demand, for fault tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mercure_track::hub::{DevHub, DevHubConfig};
use mercure_track::publisher::JwtKey;

/// The hub's key in the fault tests.
pub const KEY: &str = "fault-test-key-0123456789abcdef";

/// A hub on loopback; while `failing` is set, every publish answers 500. Stopped on drop.
pub struct FlakyHub {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Make publishes answer 500.
    pub failing: Arc<AtomicBool>,
    /// Publish requests received, failed ones included.
    pub publishes: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl FlakyHub {
    /// Starts a hub on `addr` (port 0 for any).
    pub async fn start(addr: SocketAddr) -> Self {
        let key = JwtKey::new(KEY);
        let hub = DevHub::new(DevHubConfig::new(key.clone(), key)).expect("hub");
        let failing = Arc::new(AtomicBool::new(false));
        let publishes = Arc::new(AtomicUsize::new(0));
        let (fail, count) = (failing.clone(), publishes.clone());
        let router: axum::Router = hub.router().layer(axum::middleware::from_fn(
            move |request: Request, next: Next| {
                let (fail, count) = (fail.clone(), count.clone());
                async move {
                    if request.method() == Method::POST {
                        count.fetch_add(1, Ordering::SeqCst);
                        if fail.load(Ordering::SeqCst) {
                            return (StatusCode::INTERNAL_SERVER_ERROR, "induced failure")
                                .into_response();
                        }
                    }
                    let response: Response = next.run(request).await;
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
            server,
        }
    }

    /// The hub URL.
    pub fn url(&self) -> String {
        format!("http://{}/.well-known/mercure", self.addr)
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
