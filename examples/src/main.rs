//! The example application: `cargo run -p mercure-track-examples`, then open the printed URL.
//! Ctrl-C or SIGTERM stops it after draining its background publishes.

use std::process::ExitCode;
use std::time::Duration;

use mercure_track_examples::app;
use mercure_track_examples::config::{AppConfig, redact_url};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,mercure_track=debug,mercure_track_sqlx=debug".into()),
        )
        .init();
    let config = match AppConfig::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Errors may quote a URL: its passwords are never printed.
    match run(config.clone()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", config.redact(&error.to_string()));
            ExitCode::FAILURE
        }
    }
}

async fn run(config: AppConfig) -> Result<(), Box<dyn std::error::Error>> {
    let embedded = config.mercure_url.is_none();
    let capture = config.capture;
    let running = app::start(config).await?;
    println!("mercure-track example running at {}", running.url);
    println!("  database: {}", redact_url(&running.database));
    if embedded {
        println!(
            "  hub: development hub embedded at {}/.well-known/mercure (not for production)",
            running.url
        );
    }
    println!("  event schema: {}/events/schema", running.url);
    if capture {
        println!(
            "  capture: orders, images, coloring_versions and svg_versions are captured; a plain-SQL write \
             updates the open pages, for example:\n    DATABASE_URL='{}' cargo run -p mercure-track-examples \
             --bin plain-sql -- \"UPDATE orders SET status = 'NEW' WHERE id = 'ord-1004'\"",
            redact_url(&running.database)
        );
    }
    println!("Press Ctrl-C to stop.");
    stop_requested().await?;
    let unfinished = running.shutdown(Duration::from_secs(10)).await;
    if unfinished > 0 {
        println!("stopped; {unfinished} background task(s) did not finish in time");
    } else {
        println!("stopped; every background publish was drained");
    }
    Ok(())
}

/// Ctrl-C, or SIGTERM (what `docker stop`, systemd and Kubernetes send): both drain.
async fn stop_requested() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result,
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
