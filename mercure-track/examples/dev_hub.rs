//! Starts the development hub alone.
//!
//! ```text
//! cargo run -p mercure-track --features dev-hub --example dev_hub
//! ```
//!
//! Environment: `MERCURE_HUB_ADDR` (default `127.0.0.1:3001`), `MERCURE_PUBLISHER_JWT_KEY` and
//! `MERCURE_SUBSCRIBER_JWT_KEY` (HS256 secrets; a development default when unset, printed).

use mercure_track::hub::{DevHub, DevHubConfig};
use mercure_track::publisher::JwtKey;

const DEVELOPMENT_KEY: &str = "!ChangeThisMercureHubJWTSecretKey!";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,mercure_track=debug".into()),
        )
        .init();
    let addr = std::env::var("MERCURE_HUB_ADDR").unwrap_or_else(|_| "127.0.0.1:3001".to_owned());
    let key = |name: &str| match std::env::var(name) {
        Ok(key) if !key.is_empty() => JwtKey::new(key),
        _ => {
            println!("{name} is not set: using the development key {DEVELOPMENT_KEY:?}");
            JwtKey::new(DEVELOPMENT_KEY)
        }
    };
    let config = DevHubConfig::new(
        key("MERCURE_PUBLISHER_JWT_KEY"),
        key("MERCURE_SUBSCRIBER_JWT_KEY"),
    );
    let running = DevHub::new(config)?.bind(addr.parse()?).await?;
    println!("development hub at {} (not for production)", running.url());
    tokio::select! {
        result = running.wait() => result?,
        _ = tokio::signal::ctrl_c() => println!("stopped"),
    }
    Ok(())
}
