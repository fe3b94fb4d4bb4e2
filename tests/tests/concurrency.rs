//! Many sessions at once on PostgreSQL: each change's event goes out exactly once, with the
//! context of its own row, and no session sees another's changes.

use std::collections::BTreeMap;

use mercure_track::{MercureEvent, RecordingPublisher};
use mercure_track_sqlx::TrackedSession;
use mercure_track_tests::domain::{ColoringVersion, ImageUpdate, Order, OrderUpdate};

const SESSIONS: i64 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_hundred_concurrent_sessions_publish_each_event_once_with_its_context() {
    let Some(db) = mercure_track_tests::db::postgres("one_hundred_concurrent_sessions").await
    else {
        return;
    };
    // Order n has line item n, image 1000 + n, coloring version 2000 + n.
    let mut seed = String::new();
    for n in 0..SESSIONS {
        seed.push_str(&format!(
            "INSERT INTO orders VALUES ('o{n}', 'NEW');
             INSERT INTO line_items VALUES ({n}, 'o{n}');
             INSERT INTO images (id, line_item_id) VALUES ({image}, {n});
             INSERT INTO coloring_versions VALUES ({version}, {image}, 'PENDING');",
            image = 1000 + n,
            version = 2000 + n,
        ));
    }
    sqlx::raw_sql(&seed).execute(&db.pool).await.expect("seed");

    let recording = RecordingPublisher::new();
    let mut tasks = Vec::new();
    for n in 0..SESSIONS {
        let pool = db.pool.clone();
        let recording = recording.clone();
        tasks.push(tokio::spawn(async move {
            let mut session = TrackedSession::new(pool, recording);
            session
                .track_changes::<ImageUpdate>()
                .track_changes::<OrderUpdate>();
            ColoringVersion::set_status_by_key(&mut session, 2000 + n, "PROCESSING").await?;
            Order::set_status_by_key(&mut session, format!("o{n}"), "PROCESSING").await?;
            session.commit().await
        }));
    }
    for task in tasks {
        let summary = task.await.expect("task").expect("commit");
        assert_eq!(summary.changes, 2);
    }

    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for update in recording.updates() {
        *counts.entry(update.update.data.clone()).or_default() += 1;
    }
    for n in 0..SESSIONS {
        let image = ImageUpdate {
            order_id: format!("o{n}"),
            image_id: 1000 + n,
        };
        let order = OrderUpdate {
            order_id: format!("o{n}"),
        };
        for json in [
            image.to_json().expect("json"),
            order.to_json().expect("json"),
        ] {
            assert_eq!(counts.remove(&json), Some(1), "{json} exactly once");
        }
        // Each session's batch holds its own order only.
        let batch = format!(r#"{{"type":"list_update","order_ids":["o{n}"]}}"#);
        assert_eq!(counts.remove(&batch), Some(1), "{batch} exactly once");
    }
    // What remains is the image-count batch of the test domain, one per session.
    assert_eq!(
        counts.remove(r#"{"type":"image_count","count":1}"#),
        Some(SESSIONS as usize)
    );
    assert!(counts.is_empty(), "unexpected updates: {counts:?}");
    db.drop_schema().await;
}
