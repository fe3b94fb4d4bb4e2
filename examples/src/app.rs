//! Starting and stopping the application.

use std::sync::Arc;
use std::time::Duration;

use mercure_track::FromContext;
use mercure_track::hub::{DevHub, DevHubConfig};
use mercure_track::publisher::JwtKey;
use mercure_track::subscriber::Discovery;
use mercure_track::{HubPublisher, Publisher};
use mercure_track_sqlx::capture::{self, Capture, CaptureConfig, CaptureDelivery, CaptureLoop};
use mercure_track_sqlx::outbox::{Relay, RelayConfig};
use mercure_track_sqlx::{
    Background, ContextRow, Dialect, TaskTracker, TrackedKey, TrackedSession,
};
use sqlx::Pool;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::{AppConfig, DEVELOPMENT_KEY};
use crate::domain::{ColoringVersion, Image, ImageUpdate, Order, OrderUpdate, SvgVersion};
use crate::session::{AppSession, task_db_session};
use crate::web::{self, AppState};

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The hub or publisher configuration is invalid.
    #[error("mercure: {0}")]
    Mercure(#[from] mercure_track::publisher::ConfigError),
    /// The outbox table could not be created.
    #[error("outbox: {0}")]
    Outbox(#[from] mercure_track_sqlx::Error),
    /// The socket could not be bound.
    #[error("listen: {0}")]
    Io(#[from] std::io::Error),
    /// `DATABASE_URL` names another database (shown with its password redacted).
    #[error("DATABASE_URL must start with sqlite: or postgres://, not {0:?}")]
    UnsupportedDatabase(String),
}

/// A running application.
pub struct RunningApp {
    /// The base URL (`http://127.0.0.1:3000`).
    pub url: String,
    /// Where the database is (print it with [`redact_url`](crate::config::redact_url)).
    pub database: String,
    tasks: TaskTracker,
    /// Background tasks that run until shutdown (the outbox relay, the capture loop).
    resident_tasks: usize,
    shutdown: Option<oneshot::Sender<()>>,
    /// Dropped to stop the resident tasks.
    resident_stop: Option<watch::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
}

impl RunningApp {
    /// Waits until no background work is in flight (services, publishes; the outbox relay and
    /// the capture loop, which run until shutdown, do not count) or `deadline` passes; returns whether it is
    /// idle. Work started by later requests is not waited for.
    pub async fn wait_idle(&self, deadline: Duration) -> bool {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            if self.tasks.len() <= self.resident_tasks {
                return true;
            }
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops accepting requests, stops the outbox relay and the capture loop if there are,
    /// then drains the background tasks (publishes, services) within `deadline`; returns how
    /// many it could not finish.
    pub async fn shutdown(mut self, deadline: Duration) -> usize {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let _ = tokio::time::timeout(deadline, &mut self.server).await;
        // Every resident task waits for this sender to go.
        drop(self.resident_stop.take());
        mercure_track_sqlx::drain(&self.tasks, deadline).await
    }
}

/// Opens the database, migrates and seeds it, binds the socket and serves.
pub async fn start(config: AppConfig) -> Result<RunningApp, AppError> {
    let database = match &config.database_url {
        Some(url) => url.clone(),
        None => {
            // A new file for every start: a second application in this process (the tests
            // start several) must not reuse the name of a database whose connections may still
            // be closing (the last one to close removes its `-wal` file by name).
            static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let start = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "mercure-track-demo-{}-{start}.sqlite",
                std::process::id()
            ));
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            format!("sqlite://{}", path.display())
        }
    };
    if database.starts_with("sqlite:") {
        let pool = sqlite_pool()
            .connect_with(sqlite_options(&database)?)
            .await?;
        start_on_sqlite(config, pool, database).await
    } else if database.starts_with("postgres:") || database.starts_with("postgresql:") {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect(&database)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        serve(config, pool, database).await
    } else {
        Err(AppError::UnsupportedDatabase(crate::config::redact_url(
            &database,
        )))
    }
}

/// How the application opens a SQLite file: created if missing, WAL journal (readers do not
/// wait for the writer), a busy timeout (a writer waits for the write lock instead of failing).
pub fn sqlite_options(url: &str) -> Result<SqliteConnectOptions, sqlx::Error> {
    Ok(url
        .parse::<SqliteConnectOptions>()?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(10)))
}

/// The application's SQLite pool settings.
pub fn sqlite_pool() -> SqlitePoolOptions {
    SqlitePoolOptions::new().max_connections(8)
}

/// Migrates and serves on a SQLite pool opened with [`sqlite_options`] and [`sqlite_pool`]
/// (the load test adds per-connection hooks this way); `database` is where it is, for display.
pub async fn start_on_sqlite(
    config: AppConfig,
    pool: sqlx::SqlitePool,
    database: String,
) -> Result<RunningApp, AppError> {
    sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
    serve(config, pool, database).await
}

async fn serve<DB: Dialect>(
    config: AppConfig,
    pool: Pool<DB>,
    database: String,
) -> Result<RunningApp, AppError>
where
    TrackedSession<DB>: AppSession,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    (i64,): for<'r> sqlx::FromRow<'r, DB::Row>,
    String: TrackedKey<DB>,
    i64: TrackedKey<DB>,
    OrderUpdate: FromContext<ContextRow<DB>>,
    ImageUpdate: FromContext<ContextRow<DB>>,
{
    let (orders,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orders")
        .fetch_one(&pool)
        .await?;
    if orders == 0 {
        sqlx::raw_sql(SEED).execute(&pool).await?;
    }
    // After the seed: the seed's rows are not changes to publish.
    let capture = if config.capture {
        Some(install_capture(&pool).await?)
    } else {
        None
    };
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}");

    // Mercure, as configured from the environment; the embedded hub, when no MERCURE_URL,
    // is this application's own URL, with this application as the tokens' issuer unless one
    // is configured.
    let mut hub_config = config.publisher.clone();
    let mut discovery_config = config.discovery.clone();
    let embedded_hub = match &config.mercure_url {
        Some(_) => None,
        None => {
            let hub_url = format!("{url}{}", mercure_track::wire::HUB_PATH);
            hub_config = hub_config.with_url(&hub_url)?;
            let issuer = hub_config
                .identity
                .issuer
                .get_or_insert_with(|| url.clone());
            discovery_config
                .identity
                .issuer
                .get_or_insert_with(|| issuer.clone());
            discovery_config.identity.audience.get_or_insert(hub_url);
            let mut hub = DevHubConfig::new(
                hub_config
                    .key
                    .clone()
                    .unwrap_or_else(|| JwtKey::new(DEVELOPMENT_KEY)),
                discovery_config.key.clone(),
            )
            .protocol(hub_config.protocol)
            .issuer(issuer.clone());
            hub.publisher_algorithm = hub_config.algorithm;
            hub.subscriber_algorithm = discovery_config.algorithm;
            Some(DevHub::new(hub)?)
        }
    };
    let publisher: Arc<dyn Publisher> = Arc::new(HubPublisher::new(hub_config)?);
    let discovery = Arc::new(Discovery::new(discovery_config)?);

    let tasks = TaskTracker::new();
    let (resident_stop, stopped) = watch::channel(());
    // Completes when `resident_stop` is dropped.
    let stop = move || {
        let mut stopped = stopped.clone();
        async move { while stopped.changed().await.is_ok() {} }
    };
    let mut resident_tasks = 0;
    if config.outbox {
        mercure_track_sqlx::outbox::create_table(&pool).await?;
        let relay = Relay::new(pool.clone(), publisher.clone(), RelayConfig::default());
        tasks.spawn(relay.run(stop()));
        resident_tasks += 1;
    }
    if let Some(capture) = &capture {
        let delivery = if config.outbox {
            CaptureDelivery::Outbox
        } else {
            CaptureDelivery::Direct
        };
        let worker = CaptureLoop::new(
            pool.clone(),
            capture.clone(),
            publisher.clone(),
            CaptureConfig::default()
                .delivery(delivery)
                .poll_interval(CAPTURE_POLL),
        );
        tasks.spawn(worker.run(stop()));
        resident_tasks += 1;
    }
    let outbox = config.outbox;
    // One limit for the background publishes of every session.
    let session_tasks = Background::new(tasks.clone());
    let session_publisher = publisher.clone();
    let state = AppState::<TrackedSession<DB>> {
        new_session: Arc::new(move || {
            task_db_session(
                &pool,
                session_publisher.clone(),
                Some(&session_tasks),
                outbox,
                capture.as_ref(),
            )
        }),
        tasks: tasks.clone(),
        discovery,
        publisher: publisher.clone(),
        step: config.step,
    };
    let mut router = web::router(state);
    if let Some(hub) = &embedded_hub {
        router = router.merge(hub.router());
    }
    let (shutdown, shutdown_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = shutdown_rx.await;
            })
            .await
    });
    Ok(RunningApp {
        url,
        database,
        tasks,
        resident_tasks,
        shutdown: Some(shutdown),
        resident_stop: Some(resident_stop),
        server,
    })
}

/// How often the capture loop looks for changes committed by other programs when nothing wakes
/// it (on SQLite, always: PostgreSQL's commits wake it at once).
const CAPTURE_POLL: Duration = Duration::from_millis(200);

/// Installs the capture of the orders and the image tables (idempotent: the triggers are
/// replaced at every start), and says which events their changes publish. Line items are not
/// captured: no event triggers on them.
async fn install_capture<DB: Dialect>(pool: &Pool<DB>) -> Result<Arc<Capture<DB>>, AppError>
where
    String: TrackedKey<DB>,
    i64: TrackedKey<DB>,
    OrderUpdate: FromContext<ContextRow<DB>>,
    ImageUpdate: FromContext<ContextRow<DB>>,
{
    capture::install::<DB, Order>(pool).await?;
    capture::install::<DB, Image>(pool).await?;
    capture::install::<DB, ColoringVersion>(pool).await?;
    capture::install::<DB, SvgVersion>(pool).await?;
    Ok(Arc::new(
        Capture::new()
            .model::<Order>()
            .model::<Image>()
            .model::<ColoringVersion>()
            .model::<SvgVersion>()
            .track::<OrderUpdate>()
            .track::<ImageUpdate>(),
    ))
}

/// A few orders to look at, inserted into an empty database.
const SEED: &str = "
INSERT INTO orders (id, customer, status) VALUES
    ('ord-1001', 'Ada Lovelace', 'NEW'),
    ('ord-1002', 'Grace Hopper', 'PROCESSING'),
    ('ord-1003', 'Alan Turing', 'READY_FOR_REVIEW'),
    ('ord-1004', 'Katherine Johnson', 'READY_FOR_REVIEW'),
    ('ord-1005', 'Edsger Dijkstra', 'READY_FOR_REVIEW');
INSERT INTO line_items (id, order_id, title) VALUES
    (1, 'ord-1001', 'Cat portrait'),
    (2, 'ord-1001', 'Mountain lake'),
    (3, 'ord-1002', 'Harbour at dusk'),
    (4, 'ord-1003', 'Family photo');
INSERT INTO images (id, line_item_id) VALUES (1, 1), (2, 2), (3, 3), (4, 4);
INSERT INTO svg_versions (id, image_id, status) VALUES (1, 1, 'COMPLETED'), (2, 3, 'COMPLETED');
";
