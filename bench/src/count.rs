//! Counting what reaches the databases and the hub, outside the library under measure.
//!
//! - **PostgreSQL**: a TCP proxy between the counting pool and the server reads the frontend
//!   protocol and counts the statements the server is asked to run: every `Execute` message
//!   (extended protocol: one per execution of a prepared statement) and every `Query`
//!   message (simple protocol: `BEGIN`, `COMMIT`, ...). `Parse` messages are counted apart
//!   (sqlx prepares a statement once per connection).
//! - **SQLite**: in process, there is no wire. Every statement sqlx steps is reported by sqlx's
//!   statement log (`sqlx::query` events), counted by a subscriber that listens to nothing else;
//!   `BEGIN` and `COMMIT` bypass that log, so each commit is counted by SQLite's own commit
//!   hook (`sqlite3_commit_hook`), and `BEGIN` is not counted (the workspace forbids the
//!   `unsafe` that `sqlite3_trace_v2` needs; each side opens one transaction per commit).
//! - **The hub**: a middleware in front of the development hub's routes counts the `POST`s it
//!   answered with success.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber, span};

static PG_STATEMENTS: AtomicU64 = AtomicU64::new(0);
static PG_PARSES: AtomicU64 = AtomicU64::new(0);
static SQLITE_STATEMENTS: AtomicU64 = AtomicU64::new(0);
static SQLITE_COMMITS: AtomicU64 = AtomicU64::new(0);
static HUB_PUBLISHES: AtomicU64 = AtomicU64::new(0);
/// Whether sqlx's statement log is listened to (only while a SQLite count runs: otherwise
/// sqlx does not even format its log lines).
static LISTENING: AtomicBool = AtomicBool::new(false);

/// The counters at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// PostgreSQL `Execute` + `Query` messages.
    pub pg_statements: u64,
    /// PostgreSQL `Parse` messages.
    pub pg_parses: u64,
    /// SQLite statements stepped by sqlx, plus commits.
    pub sqlite_statements: u64,
    /// Publishes the hub accepted.
    pub hub_publishes: u64,
}

impl Counts {
    /// The counters now.
    pub fn now() -> Self {
        Self {
            pg_statements: PG_STATEMENTS.load(Ordering::SeqCst),
            pg_parses: PG_PARSES.load(Ordering::SeqCst),
            sqlite_statements: SQLITE_STATEMENTS.load(Ordering::SeqCst)
                + SQLITE_COMMITS.load(Ordering::SeqCst),
            hub_publishes: HUB_PUBLISHES.load(Ordering::SeqCst),
        }
    }

    /// What was counted since `before`.
    pub fn since(self, before: Self) -> Self {
        Self {
            pg_statements: self.pg_statements - before.pg_statements,
            pg_parses: self.pg_parses - before.pg_parses,
            sqlite_statements: self.sqlite_statements - before.sqlite_statements,
            hub_publishes: self.hub_publishes - before.hub_publishes,
        }
    }
}

/// Listens to sqlx's statement log (SQLite counts) while `on`.
pub fn listen_to_sqlite(on: bool) {
    LISTENING.store(on, Ordering::SeqCst);
}

/// Counts one SQLite commit (from the connection's commit hook); lets it commit.
pub fn sqlite_commit() -> bool {
    SQLITE_COMMITS.fetch_add(1, Ordering::SeqCst);
    true
}

/// A subscriber that counts sqlx's statement events and disables everything else.
struct StatementLog;

const SQLX_QUERY: &str = "sqlx::query";

impl Subscriber for StatementLog {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if metadata.target() == SQLX_QUERY {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == SQLX_QUERY && LISTENING.load(Ordering::Relaxed)
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        if event.metadata().target() == SQLX_QUERY {
            SQLITE_STATEMENTS.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

/// Installs the statement-log subscriber for the process.
pub fn install_statement_log() {
    let _ = tracing::subscriber::set_global_default(StatementLog);
}

/// Counts the `POST`s the hub answered with success.
pub async fn hub_counter(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let post = request.method() == axum::http::Method::POST;
    let response = next.run(request).await;
    if post && response.status().is_success() {
        HUB_PUBLISHES.fetch_add(1, Ordering::SeqCst);
    }
    response
}

/// Starts a counting proxy to the PostgreSQL server at `upstream` (`host:port`); returns the
/// proxy's address. Connect to it without TLS (`sslmode=disable`): it reads the protocol.
pub async fn pg_proxy(upstream: String) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                if let Err(error) = relay(client, &upstream).await {
                    eprintln!("counting proxy: {error}");
                }
            });
        }
    });
    Ok(addr)
}

async fn relay(client: TcpStream, upstream: &str) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let back =
        tokio::spawn(async move { tokio::io::copy(&mut server_read, &mut client_write).await });
    let mut parser = Frontend::default();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let read = client_read.read(&mut buf).await?;
        if read == 0 {
            break;
        }
        parser.feed(&buf[..read]);
        server_write.write_all(&buf[..read]).await?;
    }
    let _ = server_write.shutdown().await;
    back.abort();
    Ok(())
}

/// The PostgreSQL frontend messages of one connection, as they stream by.
#[derive(Default)]
struct Frontend {
    pending: Vec<u8>,
    /// Past the startup message (which, as `SSLRequest`, has no type byte).
    started: bool,
}

/// `SSLRequest` and `GSSENCRequest` come before the startup message, without a type byte.
const PRE_STARTUP_CODES: [u32; 2] = [80_877_103, 80_877_104];

impl Frontend {
    fn feed(&mut self, data: &[u8]) {
        self.pending.extend_from_slice(data);
        let mut at = 0;
        loop {
            let rest = &self.pending[at..];
            if !self.started {
                let (Some(len), Some(code)) = (be_u32(rest, 0), be_u32(rest, 4)) else {
                    break;
                };
                let len = len as usize;
                if rest.len() < len {
                    break;
                }
                self.started = !PRE_STARTUP_CODES.contains(&code);
                at += len.max(8);
            } else {
                let Some(len) = be_u32(rest, 1) else {
                    break;
                };
                let len = len as usize;
                if rest.len() < 1 + len {
                    break;
                }
                match rest[0] {
                    b'E' | b'Q' => {
                        PG_STATEMENTS.fetch_add(1, Ordering::SeqCst);
                    }
                    b'P' => {
                        PG_PARSES.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {}
                }
                at += 1 + len.max(4);
            }
        }
        self.pending.drain(..at);
    }
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let slice = bytes.get(at..at + 4)?;
    Some(u32::from_be_bytes([slice[0], slice[1], slice[2], slice[3]]))
}
