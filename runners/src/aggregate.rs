//! `confab aggregate`: the standalone aggregator. Reads a source, groups each chat's messages,
//! writes every group to the sinks, and commits after every sink acknowledged.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use confab_connectors::registry::{DeadLetterConfig, SinkConfig, SourceConfig};
use confab_connectors::{decode_chat_message, embedded};
use confab_pipeline::{
    ChatKey, Metrics, OperatorLimits, Pipeline, RunReport, RuntimeConfig, WindowPolicy,
};
use serde::{Deserialize, Serialize};

use crate::http::{serve, Health};

/// The aggregator's whole configuration: a TOML file with these tables, every key optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AggregateConfig {
    /// How messages are grouped: `chat` (default) or `chat_and_sender` (the seed's choice).
    pub(crate) key: ChatKey,
    /// Where messages come from (`type` = kafka or file; file with path "-" is stdin).
    pub(crate) source: SourceConfig,
    /// Where groups go: any of kafka, firestore, cassandra, file, stdout.
    pub(crate) sinks: Vec<SinkConfig>,
    /// Where undecodable or oversized records go (`type` = kafka or file).
    pub(crate) dead_letters: DeadLetterConfig,
    /// When a group completes.
    pub(crate) window: WindowPolicy,
    /// Caps on what each worker holds open.
    pub(crate) limits: OperatorLimits,
    /// Workers, batching, backpressure, retries, commits, shutdown.
    pub(crate) runtime: RuntimeConfig,
    /// The /metrics, /healthz and /readyz endpoints.
    pub(crate) http: HttpConfig,
}

/// Where the operator endpoints listen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct HttpConfig {
    /// Address of /metrics, /healthz and /readyz; unset to serve none.
    pub(crate) listen: Option<SocketAddr>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 9100))),
        }
    }
}

impl Default for AggregateConfig {
    /// Standard input to standard output: JSON-lines messages in, one JSON line per group out.
    fn default() -> Self {
        Self {
            key: ChatKey::Chat,
            source: SourceConfig::File(embedded::JsonLinesSourceConfig {
                path: "-".into(),
                ..Default::default()
            }),
            sinks: vec![SinkConfig::Stdout(embedded::StdoutConfig::default())],
            dead_letters: DeadLetterConfig::File(embedded::JsonLinesFileConfig {
                path: "dead-letters.jsonl".into(),
                ..Default::default()
            }),
            window: WindowPolicy::default(),
            limits: OperatorLimits::default(),
            runtime: RuntimeConfig::default(),
            http: HttpConfig::default(),
        }
    }
}

/// Run the aggregator: group each chat's messages and write each group once.
///
/// With no configuration it reads chat messages as JSON lines on standard input and prints one
/// JSON line per group; a TOML file (--config) chooses the real source and sinks. Flags and
/// environment variables override the file. It stops on SIGINT or SIGTERM: stops reading,
/// flushes every open group, waits for the sinks, commits, exits 0.
///
/// Endpoints (on [http] listen, 127.0.0.1:9100 by default): /metrics (Prometheus), /healthz,
/// /readyz. Scale out with more --workers in one process, or more processes in the same Kafka
/// consumer group (same [source] group_id): partitions are shared among them.
///
/// Examples:
///   confab aggregate < messages.jsonl
///   confab aggregate --config runners/configs/kafka-firestore-cassandra.toml
///   confab aggregate --config my.toml --workers 2 --inactivity-timeout 2s --print-config
///   confab aggregate --config my.toml --leading-edge 15s
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct AggregateArgs {
    /// The TOML configuration file (examples in runners/configs/).
    #[arg(long, env = "CONFAB_AGGREGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Print the effective configuration (file + flags) as TOML and exit.
    #[arg(long)]
    print_config: bool,
    /// Timely worker threads (overrides [runtime] workers).
    #[arg(long, env = "CONFAB_WORKERS")]
    workers: Option<usize>,
    /// Grouping key: chat or chat_and_sender (overrides `key`).
    #[arg(long, env = "CONFAB_KEY", value_parser = parse_key)]
    key: Option<ChatKey>,
    /// Inactivity timeout (overrides [window] inactivity_timeout_ms), e.g. 3s.
    #[arg(long, env = "CONFAB_INACTIVITY_TIMEOUT", value_parser = humantime::parse_duration)]
    inactivity_timeout: Option<std::time::Duration>,
    /// Maximum messages per group (overrides [window] max_messages).
    #[arg(long, env = "CONFAB_MAX_MESSAGES")]
    max_messages: Option<usize>,
    /// Maximum age of a group, from its first record (overrides [window] max_age_ms), e.g. 15s.
    #[arg(long, env = "CONFAB_MAX_AGE", value_parser = humantime::parse_duration)]
    max_age: Option<std::time::Duration>,
    /// Write a chat's first message after this long without one at once, alone (overrides
    /// [window] leading_edge_idle_ms; 0s turns it off), e.g. 15s.
    #[arg(long, env = "CONFAB_LEADING_EDGE", value_parser = humantime::parse_duration)]
    leading_edge: Option<std::time::Duration>,
    /// Address of the metrics and health endpoints (overrides [http] listen).
    #[arg(long, env = "CONFAB_HTTP_LISTEN")]
    listen: Option<SocketAddr>,
}

fn parse_key(s: &str) -> Result<ChatKey, String> {
    match s {
        "chat" => Ok(ChatKey::Chat),
        "chat_and_sender" => Ok(ChatKey::ChatAndSender),
        other => Err(format!(
            "unknown key `{other}`: use chat or chat_and_sender"
        )),
    }
}

/// The configuration: the file (or the defaults), then the flags, checked.
fn effective(args: &AggregateArgs) -> anyhow::Result<AggregateConfig> {
    let mut config: AggregateConfig = crate::service::load(args.config.as_deref())?;
    if let Some(workers) = args.workers {
        config.runtime.workers = workers;
    }
    if let Some(key) = args.key {
        config.key = key;
    }
    if let Some(timeout) = args.inactivity_timeout {
        config.window.inactivity_timeout_ms = timeout.as_millis() as u64;
    }
    if let Some(max) = args.max_messages {
        config.window.max_messages = max;
    }
    if let Some(age) = args.max_age {
        config.window.max_age_ms = age.as_millis() as u64;
    }
    if let Some(idle) = args.leading_edge {
        config.window.leading_edge_idle_ms = idle.as_millis() as u64;
    }
    if let Some(listen) = args.listen {
        config.http.listen = Some(listen);
    }
    check(&config)?;
    Ok(config)
}

/// Rejects configurations that cannot work, naming the key and the fix.
pub(crate) fn check(config: &AggregateConfig) -> anyhow::Result<()> {
    config
        .window
        .validate()
        .map_err(|e| anyhow::anyhow!("[window]: {e}"))?;
    if config.sinks.is_empty() {
        anyhow::bail!(
            "`sinks` is empty: add at least one [[sinks]] table (type = \"stdout\" to try it out)"
        );
    }
    // The library's own checks, which Pipeline::run makes too: here they fail before any
    // connection is opened, naming the table.
    config
        .runtime
        .validate()
        .map_err(|e| anyhow::anyhow!("[runtime] {e}"))?;
    config
        .limits
        .validate()
        .map_err(|e| anyhow::anyhow!("[limits] {e}"))?;
    Ok(())
}

/// Runs `confab aggregate`.
pub(crate) async fn run(args: AggregateArgs) -> anyhow::Result<()> {
    let config = effective(&args)?;
    if args.print_config {
        print!("{}", toml::to_string_pretty(&config)?);
        return Ok(());
    }
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    if let Some(listen) = config.http.listen {
        let health = Health {
            metrics: Arc::clone(&metrics),
            ready: Arc::clone(&ready),
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding the metrics endpoint on {listen}: is the port in use? set [http] listen or --listen"))?;
        tokio::spawn(serve(listener, health));
    }
    let stop_ready = Arc::clone(&ready);
    let report = run_pipeline(&config, metrics, ready, async move {
        shutdown_signal().await;
        stop_ready.store(false, Ordering::SeqCst);
        tracing::info!("shutting down: flushing open groups, waiting for the sinks, committing");
    })
    .await?;
    tracing::info!(
        messages = report.messages_in,
        groups = report.groups_out,
        dead_letters = report.dead_letters,
        groups_rejected = report.groups_rejected,
        unacknowledged_groups = report.unacknowledged_groups,
        committed = ?report.committed,
        "aggregator stopped"
    );
    if report.unacknowledged_groups > 0 {
        anyhow::bail!(
            "{} groups were not acknowledged before the shutdown timeout; their messages were not committed and will be read again",
            report.unacknowledged_groups
        );
    }
    Ok(())
}

/// Connects the configured source and sinks and runs the pipeline until `shutdown` completes,
/// reporting into `metrics` and setting `ready` once it runs (`confab aggregate`, and `confab up`
/// with its `[aggregate]` table).
pub(crate) async fn run_pipeline(
    config: &AggregateConfig,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<RunReport> {
    // Connected side by side: each is a round trip or more to its server, and a restart after a
    // crash waits for all of them (the source's consumer-group join proceeds meanwhile).
    let (source, sinks, dead_letters) = tokio::try_join!(
        config.source.build(),
        futures::future::try_join_all(config.sinks.iter().map(|sink| sink.build())),
        config.dead_letters.build(),
    )?;
    let key = config.key;
    let mut pipeline = Pipeline::new(move |m| key.key(m), decode_chat_message, dead_letters)
        .policy(config.window)
        .limits(config.limits)
        .config(config.runtime.clone())
        .metrics(metrics);
    for sink in sinks {
        pipeline = pipeline.sink(sink);
    }
    tracing::info!(
        source = config.source.name(),
        sinks = ?config.sinks.iter().map(|s| s.name()).collect::<Vec<_>>(),
        workers = config.runtime.workers,
        key = config.key.as_str(),
        "aggregator started"
    );
    ready.store(true, Ordering::SeqCst);
    Ok(pipeline.run(source, shutdown).await?)
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
