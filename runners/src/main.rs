//! `confab`: one binary, thin subcommands that parse configuration and compose the crates.

mod aggregate;
mod auth;
mod chat;
mod http;
#[cfg(feature = "loadgen")]
mod loadgen;
mod service;
mod tune;
mod up;

use clap::{Parser, Subcommand, ValueEnum};

// mimalloc instead of glibc's malloc: on the aggregator's Kafka path glibc spent about a quarter
// of the CPU consolidating chunks freed on another thread than the one that allocated them, and
// mimalloc took CPU per message down by about a tenth (connectors/examples/kafka_throughput.rs).
// Its version 2, not 3 (the crate's default): records are allocated by the reader and freed by
// the sink task, and version 3 kept initialising fresh pages for the reader instead of reusing
// the freed ones; version 2 used 0.85x of its CPU per message (2.39 against 2.79 µs, five
// alternating runs of `kafka_throughput 2000000 4000`) at no higher peak RSS.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process (`prctl(PR_SET_THP_DISABLE)`, which is what
/// mimalloc's own `MIMALLOC_ALLOW_THP=0` does): mimalloc asks for huge pages on its segments, and
/// on a kernel that grants them where asked (`madvise`, the usual default) each segment it
/// touches again after giving pages back costs a 2 MiB page faulted in and zeroed whole. Without
/// them the aggregator replayed a million messages (benches/compare, two invocations of three
/// interleaved runs each) at 0.82-0.87x the peak RSS (159 against 193 MiB, 173 against 198) and
/// the same CPU per message within the spread (see docs/BENCHMARKS.md). Failing (an old kernel,
/// a seccomp filter) changes nothing else.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = nix::sys::prctl::set_thp_disable(true) {
        tracing::debug!(error = %e, "cannot turn transparent huge pages off; keeping them");
    }
}

/// confab: a realtime chat pipeline that groups each chat's messages before writing them.
#[derive(Debug, Parser)]
#[command(name = "confab", version, about, long_about = None)]
struct Cli {
    /// Log format: human-readable lines, or one JSON object per line.
    #[arg(
        long,
        global = true,
        env = "CONFAB_LOG_FORMAT",
        default_value = "human"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the aggregator: group each chat's messages from a log and write each group once to
    /// the sinks (Firestore, Cassandra, Kafka, files, stdout), committing after they acknowledge.
    Aggregate(aggregate::AggregateArgs),
    /// Run the auth service (users, login, JWT).
    Auth(auth::AuthArgs),
    /// Run the chat service (chats, messages into the stream, history, realtime events).
    Chat(chat::ChatArgs),
    // No doc comment, as for Up: LoadgenArgs's long help (the open-loop model, the services'
    // limits, examples) is what `confab loadgen --help` should show.
    #[cfg(feature = "loadgen")]
    Loadgen(Box<loadgen::LoadgenArgs>),
    /// Find the window policy for your traffic: replays or synthesizes chat messages through the
    /// real operator in virtual time and reports Firestore cost against delivery delay.
    Tune(Box<tune::TuneArgs>),
    // No doc comment here: it would replace UpArgs's, whose long part (configuration, endpoints,
    // examples) is what `confab up --help` should teach.
    Up(up::UpArgs),
}

fn main() {
    if let Err(e) = run() {
        eprintln!("confab: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    // Two JWT crypto backends end up linked (the Firestore client brings one): choose ours
    // before anything signs or verifies.
    confab_token::install_crypto_provider();
    let cli = Cli::parse();
    init_logs(cli.log_format);
    disable_transparent_huge_pages();
    match cli.command {
        Command::Tune(args) => tune::run(*args),
        Command::Auth(args) => runtime()?.block_on(auth::run(args)),
        Command::Chat(args) => runtime()?.block_on(chat::run(args)),
        Command::Aggregate(args) => runtime()?.block_on(aggregate::run(args)),
        Command::Up(args) => runtime()?.block_on(up::run(args)),
        #[cfg(feature = "loadgen")]
        Command::Loadgen(args) => runtime()?.block_on(loadgen::run(*args)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Logs go to stderr; RUST_LOG filters them (default: info).
fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
