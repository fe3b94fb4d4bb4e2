//! A measurement, not a test (ignored; run it once by hand): the sockets and the memory that
//! background publishing holds while the hub answers each publish after 4 s, with the default
//! limit and without one.
//!
//! ```sh
//! cargo test --release -p mercure-track-tests --test background_ceiling -- --ignored --nocapture measure
//! ```
//!
//! The slow hub runs in a child process (this binary again), so that the figures, read from
//! `/proc/self/fd` and `/proc/self/status`, are the application's alone.

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mercure_track::HubPublisher;
use mercure_track::publisher::{HubConfig, JwtKey};
use mercure_track_sqlx::{
    Background, DEFAULT_BACKGROUND_LIMIT, TaskTracker, TrackedSession, drain,
};
use mercure_track_tests::domain::{Order, OrderUpdate};
use tokio::sync::Semaphore;

const CHILD_VAR: &str = "MERCURE_TRACK_SLOW_HUB";
const KEY: &str = "slow-hub-key-0123456789abcdef0123";
/// How long the hub takes to answer each publish.
const HUB_DELAY: Duration = Duration::from_secs(4);
const SESSIONS: usize = 20;
/// Commits of each session: 300 commits, 600 publishes (an order update and a list update
/// each).
const COMMITS: usize = 15;

/// The child process: a hub that answers every request after [`HUB_DELAY`], for at most two
/// minutes. Not a test on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the body of the slow hub process that the measurement starts"]
async fn child_slow_hub() {
    if std::env::var(CHILD_VAR).is_err() {
        return;
    }
    let answered = Arc::new(AtomicUsize::new(0));
    let counter = answered.clone();
    let router = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            tokio::time::sleep(HUB_DELAY).await;
            counter.fetch_add(1, Ordering::Relaxed);
            "urn:uuid:slow"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    println!("PORT {}", listener.local_addr().expect("addr").port());
    let serve = axum::serve(listener, router).into_future();
    let _ = tokio::time::timeout(Duration::from_secs(120), serve).await;
}

/// Open sockets of this process.
fn sockets() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|fds| {
            fds.filter_map(Result::ok)
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .filter(|target| target.to_string_lossy().starts_with("socket:"))
                .count()
        })
        .unwrap_or(0)
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

struct Figures {
    peak_sockets: usize,
    rss_before_kib: usize,
    peak_rss_kib: usize,
    commits_took: Duration,
    drain_took: Duration,
    unfinished: usize,
}

async fn run(hub: &str, limit: usize) -> Figures {
    let db = mercure_track_tests::db::sqlite().await;
    let values: Vec<String> = (0..SESSIONS).map(|n| format!("('m{n}', 'NEW')")).collect();
    let sql = format!(
        "INSERT INTO orders (id, status) VALUES {}",
        values.join(", ")
    );
    sqlx::raw_sql(&sql).execute(&db.pool).await.expect("seed");
    let publisher = HubPublisher::new(
        HubConfig::new(hub)
            .expect("url")
            .key(JwtKey::new(KEY))
            .timeout(HUB_DELAY * 3),
    )
    .expect("publisher");
    let background = Background::with_limit(TaskTracker::new(), limit);

    let rss_before_kib = rss_kib();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        tokio::spawn(async move {
            let (mut peak_sockets, mut peak_rss) = (0, 0);
            while !done.load(Ordering::SeqCst) {
                peak_sockets = peak_sockets.max(sockets());
                peak_rss = peak_rss.max(rss_kib());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (peak_sockets, peak_rss)
        })
    };

    let started = Instant::now();
    let commits: Vec<_> = (0..SESSIONS)
        .map(|n| {
            let mut session = TrackedSession::new(db.pool.clone(), publisher.clone())
                .background(background.clone());
            tokio::spawn(async move {
                session.track_changes::<OrderUpdate>();
                for commit in 0..COMMITS {
                    Order::set_status_by_key(&mut session, format!("m{n}"), format!("S{commit}"))
                        .await
                        .expect("set");
                    session.commit().await.expect("commit");
                }
            })
        })
        .collect();
    for commit in commits {
        commit.await.expect("session");
    }
    let commits_took = started.elapsed();
    let unfinished = drain(background.tracker(), Duration::from_secs(60)).await;
    let drain_took = started.elapsed() - commits_took;
    done.store(true, Ordering::SeqCst);
    let (peak_sockets, peak_rss_kib) = sampler.await.expect("sampler");
    Figures {
        peak_sockets,
        rss_before_kib,
        peak_rss_kib,
        commits_took,
        drain_took,
        unfinished,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run once: see the file's documentation"]
async fn measure_sockets_and_memory_with_a_hub_answering_after_4_s() {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "child_slow_hub",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_VAR, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the hub");
    let stdout = child.stdout.take().expect("stdout");
    let port = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            line.split_once("PORT ")
                .map(|(_, port)| port.trim().to_owned())
        })
        .expect("the hub's port");
    let hub = format!("http://127.0.0.1:{port}/.well-known/mercure");

    println!(
        "{SESSIONS} sessions x {COMMITS} commits = {} commits, {} publishes; hub answers after {HUB_DELAY:?}",
        SESSIONS * COMMITS,
        SESSIONS * COMMITS * 2
    );
    println!("sockets before: {}", sockets());
    // Bounded first: the allocator keeps what the unbounded run takes.
    for (label, limit) in [
        ("limit 64", 64),
        ("default limit", DEFAULT_BACKGROUND_LIMIT),
        ("no limit", Semaphore::MAX_PERMITS),
    ] {
        let figures = run(&hub, limit).await;
        println!(
            "{label:>13}: peak sockets {:>4}, RSS {:>6} KiB -> peak {:>6} KiB, commits took {:>6.2?}, then drain {:>6.2?}, unfinished {}",
            figures.peak_sockets,
            figures.rss_before_kib,
            figures.peak_rss_kib,
            figures.commits_took,
            figures.drain_took,
            figures.unfinished,
        );
        assert_eq!(figures.unfinished, 0, "{label}: every publish finished");
    }
    child.kill().expect("stop the hub");
    child.wait().expect("reap the hub");
}
