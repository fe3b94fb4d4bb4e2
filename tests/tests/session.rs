//! The tracked session against real SQLite and PostgreSQL: every scenario runs on both, each
//! test on a fresh database (SQLite file) or schema (PostgreSQL).

use std::collections::BTreeSet;
use std::time::Duration;

use mercure_track::{MercureEvent, Model, RecordingPublisher};
use mercure_track_sqlx::{Background, Error, TaskTracker, TrackedSession, UnresolvedContext};
use mercure_track_tests::domain::*;
use mercure_track_tests::publishers::{FailingPublisher, GatedPublisher};
use support::*;

mod support;

/// The updates recorded, as (topics, data) pairs.
fn published(recording: &RecordingPublisher) -> Vec<(Vec<String>, String)> {
    recording
        .updates()
        .into_iter()
        .map(|u| (u.update.topics, u.update.data))
        .collect()
}

fn image_update(order: &str, image: i64) -> (Vec<String>, String) {
    let event = ImageUpdate {
        order_id: order.into(),
        image_id: image,
    };
    (event.topics(), event.to_json().expect("json"))
}

fn image_count(count: usize) -> (Vec<String>, String) {
    let event = ImageCount { count };
    (event.topics(), event.to_json().expect("json"))
}

fn order_update(order: &str) -> (Vec<String>, String) {
    let event = OrderUpdate {
        order_id: order.into(),
    };
    (event.topics(), event.to_json().expect("json"))
}

/// A second event of the same change as `ImageUpdate`, with another context: its plan must
/// not be mistaken for `ImageUpdate`'s (plans are kept for the program).
#[derive(Debug, Clone, PartialEq, MercureEvent)]
#[mercure(type = "coloring_image", topic = "images/{image_id}")]
#[trigger(ColoringVersion::status)]
struct ColoringImage {
    #[context(Image::id)]
    image_id: i64,
}

/// An order's status, tracked with a batch whose rule has a bug: it panics on a `PANIC`
/// order.
#[derive(Debug, Clone, PartialEq, MercureEvent)]
#[mercure(type = "loud_order", topic = "orders/{order_id}")]
#[trigger(Order::status)]
struct LoudOrder {
    #[context(Order::id)]
    order_id: String,
    #[context(Order::status)]
    status: String,
}

/// The batch of [`LoudOrder`]s, built by [`loud_rule`].
#[derive(Debug, Clone, PartialEq, MercureEvent)]
#[mercure(type = "loud_count", topic = "stats", collect(LoudOrder), from_collected = loud_rule)]
struct LoudCount {
    count: usize,
}

fn loud_rule(collected: &mercure_track::Collected<'_>) -> Option<LoudCount> {
    let orders: Vec<&LoudOrder> = collected.of::<LoudOrder>().collect();
    assert!(
        orders.iter().all(|o| o.status != "PANIC"),
        "a batch rule with a bug"
    );
    Some(LoudCount {
        count: orders.len(),
    })
}

macro_rules! session_tests {
    ($module:ident, $db:ty, $setup:expr $(, #[$needs:meta])*) => {
        mod $module {
            use super::*;

            type Db = $db;

            /// A database with the seed rows, and a session recording what it publishes.
            macro_rules! setup {
                ($name:expr) => {{
                    let Some(db) = $setup($name).await else {
                        return;
                    };
                    sqlx::raw_sql(mercure_track_tests::db::SEED)
                        .execute(&db.pool)
                        .await
                        .expect("seed");
                    db
                }};
            }

            /// The `status` column of row `key` (an SQL literal) of `table`, read outside any
            /// session.
            async fn stored_status(pool: &sqlx::Pool<Db>, table: &str, key: &str) -> String {
                let sql = format!("SELECT status FROM {table} WHERE id = {key}");
                let (status,): (String,) =
                    sqlx::query_as(&sql).fetch_one(pool).await.expect("read");
                status
            }

            fn new_session(
                pool: &sqlx::Pool<Db>,
                recording: &RecordingPublisher,
            ) -> TrackedSession<Db> {
                TrackedSession::new(pool.clone(), recording.clone())
            }

            #[tokio::test]
            $(#[$needs])*
            async fn tracking_an_event_twice_tracks_it_once() {
                let db = setup!("tracking_an_event_twice_tracks_it_once");
                let recording = RecordingPublisher::new();
                let mut session = new_session(&db.pool, &recording);
                session.track_changes::<ImageUpdate>();
                session.track_changes::<ImageUpdate>();
                assert_eq!(session.tracked_events().len(), 1);
                ColoringVersion::set_status_by_key(&mut session, 200, "PROCESSING")
                    .await
                    .expect("set");
                let summary = session.commit().await.expect("commit");
                // One event, resolved by one query: not once per call to `track_changes`.
                assert_eq!((summary.events, summary.context_queries), (1, 1));
                finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn setter_publishes_after_commit_with_the_rows_context() {
                let db = setup!("setter_publishes_after_commit_with_the_rows_context");
                let recording = RecordingPublisher::new();
                let mut session = new_session(&db.pool, &recording);
                session.track_changes::<ImageUpdate>();
                let mut version = ColoringVersion::find(&mut session, 200)
                    .await
                    .expect("find");
                assert!(
                    version
                        .set_status(&mut session, "PROCESSING")
                        .await
                        .expect("set")
                );
                assert_eq!(version.status, "PROCESSING");
                assert!(
                    recording.is_empty(),
                    "nothing is published before the commit"
                );
                let summary = session.commit().await.expect("commit");
                assert_eq!(summary.changes, 1);
                assert_eq!(summary.events, 1);
                // One query resolves the order through images and line items.
                assert_eq!(summary.context_queries, 1);
                // The event and its batch, both accepted before the commit returned.
                assert_eq!(
                    (summary.published, summary.failed, summary.queued),
                    (2, 0, 0)
                );
                // Then the batch event of the test domain that counts image updates.
                assert_eq!(
                    published(&recording),
                    [image_update("B", 20), image_count(1)]
                );
                assert_eq!(
                    stored_status(&db.pool, "coloring_versions", "200").await,
                    "PROCESSING"
                );
                finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn two_events_of_one_change_each_read_their_own_context_in_every_commit() {
                let db = setup!("two_events_of_one_change_each_read_their_own_context_in_every_commit");
                let coloring_image = |image_id| {
                    let event = ColoringImage { image_id };
                    (event.topics(), event.to_json().expect("json"))
                };
                for (status, id, order, image) in [("P1", 200, "B", 20), ("P2", 100, "A", 10)] {
                    let recording = RecordingPublisher::new();
                    let mut session = new_session(&db.pool, &recording);
                    session.track_changes::<ImageUpdate>();
                    session.track_changes::<ColoringImage>();
                    ColoringVersion::set_status_by_key(&mut session, id, status)
                        .await
                        .expect("set");
                    let summary = session.commit().await.expect("commit");
                    assert_eq!((summary.events, summary.unresolved), (2, 0));
                    let got = published(&recording);
                    assert!(got.contains(&image_update(order, image)), "{got:?}");
                    assert!(got.contains(&coloring_image(image)), "{got:?}");
                }
                finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn rows_changed_in_any_order_each_get_their_own_context() {
                let db = setup!("rows_changed_in_any_order_each_get_their_own_context");
                let recording = RecordingPublisher::new();
                let mut session = new_session(&db.pool, &recording);
                session.track_changes::<ImageUpdate>();
                for id in [300, 100, 200] {
                    ColoringVersion::set_status_by_key(&mut session, id, "ORDERED")
                        .await
                        .expect("set");
                }
                let summary = session.commit().await.expect("commit");
                assert_eq!((summary.events, summary.context_queries), (3, 1));
                let got = published(&recording);
                for (order, image) in [("C", 30), ("A", 10), ("B", 20)] {
                    assert!(got.contains(&image_update(order, image)), "{got:?}");
                }
                finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn rollback_and_drop_publish_nothing_and_forget_their_changes() {
                let db = setup!("rollback_and_drop_publish_nothing_and_forget_their_changes");
                let recording = RecordingPublisher::new();
                let mut session = new_session(&db.pool, &recording);
                session.track_changes::<OrderUpdate>();
                Order::set_status_by_key(&mut session, "A", "CANCELLED")
                    .await
                    .expect("set");
                session.rollback().await.expect("rollback");
                // The next commit carries only its own changes.
                Order::set_status_by_key(&mut session, "B", "READY")
                    .await
                    .expect("set");
                session.commit().await.expect("commit");
                assert_eq!(
                    published(&recording),
                    [order_update("B"), list_update(&["B"])]
                );

                let mut dropped = session_for(&db.pool, &recording);
                Order::set_status_by_key(&mut dropped, "C", "READY")
                    .await
                    .expect("set");
                drop(dropped);
                assert_eq!(
                    stored_status(&db.pool, "orders", "'C'").await,
                    "NEW",
                    "dropping the session rolled back"
                );
                assert_eq!(recording.len(), 2, "nothing more was published");
                finish(db).await;
            }

            fn session_for(
                pool: &sqlx::Pool<Db>,
                recording: &RecordingPublisher,
            ) -> TrackedSession<Db> {
                let mut session = new_session(pool, recording);
                session.track_changes::<OrderUpdate>();
                session
            }

            fn list_update(ids: &[&str]) -> (Vec<String>, String) {
                let event = ListUpdate {
                    order_ids: ids.iter().map(|s| s.to_string()).collect(),
                };
                (event.topics(), event.to_json().expect("json"))
            }

            #[tokio::test]
            $(#[$needs])*
            async fn an_unchanged_value_changes_and_records_nothing() {
                let db = setup!("an_unchanged_value_changes_and_records_nothing");
                let recording = RecordingPublisher::new();
                let mut session = session_for(&db.pool, &recording);
                let mut order = Order::find(&mut session, "A").await.expect("find");
                assert!(!order.set_status(&mut session, "NEW").await.expect("set"));
                let summary = session.commit().await.expect("commit");
                assert_eq!(summary.changes, 0);
                assert!(recording.is_empty());
                finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn a_missing_row_is_an_error() {
                let db = setup!("a_missing_row_is_an_error");
                let recording = RecordingPublisher::new();
                let mut session = session_for(&db.pool, &recording);
                let error = Order::set_status_by_key(&mut session, "NOPE", "X")
                    .await
                    .expect_err("missing");
                assert!(
                    matches!(
                        error,
                        Error::RowNotFound {
                            table: "orders",
                            ..
                        }
                    ),
                    "{error}"
                );
                let error = Order::find(&mut session, "NOPE")
                    .await
                    .expect_err("missing");
                assert!(matches!(error, Error::RowNotFound { .. }), "{error}");
                let error = LineItem {
                    id: 99,
                    order_id: "A".into(),
                }
                .delete(&mut session)
                .await
                .expect_err("missing");
                assert!(matches!(error, Error::RowNotFound { .. }), "{error}");
                drop(session);
                finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn two_orders_in_one_commit_get_their_own_contexts() {
                let db = setup!("two_orders_in_one_commit_get_their_own_contexts");
                let recording = RecordingPublisher::new();
                let mut session = new_session(&db.pool, &recording);
                session.track_changes::<ImageUpdate>();
                for id in [100, 200, 300] {
                    ColoringVersion::set_status_by_key(&mut session, id, "READY")
                        .await
                        .expect("set");
                }
                // The same image through its svg and its second coloring: one event.
                SvgVersion::set_status_by_key(&mut session, 1000, "READY")
                    .await
                    .expect("set");
                ColoringVersion::set_status_by_key(&mut session, 101, "READY")
                    .await
                    .expect("set");
                let summary = session.commit().await.expect("commit");
                assert_eq!(summary.changes, 5);
                // One query per changed model: coloring versions, svg versions.
                assert_eq!(summary.context_queries, 2);
                let mut got = published(&recording);
                got.sort();
                let mut want = vec![
                    image_update("A", 10),
                    image_update("B", 20),
                    image_update("C", 30),
                    image_count(3),
                ];
                want.sort();
                assert_eq!(got, want);
                finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn five_writes_to_one_order_publish_one_event_and_one_batch() {
                let db = setup!("five_writes_to_one_order_publish_one_event_and_one_batch");
                let recording = RecordingPublisher::new();
                let mut session = session_for(&db.pool, &recording);
                for status in ["S1", "S2", "S3", "S4", "S5"] {
                    Order::set_status_by_key(&mut session, "C", status)
                        .await
                        .expect("set");
                }
                Order::set_status_by_key(&mut session, "A", "S1")
                    .await
                    .expect("set");
                let summary = session.commit().await.expect("commit");
                assert_eq!(
                    (summary.changes, summary.events, summary.batch_events),
                    (6, 2, 1)
                );
                let got = published(&recording);
                assert_eq!(got.len(), 3);
                assert!(got.contains(&order_update("C")) && got.contains(&order_update("A")));
                // Batch: sorted, unique, once, after the individual events.
                assert_eq!(got[2], list_update(&["A", "C"]));
                finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn several_commits_in_one_session_each_publish_their_own() {
                let db = setup!("several_commits_in_one_session_each_publish_their_own");
                let recording = RecordingPublisher::new();
                let mut session = session_for(&db.pool, &recording);
                Order::set_status_by_key(&mut session, "A", "ONE")
                    .await
                    .expect("set");
                session.commit().await.expect("commit");
                assert_eq!(
                    published(&recording),
                    [order_update("A"), list_update(&["A"])]
                );
                recording.take();
                Order::set_status_by_key(&mut session, "B", "TWO")
                    .await
                    .expect("set");
                session.commit().await.expect("commit");
                assert_eq!(
                    published(&recording),
                    [order_update("B"), list_update(&["B"])]
                );
                // A commit with nothing open is a no-op.
                assert_eq!(session.commit().await.expect("commit").changes, 0);
                finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn a_rolled_back_nested_transaction_publishes_nothing() {
                let db = setup!("a_rolled_back_nested_transaction_publishes_nothing");
                let recording = RecordingPublisher::new();
                let mut session = session_for(&db.pool, &recording);
                Order::set_status_by_key(&mut session, "A", "KEPT")
                    .await
                    .expect("set");
                session.begin_nested().await.expect("savepoint");
                Order::set_status_by_key(&mut session, "B", "UNDONE")
                    .await
                    .expect("set");
                session
                    .rollback_nested()
                    .await
                    .expect("rollback to savepoint");
                session.begin_nested().await.expect("savepoint");
                Order::set_status_by_key(&mut session, "C", "KEPT")
                    .await
                    .expect("set");
                session.commit_nested().await.expect("release");
                assert!(matches!(
                    session.commit_nested().await,
                    Err(Error::NoNestedTransaction)
                ));
                session.commit().await.expect("commit");
                let mut got = published(&recording);
                got.sort();
                let mut want = vec![
                    order_update("A"),
                    order_update("C"),
                    list_update(&["A", "C"]),
                ];
                want.sort();
                assert_eq!(got, want);
                let statuses: Vec<(String, String)> =
                    sqlx::query_as("SELECT id, status FROM orders ORDER BY id")
                        .fetch_all(&db.pool)
                        .await
                        .expect("read");
                assert_eq!(statuses[1], ("B".to_owned(), "NEW".to_owned()));
                finish(db).await;
            }

            /// The scenario of issue 11: a predicate on `Post::id` made a later commit that
            /// changed post 11 publish post 10's context.
            #[tokio::test]
            $(#[$needs])*
            async fn a_predicate_never_replaces_the_changed_rows_context() {
                let db = setup!("a_predicate_never_replaces_the_changed_rows_context");
                sqlx::raw_sql(BLOG_SCHEMA)
                    .execute(&db.pool)
                    .await
                    .expect("blog schema");
                let recording = RecordingPublisher::new();
                let mut session = new_session(&db.pool, &recording);
                session
                    .track_changes::<PostUpdate>()
                    .add_tracking_context(Post::id.eq(10));
                Post::set_title_by_key(&mut session, 10, "ten, edited")
                    .await
                    .expect("set");
                session.commit().await.expect("commit");
                assert_eq!(published(&recording), [post_update(2, 10)]);

                // A later commit of the same session changes post 11 (author 3).
                Post::set_title_by_key(&mut session, 11, "eleven, edited")
                    .await
                    .expect("set");
                session.commit().await.expect("commit");
                assert_eq!(published(&recording)[1..], [post_update(3, 11)]);

                // Predicates of the same transaction that the row contradicts, on the key
                // and on a joined column: the row's own context still goes out.
                session
                    .add_tracking_context(Post::id.eq(10))
                    .add_tracking_context(Author::id.eq(2));
                Post::set_title_by_key(&mut session, 11, "eleven, again")
                    .await
                    .expect("set");
                let summary = session.commit().await.expect("commit");
                assert_eq!(published(&recording)[2..], [post_update(3, 11)]);
                assert_eq!((summary.events, summary.context_queries), (1, 1));
                finish(db).await;
            }

            fn post_update(author: i64, post: i64) -> (Vec<String>, String) {
                let event = PostUpdate {
                    author_id: author,
                    post_id: post,
                };
                (event.topics(), event.to_json().expect("json"))
            }

            #[tokio::test]
            $(#[$needs])*
            async fn a_predicate_that_holds_changes_nothing() {
                let db = setup!("a_predicate_that_holds_changes_nothing");
                let recording = RecordingPublisher::new();
                let mut session = new_session(&db.pool, &recording);
                session
                    .track_changes::<ImageUpdate>()
                    .add_tracking_context(Order::id.eq("B"))
                    .add_tracking_context(Image::id.eq(20));
                ColoringVersion::set_status_by_key(&mut session, 200, "READY")
                    .await
                    .expect("set");
                let summary = session.commit().await.expect("commit");
                // The context is read from the database all the same.
                assert_eq!(summary.context_queries, 1);
                assert_eq!(
                    published(&recording),
                    [image_update("B", 20), image_count(1)]
                );

                // Two values for one column: each row has its own context.
                let recording = RecordingPublisher::new();
                let mut session = new_session(&db.pool, &recording);
                session
                    .track_changes::<ImageUpdate>()
                    .add_tracking_context(Order::id.eq("A"))
                    .add_tracking_context(Order::id.eq("B"));
                ColoringVersion::set_status_by_key(&mut session, 100, "DONE")
                    .await
                    .expect("set");
                ColoringVersion::set_status_by_key(&mut session, 200, "DONE")
                    .await
                    .expect("set");
                let summary = session.commit().await.expect("commit");
                assert_eq!(summary.context_queries, 1);
                let mut got = published(&recording);
                got.sort();
                assert_eq!(
                    got,
                    [image_update("A", 10), image_update("B", 20), image_count(2)]
                );
                finish(db).await;
            }

            fn is_postgres() -> bool {
                std::any::TypeId::of::<Db>() == std::any::TypeId::of::<sqlx::Postgres>()
            }

            /// Commits a transaction in which a statement failed. SQLite commits the rest;
            /// PostgreSQL can only roll it back, so a commit with changes must fail (one
            /// without any returns `Ok`, as sqlx does). Returns the summary on SQLite.
            async fn commit_after_a_failure(
                session: &mut TrackedSession<Db>,
            ) -> Option<mercure_track_sqlx::CommitSummary> {
                let result = session.commit().await;
                if !is_postgres() {
                    return Some(result.expect("commit"));
                }
                if let Ok(summary) = result {
                    assert_eq!(
                        summary.changes, 0,
                        "an aborted PostgreSQL transaction cannot commit: {summary:?}"
                    );
                }
                None
            }

            #[tokio::test]
            $(#[$needs])*
            async fn a_failed_delete_records_nothing() {
                let db = setup!("a_failed_delete_records_nothing");
                let recording = RecordingPublisher::new();
                let mut session = new_session(&db.pool, &recording);
                session
                    .track_changes::<OrderRemoved>()
                    .track_changes::<LineItemRemoved>();
                // A missing row: its context is its key, so nothing but the DELETE tells.
                let error = Order {
                    id: "NOPE".into(),
                    status: "NEW".into(),
                    note: None,
                }
                .delete(&mut session)
                .await
                .expect_err("missing");
                assert!(matches!(error, Error::RowNotFound { .. }), "{error}");
                let summary = session.commit().await.expect("commit");
                assert_eq!(summary.changes, 0);
                assert!(recording.is_empty(), "{:?}", published(&recording));

                // A DELETE the database refuses: image 10 references line item 1.
                let item = LineItem::find(&mut session, 1).await.expect("find");
                let error = item.delete(&mut session).await.expect_err("referenced");
                assert!(matches!(error, Error::Database(_)), "{error}");
                if let Some(summary) = commit_after_a_failure(&mut session).await {
                    assert_eq!(summary.changes, 0);
                }
                assert!(recording.is_empty(), "{:?}", published(&recording));

                // With a change that did happen in the same transaction: on PostgreSQL
                // the whole transaction is lost, and so is its event.
                Order::set_status_by_key(&mut session, "A", "KEPT?")
                    .await
                    .expect("set");
                Order {
                    id: "C".into(),
                    status: "NEW".into(),
                    note: None,
                }
                .delete(&mut session)
                .await
                .expect("delete");
                let error = item.delete(&mut session).await.expect_err("referenced");
                assert!(matches!(error, Error::Database(_)), "{error}");
                let kept = commit_after_a_failure(&mut session).await.is_some();
                let removed_c = {
                    let event = OrderRemoved {
                        order_id: "C".into(),
                    };
                    (event.topics(), event.to_json().expect("json"))
                };
                if kept {
                    assert_eq!(published(&recording), [removed_c]);
                } else {
                    assert!(recording.is_empty(), "{:?}", published(&recording));
                }
                finish(db).await;
            }

            /// Makes the database drop, without an error, every write of status `IGNORED` to
            /// `orders`.
            async fn ignore_writes_of_status_ignored(pool: &sqlx::Pool<Db>) {
                let sql = if is_postgres() {
                    "CREATE FUNCTION ignore_status() RETURNS trigger LANGUAGE plpgsql AS $$
                     BEGIN
                         IF NEW.status = 'IGNORED' THEN RETURN NULL; END IF;
                         RETURN NEW;
                     END $$;
                     CREATE TRIGGER ignore_status BEFORE INSERT OR UPDATE ON orders
                         FOR EACH ROW EXECUTE FUNCTION ignore_status();"
                } else {
                    "CREATE TRIGGER ignore_insert BEFORE INSERT ON orders
                         WHEN NEW.status = 'IGNORED' BEGIN SELECT RAISE(IGNORE); END;
                     CREATE TRIGGER ignore_update BEFORE UPDATE ON orders
                         WHEN NEW.status = 'IGNORED' BEGIN SELECT RAISE(IGNORE); END;"
                };
                sqlx::raw_sql(sql).execute(pool).await.expect("trigger");
            }

            #[tokio::test]
            $(#[$needs])*
            async fn a_write_that_writes_nothing_records_nothing() {
                let db = setup!("a_write_that_writes_nothing_records_nothing");
                ignore_writes_of_status_ignored(&db.pool).await;
                let recording = RecordingPublisher::new();
                let mut session = session_for(&db.pool, &recording);
                let error = Order {
                    id: "Z".into(),
                    status: "IGNORED".into(),
                    note: None,
                }
                .insert(&mut session)
                .await
                .expect_err("dropped by the trigger");
                assert!(
                    matches!(error, Error::NotInserted { table: "orders", .. }),
                    "{error}"
                );
                let changed = Order::set_status_by_key(&mut session, "A", "IGNORED")
                    .await
                    .expect("set");
                assert!(!changed, "the trigger dropped the update");
                let summary = session.commit().await.expect("commit");
                assert_eq!(summary.changes, 0);
                assert!(recording.is_empty(), "{:?}", published(&recording));
                assert_eq!(stored_status(&db.pool, "orders", "'A'").await, "NEW");
                finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn a_failed_insert_or_update_records_nothing() {
                let db = setup!("a_failed_insert_or_update_records_nothing");
                sqlx::raw_sql(BLOG_SCHEMA)
                    .execute(&db.pool)
                    .await
                    .expect("blog schema");
                let recording = RecordingPublisher::new();
                let mut session = session_for(&db.pool, &recording);
                session.track_changes::<PostUpdate>();
                let error = Order {
                    id: "A".into(),
                    status: "DUPLICATE".into(),
                    note: None,
                }
                .insert(&mut session)
                .await
                .expect_err("duplicate key");
                assert!(matches!(error, Error::Database(_)), "{error}");
                if let Some(summary) = commit_after_a_failure(&mut session).await {
                    assert_eq!(summary.changes, 0);
                }
                // An UPDATE the database refuses: posts.author_id references authors.
                let error = Post::set_author_id_by_key(&mut session, 10, 99)
                    .await
                    .expect_err("no author 99");
                assert!(matches!(error, Error::Database(_)), "{error}");
                if let Some(summary) = commit_after_a_failure(&mut session).await {
                    assert_eq!(summary.changes, 0);
                }
                assert!(recording.is_empty(), "{:?}", published(&recording));
                finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn insert_and_delete_trigger_events_resolved_in_time() {
                let db = setup!("insert_and_delete_trigger_events_resolved_in_time");
                let recording = RecordingPublisher::new();
                let mut session = session_for(&db.pool, &recording);
                session.track_changes::<LineItemRemoved>();
                Order {
                    id: "D".into(),
                    status: "NEW".into(),
                    note: None,
                }
                .insert(&mut session)
                .await
                .expect("insert");
                let item = LineItem::find(&mut session, 3).await.expect("find");
                sqlx::query("DELETE FROM coloring_versions WHERE image_id = 30")
                    .execute(session.conn().await.expect("conn"))
                    .await
                    .expect("plain sqlx");
                sqlx::query("DELETE FROM images WHERE id = 30")
                    .execute(session.conn().await.expect("conn"))
                    .await
                    .expect("plain sqlx");
                item.delete(&mut session).await.expect("delete");
                session.commit().await.expect("commit");
                let got = published(&recording);
                let removed = LineItemRemoved {
                    order_id: "C".into(),
                    line_item_id: 3,
                };
                assert!(
                    got.contains(&(removed.topics(), removed.to_json().expect("json"))),
                    "{got:?}"
                );
                assert!(got.contains(&order_update("D")), "{got:?}");
                finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn an_unresolvable_context_skips_or_fails_as_configured() {
                let db = setup!("an_unresolvable_context_skips_or_fails_as_configured");
                let recording = RecordingPublisher::new();
                let mut session = new_session(&db.pool, &recording);
                session.track_changes::<ImageUpdate>();
                // Coloring 400's line item points to an order that does not exist.
                ColoringVersion::set_status_by_key(&mut session, 400, "READY")
                    .await
                    .expect("set");
                ColoringVersion::set_status_by_key(&mut session, 100, "READY")
                    .await
                    .expect("set");
                session.commit().await.expect("commit");
                assert_eq!(
                    published(&recording),
                    [image_update("A", 10), image_count(1)]
                );

                let recording = RecordingPublisher::new();
                let mut strict = new_session(&db.pool, &recording)
                    .on_unresolved_context(UnresolvedContext::Fail);
                strict.track_changes::<ImageUpdate>();
                ColoringVersion::set_status_by_key(&mut strict, 400, "FAILED")
                    .await
                    .expect("set");
                let error = strict.commit().await.expect_err("unresolvable");
                assert!(
                    matches!(
                        error,
                        Error::UnresolvedContext {
                            event: "image_update",
                            table: "coloring_versions",
                            ..
                        }
                    ),
                    "{error}"
                );
                assert!(recording.is_empty());
                assert_eq!(
                    stored_status(&db.pool, "coloring_versions", "400").await,
                    "READY",
                    "the failed commit was rolled back"
                );

                // A delete fails before deleting; a missing row is still "not found".
                strict.track_changes::<LineItemRemoved>();
                let error = LineItem {
                    id: 99,
                    order_id: "A".into(),
                }
                .delete(&mut strict)
                .await
                .expect_err("missing");
                assert!(matches!(error, Error::RowNotFound { .. }), "{error}");
                let dangling = LineItem::find(&mut strict, 4).await.expect("find");
                let error = dangling.delete(&mut strict).await.expect_err("unresolvable");
                assert!(
                    matches!(
                        error,
                        Error::UnresolvedContext {
                            event: "line_item_removed",
                            ..
                        }
                    ),
                    "{error}"
                );
                LineItem::find(&mut strict, 4)
                    .await
                    .expect("the row was not deleted");
                assert_eq!(strict.commit().await.expect("commit").changes, 0);
                assert!(recording.is_empty());
                finish(db).await;
            }

            /// A `COMMIT` that the database refuses (a deferred foreign key, checked only at
            /// the `COMMIT`: every statement before it succeeded) publishes nothing, awaited
            /// or in the background, although the commit's updates are built while the
            /// `COMMIT` runs; the session's next commit publishes only its own.
            #[tokio::test]
            $(#[$needs])*
            async fn a_commit_refused_by_a_deferred_foreign_key_publishes_nothing() {
                let db = setup!("a_commit_refused_by_a_deferred_foreign_key_publishes_nothing");
                sqlx::raw_sql(
                    "CREATE TABLE order_notes (id BIGINT PRIMARY KEY, \
                     order_id TEXT NOT NULL REFERENCES orders (id) DEFERRABLE INITIALLY DEFERRED)",
                )
                .execute(&db.pool)
                .await
                .expect("table");
                for background in [false, true] {
                    let tracker = TaskTracker::new();
                    let recording = RecordingPublisher::new();
                    let mut session = new_session(&db.pool, &recording);
                    if background {
                        session = session.background(Background::new(tracker.clone()));
                    }
                    session.track_changes::<OrderUpdate>();
                    Order::set_status_by_key(&mut session, "A", "HELD")
                        .await
                        .expect("set");
                    sqlx::query(
                        "INSERT INTO order_notes (id, order_id) VALUES (1, 'NO SUCH ORDER')",
                    )
                    .execute(session.conn().await.expect("conn"))
                    .await
                    .expect("the insert itself succeeds");
                    assert!(session.commit().await.is_err(), "the commit fails");
                    assert_eq!(mercure_track_sqlx::drain(&tracker, Duration::from_secs(5)).await, 0);
                    assert!(recording.is_empty(), "{:?}", published(&recording));
                    assert_eq!(stored_status(&db.pool, "orders", "'A'").await, "NEW");
                    // A new value each time: an unchanged one records nothing.
                    let status = if background { "SHIPPED" } else { "READY" };
                    Order::set_status_by_key(&mut session, "B", status)
                        .await
                        .expect("set");
                    session.commit().await.expect("commit");
                    assert_eq!(mercure_track_sqlx::drain(&tracker, Duration::from_secs(5)).await, 0);
                    let got: Vec<String> =
                        recording.updates().into_iter().map(|u| u.update.data).collect();
                    assert_eq!(
                        got,
                        [
                            order_update("B").1,
                            r#"{"type":"list_update","order_ids":["B"]}"#.to_owned()
                        ],
                        "background: {background}"
                    );
                }
                finish(db).await;
            }

            /// A panic while the commit's updates are built (a batch rule) reaches the caller of
            /// `commit`, and nothing is published. Awaited and in the background the updates
            /// are built while the `COMMIT` runs: the panic waits for its answer, so the change
            /// is committed and visible when the panic arrives. With the outbox they are built
            /// first: the transaction rolls back. Either way the pool still serves, and the next
            /// commit publishes only its own events.
            #[tokio::test]
            $(#[$needs])*
            async fn a_panic_while_building_the_updates_reaches_the_caller_and_publishes_nothing() {
                use futures_util::FutureExt as _;
                let db = setup!("a_panic_while_building_the_updates_reaches_the_caller_and_publishes_nothing");
                mercure_track_sqlx::outbox::create_table(&db.pool).await.expect("outbox");
                for (n, mode) in ["awaited", "background", "outbox"].into_iter().enumerate() {
                    let tracker = TaskTracker::new();
                    let recording = RecordingPublisher::new();
                    let mut session = new_session(&db.pool, &recording);
                    match mode {
                        "background" => session = session.background(Background::new(tracker.clone())),
                        "outbox" => session = session.outbox(),
                        _ => {}
                    }
                    session.track_changes::<LoudOrder>();
                    // A row of its own per mode, from `NEW`.
                    let order = ["A", "B", "C"][n];
                    Order::set_status_by_key(&mut session, order, "PANIC")
                        .await
                        .expect("set");
                    let outcome = std::panic::AssertUnwindSafe(session.commit())
                        .catch_unwind()
                        .await;
                    assert!(outcome.is_err(), "{mode}: the panic reaches the caller");
                    drop(session);
                    // Read at once, outside the session: the COMMIT's fate is settled.
                    let expected = if mode == "outbox" { "NEW" } else { "PANIC" };
                    assert_eq!(stored_status(&db.pool, "orders", &format!("'{order}'")).await, expected, "{mode}");
                    assert_eq!(mercure_track_sqlx::drain(&tracker, Duration::from_secs(5)).await, 0);
                    assert!(recording.is_empty(), "{mode}: {:?}", published(&recording));
                    let (queued,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM mercure_outbox")
                        .fetch_one(&db.pool)
                        .await
                        .expect("count");
                    assert_eq!(queued, 0, "{mode}");
                    // The pool still serves a session (direct delivery), and its commit
                    // publishes its own events only: nothing of the panicked commit is left.
                    let mut session = new_session(&db.pool, &recording);
                    session.track_changes::<LoudOrder>();
                    Order::set_status_by_key(&mut session, order, "QUIET")
                        .await
                        .expect("set");
                    session.commit().await.expect("commit");
                    let got: Vec<String> = recording.updates().into_iter().map(|u| u.update.data).collect();
                    assert_eq!(
                        got,
                        [
                            format!(r#"{{"type":"loud_order","order_id":"{order}","status":"QUIET"}}"#),
                            r#"{"type":"loud_count","count":1}"#.to_owned()
                        ],
                        "{mode}"
                    );
                }
                finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn a_failing_hub_never_fails_the_commit() {
                let db = setup!("a_failing_hub_never_fails_the_commit");
                let mut session = TrackedSession::new(db.pool.clone(), FailingPublisher);
                session.track_changes::<OrderUpdate>();
                Order::set_status_by_key(&mut session, "A", "READY")
                    .await
                    .expect("set");
                let summary = session.commit().await.expect("the commit stands");
                assert_eq!(summary.events, 1);
                // Prepared: the event and its batch; published: neither.
                assert_eq!(
                    (summary.published, summary.failed, summary.queued),
                    (0, 2, 0)
                );
                assert_eq!(stored_status(&db.pool, "orders", "'A'").await, "READY");
                finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn background_commit_returns_before_publishing_and_awaited_does_not() {
                let db = setup!("background_commit_returns_before_publishing_and_awaited_does_not");
                // Background: the commit returns while the publisher is still held at its gate.
                let gated = GatedPublisher::closed();
                let tracker = TaskTracker::new();
                let mut session = TrackedSession::new(db.pool.clone(), gated.clone())
                    .background(Background::new(tracker.clone()));
                session.track_changes::<OrderUpdate>();
                Order::set_status_by_key(&mut session, "A", "READY")
                    .await
                    .expect("set");
                let summary = session.commit().await.expect("commit");
                assert!(gated.recording.is_empty());
                // Known at commit time: two updates handed to the background, none done.
                assert_eq!(
                    (summary.published, summary.failed, summary.queued),
                    (0, 0, 2)
                );
                gated.gate.add_permits(10);
                tracker.close();
                tracker.wait().await;
                assert_eq!(
                    gated.recording.len(),
                    2,
                    "the drained tasks published the event and the batch"
                );

                // Awaited: the commit is not done until the publishes are.
                let gated = GatedPublisher::closed();
                let mut session = TrackedSession::new(db.pool.clone(), gated.clone());
                session.track_changes::<OrderUpdate>();
                Order::set_status_by_key(&mut session, "B", "READY")
                    .await
                    .expect("set");
                let commit = tokio::spawn(async move { session.commit().await.map(|s| s.events) });
                gated.entered.notified().await;
                assert!(!commit.is_finished(), "the commit waits for its publishes");
                gated.gate.add_permits(10);
                assert_eq!(commit.await.expect("task").expect("commit"), 1);
                assert_eq!(gated.recording.len(), 2);
                finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn an_outbox_commit_counts_its_updates_as_queued() {
                let db = setup!("an_outbox_commit_counts_its_updates_as_queued");
                mercure_track_sqlx::outbox::create_table(&db.pool)
                    .await
                    .expect("outbox table");
                let recording = RecordingPublisher::new();
                let mut session = session_for(&db.pool, &recording).outbox();
                Order::set_status_by_key(&mut session, "A", "READY")
                    .await
                    .expect("set");
                let summary = session.commit().await.expect("commit");
                assert_eq!(
                    (summary.published, summary.failed, summary.queued),
                    (0, 0, 2),
                    "written to the outbox, published by a relay later"
                );
                assert!(recording.is_empty());
                finish(db).await;
            }

            #[mercure_track::mercure_autotrack(ImageUpdate)]
            struct ColoringGenerationService {
                session: TrackedSession<Db>,
            }

            #[mercure_track::mercure_autotrack]
            impl ColoringGenerationService {
                async fn process(&mut self, version_id: i64) -> Result<(), Error> {
                    let mut version = ColoringVersion::find(&mut self.session, version_id).await?;
                    version.set_status(&mut self.session, "PROCESSING").await?;
                    self.session.commit().await?;
                    version.set_status(&mut self.session, "DONE").await?;
                    self.session.commit().await?;
                    Ok(())
                }
            }

            #[tokio::test]
            $(#[$needs])*
            async fn an_autotracked_service_needs_no_track_changes() {
                let db = setup!("an_autotracked_service_needs_no_track_changes");
                let recording = RecordingPublisher::new();
                let mut service = ColoringGenerationService {
                    session: new_session(&db.pool, &recording),
                };
                service.process(300).await.expect("process");
                let commit = [image_update("C", 30), image_count(1)];
                assert_eq!(published(&recording), [commit.clone(), commit].concat());
                finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn commits_publish_through_the_development_hub_over_http() {
                use mercure_track::hub::{DevHub, DevHubConfig};
                use mercure_track::publisher::{HubConfig, JwtKey};
                let db = setup!("commits_publish_through_the_development_hub_over_http");
                let key = JwtKey::new("session-test-key-0123456789");
                let hub = DevHub::new(DevHubConfig::new(key.clone(), key.clone()))
                    .expect("hub")
                    .bind("127.0.0.1:0".parse().expect("addr"))
                    .await
                    .expect("bind");
                let client = reqwest::Client::new();
                let mut stream = mercure_track_tests::sse::subscribe(
                    &client,
                    &hub.url(),
                    &["orders", "orders/{id}"],
                    None,
                    None,
                )
                .await
                .expect("subscribe");
                let publisher = mercure_track::HubPublisher::new(
                    HubConfig::new(&hub.url()).expect("url").key(key),
                )
                .expect("publisher");
                let mut session = TrackedSession::new(db.pool.clone(), publisher);
                session.track_changes::<OrderUpdate>();
                Order::set_status_by_key(&mut session, "B", "READY")
                    .await
                    .expect("set");
                Order::set_status_by_key(&mut session, "A", "READY")
                    .await
                    .expect("set");
                session.commit().await.expect("commit");
                let events = stream.collect(3, Duration::from_secs(5)).await;
                let data: BTreeSet<_> = events.iter().map(|e| e.data.clone()).collect();
                assert_eq!(
                    data,
                    BTreeSet::from([
                        order_update("A").1,
                        order_update("B").1,
                        r#"{"type":"list_update","order_ids":["A","B"]}"#.to_owned(),
                    ])
                );
                assert_eq!(stream.next_within(Duration::from_millis(300)).await, None);
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

session_tests!(sqlite, sqlx::Sqlite, super::sqlite_db);
session_tests!(
    postgres,
    sqlx::Postgres,
    mercure_track_tests::db::postgres,
    #[cfg_attr(not(mercure_track_pg), ignore = "needs PostgreSQL: set MERCURE_TRACK_PG_URL")]
);

/// A hand-written event whose `write_json` writes bytes that are not UTF-8.
struct NotUtf8;

static NOT_UTF8: mercure_track::EventDescriptor = mercure_track::EventDescriptor {
    type_name: "not_utf8",
    rust_name: "NotUtf8",
    topic_templates: &["not-utf8"],
    type_id: std::any::TypeId::of::<NotUtf8>,
    triggers: Vec::new,
    batch: None,
    json_schema: |_| schemars::json_schema!({}),
};

impl MercureEvent for NotUtf8 {
    const TYPE: &'static str = "not_utf8";

    fn descriptor() -> &'static mercure_track::EventDescriptor {
        &NOT_UTF8
    }

    fn topics(&self) -> Vec<String> {
        vec!["not-utf8".to_owned()]
    }

    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        out.extend_from_slice(b"{\"type\":\"not_utf8\",\"text\":\"\xff\"}");
        Ok(())
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({})
    }

    fn is_private(&self) -> bool {
        false
    }
}

#[test]
fn a_body_that_is_not_utf8_is_an_error_not_an_empty_string() {
    assert!(NotUtf8.to_json().is_err(), "{:?}", NotUtf8.to_json());
    assert!(NotUtf8.to_update().is_err());
}
