//! Direct delivery's graceful shutdown: background publishes are drained within a deadline,
//! and what could not finish is reported.

use std::time::Duration;

use mercure_track_sqlx::{Background, TaskTracker, TrackedSession, drain};
use mercure_track_tests::domain::{Order, OrderUpdate};
use mercure_track_tests::publishers::GatedPublisher;

#[tokio::test]
async fn drain_reports_what_did_not_finish_and_finishes_what_can() {
    let db = mercure_track_tests::db::sqlite().await;
    sqlx::raw_sql(mercure_track_tests::db::SEED)
        .execute(&db.pool)
        .await
        .expect("seed");

    // A publish held at a closed gate cannot finish within the deadline.
    let stuck = GatedPublisher::closed();
    let tracker = TaskTracker::new();
    let mut session = TrackedSession::new(db.pool.clone(), stuck.clone())
        .background(Background::new(tracker.clone()));
    session.track_changes::<OrderUpdate>();
    Order::set_status_by_key(&mut session, "A", "READY")
        .await
        .expect("set");
    session.commit().await.expect("commit");
    // Each background publish is a task: the order update and the list update.
    assert_eq!(drain(&tracker, Duration::from_millis(200)).await, 2);
    assert!(stuck.recording.is_empty());

    // Publishes that can finish are all drained.
    let open = GatedPublisher::closed();
    open.gate.add_permits(100);
    let tracker = TaskTracker::new();
    let mut session = TrackedSession::new(db.pool.clone(), open.clone())
        .background(Background::new(tracker.clone()));
    session.track_changes::<OrderUpdate>();
    for order in ["A", "B", "C"] {
        Order::set_status_by_key(&mut session, order, "SHIPPED")
            .await
            .expect("set");
        session.commit().await.expect("commit");
    }
    assert_eq!(drain(&tracker, Duration::from_secs(10)).await, 0);
    assert_eq!(
        open.recording.len(),
        6,
        "three order updates, three list updates"
    );
}
