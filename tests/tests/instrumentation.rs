//! The session's instrumentation: a span per commit carrying its counts, an event per publish
//! outcome, and no key material in any of it.

use std::io::Write;
use std::sync::{Arc, Mutex};

use mercure_track::{Model as _, RecordingPublisher};
use mercure_track_sqlx::{Error, TrackedSession};
use mercure_track_tests::domain::{
    ColoringVersion, ImageUpdate, LineItem, LineItemRemoved, Order, OrderUpdate,
};
use mercure_track_tests::publishers::FailingPublisher;
use support::{Author, BLOG_SCHEMA, Post, PostUpdate};
use tracing_subscriber::fmt::format::FmtSpan;

mod support;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }

    fn count(&self, needle: &str) -> usize {
        self.text().matches(needle).count()
    }

    /// The text once it contains `needle`, or after 5 s. A span closes where its last clone
    /// drops, and SQLite's connection worker thread may hold one a moment after the commit.
    async fn text_with(&self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let text = self.text();
            if text.contains(needle) || tokio::time::Instant::now() >= deadline {
                return text;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

/// Captures the logs of the current thread (the tests' runtime is single-threaded) until the
/// guard drops.
fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

/// A new SQLite database with the seed rows.
async fn seeded_sqlite() -> mercure_track_tests::db::SqliteDb {
    let db = mercure_track_tests::db::sqlite().await;
    sqlx::raw_sql(mercure_track_tests::db::SEED)
        .execute(&db.pool)
        .await
        .expect("seed");
    db
}

#[tokio::test]
async fn commits_are_spans_and_publish_outcomes_are_events() {
    let (captured, _guard) = capture();

    let db = seeded_sqlite().await;
    let mut session = TrackedSession::new(db.pool.clone(), RecordingPublisher::new());
    session.track_changes::<OrderUpdate>();
    Order::set_status_by_key(&mut session, "A", "READY")
        .await
        .expect("set");
    Order::set_status_by_key(&mut session, "B", "READY")
        .await
        .expect("set");
    session.commit().await.expect("commit");

    let mut failing = TrackedSession::new(db.pool.clone(), FailingPublisher);
    failing.track_changes::<OrderUpdate>();
    Order::set_status_by_key(&mut failing, "C", "READY")
        .await
        .expect("set");
    failing.commit().await.expect("commit");

    let first = "mercure_track.commit{changes=2 events=2 batch_events=1 unresolved=0 context_queries=0 published=3 failed=0 queued=0}: mercure_track_sqlx::session: close";
    let text = captured.text_with(first).await;
    assert!(text.contains(first), "{text}");
    let second = "mercure_track.commit{changes=1 events=1 batch_events=1 unresolved=0 context_queries=0 published=0 failed=2 queued=0}: mercure_track_sqlx::session: close";
    let text = captured.text_with(second).await;
    assert!(text.contains(second), "{text}");
    assert!(
        text.contains("event published") && text.contains("event_type=\"order_update\""),
        "{text}"
    );
    assert!(
        text.contains("event not published")
            && text.contains("status=Some(503)")
            && text.contains("orders/C"),
        "{text}"
    );
}

const CONTRADICTED: &str = "context predicate contradicted by the database";
const SKIPPED: &str = "event skipped: its context could not be resolved";

#[tokio::test]
async fn a_contradicted_predicate_is_logged_and_ends_with_its_transaction() {
    let (captured, _guard) = capture();
    let db = mercure_track_tests::db::sqlite().await;
    sqlx::raw_sql(BLOG_SCHEMA)
        .execute(&db.pool)
        .await
        .expect("blog schema");
    let mut session = TrackedSession::new(db.pool.clone(), RecordingPublisher::new());
    session
        .track_changes::<PostUpdate>()
        .add_tracking_context(Post::id.eq(10));
    Post::set_title_by_key(&mut session, 11, "one")
        .await
        .expect("set");
    session.commit().await.expect("commit");
    assert_eq!(captured.count(CONTRADICTED), 1, "{}", captured.text());
    let text = captured.text();
    assert!(
        text.contains(
            "event=\"post_update\" table=\"posts\" key=11 column=posts.id asserted=10 found=11"
        ),
        "{text}"
    );

    // Ended by the commit: the next transaction asserts nothing.
    Post::set_title_by_key(&mut session, 11, "two")
        .await
        .expect("set");
    session.commit().await.expect("commit");
    // Ended by a rollback.
    session.add_tracking_context(Author::id.eq(2));
    Post::set_title_by_key(&mut session, 11, "three")
        .await
        .expect("set");
    session.rollback().await.expect("rollback");
    Post::set_title_by_key(&mut session, 11, "four")
        .await
        .expect("set");
    session.commit().await.expect("commit");
    assert_eq!(captured.count(CONTRADICTED), 1, "{}", captured.text());

    // A rolled-back nested transaction takes its own predicates, not the outer ones.
    session.add_tracking_context(Post::id.eq(10));
    session.begin_nested().await.expect("savepoint");
    session.add_tracking_context(Author::id.eq(2));
    session
        .rollback_nested()
        .await
        .expect("rollback to savepoint");
    Post::set_title_by_key(&mut session, 11, "five")
        .await
        .expect("set");
    session.commit().await.expect("commit");
    assert_eq!(captured.count(CONTRADICTED), 2, "{}", captured.text());
    assert!(
        !captured.text().contains("column=authors.id"),
        "{}",
        captured.text()
    );

    // Several predicates on a column mean "one of these"; a joined column is checked too.
    session
        .add_tracking_context(Post::id.eq(10))
        .add_tracking_context(Post::id.eq(11))
        .add_tracking_context(Author::id.eq(2));
    Post::set_title_by_key(&mut session, 11, "six")
        .await
        .expect("set");
    session.commit().await.expect("commit");
    assert_eq!(captured.count(CONTRADICTED), 3, "{}", captured.text());
    assert!(
        captured
            .text()
            .contains("key=11 column=authors.id asserted=2 found=3"),
        "{}",
        captured.text()
    );
}

/// A predicate on the changed row's own key is checked even when no field of the event reads
/// that key (`ImageUpdate` reads an order and an image, not the coloring version).
#[tokio::test]
async fn a_predicate_on_the_changed_rows_key_is_checked_when_no_field_reads_it() {
    let (captured, _guard) = capture();
    let db = seeded_sqlite().await;
    let mut session = TrackedSession::new(db.pool.clone(), RecordingPublisher::new());
    session
        .track_changes::<ImageUpdate>()
        .add_tracking_context(ColoringVersion::id.eq(999));
    ColoringVersion::set_status_by_key(&mut session, 100, "READY")
        .await
        .expect("set");
    let summary = session.commit().await.expect("commit");
    assert_eq!(summary.events, 1);
    assert_eq!(captured.count(CONTRADICTED), 1, "{}", captured.text());
    let text = captured.text();
    assert!(
        text.contains("key=100 column=coloring_versions.id asserted=999 found=100"),
        "{text}"
    );

    // One that holds says nothing.
    session.add_tracking_context(ColoringVersion::id.eq(100));
    ColoringVersion::set_status_by_key(&mut session, 100, "DONE")
        .await
        .expect("set");
    session.commit().await.expect("commit");
    assert_eq!(captured.count(CONTRADICTED), 1, "{}", captured.text());
}

#[tokio::test]
async fn a_skipped_event_is_logged_with_its_row_and_counted() {
    let (captured, _guard) = capture();
    let db = seeded_sqlite().await;
    let mut session = TrackedSession::new(db.pool.clone(), RecordingPublisher::new());
    session.track_changes::<ImageUpdate>();
    // Coloring 400's line item points to an order that does not exist.
    ColoringVersion::set_status_by_key(&mut session, 400, "READY")
        .await
        .expect("set");
    let summary = session.commit().await.expect("commit");
    assert_eq!((summary.unresolved, summary.events), (1, 0));
    let text = captured.text();
    assert!(
        text.contains("event=\"image_update\" table=\"coloring_versions\" key=400")
            && text.contains(SKIPPED),
        "{text}"
    );
}

#[tokio::test]
async fn a_delete_that_did_not_happen_logs_and_records_nothing() {
    let (captured, _guard) = capture();
    let db = seeded_sqlite().await;
    let recording = RecordingPublisher::new();
    let mut session = TrackedSession::new(db.pool.clone(), recording.clone());
    session.track_changes::<LineItemRemoved>();
    let error = LineItem {
        id: 99,
        order_id: "A".into(),
    }
    .delete(&mut session)
    .await
    .expect_err("missing");
    assert!(matches!(error, Error::RowNotFound { .. }), "{error}");
    let summary = session.commit().await.expect("commit");
    assert_eq!((summary.changes, summary.unresolved), (0, 0));
    assert!(recording.is_empty());
    assert_eq!(captured.count(SKIPPED), 0, "{}", captured.text());
}

#[tokio::test]
async fn an_outbox_row_with_unreadable_topics_is_logged() {
    let (captured, _guard) = capture();
    let db = mercure_track_tests::db::sqlite().await;
    mercure_track_sqlx::outbox::create_table(&db.pool)
        .await
        .expect("outbox table");
    sqlx::query(
        "INSERT INTO mercure_outbox
             (id, event_type, topics, data, private, created_at, next_attempt_at, dead_at)
         VALUES ('bad-topics', 'order_update', 'not json', '{}', FALSE, 0, 0, 0)",
    )
    .execute(&db.pool)
    .await
    .expect("insert");
    let dead = mercure_track_sqlx::outbox::dead_letters(&db.pool)
        .await
        .expect("dead letters");
    assert_eq!(dead.len(), 1);
    let text = captured.text();
    assert!(
        text.contains("unreadable topics") && text.contains("id=bad-topics"),
        "{text}"
    );
}
