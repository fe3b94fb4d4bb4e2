//! The example application: `cargo run -p mercure-track-examples`, then open the printed URL.

use std::time::Duration;

use mercure_track_examples::app;
use mercure_track_examples::config::AppConfig;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,mercure_track=debug,mercure_track_sqlx=debug".into()),
        )
        .init();
    let config = AppConfig::from_env()?;
    let embedded = config.mercure_url.is_none();
    let running = app::start(config).await?;
    println!("mercure-track example running at {}", running.url);
    println!("  database: {}", running.database);
    if embedded {
        println!(
            "  hub: development hub embedded at {}/.well-known/mercure (not for production)",
            running.url
        );
    }
    println!("  event schema: {}/events/schema", running.url);
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    let unfinished = running.shutdown(Duration::from_secs(10)).await;
    if unfinished > 0 {
        println!("stopped; {unfinished} background task(s) did not finish in time");
    } else {
        println!("stopped; every background publish was drained");
    }
    Ok(())
}
