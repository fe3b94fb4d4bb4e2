//! Background publishing is bounded: one limit shared by every commit of every session that
//! shares a `Background`; a commit waits for room (nothing is dropped), and a drain waits for
//! the publishes and for the commits still waiting.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mercure_track::publisher::{BoxFuture, PublishOutcome};
use mercure_track::{MercureEvent, PublishError, Publisher, RecordingPublisher, Update};
use mercure_track_sqlx::{Background, TaskTracker, TrackedSession, drain};
use mercure_track_tests::domain::{ListUpdate, Order, OrderUpdate};
use tokio::sync::Semaphore;

/// Records like [`RecordingPublisher`] once its gate lets it, and counts the publishes in
/// flight and the most there ever were.
#[derive(Debug, Clone)]
struct CountingPublisher {
    recording: RecordingPublisher,
    gate: Arc<Semaphore>,
    in_flight: Arc<AtomicUsize>,
    most_in_flight: Arc<AtomicUsize>,
}

impl CountingPublisher {
    fn closed() -> Self {
        Self {
            recording: RecordingPublisher::new(),
            gate: Arc::new(Semaphore::new(0)),
            in_flight: Arc::new(AtomicUsize::new(0)),
            most_in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn open(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

impl Publisher for CountingPublisher {
    fn publish_update(
        &self,
        update: Update,
    ) -> BoxFuture<'_, Result<PublishOutcome, PublishError>> {
        Box::pin(async move {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            let permit = self.gate.acquire().await;
            drop(permit);
            // A slow hub: the publishes overlap once the gate is open.
            tokio::time::sleep(Duration::from_millis(2)).await;
            let outcome = self.recording.publish_update(update).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            outcome
        })
    }
}

/// Waits until `condition` holds; panics after 10 s.
async fn until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn seeded_sqlite(orders: usize) -> mercure_track_tests::db::SqliteDb {
    let db = mercure_track_tests::db::sqlite().await;
    let values: Vec<String> = (0..orders).map(|n| format!("('b{n}', 'NEW')")).collect();
    let sql = format!(
        "INSERT INTO orders (id, status) VALUES {}",
        values.join(", ")
    );
    sqlx::raw_sql(&sql).execute(&db.pool).await.expect("seed");
    db
}

const LIMIT: usize = 4;
const SESSIONS: usize = 12;
const COMMITS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_commits_never_exceed_the_shared_limit_wait_for_room_and_lose_nothing() {
    let db = seeded_sqlite(SESSIONS).await;
    let publisher = CountingPublisher::closed();
    let background = Background::with_limit(TaskTracker::new(), LIMIT);

    // Each session commits COMMITS status changes of its own order: each commit publishes an
    // order update and a list update, 120 publishes in all.
    let commits: Vec<_> = (0..SESSIONS)
        .map(|n| {
            let mut session = TrackedSession::new(db.pool.clone(), publisher.clone())
                .background(background.clone());
            tokio::spawn(async move {
                session.track_changes::<OrderUpdate>();
                for commit in 0..COMMITS {
                    Order::set_status_by_key(&mut session, format!("b{n}"), format!("S{commit}"))
                        .await?;
                    session.commit().await?;
                }
                Ok::<_, mercure_track_sqlx::Error>(())
            })
        })
        .collect();

    // The hub holds every publish: the limit fills up, and the commits wait for room.
    until("the limit to fill", || {
        publisher.in_flight.load(Ordering::SeqCst) >= LIMIT
    })
    .await;
    // Give the commits time to overrun the limit, were it not enforced.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(publisher.in_flight.load(Ordering::SeqCst), LIMIT);
    assert_eq!(background.in_flight(), LIMIT);
    assert!(
        commits.iter().any(|commit| !commit.is_finished()),
        "commits wait for room while the limit is full"
    );

    publisher.open();
    for commit in commits {
        commit.await.expect("task").expect("commit");
    }
    assert_eq!(
        drain(background.tracker(), Duration::from_secs(10)).await,
        0
    );

    assert!(publisher.most_in_flight.load(Ordering::SeqCst) <= LIMIT);
    assert_eq!(background.in_flight(), 0);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for update in publisher.recording.updates() {
        *counts.entry(update.update.data).or_default() += 1;
    }
    for n in 0..SESSIONS {
        let order = format!("b{n}");
        let update = OrderUpdate {
            order_id: order.clone(),
        };
        let list = ListUpdate {
            order_ids: vec![order],
        };
        for json in [update.to_json(), list.to_json()] {
            let json = json.expect("json");
            assert_eq!(
                counts.remove(&json),
                Some(COMMITS),
                "{json}: once per commit"
            );
        }
    }
    assert!(counts.is_empty(), "unexpected updates: {counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_waits_for_the_commits_waiting_for_room() {
    let db = seeded_sqlite(1).await;
    let publisher = CountingPublisher::closed();
    let background = Background::with_limit(TaskTracker::new(), 1);
    let mut session =
        TrackedSession::new(db.pool.clone(), publisher.clone()).background(background.clone());
    session.track_changes::<OrderUpdate>();
    Order::set_status_by_key(&mut session, "b0", "READY")
        .await
        .expect("set");
    // The order update takes the only place; the commit waits with its list update.
    let commit = tokio::spawn(async move { session.commit().await });
    until("the first publish", || {
        publisher.in_flight.load(Ordering::SeqCst) >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(publisher.in_flight.load(Ordering::SeqCst), 1);
    assert!(!commit.is_finished(), "the commit waits for room");

    // Both count as unfinished: the publish in flight and the commit waiting for room.
    assert_eq!(
        drain(background.tracker(), Duration::from_millis(100)).await,
        2
    );

    publisher.open();
    assert_eq!(
        drain(background.tracker(), Duration::from_secs(10)).await,
        0
    );
    commit.await.expect("task").expect("commit");
    assert_eq!(publisher.recording.len(), 2, "both updates went out");
    assert!(publisher.most_in_flight.load(Ordering::SeqCst) <= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_cancelled_while_it_waits_for_room_loses_no_publish() {
    let db = seeded_sqlite(1).await;
    let publisher = CountingPublisher::closed();
    let background = Background::with_limit(TaskTracker::new(), 1);
    let mut session =
        TrackedSession::new(db.pool.clone(), publisher.clone()).background(background.clone());
    session.track_changes::<OrderUpdate>();
    Order::set_status_by_key(&mut session, "b0", "READY")
        .await
        .expect("set");
    // The order update takes the only place; the commit waits with its list update until it
    // is dropped, as a request handler is when its client goes away.
    let commit = tokio::spawn(async move { session.commit().await });
    until("the first publish", || {
        publisher.in_flight.load(Ordering::SeqCst) >= 1
    })
    .await;
    commit.abort();
    assert!(
        commit.await.is_err_and(|error| error.is_cancelled()),
        "the commit was cancelled while it waited"
    );

    publisher.open();
    assert_eq!(
        drain(background.tracker(), Duration::from_secs(10)).await,
        0
    );
    assert_eq!(
        publisher.recording.len(),
        2,
        "the committed transaction's publishes all went out"
    );
}
