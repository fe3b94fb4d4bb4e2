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

/// A loopback address with a port that nothing listens on (free a moment ago).
pub fn unused_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
}
