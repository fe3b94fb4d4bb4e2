//! Delivery that loses nothing: the transactional outbox under faults, on SQLite and
//! PostgreSQL, against the development hub on loopback. Every wait is bounded.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mercure_track::publisher::{HubConfig, JwtKey};
use mercure_track::{HubPublisher, Publisher};
use mercure_track_sqlx::outbox::{self, Relay, RelayConfig};
use mercure_track_sqlx::{Dialect, TrackedSession};
use mercure_track_tests::domain::{Order, OrderUpdate};
use mercure_track_tests::flaky::{FlakyHub, KEY, unused_addr};
use mercure_track_tests::sse::{SseStream, subscribe};
use tokio::sync::oneshot;

const DEADLINE: Duration = Duration::from_secs(30);

fn publisher(url: &str, key: &str) -> Arc<dyn Publisher> {
    let config = HubConfig::new(url)
        .expect("url")
        .key(JwtKey::new(key))
        .timeout(Duration::from_secs(2));
    Arc::new(HubPublisher::new(config).expect("publisher"))
}

fn fast_relay() -> RelayConfig {
    RelayConfig {
        poll_interval: Duration::from_millis(20),
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        max_attempts: 1_000,
        ..RelayConfig::default()
    }
}

/// Starts `relay` in the background; dropping the sender stops it.
fn spawn_relay<DB: Dialect>(
    relay: Relay<DB>,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(relay.run(async {
        let _ = stopped.await;
    }));
    (stop, task)
}

/// The ids of every event in the outbox.
async fn outbox_ids<DB: Dialect>(pool: &sqlx::Pool<DB>) -> HashSet<String>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    (String,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    sqlx::query_as::<DB, (String,)>("SELECT id FROM mercure_outbox")
        .fetch_all(pool)
        .await
        .expect("outbox ids")
        .into_iter()
        .map(|(id,)| id)
        .collect()
}

/// Reads events until every id of `expected` was seen (duplicates allowed), or the deadline.
/// Returns the ids seen, with how many arrivals in all.
async fn receive_all(
    stream: &mut SseStream,
    expected: &HashSet<String>,
) -> (HashSet<String>, usize) {
    let mut seen = HashSet::new();
    let mut arrivals = 0;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !expected.is_subset(&seen) && tokio::time::Instant::now() < deadline {
        if let Some(event) = stream.next_within(Duration::from_secs(1)).await {
            arrivals += 1;
            if let Some(id) = event.id {
                seen.insert(id);
            }
        }
    }
    (seen, arrivals)
}

macro_rules! outbox_tests {
    ($module:ident, $db:ty, $setup:expr $(, #[$needs:meta])*) => {
        mod $module {
            use super::*;

            type Db = $db;

            macro_rules! setup {
                ($name:expr) => {{
                    let Some(db) = $setup($name).await else {
                        return;
                    };
                    sqlx::raw_sql(mercure_track_tests::db::SEED)
                        .execute(&db.pool)
                        .await
                        .expect("seed");
                    outbox::create_table(&db.pool).await.expect("outbox table");
                    db
                }};
            }

            /// Commits `count` order-status changes through an outbox session.
            async fn commit_changes(pool: &sqlx::Pool<Db>, count: usize) {
                let mut session =
                    TrackedSession::new(pool.clone(), mercure_track::RecordingPublisher::new())
                        .outbox();
                session.track_changes::<OrderUpdate>();
                for n in 0..count {
                    let order = ["A", "B", "C"][n % 3];
                    Order::set_status_by_key(&mut session, order, format!("S{n}"))
                        .await
                        .expect("set");
                    session.commit().await.expect("commit");
                }
            }

            #[tokio::test]
            $(#[$needs])*
            async fn a_commit_writes_its_events_and_a_rollback_nothing() {
                let db = setup!("outbox_rollback");
                let recording = mercure_track::RecordingPublisher::new();
                let mut session = TrackedSession::new(db.pool.clone(), recording.clone()).outbox();
                session.track_changes::<OrderUpdate>();
                Order::set_status_by_key(&mut session, "A", "GONE")
                    .await
                    .expect("set");
                session.rollback().await.expect("rollback");
                assert_eq!(outbox::pending(&db.pool).await.expect("pending"), 0);
                Order::set_status_by_key(&mut session, "A", "KEPT")
                    .await
                    .expect("set");
                let summary = session.commit().await.expect("commit");
                assert_eq!((summary.events, summary.batch_events), (1, 1));
                // Nothing was published directly: the relay will.
                assert!(recording.is_empty());
                assert_eq!(outbox::pending(&db.pool).await.expect("pending"), 2);
                let ids = outbox_ids(&db.pool).await;
                assert!(ids.iter().all(|id| uuid_v7(id)), "{ids:?}");
                drop(session);
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$needs])*
            async fn events_committed_while_the_hub_is_down_are_delivered_once_it_is_up() {
                let db = setup!("outbox_hub_down");
                let addr = unused_addr();
                let url = format!("http://{addr}/.well-known/mercure");
                commit_changes(&db.pool, 3).await;
                let expected = outbox_ids(&db.pool).await;
                assert_eq!(expected.len(), 6);
                let (stop, relay) = spawn_relay(Relay::new(
                    db.pool.clone(),
                    publisher(&url, KEY),
                    fast_relay(),
                ));
                tokio::time::sleep(Duration::from_millis(800)).await;
                assert_eq!(
                    outbox::pending(&db.pool).await.expect("pending"),
                    6,
                    "nothing can be delivered yet"
                );

                let hub = FlakyHub::start(addr).await;
                wait_until_delivered(&db.pool).await;
                assert_hub_has(&hub, &expected).await;
                drop(stop);
                relay.await.expect("relay");
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$needs])*
            async fn a_hub_answering_500_for_a_while_gets_everything_once_it_recovers() {
                let db = setup!("outbox_hub_500");
                let hub = FlakyHub::start("127.0.0.1:0".parse().expect("addr")).await;
                hub.failing.store(true, Ordering::SeqCst);
                commit_changes(&db.pool, 4).await;
                let expected = outbox_ids(&db.pool).await;
                let (stop, relay) = spawn_relay(Relay::new(
                    db.pool.clone(),
                    publisher(&hub.url(), KEY),
                    fast_relay(),
                ));
                // Wait until the relay has failed a few times.
                let deadline = tokio::time::Instant::now() + DEADLINE;
                while hub.publishes.load(Ordering::SeqCst) < 3
                    && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                assert!(hub.publishes.load(Ordering::SeqCst) >= 3);
                assert_eq!(
                    outbox::pending(&db.pool).await.expect("pending"),
                    expected.len() as i64
                );
                hub.failing.store(false, Ordering::SeqCst);
                wait_until_delivered(&db.pool).await;
                assert_hub_has(&hub, &expected).await;
                assert!(
                    outbox::dead_letters(&db.pool)
                        .await
                        .expect("dead")
                        .is_empty()
                );
                drop(stop);
                relay.await.expect("relay");
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$needs])*
            async fn unauthorized_events_are_dead_lettered_not_retried_and_can_be_redriven() {
                let db = setup!("outbox_hub_401");
                let hub = FlakyHub::start("127.0.0.1:0".parse().expect("addr")).await;
                commit_changes(&db.pool, 2).await;
                let expected = outbox_ids(&db.pool).await;
                let wrong = Relay::new(
                    db.pool.clone(),
                    publisher(&hub.url(), "not-the-key"),
                    fast_relay(),
                );
                let round = wrong.run_once().await.expect("round");
                assert_eq!(round.dead_lettered, expected.len());
                // Nothing left to try: further rounds send nothing.
                let sent = hub.publishes.load(Ordering::SeqCst);
                assert_eq!(sent, expected.len(), "one attempt per event");
                assert_eq!(wrong.run_once().await.expect("round").dead_lettered, 0);
                assert_eq!(hub.publishes.load(Ordering::SeqCst), sent);
                let dead = outbox::dead_letters(&db.pool).await.expect("dead letters");
                assert_eq!(
                    dead.iter().map(|r| r.id.clone()).collect::<HashSet<_>>(),
                    expected
                );
                assert!(dead.iter().all(|r| r.attempts == 1
                    && r.last_error.as_deref().is_some_and(|e| e.contains("401"))));

                // Fixed key, re-driven: delivered.
                assert_eq!(
                    outbox::redrive(&db.pool, None).await.expect("redrive"),
                    expected.len() as u64
                );
                let right = Relay::new(db.pool.clone(), publisher(&hub.url(), KEY), fast_relay());
                assert_eq!(
                    right.run_once().await.expect("round").delivered,
                    expected.len()
                );
                assert_eq!(outbox::pending(&db.pool).await.expect("pending"), 0);
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$needs])*
            async fn delivered_rows_are_kept_for_the_retention_then_deleted() {
                let db = setup!("outbox_retention");
                let hub = FlakyHub::start("127.0.0.1:0".parse().expect("addr")).await;
                commit_changes(&db.pool, 1).await;
                let keep = Relay::new(
                    db.pool.clone(),
                    publisher(&hub.url(), KEY),
                    RelayConfig {
                        retention: None,
                        ..fast_relay()
                    },
                );
                assert_eq!(keep.run_once().await.expect("round").delivered, 2);
                assert_eq!(
                    outbox_ids(&db.pool).await.len(),
                    2,
                    "delivered rows are kept"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
                let prune = Relay::new(
                    db.pool.clone(),
                    publisher(&hub.url(), KEY),
                    RelayConfig {
                        retention: Some(Duration::ZERO),
                        ..fast_relay()
                    },
                );
                prune.run_once().await.expect("round");
                assert!(
                    outbox_ids(&db.pool).await.is_empty(),
                    "rows past the retention are deleted"
                );
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$needs])*
            async fn events_failing_max_attempts_times_are_dead_lettered() {
                let db = setup!("outbox_max_attempts");
                let hub = FlakyHub::start("127.0.0.1:0".parse().expect("addr")).await;
                hub.failing.store(true, Ordering::SeqCst);
                commit_changes(&db.pool, 1).await;
                let config = RelayConfig {
                    max_attempts: 3,
                    ..fast_relay()
                };
                let relay = Relay::new(db.pool.clone(), publisher(&hub.url(), KEY), config);
                let deadline = tokio::time::Instant::now() + DEADLINE;
                while outbox::dead_letters(&db.pool).await.expect("dead").len() < 2
                    && tokio::time::Instant::now() < deadline
                {
                    relay.run_once().await.expect("round");
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
                let dead = outbox::dead_letters(&db.pool).await.expect("dead");
                assert_eq!(dead.len(), 2);
                assert!(dead.iter().all(|r| r.attempts == 3), "{dead:?}");
                assert_eq!(
                    hub.publishes.load(Ordering::SeqCst),
                    6,
                    "three attempts each, no more"
                );
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$needs])*
            async fn one_thousand_commits_from_twenty_sessions_while_the_hub_flaps() {
                let db = setup!("outbox_flapping");
                let hub = FlakyHub::start("127.0.0.1:0".parse().expect("addr")).await;
                let client = reqwest::Client::new();
                let mut stream = subscribe(&client, &hub.url(), &["*"], None, Some("earliest"))
                    .await
                    .expect("subscribe");
                let flapping = hub.failing.clone();
                let flapper = tokio::spawn(async move {
                    loop {
                        flapping.fetch_xor(true, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                });
                let (stop, relay) = spawn_relay(Relay::new(
                    db.pool.clone(),
                    publisher(&hub.url(), KEY),
                    fast_relay(),
                ));
                let mut sessions = Vec::new();
                for s in 0..20 {
                    let pool = db.pool.clone();
                    sessions.push(tokio::spawn(async move {
                        sqlx::query("INSERT INTO orders (id, status) VALUES ($1, 'NEW')")
                            .bind(format!("s{s}"))
                            .execute(&pool)
                            .await
                            .expect("order");
                        let mut session =
                            TrackedSession::new(pool, mercure_track::RecordingPublisher::new())
                                .outbox();
                        session.track_changes::<OrderUpdate>();
                        for n in 0..50 {
                            Order::set_status_by_key(
                                &mut session,
                                format!("s{s}"),
                                format!("v{n}"),
                            )
                            .await
                            .expect("set");
                            session.commit().await.expect("commit");
                        }
                    }));
                }
                for session in sessions {
                    session.await.expect("session");
                }
                let expected = outbox_ids(&db.pool).await;
                assert_eq!(
                    expected.len(),
                    2_000,
                    "an order update and a list update per commit"
                );
                let (seen, arrivals) = receive_all(&mut stream, &expected).await;
                flapper.abort();
                hub.failing.store(false, Ordering::SeqCst);
                assert!(
                    expected.is_subset(&seen),
                    "{} of {} ids arrived",
                    seen.intersection(&expected).count(),
                    expected.len()
                );
                // Deduplicated by id, each event is seen once; at-least-once may deliver more.
                assert!(arrivals >= expected.len());
                wait_until_delivered(&db.pool).await;
                drop(stop);
                relay.await.expect("relay");
                mercure_track_tests::db::TestDb::finish(db).await;
            }
        }
    };
}

/// Checks, through a subscription replaying the hub's history from the earliest update, that
/// the hub received every expected event id.
async fn assert_hub_has(hub: &FlakyHub, expected: &HashSet<String>) {
    let client = reqwest::Client::new();
    let mut stream = subscribe(&client, &hub.url(), &["*"], None, Some("earliest"))
        .await
        .expect("subscribe");
    let (seen, arrivals) = receive_all(&mut stream, expected).await;
    assert!(
        expected.is_subset(&seen),
        "missing at the hub: {:?}; {arrivals} arrivals, {} publishes received",
        expected.difference(&seen).collect::<Vec<_>>(),
        hub.publishes.load(Ordering::SeqCst),
    );
}

fn uuid_v7(id: &str) -> bool {
    id.len() == 36 && id.as_bytes().get(14) == Some(&b'7')
}

async fn wait_until_delivered<DB: Dialect>(pool: &sqlx::Pool<DB>) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while outbox::pending(pool).await.expect("pending") > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay did not mark everything delivered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn sqlite_db(_test: &str) -> Option<mercure_track_tests::db::SqliteDb> {
    Some(mercure_track_tests::db::sqlite().await)
}

outbox_tests!(sqlite, sqlx::Sqlite, super::sqlite_db);
outbox_tests!(
    postgres,
    sqlx::Postgres,
    mercure_track_tests::db::postgres,
    #[cfg_attr(not(mercure_track_pg), ignore = "needs PostgreSQL: set MERCURE_TRACK_PG_URL")]
);
