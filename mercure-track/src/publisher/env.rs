//! Reading configuration variables: the parsing shared by [`HubConfig::from_env`] and
//! [`DiscoveryConfig::from_env`](crate::subscriber::DiscoveryConfig::from_env).
//!
//! [`HubConfig::from_env`]: super::HubConfig::from_env

use std::time::Duration;

use super::config::Algorithm;
use super::error::ConfigError;
use crate::protocol::ProtocolVersion;

/// Variables read through a lookup function; an empty value counts as absent.
pub(crate) struct Env<F> {
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub(crate) fn new(lookup: F) -> Self {
        Self { lookup }
    }

    /// The value of `name`, unless absent or blank.
    pub(crate) fn var(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|value| !value.trim().is_empty())
    }

    /// The value of `name`, required.
    pub(crate) fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.var(name)
            .map(|value| value.trim().to_owned())
            .ok_or(ConfigError::MissingEnv { variable: name })
    }

    /// A JWT algorithm.
    pub(crate) fn algorithm(&self, name: &'static str) -> Result<Option<Algorithm>, ConfigError> {
        self.var(name)
            .map(|alg| match alg.trim().to_ascii_uppercase().as_str() {
                "HS256" => Ok(Algorithm::Hs256),
                "RS256" => Ok(Algorithm::Rs256),
                _ => Err(invalid(name, "HS256 or RS256")),
            })
            .transpose()
    }

    /// `MERCURE_PROTOCOL`.
    pub(crate) fn protocol(&self) -> Result<Option<ProtocolVersion>, ConfigError> {
        const NAME: &str = "MERCURE_PROTOCOL";
        self.var(NAME)
            .map(|name| {
                ProtocolVersion::from_name(&name).ok_or_else(|| invalid(NAME, "0 (0.x) or 1 (1.0)"))
            })
            .transpose()
    }

    /// A duration in whole milliseconds.
    pub(crate) fn millis(&self, name: &'static str) -> Result<Option<Duration>, ConfigError> {
        self.number(name, "a whole number of milliseconds")
            .map(|n| n.map(Duration::from_millis))
    }

    /// A duration in whole seconds.
    pub(crate) fn secs(&self, name: &'static str) -> Result<Option<Duration>, ConfigError> {
        self.number(name, "a whole number of seconds")
            .map(|n| n.map(Duration::from_secs))
    }

    fn number(
        &self,
        name: &'static str,
        expected: &'static str,
    ) -> Result<Option<u64>, ConfigError> {
        self.var(name)
            .map(|value| {
                value
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| invalid(name, expected))
            })
            .transpose()
    }
}

fn invalid(variable: &'static str, expected: &'static str) -> ConfigError {
    ConfigError::InvalidEnv { variable, expected }
}
