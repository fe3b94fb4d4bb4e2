//! The session's instrumentation: a span per commit carrying its counts, an event per publish
//! outcome, and no key material in any of it.

use std::io::Write;
use std::sync::{Arc, Mutex};

use mercure_track::RecordingPublisher;
use mercure_track_sqlx::TrackedSession;
use mercure_track_tests::domain::{Order, OrderUpdate};
use mercure_track_tests::publishers::FailingPublisher;
use tracing_subscriber::fmt::format::FmtSpan;

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
}

#[tokio::test]
async fn commits_are_spans_and_publish_outcomes_are_events() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let db = mercure_track_tests::db::sqlite().await;
    sqlx::raw_sql(mercure_track_tests::db::SEED)
        .execute(&db.pool)
        .await
        .expect("seed");
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

    let text = captured.text();
    assert!(
        text.contains("mercure_track.commit{changes=2 events=2 batch_events=1 context_queries=0}: mercure_track_sqlx::session: close"),
        "{text}"
    );
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
