//! Starts the development hub alone.
//!
//! ```text
//! cargo run -p mercure-track --features dev-hub --example dev_hub
//! ```
//!
//! Environment:
//!
//! - `MERCURE_HUB_ADDR`: where to listen (default `127.0.0.1:3001`);
//! - `MERCURE_PUBLISHER_JWT_KEY`, `MERCURE_SUBSCRIBER_JWT_KEY`: HS256 secrets (a development
//!   default when unset, announced without printing it);
//! - `MERCURE_PROTOCOL`: `0.x` (default) or `1.0`;
//! - `MERCURE_HUB_ISSUER`: 1.0, the trusted issuer of tokens (default: any issuer);
//! - `MERCURE_HUB_RESOURCE`: 1.0, the resource identifier tokens name in `aud` (default:
//!   `http://<Host>/.well-known/mercure` of each request);
//! - `MERCURE_PUBLISH_ORIGINS`: space-separated origins allowed to publish with the cookie;
//! - `MERCURE_ANONYMOUS`: `0` refuses subscribers without a token.

use mercure_track::ProtocolVersion;
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
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let addr = var("MERCURE_HUB_ADDR").unwrap_or_else(|| "127.0.0.1:3001".to_owned());
    let key = |name: &str| match var(name) {
        Some(key) => JwtKey::new(key),
        None => {
            println!("{name} is not set: using the well-known development key");
            JwtKey::new(DEVELOPMENT_KEY)
        }
    };
    let protocol = match var("MERCURE_PROTOCOL") {
        Some(name) => ProtocolVersion::from_name(&name)
            .ok_or_else(|| format!("MERCURE_PROTOCOL: unknown protocol {name:?}"))?,
        None => ProtocolVersion::default(),
    };
    let mut config = DevHubConfig::new(
        key("MERCURE_PUBLISHER_JWT_KEY"),
        key("MERCURE_SUBSCRIBER_JWT_KEY"),
    )
    .protocol(protocol)
    .anonymous(var("MERCURE_ANONYMOUS").as_deref() != Some("0"));
    if let Some(issuer) = var("MERCURE_HUB_ISSUER") {
        config = config.issuer(issuer);
    }
    if let Some(resource) = var("MERCURE_HUB_RESOURCE") {
        config = config.resource_identifier(resource);
    }
    if let Some(origins) = var("MERCURE_PUBLISH_ORIGINS") {
        config = config.publish_origins(origins.split_whitespace());
    }
    let running = DevHub::new(config)?.bind(addr.parse()?).await?;
    println!(
        "development hub (protocol {protocol}) at {} (not for production)",
        running.url()
    );
    tokio::select! {
        result = running.wait() => result?,
        _ = tokio::signal::ctrl_c() => println!("stopped"),
    }
    Ok(())
}
