//! Set-based writes through the tracked session, on SQLite (a WAL file) and PostgreSQL: the
//! keys returned and recorded are the rows whose value really changed, each with its own
//! context; deletes resolve their contexts before the rows go.

use mercure_track::{MercureEvent, Model, RecordingPublisher};
use mercure_track_sqlx::TrackedSession;
use mercure_track_tests::domain::*;

/// The updates recorded, as (topics, data) pairs.
fn published(recording: &RecordingPublisher) -> Vec<(Vec<String>, String)> {
    recording
        .updates()
        .into_iter()
        .map(|u| (u.update.topics, u.update.data))
        .collect()
}

fn update_of(event: &impl MercureEvent) -> (Vec<String>, String) {
    (event.topics(), event.to_json().expect("json"))
}

fn image_update(order: &str, image: i64) -> (Vec<String>, String) {
    update_of(&ImageUpdate {
        order_id: order.into(),
        image_id: image,
    })
}

fn order_update(order: &str) -> (Vec<String>, String) {
    update_of(&OrderUpdate {
        order_id: order.into(),
    })
}

fn list_update(ids: &[&str]) -> (Vec<String>, String) {
    update_of(&ListUpdate {
        order_ids: ids.iter().map(|s| s.to_string()).collect(),
    })
}

macro_rules! set_based_tests {
    ($module:ident, $db:ty, $setup:expr $(, #[$needs:meta])*) => {
        mod $module {
            use super::*;

            type Db = $db;

            macro_rules! setup {
                () => {{
                    let Some(db) = $setup("set_based").await else {
                        return;
                    };
                    sqlx::raw_sql(mercure_track_tests::db::SEED)
                        .execute(&db.pool)
                        .await
                        .expect("seed");
                    db
                }};
            }

            fn new_session(pool: &sqlx::Pool<Db>, recording: &RecordingPublisher) -> TrackedSession<Db> {
                TrackedSession::new(pool.clone(), recording.clone())
            }

            async fn plain(pool: &sqlx::Pool<Db>, sql: &str) {
                sqlx::raw_sql(sql).execute(pool).await.expect("plain sql");
            }

            #[tokio::test]
            $(#[$needs])*
            async fn update_returns_and_records_only_the_rows_that_changed() {
                let db = setup!();
                // Coloring 300 (order C) already holds the new value.
                plain(&db.pool, "UPDATE coloring_versions SET status = 'DONE' WHERE id = 300").await;
                let recording = RecordingPublisher::new();
                let mut session = new_session(&db.pool, &recording);
                session.track_changes::<ImageUpdate>();
                let mut changed = ColoringVersion::update()
                    .set(ColoringVersion::status, "DONE")
                    .filter(ColoringVersion::id.in_keys([100, 200, 300]))
                    .execute(&mut session)
                    .await
                    .expect("update");
                changed.sort_unstable();
                assert_eq!(changed, [100, 200]);
                let summary = session.commit().await.expect("commit");
                assert_eq!(summary.changes, 2, "only the changed rows are recorded");
                assert_eq!(summary.context_queries, 1, "one context query for the model");
                let got = published(&recording);
                assert!(got.contains(&image_update("A", 10)), "{got:?}");
                assert!(got.contains(&image_update("B", 20)), "{got:?}");
                assert!(
                    !got.iter().any(|(topics, _)| topics.contains(&"orders/C".to_owned())),
                    "the unchanged row publishes nothing: {got:?}"
                );
                let (done,): (i64,) =
                    sqlx::query_as("SELECT COUNT(*) FROM coloring_versions WHERE status = 'DONE'")
                        .fetch_one(&db.pool)
                        .await
                        .expect("count");
                assert_eq!(done, 3);
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn update_filtered_by_a_column_value() {
                let db = setup!();
                plain(&db.pool, "UPDATE orders SET status = 'READY' WHERE id IN ('A', 'B')").await;
                let recording = RecordingPublisher::new();
                let mut session = new_session(&db.pool, &recording);
                session.track_changes::<OrderUpdate>();
                let mut changed = Order::update()
                    .set(Order::status, "APPROVED")
                    .filter(Order::status.is("READY"))
                    .execute(&mut session)
                    .await
                    .expect("update");
                changed.sort_unstable();
                assert_eq!(changed, ["A", "B"]);
                session.commit().await.expect("commit");
                assert_eq!(
                    published(&recording),
                    [order_update("A"), order_update("B"), list_update(&["A", "B"])]
                );
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn several_columns_fire_only_the_triggers_of_the_columns_that_changed() {
                let db = setup!();
                let recording = RecordingPublisher::new();
                let mut session = new_session(&db.pool, &recording);
                session.track_changes::<CategoryUpdate>();
                // Category 1 keeps its name (only its parent changes); category 2 keeps its
                // parent (only its name changes). `CategoryUpdate` is triggered by the name.
                let mut changed = Category::update()
                    .set(Category::name, "root")
                    .set(Category::parent_id, Some(1))
                    .filter(Category::id.in_keys([1, 2]))
                    .execute(&mut session)
                    .await
                    .expect("update");
                changed.sort_unstable();
                assert_eq!(changed, [1, 2]);
                let summary = session.commit().await.expect("commit");
                assert_eq!(summary.changes, 1);
                assert_eq!(
                    published(&recording),
                    [update_of(&CategoryUpdate { category_id: 2 })]
                );
                let rows: Vec<(i64, Option<i64>, String)> =
                    sqlx::query_as("SELECT id, parent_id, name FROM categories ORDER BY id")
                        .fetch_all(&db.pool)
                        .await
                        .expect("read");
                assert_eq!(
                    rows,
                    [(1, Some(1), "root".to_owned()), (2, Some(1), "root".to_owned())]
                );
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn an_empty_key_list_writes_and_records_nothing() {
                let db = setup!();
                let recording = RecordingPublisher::new();
                let mut session = new_session(&db.pool, &recording);
                session.track_changes::<OrderUpdate>();
                let changed = Order::update()
                    .set(Order::status, "X")
                    .filter(Order::id.in_keys(Vec::<String>::new()))
                    .execute(&mut session)
                    .await
                    .expect("update");
                assert!(changed.is_empty());
                let deleted = Order::delete_where()
                    .filter(Order::id.in_keys(Vec::<String>::new()))
                    .execute(&mut session)
                    .await
                    .expect("delete");
                assert!(deleted.is_empty());
                let summary = session.commit().await.expect("commit");
                assert_eq!(summary.changes, 0);
                assert!(recording.is_empty());
                let (x,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orders WHERE status = 'X'")
                    .fetch_one(&db.pool)
                    .await
                    .expect("count");
                assert_eq!(x, 0, "an empty key list never means every row");
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn a_hundred_thousand_keys_are_accepted() {
                let db = setup!();
                let recording = RecordingPublisher::new();
                let mut session = new_session(&db.pool, &recording);
                session.track_changes::<ImageUpdate>();
                // Beyond SQLite's 32 766 parameters; the real rows sit in different chunks.
                let mut keys: Vec<i64> = (1_000_000..1_100_000).collect();
                keys[0] = 100;
                keys[99_999] = 200;
                let mut changed = ColoringVersion::update()
                    .set(ColoringVersion::status, "DONE")
                    .filter(ColoringVersion::id.in_keys(keys.clone()))
                    .execute(&mut session)
                    .await
                    .expect("update");
                changed.sort_unstable();
                assert_eq!(changed, [100, 200]);
                let deleted = SvgVersion::delete_where()
                    .filter(SvgVersion::id.in_keys(keys.into_iter().map(|k| k + 900)))
                    .execute(&mut session)
                    .await
                    .expect("delete");
                assert_eq!(deleted, [1000]);
                let summary = session.commit().await.expect("commit");
                assert_eq!(summary.changes, 2);
                let got = published(&recording);
                assert!(got.contains(&image_update("A", 10)), "{got:?}");
                assert!(got.contains(&image_update("B", 20)), "{got:?}");
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn twenty_rows_changed_twice_each_get_one_event_with_their_own_context_from_one_query() {
                let db = setup!();
                // Twenty chains (order, line item, image, coloring version), more than the
                // resolver searches in a list: its keys and rows are then indexed.
                let mut sql = String::new();
                for n in 0..20 {
                    sql.push_str(&format!(
                        "INSERT INTO orders (id, status) VALUES ('N{n}', 'NEW');
                         INSERT INTO line_items (id, order_id) VALUES ({li}, 'N{n}');
                         INSERT INTO images (id, line_item_id) VALUES ({im}, {li});
                         INSERT INTO coloring_versions (id, image_id, status) VALUES ({cv}, {im}, 'PENDING');",
                        li = 500 + n,
                        im = 5_000 + n,
                        cv = 50_000 + n,
                    ));
                }
                plain(&db.pool, &sql).await;
                let recording = RecordingPublisher::new();
                let mut session = new_session(&db.pool, &recording);
                session.track_changes::<ImageUpdate>();
                // Each key twice in the filter: each row is still changed, and returned, once.
                let keys: Vec<i64> = (0..40).map(|n| 50_000 + (n * 7) % 20).collect();
                let mut changed = ColoringVersion::update()
                    .set(ColoringVersion::status, "DONE")
                    .filter(ColoringVersion::id.in_keys(keys))
                    .execute(&mut session)
                    .await
                    .expect("update");
                changed.sort_unstable();
                assert_eq!(changed, (50_000..50_020).collect::<Vec<i64>>());
                // And each row again, by its setter: every key twice in the commit's log.
                for id in 50_000..50_020 {
                    assert!(ColoringVersion::set_status_by_key(&mut session, id, "SHIPPED")
                        .await
                        .expect("set"));
                }
                let summary = session.commit().await.expect("commit");
                assert_eq!(
                    (summary.changes, summary.events, summary.context_queries, summary.unresolved),
                    (40, 20, 1, 0)
                );
                let mut got = published(&recording);
                got.sort();
                // And the batch event that counts them.
                let mut want: Vec<_> = (0..20)
                    .map(|n| image_update(&format!("N{n}"), 5_000 + n))
                    .chain([update_of(&ImageCount { count: 20 })])
                    .collect();
                want.sort();
                assert_eq!(got, want);
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn delete_where_resolves_contexts_before_the_rows_go() {
                let db = setup!();
                plain(
                    &db.pool,
                    "DELETE FROM coloring_versions WHERE image_id IN (20, 30);
                     DELETE FROM images WHERE id IN (20, 30);",
                )
                .await;
                let recording = RecordingPublisher::new();
                let mut session = new_session(&db.pool, &recording);
                session.track_changes::<LineItemRemoved>();
                let mut deleted = LineItem::delete_where()
                    .filter(LineItem::id.in_keys([2, 3]))
                    .execute(&mut session)
                    .await
                    .expect("delete");
                deleted.sort_unstable();
                assert_eq!(deleted, [2, 3]);
                let summary = session.commit().await.expect("commit");
                assert_eq!(summary.unresolved, 0);
                let mut got = published(&recording);
                got.sort();
                let mut expected = vec![
                    update_of(&LineItemRemoved { order_id: "B".into(), line_item_id: 2 }),
                    update_of(&LineItemRemoved { order_id: "C".into(), line_item_id: 3 }),
                ];
                expected.sort();
                assert_eq!(got, expected);
                let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM line_items")
                    .fetch_one(&db.pool)
                    .await
                    .expect("count");
                assert_eq!(left, 2);
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn insert_all_writes_many_rows_and_records_each() {
                let db = setup!();
                let recording = RecordingPublisher::new();
                let mut session = new_session(&db.pool, &recording);
                session.track_changes::<OrderUpdate>();
                let rows: Vec<Order> = ["D", "E"]
                    .into_iter()
                    .map(|id| Order { id: id.into(), status: "NEW".into(), note: None })
                    .collect();
                Order::insert_all(&rows, &mut session).await.expect("insert");
                Order::insert_all(&[], &mut session).await.expect("nothing to insert");
                let summary = session.commit().await.expect("commit");
                assert_eq!(summary.changes, 2);
                assert_eq!(
                    published(&recording),
                    [order_update("D"), order_update("E"), list_update(&["D", "E"])]
                );
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            #[tokio::test]
            $(#[$needs])*
            async fn a_rollback_forgets_set_based_changes() {
                let db = setup!();
                let recording = RecordingPublisher::new();
                let mut session = new_session(&db.pool, &recording);
                session.track_changes::<OrderUpdate>();
                Order::update()
                    .set(Order::status, "GONE")
                    .execute(&mut session)
                    .await
                    .expect("update");
                session.rollback().await.expect("rollback");
                session.commit().await.expect("commit");
                assert!(recording.is_empty());
                mercure_track_tests::db::TestDb::finish(db).await;
            }
        }
    };
}

async fn sqlite_db(_test: &str) -> Option<mercure_track_tests::db::SqliteDb> {
    Some(mercure_track_tests::db::sqlite().await)
}

set_based_tests!(sqlite, sqlx::Sqlite, super::sqlite_db);
set_based_tests!(
    postgres,
    sqlx::Postgres,
    mercure_track_tests::db::postgres,
    #[cfg_attr(not(mercure_track_pg), ignore = "needs PostgreSQL: set MERCURE_TRACK_PG_URL")]
);
