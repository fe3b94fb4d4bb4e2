//! Capture: writes made with plain SQL, outside the setters, turned into the same typed events
//! — by a capture loop for writes of other connections, by the session's commit for its own.
//! Every scenario runs on SQLite (a WAL file) and PostgreSQL (a schema of its own). Every wait
//! is bounded.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mercure_track::{MercureEvent, Model, RecordingPublisher};
use mercure_track_sqlx::TrackedSession;
use mercure_track_sqlx::capture::{self, Capture, CaptureConfig, CaptureDelivery, CaptureLoop};
use mercure_track_tests::domain::*;
use mercure_track_tests::publishers::GatedPublisher;
use tokio::sync::oneshot;

const DEADLINE: Duration = Duration::from_secs(30);

fn event<E: MercureEvent>(event: E) -> (Vec<String>, String) {
    (event.topics(), event.to_json().expect("json"))
}

/// The updates recorded, as (topics, data) pairs.
fn published(recording: &RecordingPublisher) -> Vec<(Vec<String>, String)> {
    recording
        .updates()
        .into_iter()
        .map(|u| (u.update.topics, u.update.data))
        .collect()
}

/// Waits until `done` holds for what `recording` holds, or the deadline.
async fn wait_for(recording: &RecordingPublisher, done: impl Fn(&[(Vec<String>, String)]) -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !done(&published(recording)) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

macro_rules! capture_tests {
    ($module:ident, $db:ty, $setup:expr, $poll:expr $(, #[$needs:meta])*) => {
        mod $module {
            use super::*;

            type Db = $db;

            /// Polling as the database needs: SQLite has only polling; on PostgreSQL a commit
            /// notifies the loop, so the tests poll once a minute and a missing wake-up shows
            /// as a test running into its deadline.
            fn fast() -> CaptureConfig {
                CaptureConfig::default().poll_interval($poll)
            }

            /// A seeded database with the capture of orders, line items and coloring versions.
            macro_rules! setup {
                ($name:expr) => {{
                    let Some(db) = $setup($name).await else {
                        return;
                    };
                    sqlx::raw_sql(mercure_track_tests::db::SEED)
                        .execute(&db.pool)
                        .await
                        .expect("seed");
                    mercure_track_sqlx::outbox::create_table(&db.pool).await.expect("outbox");
                    assert!(capture::install::<Db, Order>(&db.pool).await.expect("install"));
                    assert!(capture::install::<Db, LineItem>(&db.pool).await.expect("install"));
                    assert!(capture::install::<Db, ColoringVersion>(&db.pool).await.expect("install"));
                    // Idempotent.
                    assert!(capture::install::<Db, Order>(&db.pool).await.expect("install again"));
                    db
                }};
            }

            fn capture() -> Arc<Capture<Db>> {
                Arc::new(
                    Capture::new()
                        .model::<Order>()
                        .model::<LineItem>()
                        .model::<ColoringVersion>()
                        .track::<OrderUpdate>()
                        .track::<ImageUpdate>()
                        .track::<LineItemRemoved>(),
                )
            }

            fn spawn(worker: CaptureLoop<Db>) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
                let (stop, stopped) = oneshot::channel::<()>();
                let task = tokio::spawn(worker.run(async {
                    let _ = stopped.await;
                }));
                (stop, task)
            }

            /// A loop publishing directly to `recording`, polling fast.
            fn direct_loop(pool: &sqlx::Pool<Db>, recording: &RecordingPublisher) -> CaptureLoop<Db> {
                CaptureLoop::new(pool.clone(), capture(), Arc::new(recording.clone()), fast())
            }

            /// Runs `sql` on the pool, outside any session.
            async fn run_sql(pool: &sqlx::Pool<Db>, sql: &str) {
                sqlx::query(sql).execute(pool).await.expect(sql);
            }

            async fn log_rows(pool: &sqlx::Pool<Db>) -> i64 {
                let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM mercure_capture_log")
                    .fetch_one(pool)
                    .await
                    .expect("count");
                n
            }

            /// Asserts that order A's event and its batch event were published, nothing else,
            /// and that the log is empty.
            async fn only_order_a_published(recording: &RecordingPublisher, pool: &sqlx::Pool<Db>) {
                assert_eq!(
                    published(recording),
                    [
                        event(OrderUpdate { order_id: "A".into() }),
                        event(ListUpdate { order_ids: vec!["A".into()] }),
                    ]
                );
                assert_eq!(log_rows(pool).await, 0);
            }

            #[tokio::test]
            $(#[$needs])*
            async fn outside_write_reaches_the_hub_with_its_context() {
                let db = setup!("outside_write_reaches_the_hub_with_its_context");
                let recording = RecordingPublisher::new();
                let (stop, task) = spawn(CaptureLoop::new(
                    db.pool.clone(),
                    capture(),
                    Arc::new(recording.clone()),
                    fast(),
                ));
                // A psql-style write on a connection of its own, no session.
                let mut conn = db.pool.acquire().await.expect("conn");
                sqlx::query("UPDATE coloring_versions SET status = 'DONE' WHERE id = 200")
                    .execute(&mut *conn)
                    .await
                    .expect("update");
                // The event with the context joined through images and line items, then the
                // batch event of the test domain that counts image updates.
                let expected = [
                    event(ImageUpdate { order_id: "B".into(), image_id: 20 }),
                    event(ImageCount { count: 1 }),
                ];
                wait_for(&recording, |p| p.len() >= 2).await;
                assert_eq!(published(&recording), expected);
                // The loop has run a round and waits: on PostgreSQL only the commit's
                // notification wakes it before the test's deadline.
                sqlx::query("UPDATE coloring_versions SET status = 'DONE' WHERE id = 300")
                    .execute(&mut *conn)
                    .await
                    .expect("update");
                wait_for(&recording, |p| p.len() >= 4).await;
                assert_eq!(
                    published(&recording)[2..],
                    [
                        event(ImageUpdate { order_id: "C".into(), image_id: 30 }),
                        event(ImageCount { count: 1 }),
                    ]
                );
                // The rows are forgotten once delivered (just after the publish).
                let deadline = tokio::time::Instant::now() + DEADLINE;
                while log_rows(&db.pool).await > 0 && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                assert_eq!(log_rows(&db.pool).await, 0, "delivered rows are forgotten");
                drop(stop);
                task.await.expect("loop");
                finish(db).await;
            }

            /// 1 000 inserts of orders `W{w}_{n}` from 4 connections at once, each its own commit,
            /// with two capture loops running.
            async fn thousand_writes_with_two_loops(pool: &sqlx::Pool<Db>, config: CaptureConfig, recording: &RecordingPublisher) {
                let loops: Vec<_> = (0..2)
                    .map(|_| spawn(CaptureLoop::new(pool.clone(), capture(), Arc::new(recording.clone()), config.clone())))
                    .collect();
                let writers: Vec<_> = (0..4)
                    .map(|w| {
                        let pool = pool.clone();
                        tokio::spawn(async move {
                            let mut conn = pool.acquire().await.expect("conn");
                            for n in 0..250 {
                                sqlx::query(&format!("INSERT INTO orders (id, status) VALUES ('W{w}_{n}', 'NEW')"))
                                    .execute(&mut *conn)
                                    .await
                                    .expect("insert");
                            }
                        })
                    })
                    .collect();
                for writer in writers {
                    writer.await.expect("writer");
                }
                // Every change delivered and forgotten: nothing left to deliver twice.
                let deadline = tokio::time::Instant::now() + DEADLINE;
                while log_rows(pool).await > 0 && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                assert_eq!(log_rows(pool).await, 0, "every change delivered");
                for (stop, task) in loops {
                    drop(stop);
                    task.await.expect("loop");
                }
            }

            /// Asserts that each of the 1 000 orders' topics is among `topics` exactly once.
            fn each_order_once(topics: impl IntoIterator<Item = String>) {
                let mut per_topic: HashMap<String, usize> = HashMap::new();
                for topic in topics.into_iter().filter(|t| t.starts_with("orders/W")) {
                    *per_topic.entry(topic).or_default() += 1;
                }
                assert_eq!(per_topic.len(), 1_000, "every write delivered");
                let twice: Vec<_> = per_topic.iter().filter(|(_, n)| **n != 1).collect();
                assert!(twice.is_empty(), "delivered more than once: {twice:?}");
            }

            /// The log's `columns` of each row, in log order.
            async fn logged_columns(pool: &sqlx::Pool<Db>) -> Vec<(String, String)> {
                sqlx::query_as("SELECT op, columns FROM mercure_capture_log ORDER BY seq")
                    .fetch_all(pool)
                    .await
                    .expect("log")
            }

            #[tokio::test]
            $(#[$needs])*
            async fn only_real_changes_are_logged() {
                let db = setup!("only_real_changes_are_logged");
                assert!(capture::install::<Db, Image>(&db.pool).await.expect("install"));
                let mut conn = db.pool.acquire().await.expect("conn");
                // Same value, NULL to NULL, and a real change of a column no event triggers on
                // (with a trigger column written to its own value): nothing is logged.
                for same in [
                    "UPDATE orders SET status = status",
                    "UPDATE images SET selected_coloring_id = NULL WHERE id = 10",
                    "UPDATE coloring_versions SET image_id = 20, status = status WHERE id = 101",
                    "UPDATE images SET line_item_id = line_item_id",
                ] {
                    sqlx::query(same).execute(&mut *conn).await.expect(same);
                }
                assert_eq!(log_rows(&db.pool).await, 0);
                // NULL to a value and back are changes; only the columns that changed are named.
                sqlx::query("UPDATE images SET selected_coloring_id = 100, selected_svg = selected_svg WHERE id = 10")
                    .execute(&mut *conn)
                    .await
                    .expect("null to value");
                sqlx::query("UPDATE images SET selected_coloring_id = NULL, selected_svg = 1000 WHERE id = 10")
                    .execute(&mut *conn)
                    .await
                    .expect("value to null");
                sqlx::query("UPDATE orders SET status = 'X' WHERE id IN ('A', 'B')")
                    .execute(&mut *conn)
                    .await
                    .expect("change");
                let u = |columns: &str| ("U".to_owned(), columns.to_owned());
                assert_eq!(
                    logged_columns(&db.pool).await,
                    [
                        u("selected_coloring_id,"),
                        u("selected_coloring_id,selected_svg,"),
                        u("status,"),
                        u("status,"),
                    ]
                );
                drop(conn);
                finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn deleted_row_event_carries_the_context_it_had() {
                let db = setup!("deleted_row_event_carries_the_context_it_had");
                let recording = RecordingPublisher::new();
                let worker = direct_loop(&db.pool, &recording);
                run_sql(&db.pool, "INSERT INTO line_items (id, order_id) VALUES (5, 'C')").await;
                run_sql(&db.pool, "DELETE FROM line_items WHERE id = 5").await;
                let round = worker.run_once().await.expect("round");
                assert_eq!(round.claimed, 1);
                assert_eq!(
                    published(&recording),
                    [event(LineItemRemoved { order_id: "C".into(), line_item_id: 5 })]
                );
                assert_eq!(worker.run_once().await.expect("round").claimed, 0);
                finish(db).await;
            }

            /// A key deleted, inserted again under another order and deleted again (three times)
            /// before the loop runs: each deletion's event carries the context its own row had
            /// (one event per deletion, each to its own order's topic), whichever way the rows
            /// are looked up.
            #[tokio::test]
            $(#[$needs])*
            async fn a_key_deleted_twice_in_one_round_publishes_each_deletion_with_its_own_context() {
                let db = setup!("a_key_deleted_twice_in_one_round_publishes_each_deletion_with_its_own_context");
                let recording = RecordingPublisher::new();
                let worker = direct_loop(&db.pool, &recording);
                // Ten other line items deleted in the same round: more rows than a lookup by
                // search takes, so the indexed lookup runs too.
                let mut expected = Vec::new();
                for (n, order) in ["C", "A", "B"].into_iter().enumerate() {
                    run_sql(&db.pool, &format!("INSERT INTO line_items (id, order_id) VALUES (5, '{order}')")).await;
                    run_sql(&db.pool, "DELETE FROM line_items WHERE id = 5").await;
                    expected.push(event(LineItemRemoved { order_id: order.into(), line_item_id: 5 }));
                    if n == 0 {
                        for id in 50..60 {
                            run_sql(&db.pool, &format!("INSERT INTO line_items (id, order_id) VALUES ({id}, 'A')")).await;
                        }
                        run_sql(&db.pool, "DELETE FROM line_items WHERE id >= 50").await;
                        expected.extend((50..60).map(|id| event(LineItemRemoved { order_id: "A".into(), line_item_id: id })));
                    }
                }
                let round = worker.run_once().await.expect("round");
                assert_eq!(round.claimed, 13);
                let mut got = published(&recording);
                got.sort();
                expected.sort();
                assert_eq!(got, expected);
                finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn a_new_loop_resumes_where_the_last_one_was() {
                let db = setup!("a_new_loop_resumes_where_the_last_one_was");
                for n in 0..30 {
                    sqlx::query(&format!("INSERT INTO orders (id, status) VALUES ('N{n:02}', 'NEW')"))
                        .execute(&db.pool)
                        .await
                        .expect("insert");
                }
                let recording = RecordingPublisher::new();
                // Leases of zero: anything not forgotten would be claimed again at once.
                let config = fast().batch(10).lease(Duration::ZERO);
                let first = CaptureLoop::new(db.pool.clone(), capture(), Arc::new(recording.clone()), config.clone());
                assert_eq!(first.run_once().await.expect("round").claimed, 10);
                drop(first); // dies
                let second = CaptureLoop::new(db.pool.clone(), capture(), Arc::new(recording.clone()), config);
                let mut claimed = 0;
                // Bounded: rows never forgotten would be claimed again and again.
                for _ in 0..10 {
                    let round = second.run_once().await.expect("round");
                    if round.claimed == 0 {
                        break;
                    }
                    claimed += round.claimed;
                }
                assert_eq!(claimed, 20);
                let mut per_topic: HashMap<String, usize> = HashMap::new();
                for (topics, _) in published(&recording) {
                    for topic in topics {
                        *per_topic.entry(topic).or_default() += 1;
                    }
                }
                for n in 0..30 {
                    assert_eq!(per_topic.get(&format!("orders/N{n:02}")), Some(&1), "order N{n:02}");
                }
                // One list update per round.
                assert_eq!(per_topic.get("orders"), Some(&3));
                finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn a_loop_that_dies_mid_round_loses_nothing() {
                let db = setup!("a_loop_that_dies_mid_round_loses_nothing");
                sqlx::query("UPDATE orders SET status = 'X'")
                    .execute(&db.pool)
                    .await
                    .expect("update");
                // The first loop claims the three changes and dies while it publishes.
                let stuck = GatedPublisher::closed();
                let publishing = stuck.entered.clone();
                let first = CaptureLoop::new(
                    db.pool.clone(),
                    capture(),
                    Arc::new(stuck),
                    fast().lease(Duration::from_millis(1)),
                );
                let round = tokio::spawn(async move { first.run_once().await });
                tokio::time::timeout(DEADLINE, publishing.notified())
                    .await
                    .expect("the first loop publishes");
                round.abort();
                assert!(round.await.is_err(), "died mid-round");
                assert_eq!(log_rows(&db.pool).await, 3, "nothing forgotten");
                // Another loop takes them once the dead loop's lease has run out.
                let recording = RecordingPublisher::new();
                let second = CaptureLoop::new(db.pool.clone(), capture(), Arc::new(recording.clone()), fast());
                let deadline = tokio::time::Instant::now() + DEADLINE;
                let mut claimed = 0;
                while claimed == 0 && tokio::time::Instant::now() < deadline {
                    claimed = second.run_once().await.expect("round").claimed;
                }
                assert_eq!(claimed, 3);
                assert_eq!(
                    published(&recording),
                    [
                        event(OrderUpdate { order_id: "A".into() }),
                        event(OrderUpdate { order_id: "B".into() }),
                        event(OrderUpdate { order_id: "C".into() }),
                        event(ListUpdate { order_ids: vec!["A".into(), "B".into(), "C".into()] }),
                    ]
                );
                assert_eq!(log_rows(&db.pool).await, 0);
                finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn rows_claimed_by_a_live_loop_are_left_to_it_expired_ones_are_taken_over() {
                let db = setup!("rows_claimed_by_a_live_loop_are_left_to_it_expired_ones_are_taken_over");
                sqlx::query("UPDATE orders SET status = 'X' WHERE id IN ('A', 'B')")
                    .execute(&db.pool)
                    .await
                    .expect("update");
                let far = i64::MAX / 2;
                sqlx::query(&format!("UPDATE mercure_capture_log SET claimed_by = 'alive', claimed_until = {far}"))
                    .execute(&db.pool)
                    .await
                    .expect("claim");
                let recording = RecordingPublisher::new();
                let worker = CaptureLoop::new(db.pool.clone(), capture(), Arc::new(recording.clone()), fast());
                assert_eq!(worker.run_once().await.expect("round").claimed, 0);
                assert!(recording.is_empty());
                sqlx::query("UPDATE mercure_capture_log SET claimed_by = 'dead', claimed_until = 1")
                    .execute(&db.pool)
                    .await
                    .expect("expire");
                assert_eq!(worker.run_once().await.expect("round").claimed, 2);
                assert_eq!(
                    published(&recording),
                    [
                        event(OrderUpdate { order_id: "A".into() }),
                        event(OrderUpdate { order_id: "B".into() }),
                        event(ListUpdate { order_ids: vec!["A".into(), "B".into()] }),
                    ]
                );
                finish(db).await;
            }

            /// A loop whose rows another loop took over while it published (its lease ran out)
            /// forgets none of them: not their log rows, and not the rows the triggers saved of
            /// what they changed, which the loop holding them needs to build their events.
            #[tokio::test]
            $(#[$needs])*
            async fn a_loop_whose_rows_were_taken_over_leaves_them_whole_to_the_new_owner() {
                let db = setup!("a_loop_whose_rows_were_taken_over_leaves_them_whole_to_the_new_owner");
                run_sql(&db.pool, "UPDATE orders SET status = 'X' WHERE id = 'A'").await;
                let stuck = GatedPublisher::closed();
                let (publishing, gate) = (stuck.entered.clone(), stuck.gate.clone());
                let first = CaptureLoop::new(db.pool.clone(), capture(), Arc::new(stuck), fast());
                let round = tokio::spawn(async move { first.run_once().await });
                tokio::time::timeout(DEADLINE, publishing.notified())
                    .await
                    .expect("the first loop publishes");
                // Meanwhile another loop holds the row (as after the first one's lease ran out).
                let far = i64::MAX / 2;
                run_sql(
                    &db.pool,
                    &format!("UPDATE mercure_capture_log SET claimed_by = 'other', claimed_until = {far}"),
                )
                .await;
                gate.add_permits(10);
                let first_round = tokio::time::timeout(DEADLINE, round)
                    .await
                    .expect("the first round ends")
                    .expect("task")
                    .expect("round");
                assert_eq!((first_round.claimed, first_round.forgotten), (1, 0));
                assert_eq!(log_rows(&db.pool).await, 1, "left to the loop that holds it");
                // That loop dies in turn: the next one still builds the event, with its context.
                run_sql(&db.pool, "UPDATE mercure_capture_log SET claimed_until = 1").await;
                let recording = RecordingPublisher::new();
                let next = direct_loop(&db.pool, &recording);
                let round = next.run_once().await.expect("round");
                assert_eq!((round.claimed, round.unresolved, round.forgotten), (1, 0, 1));
                only_order_a_published(&recording, &db.pool).await;
                finish(db).await;
            }

            /// A captured change whose saved key is gone from the shadow table (it should not
            /// happen; it did when a loop forgot rows another loop held) builds no event: the
            /// round counts each event it fires as unresolved instead of dropping it unseen.
            #[tokio::test]
            $(#[$needs])*
            async fn a_captured_change_without_its_saved_key_counts_as_unresolved() {
                let db = setup!("a_captured_change_without_its_saved_key_counts_as_unresolved");
                run_sql(&db.pool, "UPDATE orders SET status = 'X' WHERE id IN ('A', 'B')").await;
                run_sql(&db.pool, "DELETE FROM mercure_capture__orders WHERE id = 'B'").await;
                let recording = RecordingPublisher::new();
                let round = direct_loop(&db.pool, &recording).run_once().await.expect("round");
                assert_eq!(
                    (round.claimed, round.unresolved, round.forgotten),
                    (2, 1, 2),
                    "{round:?}"
                );
                only_order_a_published(&recording, &db.pool).await;

                // Two changed columns that fire the same event: one unresolved event, not two.
                assert!(capture::install::<Db, Image>(&db.pool).await.expect("install"));
                run_sql(
                    &db.pool,
                    "UPDATE images SET selected_coloring_id = 100, selected_svg = 1000 WHERE id = 10",
                )
                .await;
                run_sql(&db.pool, "DELETE FROM mercure_capture__images WHERE id = 10").await;
                let images = Arc::new(Capture::new().model::<Image>().track::<ImageUpdate>());
                let recording = RecordingPublisher::new();
                let round = CaptureLoop::new(db.pool.clone(), images, Arc::new(recording.clone()), fast())
                    .run_once()
                    .await
                    .expect("round");
                assert_eq!(
                    (round.claimed, round.unresolved, round.forgotten),
                    (1, 1, 1),
                    "{round:?}"
                );
                assert!(recording.is_empty());
                finish(db).await;
            }

            /// The same in a session's own captured change, under the policy that fails: the
            /// commit is an error and keeps nothing.
            #[tokio::test]
            $(#[$needs])*
            async fn a_sessions_captured_change_without_its_saved_key_fails_a_failing_commit() {
                let db = setup!("a_sessions_captured_change_without_its_saved_key_fails_a_failing_commit");
                let recording = RecordingPublisher::new();
                let mut session = TrackedSession::new(db.pool.clone(), recording.clone())
                    .capture(capture())
                    .on_unresolved_context(mercure_track_sqlx::UnresolvedContext::Fail);
                session.track_changes::<OrderUpdate>();
                for sql in [
                    "UPDATE orders SET status = 'RAW' WHERE id = 'A'",
                    "DELETE FROM mercure_capture__orders",
                ] {
                    sqlx::query(sql)
                        .execute(session.conn().await.expect("conn"))
                        .await
                        .expect(sql);
                }
                let error = session.commit().await.expect_err("the commit fails");
                assert!(
                    matches!(
                        &error,
                        mercure_track_sqlx::Error::UnresolvedContext { table: "orders", key, .. }
                            if key.starts_with("(log row ")
                    ),
                    "{error:?}"
                );
                let (status,): (String,) = sqlx::query_as("SELECT status FROM orders WHERE id = 'A'")
                    .fetch_one(&db.pool)
                    .await
                    .expect("status");
                assert_ne!(status, "RAW", "rolled back");
                assert_eq!(log_rows(&db.pool).await, 0, "the log row rolled back too");
                assert!(recording.is_empty());
                finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn thousand_outside_writes_from_four_connections_each_published_once() {
                let db = setup!("thousand_outside_writes_from_four_connections_each_published_once");
                let recording = RecordingPublisher::new();
                thousand_writes_with_two_loops(&db.pool, fast().batch(100), &recording).await;
                each_order_once(published(&recording).into_iter().flat_map(|(topics, _)| topics));
                finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn outside_writes_through_the_outbox() {
                let db = setup!("outside_writes_through_the_outbox");
                let recording = RecordingPublisher::new();
                let worker = CaptureLoop::new(
                    db.pool.clone(),
                    capture(),
                    Arc::new(recording.clone()),
                    fast().delivery(CaptureDelivery::Outbox),
                );
                sqlx::query("UPDATE orders SET status = 'X' WHERE id = 'C'")
                    .execute(&db.pool)
                    .await
                    .expect("update");
                let round = worker.run_once().await.expect("round");
                assert_eq!((round.claimed, round.queued, round.published), (1, 2, 0));
                assert!(recording.is_empty(), "the relay publishes, not the loop");
                assert_eq!(mercure_track_sqlx::outbox::pending(&db.pool).await.expect("pending"), 2);
                assert_eq!(log_rows(&db.pool).await, 0);
                finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn raw_write_in_a_session_publishes_at_its_commit_once_and_never_after_rollback() {
                let db = setup!("raw_write_in_a_session_publishes_at_its_commit_once_and_never_after_rollback");
                let recording = RecordingPublisher::new();
                let capture = capture();
                // Another connection's committed change, not yet taken by any loop: not the
                // session's.
                sqlx::query("UPDATE orders SET status = 'OUT' WHERE id = 'C'")
                    .execute(&db.pool)
                    .await
                    .expect("outside");
                let mut session = TrackedSession::new(db.pool.clone(), recording.clone())
                    .capture(capture.clone());
                session.track_changes::<OrderUpdate>();

                // Rolled back: nothing, and nothing left for the loop.
                sqlx::query("UPDATE orders SET status = 'GONE' WHERE id = 'C'")
                    .execute(session.conn().await.expect("conn"))
                    .await
                    .expect("raw");
                session.rollback().await.expect("rollback");

                // A raw write and a setter on A (seen twice), a raw write on B, a raw write on C
                // in a rolled-back savepoint.
                sqlx::query("UPDATE orders SET status = 'RAW' WHERE id = 'A'")
                    .execute(session.conn().await.expect("conn"))
                    .await
                    .expect("raw");
                let mut a = Order::find(&mut session, "A").await.expect("find");
                assert!(a.set_status(&mut session, "SET").await.expect("set"));
                session.begin_nested().await.expect("savepoint");
                sqlx::query("UPDATE orders SET status = 'NESTED' WHERE id = 'C'")
                    .execute(session.conn().await.expect("conn"))
                    .await
                    .expect("raw");
                session.rollback_nested().await.expect("rollback savepoint");
                sqlx::query("UPDATE orders SET status = 'RAW' WHERE id = 'B'")
                    .execute(session.conn().await.expect("conn"))
                    .await
                    .expect("raw");
                assert!(recording.is_empty(), "nothing before the commit");
                session.commit().await.expect("commit");
                assert_eq!(
                    published(&recording),
                    [
                        event(OrderUpdate { order_id: "A".into() }),
                        event(OrderUpdate { order_id: "B".into() }),
                        event(ListUpdate { order_ids: vec!["A".into(), "B".into()] }),
                    ]
                );
                assert_eq!(log_rows(&db.pool).await, 1, "the session took its rows, only its rows");

                // An outside loop publishes the outside change, and nothing of the session's.
                let outside = RecordingPublisher::new();
                let worker = CaptureLoop::new(db.pool.clone(), capture, Arc::new(outside.clone()), fast());
                assert_eq!(worker.run_once().await.expect("round").claimed, 1);
                assert_eq!(
                    published(&outside),
                    [
                        event(OrderUpdate { order_id: "C".into() }),
                        event(ListUpdate { order_ids: vec!["C".into()] }),
                    ]
                );
                drop(session);
                finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn changes_are_delivered_in_commit_order() {
                let db = setup!("changes_are_delivered_in_commit_order");
                // One commit after the other, on several tables (line item 5 is not logged:
                // no event triggers on a line item's insert).
                for sql in [
                    "INSERT INTO line_items (id, order_id) VALUES (5, 'B')",
                    "UPDATE orders SET status = 'X' WHERE id = 'C'",
                    "UPDATE coloring_versions SET status = 'DONE' WHERE id = 200",
                    "UPDATE orders SET status = 'X' WHERE id = 'A'",
                    "DELETE FROM line_items WHERE id = 5",
                    "UPDATE orders SET status = 'X' WHERE id = 'B'",
                ] {
                    sqlx::query(sql).execute(&db.pool).await.expect(sql);
                }
                let recording = RecordingPublisher::new();
                // Two rows a round: rounds follow each other in commit order.
                let worker = CaptureLoop::new(db.pool.clone(), capture(), Arc::new(recording.clone()), fast().batch(2));
                for _ in 0..3 {
                    worker.run_once().await.expect("round");
                }
                assert_eq!(worker.run_once().await.expect("round").claimed, 0);
                // A round's changes are delivered together, as one commit's are (events by
                // model, then the batch events collecting them).
                assert_eq!(
                    published(&recording),
                    [
                        event(OrderUpdate { order_id: "C".into() }),
                        event(ImageUpdate { order_id: "B".into(), image_id: 20 }),
                        event(ListUpdate { order_ids: vec!["C".into()] }),
                        event(ImageCount { count: 1 }),
                        event(OrderUpdate { order_id: "A".into() }),
                        event(LineItemRemoved { order_id: "B".into(), line_item_id: 5 }),
                        event(ListUpdate { order_ids: vec!["A".into()] }),
                        event(OrderUpdate { order_id: "B".into() }),
                        event(ListUpdate { order_ids: vec!["B".into()] }),
                    ]
                );
                finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn thousand_outside_writes_through_the_outbox_each_queued_once() {
                let db = setup!("thousand_outside_writes_through_the_outbox_each_queued_once");
                let recording = RecordingPublisher::new();
                let config = fast().batch(100).delivery(CaptureDelivery::Outbox);
                thousand_writes_with_two_loops(&db.pool, config, &recording).await;
                assert!(recording.is_empty(), "the relay publishes, not the loops");
                let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, topics FROM mercure_outbox")
                    .fetch_all(&db.pool)
                    .await
                    .expect("outbox");
                let ids: std::collections::HashSet<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
                assert_eq!(ids.len(), rows.len(), "one id per outbox row");
                each_order_once(
                    rows.iter()
                        .flat_map(|(_, topics)| serde_json::from_str::<Vec<String>>(topics).expect("topics")),
                );
                finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn a_session_commit_in_this_process_wakes_the_loop() {
                let db = setup!("a_session_commit_in_this_process_wakes_the_loop");
                let recording = RecordingPublisher::new();
                // Polls once a minute: only a wake-up delivers before the test's deadline
                // (SQLite: the session's commit in this process; PostgreSQL: the trigger's
                // notification).
                let slow = CaptureConfig::default().poll_interval(Duration::from_secs(60));
                sqlx::query("UPDATE orders SET status = 'X' WHERE id = 'A'")
                    .execute(&db.pool)
                    .await
                    .expect("update");
                let (stop, task) = spawn(CaptureLoop::new(db.pool.clone(), capture(), Arc::new(recording.clone()), slow));
                // The first round has claimed A: the loop is in its round or waiting.
                wait_for(&recording, |p| !p.is_empty()).await;
                assert_eq!(published(&recording)[0], event(OrderUpdate { order_id: "A".into() }));
                // A session without the capture: its plain SQL is left to the loop.
                let mut session = TrackedSession::new(db.pool.clone(), RecordingPublisher::new());
                sqlx::query("UPDATE orders SET status = 'X' WHERE id = 'B'")
                    .execute(session.conn().await.expect("conn"))
                    .await
                    .expect("raw");
                session.commit().await.expect("commit");
                let b = event(OrderUpdate { order_id: "B".into() });
                wait_for(&recording, |p| p.contains(&b)).await;
                assert!(published(&recording).contains(&b), "the commit woke the loop");
                drop(stop);
                task.await.expect("loop");
                drop(session);
                finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn ddl_is_a_script_and_uninstall_removes_the_triggers() {
                let db = setup!("ddl_is_a_script_and_uninstall_removes_the_triggers");
                let script = capture::ddl::<Db, Order>();
                assert!(script.contains("mercure_capture_log"));
                assert_eq!(capture::uninstall::<Db, Order>(&db.pool).await.expect("uninstall"), 0);
                sqlx::query("UPDATE orders SET status = 'X'")
                    .execute(&db.pool)
                    .await
                    .expect("update");
                assert_eq!(log_rows(&db.pool).await, 0, "no trigger left");
                // The script installs it again.
                sqlx::raw_sql(&script).execute(&db.pool).await.expect("script");
                sqlx::query("UPDATE orders SET status = 'Y'")
                    .execute(&db.pool)
                    .await
                    .expect("update");
                assert_eq!(log_rows(&db.pool).await, 3);
                finish(db).await;
            }
        }
    };
}

async fn sqlite_db(_test: &str) -> Option<mercure_track_tests::db::SqliteDb> {
    Some(mercure_track_tests::db::sqlite().await)
}

async fn finish(db: impl mercure_track_tests::db::TestDb) {
    db.finish().await;
}

capture_tests!(
    sqlite,
    sqlx::Sqlite,
    super::sqlite_db,
    Duration::from_millis(50)
);
capture_tests!(
    postgres,
    sqlx::Postgres,
    mercure_track_tests::db::postgres,
    Duration::from_secs(60),
    #[cfg_attr(not(mercure_track_pg), ignore = "needs PostgreSQL: set MERCURE_TRACK_PG_URL")]
);

/// A seeded PostgreSQL schema whose orders are captured.
async fn postgres_with_orders_captured(test: &str) -> Option<mercure_track_tests::db::PostgresDb> {
    let db = mercure_track_tests::db::postgres(test).await?;
    sqlx::raw_sql(mercure_track_tests::db::SEED)
        .execute(&db.pool)
        .await
        .expect("seed");
    assert!(
        capture::install::<sqlx::Postgres, Order>(&db.pool)
            .await
            .expect("install")
    );
    Some(db)
}

/// The capture of orders, publishing their updates.
fn orders_capture() -> Arc<Capture<sqlx::Postgres>> {
    Arc::new(Capture::new().model::<Order>().track::<OrderUpdate>())
}

/// Several capture loops on PostgreSQL: rows another loop is claiming (its claim not yet
/// committed) are skipped, not waited for and then taken again.
#[tokio::test]
#[cfg_attr(
    not(mercure_track_pg),
    ignore = "needs PostgreSQL: set MERCURE_TRACK_PG_URL"
)]
async fn postgres_loops_skip_rows_another_loop_is_claiming() {
    let Some(db) =
        postgres_with_orders_captured("postgres_loops_skip_rows_another_loop_is_claiming").await
    else {
        return;
    };
    sqlx::query("UPDATE orders SET status = 'X' WHERE id IN ('A', 'B')")
        .execute(&db.pool)
        .await
        .expect("update");
    // Another loop's claim, in flight.
    let mut other = db.pool.begin().await.expect("begin");
    let far = i64::MAX / 2;
    sqlx::query(&format!(
        "UPDATE mercure_capture_log SET claimed_by = 'other', claimed_until = {far}"
    ))
    .execute(&mut *other)
    .await
    .expect("claim");
    let recording = RecordingPublisher::new();
    let capture = orders_capture();
    let worker = CaptureLoop::new(
        db.pool.clone(),
        capture,
        Arc::new(recording.clone()),
        CaptureConfig::default(),
    );
    let round = tokio::time::timeout(DEADLINE, worker.run_once())
        .await
        .expect("the claim skips locked rows instead of waiting for them")
        .expect("round");
    assert_eq!(round.claimed, 0);
    other.commit().await.expect("commit");
    assert_eq!(
        worker.run_once().await.expect("round").claimed,
        0,
        "claimed by the other loop"
    );
    assert!(recording.is_empty());
    finish(db).await;
}

/// A `psql`-style writer on PostgreSQL whose `search_path` is not the installation's (it names
/// the schema in its statement): its change goes to the installation's log and the trigger's
/// notification wakes that schema's loop.
#[tokio::test]
#[cfg_attr(
    not(mercure_track_pg),
    ignore = "needs PostgreSQL: set MERCURE_TRACK_PG_URL"
)]
async fn postgres_writer_with_another_search_path_wakes_the_loop() {
    use sqlx::Connection as _;
    let Some(db) =
        postgres_with_orders_captured("postgres_writer_with_another_search_path_wakes_the_loop")
            .await
    else {
        return;
    };
    let recording = RecordingPublisher::new();
    let capture = orders_capture();
    // Polls once a minute: only the notification delivers before the deadline.
    let config = CaptureConfig::default().poll_interval(Duration::from_secs(60));
    let worker = CaptureLoop::new(
        db.pool.clone(),
        capture,
        Arc::new(recording.clone()),
        config,
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(worker.run(async {
        let _ = stopped.await;
    }));
    // A first change, through the pool: once its event is out the loop listens and waits.
    sqlx::query("UPDATE orders SET status = 'X' WHERE id = 'B'")
        .execute(&db.pool)
        .await
        .expect("update");
    wait_for(&recording, |p| p.len() >= 2).await;
    assert_eq!(
        published(&recording)[0],
        event(OrderUpdate {
            order_id: "B".into()
        })
    );
    let (url, schema) = db.location();
    let mut psql = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query("SET search_path TO public")
        .execute(&mut psql)
        .await
        .expect("path");
    sqlx::query(&format!(
        "UPDATE \"{schema}\".orders SET status = 'P' WHERE id = 'A'"
    ))
    .execute(&mut psql)
    .await
    .expect("a write through another search_path is logged");
    let a = event(OrderUpdate {
        order_id: "A".into(),
    });
    wait_for(&recording, |p| p.contains(&a)).await;
    assert!(
        published(&recording).contains(&a),
        "the notification woke the loop"
    );
    drop(stop);
    task.await.expect("loop");
    psql.close().await.expect("close");
    finish(db).await;
}
