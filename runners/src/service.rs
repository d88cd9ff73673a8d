//! What the service subcommands share: a TOML file read into the service's config, and the
//! `serve` / `migrate` actions.

use std::path::Path;

use anyhow::Context;
use clap::Subcommand;
use serde::de::DeserializeOwned;

/// What a service subcommand does.
#[derive(Debug, Clone, Copy, Subcommand)]
pub(crate) enum Action {
    /// Serve the API (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
}

/// The service's configuration from the TOML file at `path`, or its defaults.
pub(crate) fn load<T: DeserializeOwned + Default>(path: Option<&Path>) -> anyhow::Result<T> {
    let Some(path) = path else {
        return Ok(T::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid configuration in {}", path.display()))
}
