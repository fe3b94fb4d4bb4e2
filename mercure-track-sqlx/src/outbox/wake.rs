//! Wake-ups: a commit in outbox mode wakes the relays at once, so that they need not poll.
//!
//! In the process: every running relay registers its state under a key naming its database
//! (the SQLite file; PostgreSQL's host, port and database), and a commit on a pool with the
//! same key wakes them. Across processes (PostgreSQL): the committing transaction sends
//! `NOTIFY mercure_outbox` with its schema as the payload, and each relay listens.
//! A wake-up for another schema only costs one claim query; polling remains as a fallback.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::time::Duration;

use sqlx::{Pool, Postgres, Sqlite};
use tokio::sync::Notify;

/// The PostgreSQL channel of the wake-ups.
pub(crate) const CHANNEL: &str = "mercure_outbox";

/// What a running relay shares with the committing sessions and with `stats`.
#[derive(Debug, Default)]
pub(crate) struct RelayState {
    /// Woken by commits and by notifications.
    pub(crate) wake: Notify,
    /// Why the relay is paused, if it is.
    pub(crate) paused: Mutex<Option<String>>,
    /// The scope of its outbox (PostgreSQL: the schema).
    pub(crate) scope: Mutex<Option<String>>,
}

impl RelayState {
    pub(crate) fn set_paused(&self, reason: Option<String>) {
        *self.paused.lock().unwrap_or_else(PoisonError::into_inner) = reason;
    }

    pub(crate) fn set_scope(&self, scope: Option<String>) {
        *self.scope.lock().unwrap_or_else(PoisonError::into_inner) = scope;
    }

    pub(crate) fn scope(&self) -> Option<String> {
        self.scope
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn paused(&self) -> Option<String> {
        self.paused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

type Registry = Mutex<HashMap<String, Vec<Weak<RelayState>>>>;

static RELAYS: LazyLock<Registry> = LazyLock::new(Registry::default);

/// The key naming the database of `pool`, for the wake-ups in the process.
pub(crate) fn database_key<DB: sqlx::Database>(pool: &Pool<DB>) -> String {
    let any: &dyn Any = pool;
    if let Some(pool) = any.downcast_ref::<Pool<Sqlite>>() {
        return format!("sqlite:{}", pool.connect_options().get_filename().display());
    }
    if let Some(pool) = any.downcast_ref::<Pool<Postgres>>() {
        let options = pool.connect_options();
        return format!(
            "postgres:{}:{}:{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or_default()
        );
    }
    String::from(DB::NAME)
}

/// Registers a running relay of the database `key`.
pub(crate) fn register(key: String, state: &Arc<RelayState>) {
    let mut relays = RELAYS.lock().unwrap_or_else(PoisonError::into_inner);
    let list = relays.entry(key).or_default();
    list.retain(|relay| relay.strong_count() > 0);
    list.push(Arc::downgrade(state));
}

/// The running relays of the database `key` in this process.
pub(crate) fn relays(key: &str) -> Vec<Arc<RelayState>> {
    RELAYS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(key)
        .map(|list| list.iter().filter_map(Weak::upgrade).collect())
        .unwrap_or_default()
}

/// Wakes the relays of `pool`'s database in this process: called after an outbox commit.
pub(crate) fn committed<DB: sqlx::Database>(pool: &Pool<DB>) {
    for relay in relays(&database_key(pool)) {
        relay.wake.notify_one();
    }
}

/// On PostgreSQL, listens for the commits of other processes and wakes `state`; `None` on
/// other databases. The task ends when aborted (the relay aborts it when it stops).
pub(crate) fn listen<DB: sqlx::Database>(
    pool: &Pool<DB>,
    state: Arc<RelayState>,
    retry: Duration,
) -> Option<tokio::task::JoinHandle<()>> {
    let any: &dyn Any = pool;
    let pool = any.downcast_ref::<Pool<Postgres>>()?.clone();
    Some(tokio::spawn(async move {
        loop {
            if let Err(error) = listen_once(&pool, &state).await {
                tracing::debug!(%error, "outbox relay: LISTEN failed, polling meanwhile");
            }
            // Missed notifications are covered by a claim on reconnection.
            state.wake.notify_one();
            tokio::time::sleep(retry).await;
        }
    }))
}

async fn listen_once(pool: &Pool<Postgres>, state: &RelayState) -> Result<(), sqlx::Error> {
    let schema: Option<String> = sqlx::query_scalar("SELECT current_schema()::text")
        .fetch_one(pool)
        .await?;
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    loop {
        let notification = listener.recv().await?;
        if schema.is_none() || schema.as_deref() == Some(notification.payload()) {
            state.wake.notify_one();
        }
    }
}
