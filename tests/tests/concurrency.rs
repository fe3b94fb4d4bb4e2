//! Many sessions at once: each change's event goes out exactly once, with the context of its
//! own row, and no session sees another's changes; on SQLite (a file in WAL mode), sessions
//! that read before they write never fail because another connection committed in between.

use std::collections::BTreeMap;

use mercure_track::{MercureEvent, Model as _, RecordingPublisher};
use mercure_track_sqlx::TrackedSession;
use mercure_track_tests::domain::{ColoringVersion, ImageUpdate, ListUpdate, Order, OrderUpdate};

const SESSIONS: i64 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(mercure_track_pg),
    ignore = "needs PostgreSQL: set MERCURE_TRACK_PG_URL"
)]
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

/// Sessions that each read their order (`find`) and then write it, at once.
const WRITERS: usize = 20;
/// Commits of each session: 20 × 15 = 300 commits in all.
const ROUNDS: usize = 15;

/// The events one order's commits must have published: its `OrderUpdate` and its
/// `ListUpdate`, once per commit.
fn expected_events(order: &str) -> [String; 2] {
    let update = OrderUpdate {
        order_id: order.to_owned(),
    };
    let list = ListUpdate {
        order_ids: vec![order.to_owned()],
    };
    [
        update.to_json().expect("json"),
        list.to_json().expect("json"),
    ]
}

/// Counts `data` values.
fn count<'a>(data: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for data in data {
        *counts.entry(data.to_owned()).or_default() += 1;
    }
    counts
}

/// Asserts that `counts` holds each order's events exactly [`ROUNDS`] times, and nothing else.
fn assert_each_change_once(mut counts: BTreeMap<String, usize>) {
    for n in 0..WRITERS {
        for json in expected_events(&format!("w{n}")) {
            assert_eq!(
                counts.remove(&json),
                Some(ROUNDS),
                "{json}: once per commit"
            );
        }
    }
    assert!(counts.is_empty(), "unexpected updates: {counts:?}");
}

macro_rules! find_then_write_tests {
    ($module:ident, $db:ty, $setup:expr $(, #[$needs:meta])*) => {
        mod $module {
            use super::*;

            type Db = $db;

            /// [`WRITERS`] orders `w0`, `w1`, ... with status `NEW`.
            async fn seed(pool: &sqlx::Pool<Db>) {
                let values: Vec<String> = (0..WRITERS).map(|n| format!("('w{n}', 'NEW')")).collect();
                let sql = format!("INSERT INTO orders (id, status) VALUES {}", values.join(", "));
                sqlx::raw_sql(&sql).execute(pool).await.expect("seed");
            }

            /// Session `n` commits [`ROUNDS`] times: each round reads its order, writes in a
            /// savepoint it rolls back, reads through plain sqlx, then sets the status and
            /// commits. Returns the errors it met.
            async fn write_rounds(mut session: TrackedSession<Db>, n: usize) -> Vec<String> {
                session.track_changes::<OrderUpdate>();
                let key = format!("w{n}");
                let mut errors = Vec::new();
                for round in 0..ROUNDS {
                    let result: Result<(), mercure_track_sqlx::Error> = async {
                        // The read comes first: a deferred SQLite transaction takes its snapshot
                        // here, and could not write after another connection's commit.
                        let mut order = Order::find(&mut session, key.as_str()).await?;
                        session.begin_nested().await?;
                        order.set_status(&mut session, "DISCARDED").await?;
                        session.rollback_nested().await?;
                        let (orders,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orders")
                            .fetch_one(session.conn().await?)
                            .await?;
                        assert_eq!(orders, WRITERS as i64);
                        order.set_status(&mut session, format!("R{round}")).await?;
                        session.commit().await?;
                        Ok(())
                    }
                    .await;
                    if let Err(error) = result {
                        errors.push(format!("session {n}, round {round}: {error}"));
                        session.rollback().await.ok();
                    }
                }
                errors
            }

            /// Runs [`WRITERS`] sessions made by `new_session` at once; returns every error.
            async fn run_writers(
                pool: &sqlx::Pool<Db>,
                new_session: impl Fn(sqlx::Pool<Db>) -> TrackedSession<Db>,
            ) -> Vec<String> {
                let tasks: Vec<_> = (0..WRITERS)
                    .map(|n| tokio::spawn(write_rounds(new_session(pool.clone()), n)))
                    .collect();
                let mut errors = Vec::new();
                for task in tasks {
                    errors.extend(task.await.expect("task"));
                }
                errors
            }

            /// Every order ends with its last round's status.
            async fn assert_last_status(pool: &sqlx::Pool<Db>) {
                let rows: Vec<(String,)> =
                    sqlx::query_as("SELECT status FROM orders WHERE id LIKE 'w%'")
                        .fetch_all(pool)
                        .await
                        .expect("read");
                assert_eq!(rows.len(), WRITERS);
                let last = format!("R{}", ROUNDS - 1);
                assert!(rows.iter().all(|(status,)| *status == last), "{rows:?}");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            $(#[$needs])*
            async fn twenty_sessions_find_then_write_without_an_error_and_publish_once() {
                let db = $setup("find_then_write_direct").await.expect("database");
                seed(&db.pool).await;
                let recording = RecordingPublisher::new();
                let errors = run_writers(&db.pool, |pool| {
                    TrackedSession::new(pool, recording.clone())
                })
                .await;
                assert!(errors.is_empty(), "{} errors, first: {:?}", errors.len(), errors.first());
                let updates = recording.updates();
                assert_each_change_once(count(updates.iter().map(|u| u.update.data.as_str())));
                assert_last_status(&db.pool).await;
                mercure_track_tests::db::TestDb::finish(db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            $(#[$needs])*
            async fn twenty_outbox_sessions_find_then_write_without_an_error_and_write_once() {
                let db = $setup("find_then_write_outbox").await.expect("database");
                seed(&db.pool).await;
                mercure_track_sqlx::outbox::create_table(&db.pool)
                    .await
                    .expect("outbox table");
                let recording = RecordingPublisher::new();
                let errors = run_writers(&db.pool, |pool| {
                    TrackedSession::new(pool, recording.clone()).outbox()
                })
                .await;
                assert!(errors.is_empty(), "{} errors, first: {:?}", errors.len(), errors.first());
                assert!(recording.is_empty(), "outbox sessions publish nothing themselves");
                let rows: Vec<(String,)> = sqlx::query_as("SELECT data FROM mercure_outbox")
                    .fetch_all(&db.pool)
                    .await
                    .expect("read the outbox");
                assert_each_change_once(count(rows.iter().map(|(data,)| data.as_str())));
                assert_last_status(&db.pool).await;
                mercure_track_tests::db::TestDb::finish(db).await;
            }
        }
    };
}

async fn sqlite_db(_test: &str) -> Option<mercure_track_tests::db::SqliteDb> {
    Some(mercure_track_tests::db::sqlite().await)
}

find_then_write_tests!(sqlite, sqlx::Sqlite, super::sqlite_db);
find_then_write_tests!(
    postgres,
    sqlx::Postgres,
    mercure_track_tests::db::postgres,
    #[cfg_attr(not(mercure_track_pg), ignore = "needs PostgreSQL: set MERCURE_TRACK_PG_URL")]
);
