//! Delivery that loses nothing: the transactional outbox and its relay under faults, on SQLite
//! and PostgreSQL, against a recording hub on loopback. What is checked is what reached the
//! hub (`FlakyHub` records every publish), not the relay's own reports. Every wait is bounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mercure_track::publisher::{HubConfig, JwtKey};
use mercure_track::{HubPublisher, Publisher};
use mercure_track_sqlx::outbox::{self, Relay, RelayConfig};
use mercure_track_sqlx::{Dialect, TrackedSession};
use mercure_track_tests::domain::{Order, OrderUpdate};
use mercure_track_tests::flaky::{
    FlakyHub, KEY, OutboxRow, assert_same_data_per_id, check_delivery, outbox_rows, overlapped,
    unused_addr,
};
use mercure_track_tests::publishers::SwitchedPublisher;
use tokio::sync::oneshot;

const DEADLINE: Duration = Duration::from_secs(60);

fn publisher(url: &str, key: &str, timeout: Duration) -> Arc<dyn Publisher> {
    let config = HubConfig::new(url)
        .expect("url")
        .key(JwtKey::new(key))
        .timeout(timeout);
    Arc::new(HubPublisher::new(config).expect("publisher"))
}

/// Short backoff, lease and probe, so that the fault tests run in seconds. `max_age` keeps
/// its default (24 h): nothing transient may dead-letter.
fn fast_relay() -> RelayConfig {
    RelayConfig {
        poll_interval: Duration::from_millis(100),
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        pause_probe: Duration::from_millis(200),
        lease: Duration::from_secs(20),
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

/// Waits until `condition` holds; panics with `what` at the deadline.
async fn wait_for<F, Fut>(what: &str, deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + deadline;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < until,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_until_delivered<DB: Dialect>(pool: &sqlx::Pool<DB>) {
    wait_for("the relay marks everything delivered", DEADLINE, || async {
        outbox::pending(pool).await.expect("pending") == 0
    })
    .await;
}

fn uuid_v7(id: &str) -> bool {
    id.len() == 36 && id.as_bytes().get(14) == Some(&b'7')
}

/// Individual lanes keep outbox order on both databases; on SQLite (one writer) every lane
/// does, the shared `orders` lane included. See the outbox module documentation.
fn ordered_on<DB: Dialect>(row: &OutboxRow) -> bool {
    !row.batch || DB::NAME == "SQLite"
}

macro_rules! outbox_tests {
    ($module:ident, $db:ty, $setup:expr, $refuse:expr $(, #[$needs:meta])*) => {
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

            fn session(pool: &sqlx::Pool<Db>) -> TrackedSession<Db> {
                let mut session =
                    TrackedSession::new(pool.clone(), mercure_track::RecordingPublisher::new())
                        .outbox();
                session.track_changes::<OrderUpdate>();
                session
            }

            /// Commits `count` order-status changes (orders A, B, C in turn), one per `every`.
            async fn commit_changes(pool: &sqlx::Pool<Db>, count: usize, every: Duration) {
                let mut session = session(pool);
                for n in 0..count {
                    let order = ["A", "B", "C"][n % 3];
                    Order::set_status_by_key(&mut session, order, format!("S{n}"))
                        .await
                        .expect("set");
                    session.commit().await.expect("an application commit failed");
                    if !every.is_zero() {
                        tokio::time::sleep(every).await;
                    }
                }
            }

            fn check(rows: &[OutboxRow], hub: &FlakyHub) -> mercure_track_tests::flaky::Delivery {
                assert_same_data_per_id(&hub.received());
                check_delivery(rows, &hub.accepted(), false, ordered_on::<Db>)
            }

            /// While the hub holds an update for 30 s, application commits go through: the
            /// relay holds no transaction or lock while it waits for the hub.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$needs])*
            async fn an_application_commit_never_waits_for_the_hub() {
                let db = setup!("outbox_no_lock");
                let hub = FlakyHub::start("127.0.0.1:0".parse().expect("addr")).await;
                hub.faults.delay_ms.store(30_000, Ordering::SeqCst);
                commit_changes(&db.pool, 3, Duration::ZERO).await;
                let (_stop, relay) = spawn_relay(Relay::new(
                    db.pool.clone(),
                    publisher(&hub.url(), KEY, Duration::from_secs(60)),
                    fast_relay(),
                ));
                wait_for("updates at the hub", DEADLINE, || async {
                    hub.publishes.load(Ordering::SeqCst) >= 1
                })
                .await;
                let commits = tokio::time::timeout(
                    Duration::from_secs(15),
                    commit_changes(&db.pool, 5, Duration::ZERO),
                )
                .await;
                assert!(commits.is_ok(), "a commit waited for the hub");
                // S3 and S4 are new values (S0–S2 repeat the first commits): two more commits.
                assert_eq!(outbox::pending(&db.pool).await.expect("pending"), 10);
                relay.abort();
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            /// A merged update that failed is retried as the same update (same id, same
            /// ids inside), even when more batch events arrived behind it meanwhile.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$needs])*
            async fn a_retried_merged_update_is_sent_again_identical() {
                let db = setup!("outbox_retry_same");
                let hub = FlakyHub::start("127.0.0.1:0".parse().expect("addr")).await;
                hub.faults.status.store(503, Ordering::SeqCst);
                commit_changes(&db.pool, 2, Duration::ZERO).await;
                let relay = Relay::new(
                    db.pool.clone(),
                    publisher(&hub.url(), KEY, Duration::from_secs(2)),
                    fast_relay(),
                );
                let round = relay.run_once().await.expect("round");
                assert_eq!((round.sent, round.retried), (0, 4), "{round:?}");
                commit_changes(&db.pool, 3, Duration::ZERO).await;
                hub.faults.status.store(0, Ordering::SeqCst);
                wait_for("delivery after the retries", DEADLINE, || async {
                    relay.run_once().await.expect("round");
                    outbox::pending(&db.pool).await.expect("pending") == 0
                })
                .await;
                let delivery = check(&outbox_rows(&db.pool).await, &hub);
                assert!(delivery.merged >= 1, "{delivery:?}");
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            /// A lane's waiting updates leave as one run: in one round, in order, one after
            /// another. A failure stops the run; the updates behind it go back in line with no
            /// attempt counted and no lease kept.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$needs])*
            async fn a_run_stops_at_a_failure_and_gives_back_the_rest_unattempted() {
                let db = setup!("outbox_runs");
                let hub = FlakyHub::start("127.0.0.1:0".parse().expect("addr")).await;
                hub.faults.status.store(503, Ordering::SeqCst);
                // Lanes orders/A (3 events), orders/B (2), orders/C (2), orders (7, merged).
                commit_changes(&db.pool, 7, Duration::ZERO).await;
                let relay = Relay::new(
                    db.pool.clone(),
                    publisher(&hub.url(), KEY, Duration::from_secs(2)),
                    RelayConfig {
                        backoff_base: Duration::from_millis(1),
                        backoff_max: Duration::from_millis(1),
                        ..fast_relay()
                    },
                );
                let round = relay.run_once().await.expect("round");
                assert_eq!((round.sent, round.retried), (0, 10), "{round:?}");
                assert_eq!(hub.received().len(), 4, "one request per lane: the run stopped");
                let attempts: Vec<(String, i64, bool)> = sqlx::query_as(
                    "SELECT lane, attempts, claimed_until IS NULL FROM mercure_outbox ORDER BY seq",
                )
                .fetch_all(&db.pool)
                .await
                .expect("rows");
                let mut seen = std::collections::HashSet::new();
                for (lane, attempts, free) in &attempts {
                    assert!(free, "nothing stays leased: {attempts:?}");
                    let head = seen.insert(lane.clone());
                    let expected = i64::from(head || lane == "[\"orders\"]");
                    assert_eq!(*attempts, expected, "only the sent update counts: {lane}");
                }
                hub.faults.status.store(0, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                let round = relay.run_once().await.expect("round");
                assert_eq!((round.sent, round.delivered), (8, 14), "{round:?}");
                check(&outbox_rows(&db.pool).await, &hub);
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            /// A run longer than its lease stops once half the lease has passed, so that its
            /// rows are never taken over (and sent again) while it is still sending.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$needs])*
            async fn a_run_never_outlives_its_lease() {
                let db = setup!("outbox_run_lease");
                let hub = FlakyHub::start("127.0.0.1:0".parse().expect("addr")).await;
                hub.faults.delay_ms.store(300, Ordering::SeqCst);
                // Lanes orders/A, orders/B, orders/C with 6 updates each: 1.8 s per run at
                // 300 ms an update, against a lease of 1 s.
                commit_changes(&db.pool, 18, Duration::ZERO).await;
                let (stop, relay) = spawn_relay(Relay::new(
                    db.pool.clone(),
                    publisher(&hub.url(), KEY, Duration::from_secs(5)),
                    RelayConfig {
                        lease: Duration::from_secs(1),
                        ..fast_relay()
                    },
                ));
                wait_until_delivered(&db.pool).await;
                let delivery = check(&outbox_rows(&db.pool).await, &hub);
                assert_eq!(delivery.duplicates, 0, "{delivery:?}");
                drop(stop);
                relay.await.expect("relay");
                mercure_track_tests::db::TestDb::finish(db).await;
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
                let rows = outbox_rows(&db.pool).await;
                assert_eq!(rows.len(), 2);
                assert!(rows.iter().all(|row| uuid_v7(&row.id)), "{rows:?}");
                assert_eq!(rows.iter().filter(|row| row.batch).count(), 1, "{rows:?}");
                drop(session);
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            /// The data and its events are one transaction: when the outbox write fails, the
            /// data change is not kept either.
            #[tokio::test]
            $(#[$needs])*
            async fn data_and_outbox_are_committed_together_or_not_at_all() {
                let db = setup!("outbox_atomic");
                let (install, remove) = $refuse;
                sqlx::raw_sql(install).execute(&db.pool).await.expect("install the refusal");
                let mut session = session(&db.pool);
                Order::set_status_by_key(&mut session, "A", "LOST")
                    .await
                    .expect("set");
                assert!(session.commit().await.is_err(), "the outbox refused the insert");
                let (status,): (String,) =
                    sqlx::query_as("SELECT status FROM orders WHERE id = 'A'")
                        .fetch_one(&db.pool)
                        .await
                        .expect("status");
                assert_ne!(status, "LOST", "the data was committed without its events");
                assert_eq!(outbox::pending(&db.pool).await.expect("pending"), 0);

                sqlx::raw_sql(remove).execute(&db.pool).await.expect("remove the refusal");
                Order::set_status_by_key(&mut session, "A", "KEPT")
                    .await
                    .expect("set");
                session.commit().await.expect("commit");
                assert_eq!(outbox::pending(&db.pool).await.expect("pending"), 2);
                drop(session);
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            /// Many sessions commit at once to 30 orders; the relay publishes concurrently (the
            /// hub answers in 0–20 ms, in varying order). Each lane arrives in outbox order,
            /// nothing twice, the `orders` list merged.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$needs])*
            async fn lanes_keep_their_order_under_concurrency_and_nothing_is_sent_twice() {
                let db = setup!("outbox_order");
                for n in 0..30 {
                    sqlx::query("INSERT INTO orders (id, status) VALUES ($1, 'NEW')")
                        .bind(format!("o{n}"))
                        .execute(&db.pool)
                        .await
                        .expect("order");
                }
                let hub = FlakyHub::start("127.0.0.1:0".parse().expect("addr")).await;
                hub.faults.jitter_ms.store(20, Ordering::SeqCst);
                let (stop, relay) = spawn_relay(Relay::new(
                    db.pool.clone(),
                    publisher(&hub.url(), KEY, Duration::from_secs(5)),
                    fast_relay(),
                ));
                let mut writers = Vec::new();
                for w in 0..5_usize {
                    let pool = db.pool.clone();
                    writers.push(tokio::spawn(async move {
                        let mut session = session(&pool);
                        for n in 0..40_usize {
                            let order = format!("o{}", (w * 7 + n * 11) % 30);
                            Order::set_status_by_key(&mut session, order, format!("w{w}n{n}"))
                                .await
                                .expect("set");
                            if n % 4 == 0 {
                                let other = format!("o{}", (w * 3 + n) % 30);
                                Order::set_status_by_key(&mut session, other, format!("x{w}n{n}"))
                                    .await
                                    .expect("set");
                            }
                            session.commit().await.expect("an application commit failed");
                        }
                    }));
                }
                for writer in writers {
                    writer.await.expect("writer");
                }
                wait_until_delivered(&db.pool).await;
                let rows = outbox_rows(&db.pool).await;
                let delivery = check(&rows, &hub);
                assert_eq!(delivery.duplicates, 0);
                assert!(
                    overlapped(&hub.accepted()),
                    "the relay never had two updates at the hub at once"
                );
                // Further rounds find nothing to send.
                let relay2 = Relay::new(
                    db.pool.clone(),
                    publisher(&hub.url(), KEY, Duration::from_secs(5)),
                    fast_relay(),
                );
                let before = hub.received().len();
                assert_eq!(relay2.run_once().await.expect("round").sent, 0);
                assert_eq!(hub.received().len(), before, "nothing is sent again");
                drop(stop);
                relay.await.expect("relay");
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            /// A hub answering in 2 s while commits arrive every 100 ms: no commit fails or
            /// waits on the hub, no id is sent twice, everything arrives in order, merged.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$needs])*
            async fn a_slow_hub_neither_blocks_commits_nor_gets_anything_twice() {
                let db = setup!("outbox_slow");
                let hub = FlakyHub::start("127.0.0.1:0".parse().expect("addr")).await;
                hub.faults.delay_ms.store(2_000, Ordering::SeqCst);
                let (stop, relay) = spawn_relay(Relay::new(
                    db.pool.clone(),
                    publisher(&hub.url(), KEY, Duration::from_secs(10)),
                    fast_relay(),
                ));
                commit_changes(&db.pool, 30, Duration::from_millis(100)).await;
                wait_until_delivered(&db.pool).await;
                let rows = outbox_rows(&db.pool).await;
                let delivery = check(&rows, &hub);
                assert_eq!(delivery.duplicates, 0);
                assert!(delivery.merged > 0, "list updates waiting together were merged");
                assert_eq!(hub.received().len(), delivery.accepted, "no failed request either");
                drop(stop);
                relay.await.expect("relay");
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            /// The hub is unreachable (connection refused) while commits keep coming; once it
            /// is back, everything arrives, in order, and nothing was dead-lettered.
            async fn outage(outage: Duration) {
                let db = setup!("outbox_outage");
                let addr = unused_addr();
                let url = format!("http://{addr}/.well-known/mercure");
                let (stop, relay) = spawn_relay(Relay::new(
                    db.pool.clone(),
                    publisher(&url, KEY, Duration::from_secs(2)),
                    fast_relay(),
                ));
                let every = Duration::from_millis(100);
                let count = usize::try_from(outage.as_millis() / every.as_millis()).unwrap_or(30);
                commit_changes(&db.pool, count, every).await;
                let stats = outbox::stats(&db.pool).await.expect("stats");
                assert_eq!(stats.pending, i64::try_from(count * 2).expect("count"));
                assert!(stats.oldest_pending_age.is_some());
                let hub = FlakyHub::start(addr).await;
                wait_until_delivered(&db.pool).await;
                let rows = outbox_rows(&db.pool).await;
                check(&rows, &hub);
                assert!(outbox::dead_letters(&db.pool).await.expect("dead").is_empty());
                drop(stop);
                relay.await.expect("relay");
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$needs])*
            async fn an_outage_loses_and_dead_letters_nothing() {
                outage(Duration::from_secs(3)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "long: the full three-minute outage; run with `--ignored three_minute`"]
            async fn a_three_minute_outage_loses_and_dead_letters_nothing() {
                outage(Duration::from_secs(180)).await;
            }

            /// A proxy answering 404 for a while (a deploy), then the hub: nothing is lost.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$needs])*
            async fn a_404_window_dead_letters_nothing() {
                let db = setup!("outbox_404");
                let hub = FlakyHub::start("127.0.0.1:0".parse().expect("addr")).await;
                hub.faults.status.store(404, Ordering::SeqCst);
                let (stop, relay) = spawn_relay(Relay::new(
                    db.pool.clone(),
                    publisher(&hub.url(), KEY, Duration::from_secs(2)),
                    fast_relay(),
                ));
                commit_changes(&db.pool, 10, Duration::from_millis(100)).await;
                wait_for("404s at the hub", DEADLINE, || async { hub.received().len() >= 5 }).await;
                hub.faults.status.store(0, Ordering::SeqCst);
                wait_until_delivered(&db.pool).await;
                check(&outbox_rows(&db.pool).await, &hub);
                assert!(hub.received().iter().any(|r| r.status == 404));
                assert!(outbox::dead_letters(&db.pool).await.expect("dead").is_empty());
                drop(stop);
                relay.await.expect("relay");
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            /// A wrong key: the relay pauses (visible in the stats), probes now and then, and
            /// once the key is corrected delivers everything without a redrive.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$needs])*
            async fn a_401_pauses_the_relay_and_a_corrected_key_resumes_it_without_redrive() {
                let db = setup!("outbox_401");
                let hub = FlakyHub::start("127.0.0.1:0".parse().expect("addr")).await;
                let use_right_key = Arc::new(AtomicBool::new(false));
                let switched = SwitchedPublisher {
                    first: publisher(&hub.url(), "not-the-key", Duration::from_secs(2)),
                    second: publisher(&hub.url(), KEY, Duration::from_secs(2)),
                    use_second: use_right_key.clone(),
                };
                let (stop, relay) =
                    spawn_relay(Relay::new(db.pool.clone(), Arc::new(switched), fast_relay()));
                commit_changes(&db.pool, 6, Duration::ZERO).await;
                wait_for("the relay pauses", DEADLINE, || async {
                    outbox::stats(&db.pool).await.expect("stats").paused.is_some()
                })
                .await;
                let stats = outbox::stats(&db.pool).await.expect("stats");
                assert!(stats.paused.as_deref().is_some_and(|why| why.contains("401")), "{stats:?}");
                assert_eq!(stats.dead_letters, 0);
                assert_eq!(stats.pending, 12);
                // Paused, it probes with one update at a time, not the whole outbox.
                wait_for("a few probes", DEADLINE, || async { hub.received().len() >= 8 }).await;
                assert!(hub.accepted().is_empty());

                use_right_key.store(true, Ordering::SeqCst);
                wait_until_delivered(&db.pool).await;
                check(&outbox_rows(&db.pool).await, &hub);
                let stats = outbox::stats(&db.pool).await.expect("stats");
                assert_eq!((stats.paused, stats.dead_letters), (None, 0));
                drop(stop);
                relay.await.expect("relay");
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            /// What the hub can never accept (400) is dead-lettered after one request, and
            /// can be re-driven.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$needs])*
            async fn a_400_is_dead_lettered_at_once_and_can_be_redriven() {
                let db = setup!("outbox_400");
                let hub = FlakyHub::start("127.0.0.1:0".parse().expect("addr")).await;
                hub.faults.status.store(400, Ordering::SeqCst);
                commit_changes(&db.pool, 1, Duration::ZERO).await;
                let relay = Relay::new(
                    db.pool.clone(),
                    publisher(&hub.url(), KEY, Duration::from_secs(2)),
                    fast_relay(),
                );
                assert_eq!(relay.run_once().await.expect("round").dead_lettered, 2);
                assert_eq!(hub.received().len(), 2, "one request per event");
                assert_eq!(relay.run_once().await.expect("round").sent, 0);
                assert_eq!(hub.received().len(), 2, "nothing retried");
                let dead = outbox::dead_letters(&db.pool).await.expect("dead letters");
                assert!(dead.iter().all(|r| r.attempts == 1
                    && r.last_error.as_deref().is_some_and(|e| e.contains("400"))), "{dead:?}");
                hub.faults.status.store(0, Ordering::SeqCst);
                assert_eq!(outbox::redrive(&db.pool, None).await.expect("redrive"), 2);
                assert_eq!(relay.run_once().await.expect("round").delivered, 2);
                check(&outbox_rows(&db.pool).await, &hub);
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            /// Transient failures are retried for `max_age`, then dead-lettered.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$needs])*
            async fn transient_failures_are_retried_until_max_age() {
                let db = setup!("outbox_max_age");
                let hub = FlakyHub::start("127.0.0.1:0".parse().expect("addr")).await;
                hub.faults.status.store(503, Ordering::SeqCst);
                commit_changes(&db.pool, 1, Duration::ZERO).await;
                let relay = Relay::new(
                    db.pool.clone(),
                    publisher(&hub.url(), KEY, Duration::from_secs(2)),
                    RelayConfig {
                        max_age: Duration::from_millis(600),
                        ..fast_relay()
                    },
                );
                let (stop, task) = spawn_relay(relay);
                wait_for("dead letters after max_age", DEADLINE, || async {
                    outbox::dead_letters(&db.pool).await.expect("dead").len() == 2
                })
                .await;
                let dead = outbox::dead_letters(&db.pool).await.expect("dead");
                assert!(dead.iter().all(|r| r.attempts > 2), "retried first: {dead:?}");
                drop(stop);
                task.await.expect("relay");
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$needs])*
            async fn delivered_rows_are_kept_for_the_retention_then_deleted() {
                let db = setup!("outbox_retention");
                let hub = FlakyHub::start("127.0.0.1:0".parse().expect("addr")).await;
                commit_changes(&db.pool, 1, Duration::ZERO).await;
                let keep = Relay::new(
                    db.pool.clone(),
                    publisher(&hub.url(), KEY, Duration::from_secs(2)),
                    RelayConfig {
                        retention: None,
                        ..fast_relay()
                    },
                );
                assert_eq!(keep.run_once().await.expect("round").delivered, 2);
                assert_eq!(outbox_rows(&db.pool).await.len(), 2, "delivered rows are kept");
                tokio::time::sleep(Duration::from_millis(5)).await;
                let prune = Relay::new(
                    db.pool.clone(),
                    publisher(&hub.url(), KEY, Duration::from_secs(2)),
                    RelayConfig {
                        retention: Some(Duration::ZERO),
                        ..fast_relay()
                    },
                );
                prune.run_once().await.expect("round");
                assert!(
                    outbox_rows(&db.pool).await.is_empty(),
                    "rows past the retention are deleted"
                );
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            /// A relay that polls only once a minute still delivers a commit at once: the
            /// commit wakes it.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$needs])*
            async fn a_commit_wakes_the_idle_relay() {
                let db = setup!("outbox_wake");
                let hub = FlakyHub::start("127.0.0.1:0".parse().expect("addr")).await;
                let (stop, relay) = spawn_relay(Relay::new(
                    db.pool.clone(),
                    publisher(&hub.url(), KEY, Duration::from_secs(2)),
                    RelayConfig {
                        poll_interval: Duration::from_secs(60),
                        ..fast_relay()
                    },
                ));
                wait_for("the relay runs", DEADLINE, || async {
                    outbox::stats(&db.pool).await.expect("stats").relays == 1
                })
                .await;
                // Let it find the outbox empty and go to sleep.
                tokio::time::sleep(Duration::from_millis(300)).await;
                commit_changes(&db.pool, 1, Duration::ZERO).await;
                wait_for("delivery well before the next poll", Duration::from_secs(20), || async {
                    hub.accepted().len() == 2
                })
                .await;
                drop(stop);
                relay.await.expect("relay");
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            /// The stats show what waits and what is in flight.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$needs])*
            async fn stats_show_pending_and_in_flight() {
                let db = setup!("outbox_stats");
                let hub = FlakyHub::start("127.0.0.1:0".parse().expect("addr")).await;
                hub.faults.delay_ms.store(1_000, Ordering::SeqCst);
                commit_changes(&db.pool, 3, Duration::ZERO).await;
                let stats = outbox::stats(&db.pool).await.expect("stats");
                assert_eq!((stats.pending, stats.in_flight, stats.relays), (6, 0, 0));
                let (stop, relay) = spawn_relay(Relay::new(
                    db.pool.clone(),
                    publisher(&hub.url(), KEY, Duration::from_secs(5)),
                    fast_relay(),
                ));
                wait_for("updates in flight", DEADLINE, || async {
                    outbox::stats(&db.pool).await.expect("stats").in_flight > 0
                })
                .await;
                let stats = outbox::stats(&db.pool).await.expect("stats");
                assert_eq!(stats.relays, 1);
                assert!(stats.oldest_pending_age.is_some());
                wait_until_delivered(&db.pool).await;
                assert_eq!(outbox::stats(&db.pool).await.expect("stats").in_flight, 0);
                drop(stop);
                relay.await.expect("relay");
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$needs])*
            async fn one_thousand_commits_from_twenty_sessions_while_the_hub_flaps() {
                let db = setup!("outbox_flapping");
                let hub = FlakyHub::start("127.0.0.1:0".parse().expect("addr")).await;
                let flapping = hub.failing.clone();
                let flapper = tokio::spawn(async move {
                    for _ in 0..1_200 {
                        flapping.fetch_xor(true, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                });
                let (stop, relay) = spawn_relay(Relay::new(
                    db.pool.clone(),
                    publisher(&hub.url(), KEY, Duration::from_secs(2)),
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
                        let mut session = session(&pool);
                        for n in 0..50 {
                            Order::set_status_by_key(&mut session, format!("s{s}"), format!("v{n}"))
                                .await
                                .expect("set");
                            session.commit().await.expect("commit");
                        }
                    }));
                }
                for session in sessions {
                    session.await.expect("session");
                }
                let rows = outbox_rows(&db.pool).await;
                assert_eq!(rows.len(), 2_000, "an order update and a list update per commit");
                wait_until_delivered(&db.pool).await;
                flapper.abort();
                check(&rows, &hub);
                assert!(outbox::dead_letters(&db.pool).await.expect("dead").is_empty());
                drop(stop);
                relay.await.expect("relay");
                mercure_track_tests::db::TestDb::finish(db).await;
            }
        }
    };
}

async fn sqlite_db(_test: &str) -> Option<mercure_track_tests::db::SqliteDb> {
    Some(mercure_track_tests::db::sqlite().await)
}

outbox_tests!(
    sqlite,
    sqlx::Sqlite,
    super::sqlite_db,
    (
        "CREATE TRIGGER refuse BEFORE INSERT ON mercure_outbox BEGIN SELECT RAISE(ABORT, 'refused'); END",
        "DROP TRIGGER refuse"
    )
);
outbox_tests!(
    postgres,
    sqlx::Postgres,
    mercure_track_tests::db::postgres,
    (
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$; \
         CREATE TRIGGER refuse BEFORE INSERT ON mercure_outbox FOR EACH ROW EXECUTE FUNCTION refuse()",
        "DROP TRIGGER refuse ON mercure_outbox"
    ),
    #[cfg_attr(not(mercure_track_pg), ignore = "needs PostgreSQL: set MERCURE_TRACK_PG_URL")]
);

/// PostgreSQL: when the commit itself fails (a deferred check), the outbox rows go with it.
#[tokio::test]
#[cfg_attr(
    not(mercure_track_pg),
    ignore = "needs PostgreSQL: set MERCURE_TRACK_PG_URL"
)]
async fn postgres_a_failed_commit_leaves_no_outbox_row() {
    let Some(db) = mercure_track_tests::db::postgres("outbox_failed_commit").await else {
        return;
    };
    sqlx::raw_sql(mercure_track_tests::db::SEED)
        .execute(&db.pool)
        .await
        .expect("seed");
    outbox::create_table(&db.pool).await.expect("outbox table");
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN IF NEW.status = 'DOOMED' THEN RAISE EXCEPTION 'refused at commit'; END IF; RETURN NEW; END $$; \
         CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER UPDATE ON orders \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_at_commit()",
    )
    .execute(&db.pool)
    .await
    .expect("deferred trigger");
    let mut session =
        TrackedSession::new(db.pool.clone(), mercure_track::RecordingPublisher::new()).outbox();
    session.track_changes::<OrderUpdate>();
    Order::set_status_by_key(&mut session, "A", "DOOMED")
        .await
        .expect("set");
    assert!(session.commit().await.is_err(), "the commit fails");
    assert_eq!(
        outbox::pending(&db.pool).await.expect("pending"),
        0,
        "events of a failed commit were kept"
    );
    drop(session);
    db.drop_schema().await;
}

/// PostgreSQL: a relay is woken through `LISTEN` by a commit it did not see in the process
/// (here: a row and a `NOTIFY` written with plain SQL, as another process's commit would).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mercure_track_pg),
    ignore = "needs PostgreSQL: set MERCURE_TRACK_PG_URL"
)]
async fn postgres_a_notify_from_another_process_wakes_the_relay() {
    let Some(db) = mercure_track_tests::db::postgres("outbox_notify").await else {
        return;
    };
    outbox::create_table(&db.pool).await.expect("outbox table");
    let hub = FlakyHub::start("127.0.0.1:0".parse().expect("addr")).await;
    let (stop, relay) = spawn_relay(Relay::new(
        db.pool.clone(),
        publisher(&hub.url(), KEY, Duration::from_secs(2)),
        RelayConfig {
            poll_interval: Duration::from_secs(60),
            ..fast_relay()
        },
    ));
    wait_for("the relay runs", DEADLINE, || async {
        outbox::stats(&db.pool).await.expect("stats").relays == 1
    })
    .await;
    // Let it find the outbox empty, start listening and go to sleep.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let mut tx = db.pool.begin().await.expect("begin");
    sqlx::query(
        "INSERT INTO mercure_outbox (id, event_type, topics, data, private, created_at, next_attempt_at, lane, batch) \
         VALUES ('0190a0a0-0000-7000-8000-000000000001', 'order_update', '[\"orders/A\"]', \
         '{\"type\":\"order_update\",\"order_id\":\"A\"}', FALSE, $1, $1, '[\"orders/A\"]', FALSE)",
    )
    .bind(now)
    .execute(&mut *tx)
    .await
    .expect("insert");
    sqlx::query("SELECT pg_notify('mercure_outbox', current_schema()::text)")
        .execute(&mut *tx)
        .await
        .expect("notify");
    tx.commit().await.expect("commit");
    wait_for(
        "delivery well before the next poll",
        Duration::from_secs(20),
        || async { hub.accepted().len() == 1 },
    )
    .await;
    drop(stop);
    relay.await.expect("relay");
    db.drop_schema().await;
}

/// PostgreSQL: an outbox commit sends the notification that wakes relays in other processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mercure_track_pg),
    ignore = "needs PostgreSQL: set MERCURE_TRACK_PG_URL"
)]
async fn postgres_an_outbox_commit_notifies_other_processes() {
    let Some(db) = mercure_track_tests::db::postgres("outbox_notifies").await else {
        return;
    };
    sqlx::raw_sql(mercure_track_tests::db::SEED)
        .execute(&db.pool)
        .await
        .expect("seed");
    outbox::create_table(&db.pool).await.expect("outbox table");
    let mut listener = sqlx::postgres::PgListener::connect_with(&db.pool)
        .await
        .expect("listener");
    listener.listen("mercure_outbox").await.expect("listen");
    let mut session =
        TrackedSession::new(db.pool.clone(), mercure_track::RecordingPublisher::new()).outbox();
    session.track_changes::<OrderUpdate>();
    Order::set_status_by_key(&mut session, "A", "NOTIFIED")
        .await
        .expect("set");
    session.commit().await.expect("commit");
    let (schema,): (String,) = sqlx::query_as("SELECT current_schema()::text")
        .fetch_one(&db.pool)
        .await
        .expect("schema");
    let notification = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let notification = listener.recv().await.expect("recv");
            if notification.payload() == schema {
                return notification;
            }
        }
    })
    .await
    .expect("no notification for this schema's commit");
    assert_eq!(notification.channel(), "mercure_outbox");
    drop(session);
    db.drop_schema().await;
}
