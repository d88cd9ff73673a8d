//! `confab chat`: the chat service (chats, messages into the stream, history, realtime events),
//! configured from a TOML file, flags and environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use confab_token::Secret;

use crate::service::{load, Action};

/// Run the chat service: 1:1 chats, sending messages into the log (Kafka, or the in-process log
/// with its own aggregator), history pages (Cassandra or SQL), server-sent events of new message
/// groups, spam controls. Tokens come from the auth service (configure its public key).
///
/// Configuration comes from --config (TOML; see services/chat/chat.example.toml), then flags
/// and environment variables on top. It shares the auth service's database (its users).
///
/// Examples:
///   confab chat --config services/chat/chat.example.toml
///   confab chat --config chat.toml migrate
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct ChatArgs {
    #[command(subcommand)]
    action: Option<Action>,
    /// A TOML file with the service's configuration.
    #[arg(long, env = "CONFAB_CHAT_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (overrides the file's `listen`).
    #[arg(long, env = "CONFAB_CHAT_LISTEN")]
    listen: Option<SocketAddr>,
    /// postgres://... or sqlite://path (overrides the file's `database_url`).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

/// Runs `confab chat`.
pub(crate) async fn run(args: ChatArgs) -> anyhow::Result<()> {
    let mut config: confab_chat::Config = load(args.config.as_deref())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(url) = args.database_url {
        config.database_url = Secret::new(url);
    }
    config.validate()?;
    match args.action.unwrap_or(Action::Serve) {
        Action::Migrate => confab_chat::migrate(&config).await.context("migrating")?,
        Action::Serve => confab_chat::serve(config).await.context("serving")?,
    }
    Ok(())
}
