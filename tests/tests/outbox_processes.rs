//! The outbox across processes: a process killed with SIGKILL right after its commit loses
//! nothing, and relays in several processes never publish the same event twice (PostgreSQL).

use std::collections::{HashMap, HashSet};
use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mercure_track::publisher::{HubConfig, JwtKey};
use mercure_track::{HubPublisher, Publisher, RecordingPublisher};
use mercure_track_sqlx::TrackedSession;
use mercure_track_sqlx::outbox::{self, Relay, RelayConfig};
use mercure_track_tests::domain::{Order, OrderUpdate};
use mercure_track_tests::flaky::{FlakyHub, KEY};
use mercure_track_tests::sse::subscribe;

const CHILD_VAR: &str = "MERCURE_TRACK_OUTBOX_CHILD";
const WAIT: Duration = Duration::from_secs(30);

fn publisher(url: &str) -> Arc<dyn Publisher> {
    Arc::new(
        HubPublisher::new(HubConfig::new(url).expect("url").key(JwtKey::new(KEY)))
            .expect("publisher"),
    )
}

fn relay_config() -> RelayConfig {
    RelayConfig {
        poll_interval: Duration::from_millis(20),
        batch_size: 10,
        ..RelayConfig::default()
    }
}

/// The child process of the crash tests: commits three changes through an outbox session,
/// says so, and hangs until it is killed. Not a test on its own.
#[tokio::test]
#[ignore = "the body of the child process that the crash tests start and kill"]
async fn child_commits_then_hangs() {
    let spec = std::env::var(CHILD_VAR).expect("run by the crash tests only");
    macro_rules! commit_and_hang {
        ($pool:expr) => {{
            let mut session = TrackedSession::new($pool, RecordingPublisher::new()).outbox();
            session.track_changes::<OrderUpdate>();
            for (n, order) in ["A", "B", "C"].into_iter().enumerate() {
                Order::set_status_by_key(&mut session, order, format!("CHILD{n}"))
                    .await
                    .expect("set");
                session.commit().await.expect("commit");
            }
            println!("COMMITTED");
            tokio::time::sleep(Duration::from_secs(120)).await;
        }};
    }
    match spec.split_once(' ') {
        Some(("sqlite", path)) => commit_and_hang!(
            mercure_track_tests::db::sqlite_pool_at(std::path::Path::new(path)).await
        ),
        Some(("postgres", rest)) => {
            let (url, schema) = rest.split_once(' ').expect("url and schema");
            commit_and_hang!(mercure_track_tests::db::postgres_pool_in(url, schema).await)
        }
        _ => panic!("unknown child spec {spec:?}"),
    }
}

/// The child process of the several-relays test: runs a relay on a PostgreSQL schema until the
/// outbox is empty, then prints how many events it delivered. Not a test on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the body of the relay processes that the several-relays test starts"]
async fn child_relays_until_empty() {
    let spec = std::env::var(CHILD_VAR).expect("run by the several-relays test only");
    let mut parts = spec.split(' ');
    let (Some(url), Some(schema), Some(hub)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("unknown child spec {spec:?}");
    };
    let pool = mercure_track_tests::db::postgres_pool_in(url, schema).await;
    let relay = Relay::new(pool.clone(), publisher(hub), relay_config());
    let mut delivered = 0;
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        let round = relay.run_once().await.expect("round");
        delivered += round.delivered;
        if !round.locked_out && outbox::pending(&pool).await.expect("pending") == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    println!("DELIVERED {delivered}");
}

/// Starts the child on the database `spec`, waits for its commits, and kills it (SIGKILL).
fn run_and_kill_child(spec: String) {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "child_commits_then_hangs",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_VAR, spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the child");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("COMMITTED") {
                let _ = tx.send(());
                break;
            }
        }
    });
    let committed = rx.recv_timeout(WAIT);
    // `kill` is SIGKILL on Unix: no destructor, no flush, no chance to publish.
    child.kill().expect("kill the child");
    let status = child.wait().expect("reap the child");
    assert!(
        committed.is_ok(),
        "the child did not commit (exit {status})"
    );
    assert!(!status.success(), "the child was killed, not finished");
}

async fn relay_delivers_what_the_dead_process_committed<DB: mercure_track_sqlx::Dialect>(
    pool: &sqlx::Pool<DB>,
) {
    assert_eq!(
        outbox::pending(pool).await.expect("pending"),
        6,
        "3 order updates and 3 list updates"
    );
    let hub = FlakyHub::start("127.0.0.1:0".parse().expect("addr")).await;
    let client = reqwest::Client::new();
    let mut stream = subscribe(&client, &hub.url(), &["*"], None, Some("earliest"))
        .await
        .expect("subscribe");
    let relay = Relay::new(pool.clone(), publisher(&hub.url()), relay_config());
    let mut delivered = 0;
    while delivered < 6 {
        delivered += relay.run_once().await.expect("round").delivered;
    }
    let events = stream.collect(6, Duration::from_secs(5)).await;
    let data: HashSet<_> = events.iter().map(|e| e.data.clone()).collect();
    for order in ["A", "B", "C"] {
        assert!(
            data.contains(&format!(
                r#"{{"type":"order_update","order_id":"{order}"}}"#
            )),
            "{data:?}"
        );
    }
    assert_eq!(outbox::pending(pool).await.expect("pending"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_process_killed_after_commit_loses_nothing() {
    let db = mercure_track_tests::db::sqlite().await;
    sqlx::raw_sql(mercure_track_tests::db::SEED)
        .execute(&db.pool)
        .await
        .expect("seed");
    outbox::create_table(&db.pool).await.expect("outbox");
    let spec = format!("sqlite {}", db.path().display());
    tokio::task::spawn_blocking(move || run_and_kill_child(spec))
        .await
        .expect("child");
    relay_delivers_what_the_dead_process_committed(&db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mercure_track_pg),
    ignore = "needs PostgreSQL: set MERCURE_TRACK_PG_URL"
)]
async fn postgres_a_process_killed_after_commit_loses_nothing() {
    let Some(db) =
        mercure_track_tests::db::postgres("postgres_a_process_killed_after_commit_loses_nothing")
            .await
    else {
        return;
    };
    sqlx::raw_sql(mercure_track_tests::db::SEED)
        .execute(&db.pool)
        .await
        .expect("seed");
    outbox::create_table(&db.pool).await.expect("outbox");
    let (url, schema) = db.location();
    let spec = format!("postgres {url} {schema}");
    tokio::task::spawn_blocking(move || run_and_kill_child(spec))
        .await
        .expect("child");
    relay_delivers_what_the_dead_process_committed(&db.pool).await;
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mercure_track_pg),
    ignore = "needs PostgreSQL: set MERCURE_TRACK_PG_URL"
)]
async fn postgres_relays_in_three_processes_never_publish_one_event_twice() {
    let Some(db) = mercure_track_tests::db::postgres(
        "postgres_relays_in_three_processes_never_publish_one_event_twice",
    )
    .await
    else {
        return;
    };
    sqlx::raw_sql(mercure_track_tests::db::SEED)
        .execute(&db.pool)
        .await
        .expect("seed");
    outbox::create_table(&db.pool).await.expect("outbox");
    let mut session = TrackedSession::new(db.pool.clone(), RecordingPublisher::new()).outbox();
    session.track_changes::<OrderUpdate>();
    for n in 0..100 {
        Order::set_status_by_key(&mut session, ["A", "B", "C"][n % 3], format!("R{n}"))
            .await
            .expect("set");
        session.commit().await.expect("commit");
    }
    drop(session);

    let hub = FlakyHub::start("127.0.0.1:0".parse().expect("addr")).await;
    let client = reqwest::Client::new();
    let mut stream = subscribe(&client, &hub.url(), &["*"], None, Some("earliest"))
        .await
        .expect("subscribe");
    // Three relays in three processes.
    let (url, schema) = db.location();
    let mut relays = Vec::new();
    for _ in 0..3 {
        let spec = format!("{url} {schema} {}", hub.url());
        relays.push(tokio::task::spawn_blocking(move || {
            let output = Command::new(std::env::current_exe().expect("test binary"))
                .args([
                    "child_relays_until_empty",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_VAR, spec)
                .stderr(Stdio::inherit())
                .output()
                .expect("run a relay process");
            assert!(
                output.status.success(),
                "a relay process failed: {}",
                output.status
            );
            let stdout = String::from_utf8_lossy(&output.stdout);
            stdout
                .lines()
                // The harness prints the test's name on the same line.
                .find_map(|line| line.split("DELIVERED ").nth(1))
                .and_then(|n| n.split_whitespace().next()?.parse::<usize>().ok())
                .unwrap_or_else(|| panic!("the relay process reports no count: {stdout}"))
        }));
    }
    let mut total = 0;
    for relay in relays {
        total += relay.await.expect("relay");
    }
    assert_eq!(total, 200);
    assert_eq!(
        hub.publishes.load(Ordering::SeqCst),
        200,
        "each event published once"
    );
    let events = stream.collect(200, Duration::from_secs(5)).await;
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for event in &events {
        *per_id
            .entry(event.id.clone().unwrap_or_default())
            .or_default() += 1;
    }
    assert_eq!(per_id.len(), 200);
    assert!(per_id.values().all(|&n| n == 1));
    assert_eq!(outbox::pending(&db.pool).await.expect("pending"), 0);
    db.drop_schema().await;
}
