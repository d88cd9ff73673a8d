//! `confab loadgen`: signs users in, starts chats between pairs of them, then sends messages
//! over all the chats at a fixed rate against the chat service, and reports throughput, send
//! latency percentiles, the end-to-end delay to Firestore and the memory of watched processes.
//!
//! The load is open-loop: message `n` is due at `start + n / rate` whether or not earlier ones
//! were answered, and its latency runs from that intended time. A slow server therefore shows
//! up as latency (and as a lag behind schedule), never as a quietly lower rate with good
//! percentiles (coordinated omission). In-flight requests are bounded by --concurrency; a send
//! waiting for a free slot keeps its intended time.

mod arrivals;
mod client;
mod delivery;
mod live;
mod plan;
mod rss;
mod stats;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use confab_token::Secret;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Semaphore;

use client::{Api, Session};
use delivery::{Target, Watcher};
use rss::Watch;
use stats::{Delivery, Failure, Measured, Percentiles, Recorder, Report, RunConfig};

/// Put a running confab under a steady chat load and measure it.
///
/// Signs --users users up (or logs them in, when they exist from an earlier run with the same
/// --user-prefix), starts --chats 1:1 chats between distinct pairs of them, then sends --rate
/// messages per second, spread evenly over the chats (a chat's two members take turns), for
/// --warmup and then --duration. Only the --duration window is measured.
///
/// The load is open-loop: each message is due at a fixed time and its latency is measured from
/// that intended time, so a server that falls behind shows it in the percentiles instead of
/// slowing the generator down (no coordinated omission). At most --concurrency requests are in
/// flight; "start lag" reports how late the generator itself started sends.
///
/// Limits of the services to plan for: the chat service allows each user
/// [chat.limits] messages_per_second (2 by default, burst 10) and new_chats_per_hour (30);
/// choose --users so that rate / users stays under the first (the plan's busiest user is
/// printed, and a warning given above --user-limit). 429s are counted as their own error kind.
/// The auth service allows [auth.throttle] signups_per_address (10 an hour by default): raise
/// it on the server for a first run with many users; later runs with the same --user-prefix
/// only log in.
///
/// With --firestore COLLECTION it listens to the aggregator's Firestore collection and
/// measures, for each message, the delay from its intended send time until its group document
/// reaches the listener; after sending it waits (up to --drain-timeout) until every
/// acknowledged message was seen. --watch NAME=PID samples a process's resident memory (VmRSS)
/// every second and reports it at the start, peak and end, with its slope over the measured
/// window, and the CPU time it used per message.
///
/// With --live it opens every chatting user's events stream (GET /api/v1/events, the live lane)
/// and measures the delay from each message's intended send time until it reaches its
/// recipient's stream, beside the Firestore delay when --firestore is given too.
/// --idle-streams N also holds N streams of users in no chat open during the run
/// (--idle-streams-per-user of them per user, as tabs and devices do) and reports each watched
/// process's RSS growth per idle stream. Raise the open-files limit (ulimit -n) of loadgen and
/// of the server for thousands of streams.
///
/// At the end it prints a summary (Markdown) and writes --report files (.json, or .md for
/// Markdown). It exits 1 if any send failed or a message never reached Firestore.
///
/// Examples:
///   confab loadgen                                  # confab up on 127.0.0.1:3000, 50 msg/s, 1 min
///   confab loadgen --rate 200 --users 200 --chats 400 --duration 5m --report run.json
///   confab loadgen --auth-url http://127.0.0.1:8000 --chat-url http://127.0.0.1:9000
///   confab loadgen --firestore messages --watch up=$(pgrep -n confab) --report run.md
///   confab loadgen --live --idle-streams 10000 --rate 200 --watch up=$(pgrep -n confab)
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct LoadgenArgs {
    /// Base URL of both services (confab up serves both on one port).
    #[arg(
        long,
        env = "CONFAB_LOADGEN_URL",
        default_value = "http://127.0.0.1:3000"
    )]
    url: String,
    /// Base URL of the auth service when it runs apart (confab auth listens on :8000).
    #[arg(long, env = "CONFAB_LOADGEN_AUTH_URL")]
    auth_url: Option<String>,
    /// Base URL of the chat service when it runs apart (confab chat listens on :9000).
    #[arg(long, env = "CONFAB_LOADGEN_CHAT_URL")]
    chat_url: Option<String>,
    /// Users to sign in (named PREFIX00000, PREFIX00001, ...).
    #[arg(long, env = "CONFAB_LOADGEN_USERS", default_value_t = 100)]
    users: usize,
    /// 1:1 chats to send over, each between a distinct pair of users.
    #[arg(long, env = "CONFAB_LOADGEN_CHATS", default_value_t = 200)]
    chats: usize,
    /// Messages per second, in total over all chats.
    #[arg(long, env = "CONFAB_LOADGEN_RATE", default_value_t = 50.0)]
    rate: f64,
    /// How long to send and measure, after the warm-up (e.g. 30s, 5m). With the warm-up, at most
    /// the server's access-token lifetime ([auth.jwt] expiry_secs, 10 minutes by default): each
    /// user keeps the token of its one login.
    #[arg(long, env = "CONFAB_LOADGEN_DURATION", default_value = "1m", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// How long to send at the same rate before measuring (connections, caches, JIT of the
    /// servers' JVMs).
    #[arg(long, env = "CONFAB_LOADGEN_WARMUP", default_value = "5s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Seed for who chats with whom and the order of chats (the same seed, the same traffic).
    #[arg(long, env = "CONFAB_LOADGEN_SEED", default_value_t = 42)]
    seed: u64,
    /// Most requests in flight at once.
    #[arg(long, env = "CONFAB_LOADGEN_CONCURRENCY", default_value_t = 64)]
    concurrency: usize,
    /// Size of each message body in bytes.
    #[arg(long, env = "CONFAB_LOADGEN_MESSAGE_BYTES", default_value_t = 100)]
    message_bytes: usize,
    /// A request without a response after this long counts as a `timeout` error.
    #[arg(long, env = "CONFAB_LOADGEN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Usernames are this prefix and a number; the same prefix reuses the same users.
    #[arg(long, env = "CONFAB_LOADGEN_USER_PREFIX", default_value = "loadgen-")]
    user_prefix: String,
    /// The users' password (they are throwaway users; never printed or logged).
    #[arg(long, env = "CONFAB_LOADGEN_PASSWORD", hide_env_values = true, default_value = "loadgen-password", value_parser = parse_secret)]
    password: Secret,
    /// The chat service's per-user send limit ([chat.limits] messages_per_second) to plan
    /// against: a warning is printed when the plan's busiest user would exceed it.
    #[arg(long, env = "CONFAB_LOADGEN_USER_LIMIT", default_value_t = 2.0)]
    user_limit: f64,
    /// Measure the end-to-end delay to this Firestore collection (the aggregator's
    /// [[sinks]] type = "firestore" collection).
    #[arg(long, env = "CONFAB_LOADGEN_FIRESTORE_COLLECTION")]
    firestore: Option<String>,
    /// The Firestore project (the emulator accepts any).
    #[arg(long, env = "FIRESTORE_PROJECT_ID", default_value = "confab-local")]
    firestore_project: String,
    /// The Firestore emulator's address (without it: a real project through Application
    /// Default Credentials).
    #[arg(long, env = "FIRESTORE_EMULATOR_HOST")]
    firestore_emulator_host: Option<String>,
    /// With --firestore: how long to wait after sending for the last group documents.
    #[arg(long, env = "CONFAB_LOADGEN_DRAIN_TIMEOUT", default_value = "2m", value_parser = humantime::parse_duration)]
    drain_timeout: Duration,
    /// Sample this process's resident memory every second: NAME=PID (repeatable).
    #[arg(long, env = "CONFAB_LOADGEN_WATCH", value_delimiter = ',', value_parser = rss::parse_watch)]
    watch: Vec<Watch>,
    /// Measure the live lane: each chatting user's events stream, and the delay until a message
    /// reaches its recipient's.
    #[arg(long, env = "CONFAB_LOADGEN_LIVE")]
    live: bool,
    /// Hold this many events streams of users in no chat open during the run.
    #[arg(long, env = "CONFAB_LOADGEN_IDLE_STREAMS", default_value_t = 0)]
    idle_streams: usize,
    /// Idle streams per idle user (at most the server's [chat.realtime] max_streams_per_user).
    #[arg(
        long,
        env = "CONFAB_LOADGEN_IDLE_STREAMS_PER_USER",
        default_value_t = 8
    )]
    idle_streams_per_user: usize,
    /// Write the report here: JSON, or Markdown when the name ends in .md (repeatable).
    #[arg(long, env = "CONFAB_LOADGEN_REPORT", value_delimiter = ',')]
    report: Vec<PathBuf>,
}

fn parse_secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn check(args: &LoadgenArgs) -> anyhow::Result<()> {
    if !(args.rate.is_finite() && args.rate > 0.0) {
        bail!(
            "--rate {}: must be a number of messages per second above 0",
            args.rate
        );
    }
    if args.duration.is_zero() {
        bail!("--duration must be above 0 (e.g. 30s)");
    }
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if args.idle_streams_per_user == 0 {
        bail!("--idle-streams-per-user must be at least 1");
    }
    if args.message_bytes > 4000 {
        bail!(
            "--message-bytes {}: the chat service takes at most 4,000 characters by default",
            args.message_bytes
        );
    }
    for w in &args.watch {
        if rss::rss_kib(w.pid).is_none() {
            bail!(
                "--watch {}={}: no process with that id (or its memory cannot be read)",
                w.name,
                w.pid
            );
        }
    }
    Ok(())
}

/// Runs `confab loadgen`.
pub(crate) async fn run(args: LoadgenArgs) -> anyhow::Result<()> {
    check(&args)?;
    let auth_url = args.auth_url.clone().unwrap_or_else(|| args.url.clone());
    let chat_url = args.chat_url.clone().unwrap_or_else(|| args.url.clone());
    let pairs = plan::pairs(args.users, args.chats, args.seed).map_err(anyhow::Error::msg)?;
    let max_user_rate = plan::max_user_rate(&pairs, args.users, args.rate);
    if max_user_rate > args.user_limit {
        eprintln!(
            "warning: the busiest user would send {max_user_rate:.2} msg/s, above --user-limit {} \
             (the chat service's [chat.limits] messages_per_second): expect 429s; raise --users",
            args.user_limit
        );
    }
    let api = Api::new(&auth_url, &chat_url, args.timeout, args.concurrency)?;

    let sessions = sign_in_users(&api, &args, &args.user_prefix, args.users).await?;
    let chats = start_chats(&api, &sessions, &pairs).await?;
    let (idle_streams, idle_stream_kib) = open_idle_streams(&api, &args).await?;
    let live = if args.live {
        Some(Arc::new(live::LiveWatcher::start(&api, &sessions).await?))
    } else {
        None
    };
    let watcher = match &args.firestore {
        Some(collection) => Some(Arc::new(
            Watcher::start(Target {
                project: args.firestore_project.clone(),
                collection: collection.clone(),
                emulator_host: args.firestore_emulator_host.clone(),
            })
            .await?,
        )),
        None => None,
    };

    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let config = RunConfig {
        auth_url,
        chat_url,
        users: args.users,
        chats: args.chats,
        rate: args.rate,
        duration_s: args.duration.as_secs_f64(),
        warmup_s: args.warmup.as_secs_f64(),
        seed: args.seed,
        concurrency: args.concurrency,
        message_bytes: args.message_bytes,
        max_user_rate,
    };
    let live_streams = if live.is_some() { sessions.len() } else { 0 };
    let sent = send_all(&args, api, sessions, chats, watcher.clone(), live.clone()).await?;
    let live = match live {
        Some(live) => Some(stats::LiveDelivery {
            streams: live_streams,
            idle_streams: idle_streams.as_ref().map_or(0, live::Streams::len),
            ..drain_live(live, sent.recorder.ok, idle_stream_kib).await?
        }),
        None => None,
    };
    drop(idle_streams);

    let firestore = match watcher {
        Some(watcher) => Some(drain(&args, watcher, sent.recorder.ok).await?),
        None => None,
    };
    let stop_sampling = sent.stop_sampling;
    let _ = stop_sampling.send(true);
    let samples = sent.sampler.await.unwrap_or_default();
    let processes = args
        .watch
        .iter()
        .zip(&samples)
        .map(|(w, s)| rss::summarize(w, s, args.warmup.as_secs_f64(), sent.sending_ended))
        .collect();

    let r = sent.recorder;
    let measured_secs = r.measured_last_response.as_secs_f64();
    let report = Report {
        started_at,
        config,
        sent: r.sent,
        ok: r.ok,
        errors: r.errors(),
        errors_by_kind: r
            .failures
            .iter()
            .map(|(k, v)| (k.key(), v.clone()))
            .collect(),
        measured: Measured {
            sent: r.measured_sent,
            ok: r.measured_ok,
            errors: r.measured_sent - r.measured_ok,
            achieved_rate: if measured_secs > 0.0 {
                r.measured_ok as f64 / measured_secs
            } else {
                0.0
            },
            send_latency: Percentiles::of(&r.latency),
            service_time: Percentiles::of(&r.service),
            max_start_lag_ms: r.max_start_lag.as_secs_f64() * 1000.0,
        },
        firestore,
        live,
        processes,
    };
    let markdown = report.markdown();
    println!("{markdown}");
    for path in &args.report {
        let text = if path
            .extension()
            .is_some_and(|e| e == "md" || e == "markdown")
        {
            markdown.clone()
        } else {
            serde_json::to_string_pretty(&report)? + "\n"
        };
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if report.errors > 0 {
        bail!(
            "{} of {} sends failed (see the errors above)",
            report.errors,
            report.sent
        );
    }
    if let Some(l) = &report.live {
        if l.seen < l.expected {
            bail!(
                "{} of {} acknowledged messages never reached their recipient's events stream",
                l.expected - l.seen,
                l.expected
            );
        }
    }
    if let Some(f) = &report.firestore {
        if f.seen < f.expected {
            bail!(
                "{} of {} acknowledged messages were not seen in Firestore collection {} within --drain-timeout",
                f.expected - f.seen,
                f.expected,
                f.collection
            );
        }
    }
    Ok(())
}

pub(crate) fn bar(len: u64, what: &str) -> ProgressBar {
    ProgressBar::new(len).with_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} ({{elapsed}}) {{msg}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    )
}

/// Signs every user up (or finds it exists) and logs it in, a few at a time: each costs the
/// auth service two password hashes.
async fn sign_in_users(
    api: &Api,
    args: &LoadgenArgs,
    prefix: &str,
    users: usize,
) -> anyhow::Result<Vec<Session>> {
    let progress = bar(users as u64, "signing in users");
    let sessions: Vec<anyhow::Result<Session>> = futures::stream::iter(0..users)
        .map(|i| {
            let name = plan::username(prefix, i);
            let progress = progress.clone();
            async move {
                let session = api.sign_in(&name, &args.password).await;
                progress.inc(1);
                session
            }
        })
        .buffered(8)
        .collect()
        .await;
    progress.finish_and_clear();
    let sessions = sessions.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    // Each user sends and listens with the token of this login for the whole run; a run that
    // outlasts it would count every later send as a failure.
    let run = args.warmup + args.duration + Duration::from_secs(30);
    if let Some(shortest) = sessions.iter().map(|s| s.expires_in).min() {
        if Duration::from_secs(shortest) < run {
            bail!(
                "this run ({:?} with its warm-up) outlasts the access tokens ({shortest} s): raise \
                 [auth.jwt] expiry_secs on the server (at most 3600) or shorten --duration",
                args.warmup + args.duration
            );
        }
    }
    eprintln!(
        "{} users signed in ({}...)",
        sessions.len(),
        plan::username(prefix, 0)
    );
    Ok(sessions)
}

/// Signs in the idle users and opens their streams; with each watched process's RSS growth per
/// idle stream, measured from just before to two seconds after opening them.
async fn open_idle_streams(
    api: &Api,
    args: &LoadgenArgs,
) -> anyhow::Result<(Option<live::Streams>, Vec<(String, f64)>)> {
    if args.idle_streams == 0 {
        return Ok((None, Vec::new()));
    }
    let users = args.idle_streams.div_ceil(args.idle_streams_per_user);
    let prefix = format!("{}idle-", args.user_prefix);
    let idle_sessions = sign_in_users(api, args, &prefix, users).await?;
    let before: Vec<Option<u64>> = args.watch.iter().map(|w| rss::rss_kib(w.pid)).collect();
    let streams = live::idle(
        api,
        &idle_sessions,
        args.idle_streams,
        args.idle_streams_per_user,
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let per_stream = args
        .watch
        .iter()
        .zip(before)
        .filter_map(|(w, before)| {
            let grown = rss::rss_kib(w.pid)?.saturating_sub(before?);
            Some((w.name.clone(), grown as f64 / streams.len() as f64))
        })
        .collect();
    eprintln!("{} idle streams open", streams.len());
    Ok((Some(streams), per_stream))
}

/// Waits until every acknowledged message reached its recipient's stream (at most 30 s).
async fn drain_live(
    live: Arc<live::LiveWatcher>,
    ok: u64,
    idle_stream_kib: Vec<(String, f64)>,
) -> anyhow::Result<stats::LiveDelivery> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while live.progress().0 < ok && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (seen, _) = live.progress();
    let live =
        Arc::into_inner(live).context("the live streams are still shared after sending ended")?;
    Ok(stats::LiveDelivery {
        streams: 0,
        idle_streams: 0,
        expected: ok,
        seen,
        delay: Percentiles::of(&live.finish()),
        idle_stream_kib,
    })
}

/// A chat and its two members (indexes into the sessions).
struct ChatEntry {
    id: String,
    members: [usize; 2],
}

async fn start_chats(
    api: &Api,
    sessions: &[Session],
    pairs: &[(usize, usize)],
) -> anyhow::Result<Vec<ChatEntry>> {
    let progress = bar(pairs.len() as u64, "starting chats");
    let chats: Vec<anyhow::Result<ChatEntry>> = futures::stream::iter(pairs)
        .map(|&(a, b)| {
            let progress = progress.clone();
            async move {
                let id = api.start_chat(&sessions[a], &sessions[b]).await?;
                progress.inc(1);
                Ok::<_, anyhow::Error>(ChatEntry {
                    id,
                    members: [a, b],
                })
            }
        })
        .buffered(16)
        .collect()
        .await;
    progress.finish_and_clear();
    let chats = chats.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    eprintln!("{} chats ready", chats.len());
    Ok(chats)
}

/// What the send phase leaves behind.
struct SendPhase {
    recorder: Recorder,
    /// Seconds from the first send to the end of sending.
    sending_ended: f64,
    stop_sampling: tokio::sync::watch::Sender<bool>,
    sampler: tokio::task::JoinHandle<Vec<rss::Samples>>,
}

async fn send_all(
    args: &LoadgenArgs,
    api: Api,
    sessions: Vec<Session>,
    chats: Vec<ChatEntry>,
    watcher: Option<Arc<Watcher>>,
    live: Option<Arc<live::LiveWatcher>>,
) -> anyhow::Result<SendPhase> {
    let total = ((args.warmup + args.duration).as_secs_f64() * args.rate).round() as u64;
    let warmup_count = (args.warmup.as_secs_f64() * args.rate).round() as u64;
    let sessions: Arc<[Session]> = sessions.into();
    let chats: Arc<[ChatEntry]> = chats.into();
    let recorder = Arc::new(Mutex::new(Recorder::default()));
    let slots = Arc::new(Semaphore::new(args.concurrency));
    let began = Instant::now();
    let measure_start = began + args.warmup;

    let (stop_sampling, stop_rx) = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(rss::sample(args.watch.clone(), began, stop_rx));

    eprintln!(
        "sending {total} messages at {} msg/s over {} chats ({} s warm-up, then {} s measured)",
        args.rate,
        chats.len(),
        args.warmup.as_secs_f64(),
        args.duration.as_secs_f64()
    );
    let progress = bar(total, "sending");
    let (stop_ticker, mut ticker_stop) = tokio::sync::watch::channel(false);
    let ticker = tokio::spawn({
        let (progress, recorder, slots, watcher) = (
            progress.clone(),
            Arc::clone(&recorder),
            Arc::clone(&slots),
            watcher.clone(),
        );
        let concurrency = args.concurrency;
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = ticker_stop.wait_for(|s| *s) => return,
                }
                let elapsed = began.elapsed().as_secs_f64().max(1e-3);
                let message = {
                    let r = lock(&recorder);
                    let limited = r.failures.get(&Failure::Status(429)).map_or(0, |f| f.count);
                    format!(
                        "{:.0} msg/s, ok {}, errors {} (429: {limited}), in flight {}, p99 {:.1} ms",
                        r.sent as f64 / elapsed,
                        r.ok,
                        r.errors(),
                        concurrency - slots.available_permits(),
                        r.latency.value_at_quantile(0.99) as f64 / 1000.0,
                    )
                };
                let seen = watcher
                    .as_ref()
                    .map(|w| format!(", in Firestore {}/{}", w.progress().0, w.progress().1))
                    .unwrap_or_default();
                progress.set_message(format!("{message}{seen}"));
            }
        }
    });

    let mut traffic = plan::Traffic::new(chats.len(), args.seed);
    for n in 0..total {
        let intended = began + Duration::from_secs_f64(n as f64 / args.rate);
        tokio::time::sleep_until(intended.into()).await;
        let permit = Arc::clone(&slots)
            .acquire_owned()
            .await
            .context("the send slots closed")?;
        let (chat, sender) = traffic.next_message();
        let (api, sessions, chats, recorder, watcher, live, progress) = (
            api.clone(),
            Arc::clone(&sessions),
            Arc::clone(&chats),
            Arc::clone(&recorder),
            watcher.clone(),
            live.clone(),
            progress.clone(),
        );
        let body = plan::body(n, args.message_bytes);
        tokio::spawn(async move {
            let entry = &chats[chat];
            let from = &sessions[entry.members[sender]];
            let start = Instant::now();
            let result = api.send(from, &entry.id, body).await;
            let done = Instant::now();
            let measured = n >= warmup_count;
            {
                let mut r = lock(&recorder);
                r.sent += 1;
                r.max_start_lag = r
                    .max_start_lag
                    .max(start.saturating_duration_since(intended));
                if measured {
                    r.measured_sent += 1;
                }
                match &result {
                    Ok(_) => {
                        r.ok += 1;
                        if measured {
                            r.measured_ok += 1;
                            stats::record(&mut r.latency, done - intended);
                            stats::record(&mut r.service, done - start);
                            r.measured_last_response = r
                                .measured_last_response
                                .max(done.saturating_duration_since(measure_start));
                        }
                    }
                    Err((failure, detail)) => r.fail(failure.clone(), || detail.clone()),
                }
            }
            if let Ok(id) = result {
                if let Some(live) = live {
                    live.register(id.clone(), intended, measured);
                }
                if let Some(watcher) = watcher {
                    watcher.register(id, intended, measured);
                }
            }
            progress.inc(1);
            // Last: the end of sending waits for every slot.
            drop(permit);
        });
    }
    // Every slot back: every send answered or failed.
    let _all = slots
        .acquire_many(args.concurrency as u32)
        .await
        .context("the send slots closed")?;
    let sending_ended = began.elapsed().as_secs_f64();
    let _ = stop_ticker.send(true);
    let _ = ticker.await;
    progress.finish_and_clear();
    let recorder = std::mem::take(&mut *lock(&recorder));
    Ok(SendPhase {
        recorder,
        sending_ended,
        stop_sampling,
        sampler,
    })
}

/// Waits until the listener saw every acknowledged message (or --drain-timeout), then stops it.
async fn drain(args: &LoadgenArgs, watcher: Arc<Watcher>, ok: u64) -> anyhow::Result<Delivery> {
    let progress = bar(ok, "waiting for Firestore");
    let deadline = Instant::now() + args.drain_timeout;
    loop {
        let (seen, _) = watcher.progress();
        progress.set_position(seen);
        if seen >= ok || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    progress.finish_and_clear();
    let (seen, _) = watcher.progress();
    let watcher = Arc::into_inner(watcher)
        .context("the Firestore listener is still shared after sending ended")?;
    let (delays, found_by_query) = watcher.finish().await?;
    Ok(Delivery {
        project: args.firestore_project.clone(),
        collection: args.firestore.clone().unwrap_or_default(),
        expected: ok,
        seen,
        found_by_query,
        e2e_delay: Percentiles::of(&delays),
    })
}
