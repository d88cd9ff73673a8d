//! `confab tune`: the window-policy tuning harness (see the confab-tune crate).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use confab_pipeline::{Aggregatable, ChatKey};
use confab_tune::report::{csv, svg, table};
use confab_tune::{
    evaluate_all, generate, pareto_frontier_p50, read_jsonl, recommend_within, Budget, Grid,
    LeadingEdge, Outcome, Prices, WorkloadSpec,
};
use indicatif::{ProgressBar, ProgressStyle};

/// Which window policy should you run? `confab tune` answers with your traffic.
///
/// It takes a workload (a seeded synthetic day of chat traffic by default, your messages as JSON
/// lines with --input, or everything on a Kafka topic with --kafka-topic), runs the real aggregation operator over it in virtual time for every
/// policy in a grid (a day of traffic takes seconds), and prints, per policy: Firestore writes,
/// writes per message, cost per month at list price, the delivery delay it adds
/// (p50/p90/p95/p99/max), the busiest chat's documents per second, and peak open groups. The grid
/// includes leading edges (--leading-edges: the first message after a chat was idle that long is
/// written at once, alone), which lower the median delay for some extra writes. It recommends the
/// cheapest policy whose delays fit --p99-budget (and --p50-budget, if given), shows the best
/// policy with and without a leading edge within the same budgets and the p50 Pareto points of
/// each, and compares the recommendation with the seed's Camel policy (key from_user+chat_id,
/// 10 messages, 3 s timeout) on the same traffic. Policies with identical results (a limit that
/// never fires on this traffic) share one row, the others listed under it as "= policy"; the
/// marks are R recommended, B the seed's policy, * and ^ the cost/p99 and cost/p50 Pareto points.
///
/// Examples:
///   confab tune                                     # a synthetic day, default grid, 3 s budget
///   confab tune --p99-budget 1s --plot cost.svg     # tighter budget, with a plot (SVG)
///   confab tune --messages 20000 --duration 2h      # a smaller synthetic workload, quicker
///   confab tune --p50-budget 1s --p99-budget 15s    # the median matters most
///   confab tune --leading-edges 0,10s,30s           # compare these leading edges
///   confab tune --input messages.jsonl --csv out.csv
///   confab tune --kafka-topic chat_messages          # replay what the topic holds now
///   confab tune --timeouts 1s,2s,4s --sizes 20,100 --ages 30s --keys chat
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct TuneArgs {
    /// Replay these messages (JSON lines, one chat message per line) instead of synthesizing.
    #[arg(long, env = "CONFAB_TUNE_INPUT", conflicts_with = "kafka_topic")]
    input: Option<PathBuf>,
    /// Replay a Kafka topic instead: every partition from its start to its end at launch, read
    /// without joining a consumer group or committing anything (the topic is left as it was).
    /// Records that are not chat messages are counted and skipped.
    #[arg(long, env = "CONFAB_TUNE_KAFKA_TOPIC")]
    kafka_topic: Option<String>,
    /// Bootstrap brokers for --kafka-topic.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    kafka_brokers: String,
    /// Synthetic workload: about this many messages.
    #[arg(long, env = "CONFAB_TUNE_MESSAGES", default_value_t = 200_000)]
    messages: usize,
    /// Synthetic workload: number of users.
    #[arg(long, env = "CONFAB_TUNE_USERS", default_value_t = 2_000)]
    users: usize,
    /// Synthetic workload: number of 1:1 chats.
    #[arg(long, env = "CONFAB_TUNE_CHATS", default_value_t = 5_000)]
    chats: usize,
    /// Synthetic workload: the simulated period (e.g. 24h, 90m).
    #[arg(long, env = "CONFAB_TUNE_DURATION", default_value = "24h", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Synthetic workload: random seed (the same seed, the same traffic).
    #[arg(long, env = "CONFAB_TUNE_SEED", default_value_t = 42)]
    seed: u64,
    /// Synthetic workload: median gap between messages of a conversation.
    #[arg(long, env = "CONFAB_TUNE_MEDIAN_GAP", default_value = "4s", value_parser = humantime::parse_duration)]
    median_gap: Duration,
    /// Inactivity timeouts to try.
    #[arg(long, env = "CONFAB_TUNE_TIMEOUTS", value_delimiter = ',', default_value = "250ms,500ms,1s,2s,3s,5s", value_parser = humantime::parse_duration)]
    timeouts: Vec<Duration>,
    /// Maximum group sizes (messages) to try.
    #[arg(
        long,
        env = "CONFAB_TUNE_SIZES",
        value_delimiter = ',',
        default_value = "10,50,200"
    )]
    sizes: Vec<usize>,
    /// Maximum group ages to try.
    #[arg(long, env = "CONFAB_TUNE_AGES", value_delimiter = ',', default_value = "5s,15s,60s", value_parser = humantime::parse_duration)]
    ages: Vec<Duration>,
    /// Keys to try: chat (one stream per chat) and/or chat_and_sender (the seed's choice).
    #[arg(long, env = "CONFAB_TUNE_KEYS", value_delimiter = ',', default_value = "chat,chat_and_sender", value_parser = parse_key)]
    keys: Vec<ChatKey>,
    /// Leading edges to try (0 for none): each is combined with every timeout not longer than it.
    #[arg(long, env = "CONFAB_TUNE_LEADING_EDGES", value_delimiter = ',', default_value = "0,5s,15s", value_parser = humantime::parse_duration)]
    leading_edges: Vec<Duration>,
    /// The p99 delivery delay you accept; the recommendation is the cheapest policy within it.
    #[arg(long, env = "CONFAB_TUNE_P99_BUDGET", default_value = "3s", value_parser = humantime::parse_duration)]
    p99_budget: Duration,
    /// The median delivery delay you accept, if it matters to you (none by default).
    #[arg(long, env = "CONFAB_TUNE_P50_BUDGET", value_parser = humantime::parse_duration)]
    p50_budget: Option<Duration>,
    /// How far the runtime holds time back for late records (its lateness_ms); adds to the delay
    /// of groups completed by a timeout.
    #[arg(long, env = "CONFAB_TUNE_LATENESS", default_value = "500ms", value_parser = humantime::parse_duration)]
    lateness: Duration,
    /// Dollars per 100,000 Firestore document writes.
    #[arg(long, env = "CONFAB_TUNE_WRITE_PRICE", default_value_t = 0.18)]
    write_price: f64,
    /// Dollars per 100,000 Firestore document reads.
    #[arg(long, env = "CONFAB_TUNE_READ_PRICE", default_value_t = 0.06)]
    read_price: f64,
    /// Clients listening to each chat (both members of a 1:1 chat: 2).
    #[arg(long, env = "CONFAB_TUNE_LISTENERS", default_value_t = 2.0)]
    listeners_per_chat: f64,
    /// Also write the results as CSV here.
    #[arg(long, env = "CONFAB_TUNE_CSV")]
    csv: Option<PathBuf>,
    /// Also write the results as JSON here.
    #[arg(long, env = "CONFAB_TUNE_JSON")]
    json: Option<PathBuf>,
    /// Also write a plot of cost against p50 and p99 delay (SVG) here.
    #[arg(long, env = "CONFAB_TUNE_PLOT")]
    plot: Option<PathBuf>,
    /// Policies evaluated in parallel (default: the number of cores).
    #[arg(long, env = "CONFAB_TUNE_THREADS")]
    threads: Option<usize>,
}

fn parse_key(s: &str) -> Result<ChatKey, String> {
    match s {
        "chat" => Ok(ChatKey::Chat),
        "chat_and_sender" | "chat+sender" => Ok(ChatKey::ChatAndSender),
        other => Err(format!(
            "unknown key `{other}`: use chat or chat_and_sender"
        )),
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// Runs `confab tune`.
pub(crate) fn run(args: TuneArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let messages = match (&args.input, &args.kafka_topic) {
        (_, Some(topic)) => read_topic(&args.kafka_brokers, topic)?,
        (Some(path), None) => {
            let file =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            read_jsonl(std::io::BufReader::new(file))
                .with_context(|| format!("reading {}", path.display()))?
        }
        (None, None) => generate(&WorkloadSpec {
            seed: args.seed,
            messages: args.messages,
            users: args.users,
            chats: args.chats,
            duration_ms: ms(args.duration),
            median_gap_ms: ms(args.median_gap) as f64,
            ..WorkloadSpec::default()
        })?,
    };
    if messages.is_empty() {
        bail!("the workload has no messages");
    }
    let span = messages[messages.len() - 1].event_time_ms() - messages[0].event_time_ms();
    eprintln!(
        "workload: {} messages over {} ({})",
        messages.len(),
        humantime::format_duration(Duration::from_millis(span)),
        match (&args.input, &args.kafka_topic) {
            (_, Some(topic)) => format!("Kafka topic {topic}"),
            (Some(path), None) => path.display().to_string(),
            (None, None) => format!("synthetic, seed {}", args.seed),
        }
    );

    let grid = Grid {
        inactivity_timeouts_ms: args.timeouts.iter().map(|d| ms(*d)).collect(),
        max_messages: args.sizes.clone(),
        max_ages_ms: args.ages.iter().map(|d| ms(*d)).collect(),
        keys: args.keys.clone(),
        leading_edges_ms: args.leading_edges.iter().map(|d| ms(*d)).collect(),
        ..Grid::default()
    };
    let candidates = grid.candidates();
    let prices = Prices {
        write_per_100k: args.write_price,
        read_per_100k: args.read_price,
        listeners_per_chat: args.listeners_per_chat,
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let bar = ProgressBar::new(candidates.len() as u64).with_style(
        ProgressStyle::with_template(
            "{spinner} evaluating policies [{bar:40}] {pos}/{len} ({elapsed}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let messages = Arc::new(messages);
    let outcomes = evaluate_all(
        &messages,
        &candidates,
        &prices,
        ms(args.lateness),
        threads,
        &|n| bar.set_position(n as u64),
    );
    bar.finish_and_clear();

    let budget = ms(args.p99_budget);
    let budgets = Budget {
        p99_ms: budget,
        p50_ms: args.p50_budget.map_or(u64::MAX, ms),
    };
    let within = match args.p50_budget {
        Some(p50) => format!(
            "p50 <= {} and p99 <= {}",
            humantime::format_duration(p50),
            humantime::format_duration(args.p99_budget)
        ),
        None => format!("p99 <= {}", humantime::format_duration(args.p99_budget)),
    };
    let recommended = recommend_within(&outcomes, budgets, LeadingEdge::Either);
    let baseline = outcomes
        .iter()
        .position(|o| o.candidate == confab_tune::Candidate::seed_baseline());
    print!("{}", table(&outcomes, recommended, baseline));
    println!();
    print!("{}", leading_edge_summary(&outcomes, budgets, &within));
    println!();
    match (recommended, baseline) {
        (Some(r), Some(b)) => {
            let (r, b) = (&outcomes[r], &outcomes[b]);
            println!(
                "recommended for {within}: {}\n  ${:.2}/month, {:.3} writes per message, p50 {}, p99 {}",
                r.candidate.name,
                r.cost_per_month,
                r.writes_per_message,
                humantime::format_duration(Duration::from_millis(r.delay_p50_ms)),
                humantime::format_duration(Duration::from_millis(r.delay_p99_ms)),
            );
            let ratio = b.writes as f64 / r.writes.max(1) as f64;
            let comparison = if ratio >= 1.0 {
                format!("{ratio:.2}x fewer writes than the seed")
            } else {
                format!(
                    "{:.2}x the seed's writes, for a p99 the seed does not meet",
                    1.0 / ratio
                )
            };
            println!(
                "  the seed's policy on the same traffic: ${:.2}/month, {:.3} writes per message, p99 {}\n  => {comparison}",
                b.cost_per_month,
                b.writes_per_message,
                humantime::format_duration(Duration::from_millis(b.delay_p99_ms)),
            );
        }
        (None, _) => println!(
            "no policy keeps {within}; raise the budget or try shorter --timeouts or more --leading-edges"
        ),
        (Some(r), None) => println!("recommended: {}", outcomes[r].candidate.name),
    }
    if let Some(path) = &args.csv {
        std::fs::write(path, csv(&outcomes, recommended, baseline))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&outcomes)?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        std::fs::write(path, svg(&outcomes, recommended, baseline, budget)?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    eprintln!(
        "evaluated {} policies in {:.1}s",
        outcomes.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What the leading edge does on this traffic: the best policy with and without one within the
/// budgets, and the points of each on the Pareto frontier of writes against the median delay.
fn leading_edge_summary(outcomes: &[Outcome], budget: Budget, within: &str) -> String {
    use std::fmt::Write as _;
    let line = |o: &Outcome| {
        format!(
            "{:.3} writes/msg, p50 {}, p90 {}, p99 {} ({})",
            o.writes_per_message,
            confab_tune::grid::ms_text(o.delay_p50_ms),
            confab_tune::grid::ms_text(o.delay_p90_ms),
            confab_tune::grid::ms_text(o.delay_p99_ms),
            o.candidate.name
        )
    };
    let mut out = String::new();
    for (which, label) in [
        (LeadingEdge::Without, "without a leading edge"),
        (LeadingEdge::With, "with a leading edge"),
    ] {
        let _ = match recommend_within(outcomes, budget, which) {
            Some(i) => writeln!(out, "cheapest {label} for {within}: {}", line(&outcomes[i])),
            None => writeln!(out, "no policy {label} keeps {within}"),
        };
        // The frontier among these policies only, cheapest first.
        let led = |o: &Outcome| o.candidate.policy.leading_edge_idle_ms != 0;
        let wanted = which == LeadingEdge::With;
        let own: Vec<Outcome> = outcomes
            .iter()
            .filter(|o| led(o) == wanted)
            .cloned()
            .collect();
        let mut front: Vec<&Outcome> = own
            .iter()
            .zip(pareto_frontier_p50(&own))
            .filter(|(_, on)| *on)
            .map(|(o, _)| o)
            .collect();
        front.sort_by(|a, b| {
            a.cost_per_month
                .total_cmp(&b.cost_per_month)
                .then(a.delay_p99_ms.cmp(&b.delay_p99_ms))
        });
        // Policies that tie on both axes are one point: the one with the lowest p99 stands for it.
        front.dedup_by(|b, a| a.writes == b.writes && a.delay_p50_ms == b.delay_p50_ms);
        let _ = writeln!(out, "  cost/p50 Pareto points {label}:");
        for o in front {
            let _ = writeln!(out, "    {}", line(o));
        }
    }
    out
}

/// Every chat message on `topic` now: each partition from its low to its high watermark at
/// launch, by assignment (no consumer group joins, nothing is committed). Messages come back in
/// event-time order (stable, so each chat keeps its partition's order); undecodable records are
/// counted and skipped.
fn read_topic(brokers: &str, topic: &str) -> anyhow::Result<Vec<confab_pipeline::ChatMessage>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Message, Offset, TopicPartitionList};

    let timeout = Duration::from_secs(10);
    let unreachable = |e: rdkafka::error::KafkaError| {
        anyhow::anyhow!(
            "cannot read Kafka topic {topic} at {brokers} ({e}); start a local broker with \
             `scripts/infra up kafka` or pass --kafka-brokers"
        )
    };
    let consumer: BaseConsumer = confab_connectors::kafka::client_config(
        brokers,
        &[
            ("group.id", "confab-tune-replay"),
            ("enable.auto.commit", "false"),
            ("enable.partition.eof", "false"),
        ],
        &std::collections::BTreeMap::new(),
    )
    .map_err(anyhow::Error::msg)?
    .create()
    .map_err(unreachable)?;
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(unreachable)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        bail!("Kafka topic {topic} at {brokers} does not exist or has no partitions");
    }
    let mut assignment = TopicPartitionList::new();
    let mut remaining = 0u64;
    let mut ends = std::collections::HashMap::new();
    for p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, *p, timeout)
            .map_err(unreachable)?;
        if high > low {
            assignment
                .add_partition_offset(topic, *p, Offset::Offset(low))
                .context("assigning a partition")?;
            remaining += (high - low) as u64;
            ends.insert(*p, high);
        }
    }
    consumer.assign(&assignment).map_err(unreachable)?;
    let bar = ProgressBar::new(remaining).with_style(
        ProgressStyle::with_template("reading {msg} [{bar:30}] {pos}/{len} records ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(topic.to_string());
    let (mut messages, mut skipped) = (Vec::new(), 0u64);
    let mut last_progress = Instant::now();
    while !ends.is_empty() {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(record)) => {
                last_progress = Instant::now();
                let partition = record.partition();
                match confab_pipeline::ChatMessage::decode(
                    record.payload().unwrap_or(&[]),
                    usize::MAX,
                ) {
                    Ok(m) => messages.push(m),
                    Err(_) => skipped += 1,
                }
                bar.inc(1);
                if ends
                    .get(&partition)
                    .is_some_and(|end| record.offset() + 1 >= *end)
                {
                    ends.remove(&partition);
                }
            }
            Some(Err(e)) => return Err(unreachable(e)),
            None if last_progress.elapsed() > Duration::from_secs(30) => {
                bail!("Kafka topic {topic}: no record for 30 s before reaching the end of {} partition(s)", ends.len())
            }
            None => {}
        }
    }
    bar.finish_and_clear();
    if skipped > 0 {
        eprintln!("{topic}: skipped {skipped} records that are not chat messages");
    }
    messages.sort_by_key(|m| m.event_time_ms());
    Ok(messages)
}
