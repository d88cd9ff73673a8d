//! `confab auth`: the auth service (users, login, JWT), configured from a TOML file, flags and
//! environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use confab_token::Secret;

use crate::service::{load, Action};

/// Run the auth service: sign-up, login (JWT), the user list, and the public keys other
/// services verify tokens with (/.well-known/jwks.json).
///
/// Configuration comes from --config (TOML; every key documented in confab-auth's Config),
/// then flags and environment variables on top. With nothing set it serves 127.0.0.1:8000 on an
/// SQLite file in the current folder, signing with a key made at start (tokens do not survive a
/// restart: set [jwt] key_file for that).
///
/// Examples:
///   confab auth
///   confab auth --database-url postgres://confab:confab@127.0.0.1:5432/confab
///   confab auth --config auth.toml migrate
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct AuthArgs {
    #[command(subcommand)]
    action: Option<Action>,
    /// A TOML file with the service's configuration.
    #[arg(long, env = "CONFAB_AUTH_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (overrides the file's `listen`).
    #[arg(long, env = "CONFAB_AUTH_LISTEN")]
    listen: Option<SocketAddr>,
    /// postgres://... or sqlite://path (overrides the file's `database_url`).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

/// Runs `confab auth`.
pub(crate) async fn run(args: AuthArgs) -> anyhow::Result<()> {
    let mut config: confab_auth::Config = load(args.config.as_deref())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(url) = args.database_url {
        config.database_url = Secret::new(url);
    }
    config.validate()?;
    match args.action.unwrap_or(Action::Serve) {
        Action::Migrate => confab_auth::migrate(&config).await.context("migrating")?,
        Action::Serve => confab_auth::serve(config).await.context("serving")?,
    }
    Ok(())
}
