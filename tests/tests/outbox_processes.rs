//! The outbox across processes, killed with SIGKILL at the worst moments: in the middle of
//! committing, and in the middle of a relay's batch (updates at the hub, not yet marked).
//! And relays in three processes sharing one outbox (PostgreSQL). Checked at a recording hub.

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mercure_track::publisher::{HubConfig, JwtKey};
use mercure_track::{HubPublisher, Publisher, RecordingPublisher};
use mercure_track_sqlx::outbox::{self, Relay, RelayConfig};
use mercure_track_sqlx::{Dialect, TrackedSession};
use mercure_track_tests::domain::{Order, OrderUpdate};
use mercure_track_tests::flaky::{FlakyHub, KEY, check_delivery, outbox_rows};

const CHILD_VAR: &str = "MERCURE_TRACK_OUTBOX_CHILD";
const WAIT: Duration = Duration::from_secs(60);
/// Orders (and so lanes) of the relay tests.
const ORDERS: usize = 30;

fn publisher(url: &str) -> Arc<dyn Publisher> {
    Arc::new(
        HubPublisher::new(
            HubConfig::new(url)
                .expect("url")
                .key(JwtKey::new(KEY))
                .timeout(Duration::from_secs(5)),
        )
        .expect("publisher"),
    )
}

/// A short lease, so that the parent takes over a killed relay's claims quickly.
fn relay_config() -> RelayConfig {
    RelayConfig {
        poll_interval: Duration::from_millis(100),
        lease: Duration::from_secs(6),
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..RelayConfig::default()
    }
}

/// Waits until `condition` holds; panics with `what` at the deadline.
async fn wait_for<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + WAIT;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < until,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `body` on the pool the child spec names (`sqlite <path>` or `postgres <url> <schema>`
/// followed by the child's own arguments).
macro_rules! with_child_pool {
    ($spec:expr, |$pool:ident, $args:ident| $body:expr) => {{
        let spec: String = $spec;
        let mut words = spec.split(' ');
        match words.next() {
            Some("sqlite") => {
                let path = words.next().expect("path");
                let $pool =
                    mercure_track_tests::db::sqlite_pool_at(std::path::Path::new(path)).await;
                let $args: Vec<&str> = words.collect();
                $body
            }
            Some("postgres") => {
                let (url, schema) = (words.next().expect("url"), words.next().expect("schema"));
                let $pool = mercure_track_tests::db::postgres_pool_in(url, schema).await;
                let $args: Vec<&str> = words.collect();
                $body
            }
            _ => panic!("unknown child spec {spec:?}"),
        }
    }};
}

/// The child of the commit-crash test: commits order changes one after another, as fast as
/// it can, until it is killed. Not a test on its own.
#[tokio::test]
#[ignore = "the body of a child process that the crash tests start and kill"]
async fn child_commits_until_killed() {
    let spec = std::env::var(CHILD_VAR).expect("run by the crash tests only");
    with_child_pool!(spec, |pool, _args| {
        let mut session = TrackedSession::new(pool, RecordingPublisher::new()).outbox();
        session.track_changes::<OrderUpdate>();
        for n in 0..1_000_000_usize {
            let order = ["A", "B", "C"][n % 3];
            Order::set_status_by_key(&mut session, order, format!("K{n}"))
                .await
                .expect("set");
            session.commit().await.expect("commit");
            if n == 20 {
                println!("COMMITTING");
            }
        }
    });
}

/// The child of the relay tests: runs a relay until the outbox is empty (or a deadline).
/// Not a test on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the body of a relay process that the relay tests start"]
async fn child_relays_until_empty() {
    let spec = std::env::var(CHILD_VAR).expect("run by the relay tests only");
    with_child_pool!(spec, |pool, args| {
        let hub = args.first().expect("hub url");
        let mut config = relay_config();
        if let Some(concurrency) = args.get(1) {
            config.concurrency = concurrency.parse().expect("concurrency");
        }
        let relay = Relay::new(pool.clone(), publisher(hub), config);
        println!("OWNER {}", relay.owner());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(relay.run(async {
            let _ = stopped.await;
        }));
        wait_for("the outbox is empty", || async {
            outbox::pending(&pool).await.expect("pending") == 0
        })
        .await;
        drop(stop);
        task.await.expect("relay");
        println!("DONE");
    });
}

fn start_child(test: &str, spec: String) -> Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args([
            test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_VAR, spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the child")
}

/// Waits (bounded) for the child to print `marker`.
fn wait_for_line(child: &mut Child, marker: &'static str) -> bool {
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains(marker) {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(WAIT).is_ok()
}

/// SIGKILL (`kill` on Unix): no destructor, no flush, no chance to finish anything.
fn kill(child: &mut Child) {
    child.kill().expect("kill the child");
    let status = child.wait().expect("reap the child");
    assert!(!status.success(), "the child was killed, not finished");
}

/// Seeds the database and creates the outbox table, with `ORDERS` more orders.
async fn prepare<DB: Dialect>(pool: &sqlx::Pool<DB>)
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::raw_sql(mercure_track_tests::db::SEED)
        .execute(pool)
        .await
        .expect("seed");
    outbox::create_table(pool).await.expect("outbox");
    for n in 0..ORDERS {
        sqlx::query("INSERT INTO orders (id, status) VALUES ($1, 'NEW')")
            .bind(format!("o{n}"))
            .execute(pool)
            .await
            .expect("order");
    }
}

/// Commits `count` changes to the `ORDERS` orders in turn.
macro_rules! commit_many {
    ($pool:expr, $count:expr) => {{
        let mut session = TrackedSession::new($pool.clone(), RecordingPublisher::new()).outbox();
        session.track_changes::<OrderUpdate>();
        for n in 0..$count {
            Order::set_status_by_key(&mut session, format!("o{}", n % ORDERS), format!("R{n}"))
                .await
                .expect("set");
            session.commit().await.expect("commit");
        }
    }};
}

/// Killed in the middle of committing: every commit that kept its data kept its events, and
/// no event outlived its data.
async fn killed_while_committing<DB: Dialect>(pool: &sqlx::Pool<DB>, spec: String)
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    (String,): for<'r> sqlx::FromRow<'r, DB::Row>,
    (i64, String, String, bool, String): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let mut child = start_child("child_commits_until_killed", spec);
    let committing = tokio::task::block_in_place(|| wait_for_line(&mut child, "COMMITTING"));
    // Still committing, as fast as it can: killed between any two statements.
    tokio::time::sleep(Duration::from_millis(150)).await;
    kill(&mut child);
    assert!(committing, "the child never got going");
    let statuses: Vec<(String,)> =
        sqlx::query_as("SELECT status FROM orders WHERE id IN ('A', 'B', 'C')")
            .fetch_all(pool)
            .await
            .expect("statuses");
    let last = statuses
        .iter()
        .filter_map(|(status,)| status.strip_prefix('K')?.parse::<usize>().ok())
        .max()
        .expect("the child committed");
    let rows = outbox_rows(pool).await;
    assert_eq!(
        rows.len(),
        2 * (last + 1),
        "commits 0..={last} kept their data: each must have kept exactly its two events"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_process_killed_while_committing_keeps_data_and_events_together() {
    let db = mercure_track_tests::db::sqlite().await;
    prepare(&db.pool).await;
    let spec = format!("sqlite {}", db.path().display());
    killed_while_committing(&db.pool, spec).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mercure_track_pg),
    ignore = "needs PostgreSQL: set MERCURE_TRACK_PG_URL"
)]
async fn postgres_a_process_killed_while_committing_keeps_data_and_events_together() {
    let Some(db) = mercure_track_tests::db::postgres("outbox_kill_commit").await else {
        return;
    };
    prepare(&db.pool).await;
    let (url, schema) = db.location();
    killed_while_committing(&db.pool, format!("postgres {url} {schema}")).await;
    db.drop_schema().await;
}

/// A relay process killed in the middle of a batch (updates at a slow hub, not yet marked):
/// another relay takes its leases over once they expire and delivers everything; an update
/// sent twice carries the same id and data.
async fn relay_killed_mid_batch<DB: Dialect>(pool: &sqlx::Pool<DB>, spec: &str)
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    (i64, String, String, bool, String): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let hub = FlakyHub::start("127.0.0.1:0".parse().expect("addr")).await;
    hub.faults.delay_ms.store(300, Ordering::SeqCst);
    let mut child = start_child("child_relays_until_empty", format!("{spec} {}", hub.url()));
    // Kill it once the hub has answered some of its updates, while others are at the hub.
    wait_for("the child relay is publishing", || async {
        hub.received().len() >= 40
    })
    .await;
    let at_kill = hub.publishes.load(Ordering::SeqCst);
    tokio::task::block_in_place(|| kill(&mut child));
    assert!(
        at_kill > hub.received().len() || outbox::stats(pool).await.expect("stats").in_flight > 0,
        "updates were in flight when the relay died"
    );
    hub.faults.delay_ms.store(0, Ordering::SeqCst);
    let relay = Relay::new(pool.clone(), publisher(&hub.url()), relay_config());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(relay.run(async {
        let _ = stopped.await;
    }));
    wait_for("everything delivered", || async {
        outbox::pending(pool).await.expect("pending") == 0
    })
    .await;
    drop(stop);
    task.await.expect("relay");
    let rows = outbox_rows(pool).await;
    // Duplicates allowed (after a crash), with the same id and data; checked inside.
    let delivery = check_delivery(&rows, &hub.accepted(), true, |row| !row.batch);
    assert!(outbox::dead_letters(pool).await.expect("dead").is_empty());
    eprintln!("killed mid-batch: {delivery:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_relay_killed_mid_batch_loses_nothing() {
    let db = mercure_track_tests::db::sqlite().await;
    prepare(&db.pool).await;
    commit_many!(db.pool, 200);
    relay_killed_mid_batch(&db.pool, &format!("sqlite {}", db.path().display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mercure_track_pg),
    ignore = "needs PostgreSQL: set MERCURE_TRACK_PG_URL"
)]
async fn postgres_a_relay_killed_mid_batch_loses_nothing() {
    let Some(db) = mercure_track_tests::db::postgres("outbox_kill_relay").await else {
        return;
    };
    prepare(&db.pool).await;
    commit_many!(db.pool, 200);
    let (url, schema) = db.location();
    relay_killed_mid_batch(&db.pool, &format!("postgres {url} {schema}")).await;
    db.drop_schema().await;
}

/// Three relay processes on one PostgreSQL outbox, against a hub answering in 50 ms, each
/// with 8 updates in flight for 31 lanes: they share the work (all three deliver), nothing is
/// published twice, every lane in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mercure_track_pg),
    ignore = "needs PostgreSQL: set MERCURE_TRACK_PG_URL"
)]
async fn postgres_relays_in_three_processes_share_the_work_and_never_publish_twice() {
    let Some(db) = mercure_track_tests::db::postgres("outbox_three_relays").await else {
        return;
    };
    prepare(&db.pool).await;
    commit_many!(db.pool, 600);
    let hub = FlakyHub::start("127.0.0.1:0".parse().expect("addr")).await;
    hub.faults.delay_ms.store(50, Ordering::SeqCst);
    let (url, schema) = db.location();
    let mut children: Vec<Child> = (0..3)
        .map(|_| {
            start_child(
                "child_relays_until_empty",
                // Fewer in flight than there are lanes: one relay alone cannot take them all.
                format!("postgres {url} {schema} {} 8", hub.url()),
            )
        })
        .collect();
    let finished = tokio::task::block_in_place(|| {
        children
            .iter_mut()
            .map(|child| wait_for_line(child, "DONE"))
            .collect::<Vec<_>>()
    });
    for child in &mut children {
        let status = child.wait().expect("reap a relay");
        assert!(status.success(), "a relay process failed: {status}");
    }
    assert!(finished.iter().all(|done| *done), "a relay did not finish");
    let rows = outbox_rows(&db.pool).await;
    let delivery = check_delivery(&rows, &hub.accepted(), false, |row| !row.batch);
    assert_eq!(delivery.duplicates, 0);
    let owners: Vec<(Option<String>, i64)> = sqlx::query_as(
        "SELECT claimed_by, COUNT(*) FROM mercure_outbox WHERE delivered_at IS NOT NULL GROUP BY claimed_by",
    )
    .fetch_all(&db.pool)
    .await
    .expect("owners");
    eprintln!("rows delivered per relay: {owners:?}; {delivery:?}");
    assert!(owners.iter().all(|(owner, _)| owner.is_some()));
    assert_eq!(owners.len(), 3, "not every relay took part: {owners:?}");
    db.drop_schema().await;
}
