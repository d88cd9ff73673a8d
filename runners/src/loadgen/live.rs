//! The live lane as clients see it: one events stream per user (`GET /api/v1/events`), each
//! noting when a message addressed to its user first arrives; the delay runs from the message's
//! intended send time. Idle streams (`--idle-streams`) belong to users in no chat: they only
//! hold a connection open, as the tabs of people reading other chats do.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::Deserialize;
use tokio::task::JoinHandle;

use crate::loadgen::arrivals::{lock, Arrivals};
use crate::loadgen::client::{Api, Session};

/// How long a stream may take to say `ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Streams opened at once.
const OPENING: usize = 64;

#[derive(Deserialize)]
struct LiveMessage {
    message_id: String,
    to_user: String,
}

/// Streams read until dropped.
pub(crate) struct Streams {
    readers: Vec<JoinHandle<()>>,
}

impl Drop for Streams {
    fn drop(&mut self) {
        for reader in &self.readers {
            reader.abort();
        }
    }
}

impl Streams {
    pub(crate) fn len(&self) -> usize {
        self.readers.len()
    }
}

/// Opens `count` streams, `per_user` for each of `sessions` in turn, each handing its `message`
/// events to `on_message` (with the stream's user); returns once every one said `ready`.
async fn open(
    api: &Api,
    sessions: &[Session],
    count: usize,
    per_user: usize,
    on_message: Option<Arc<Mutex<Arrivals>>>,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Streams> {
    let opened: Vec<anyhow::Result<JoinHandle<()>>> = futures::stream::iter(0..count)
        .map(|i| {
            let session = sessions[(i / per_user.max(1)) % sessions.len()].clone();
            let arrivals = on_message.clone();
            let progress = progress.clone();
            async move {
                let mut response = api.events(&session).await?;
                let mut buffer = String::new();
                // Up to `ready`, here; the rest in the reader task.
                let ready = tokio::time::timeout(READY_TIMEOUT, async {
                    while let Some(chunk) = response.chunk().await? {
                        buffer.push_str(&String::from_utf8_lossy(&chunk));
                        if buffer.contains("event: ready") {
                            return Ok::<bool, reqwest::Error>(true);
                        }
                    }
                    Ok(false)
                })
                .await;
                match ready {
                    Ok(Ok(true)) => {}
                    Ok(Ok(false)) => bail!("an events stream ended before `ready`"),
                    Ok(Err(e)) => bail!("reading an events stream: {e}"),
                    Err(_) => bail!("an events stream said nothing for {READY_TIMEOUT:?}"),
                }
                progress.inc(1);
                let user = session.id.clone();
                Ok(tokio::spawn(async move {
                    buffer.clear();
                    while let Ok(Some(chunk)) = response.chunk().await {
                        let at = Instant::now();
                        let Some(arrivals) = &arrivals else {
                            continue;
                        };
                        buffer.push_str(&String::from_utf8_lossy(&chunk));
                        while let Some(end) = buffer.find("\n\n") {
                            let block: String = buffer.drain(..end + 2).collect();
                            if !block.starts_with("event: message")
                                && !block.contains("\nevent: message")
                            {
                                continue;
                            }
                            let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: "))
                            else {
                                continue;
                            };
                            if let Ok(message) = serde_json::from_str::<LiveMessage>(data) {
                                // The sender's own stream sees it too; the delay is the recipient's.
                                if message.to_user == user {
                                    lock(arrivals).arrived(&message.message_id, at);
                                }
                            }
                        }
                    }
                }))
            }
        })
        .buffer_unordered(OPENING)
        .collect()
        .await;
    let readers = opened.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Streams { readers })
}

/// One stream per chatting user, measuring the live lane's delay.
pub(crate) struct LiveWatcher {
    arrivals: Arc<Mutex<Arrivals>>,
    _streams: Streams,
}

impl LiveWatcher {
    /// Opens a stream for each of `sessions` and returns once all are ready.
    pub(crate) async fn start(api: &Api, sessions: &[Session]) -> anyhow::Result<Self> {
        let arrivals = Arc::new(Mutex::new(Arrivals::default()));
        let progress = crate::loadgen::bar(sessions.len() as u64, "opening live streams");
        let streams = open(
            api,
            sessions,
            sessions.len(),
            1,
            Some(Arc::clone(&arrivals)),
            &progress,
        )
        .await
        .context("opening the chatting users' events streams (GET /api/v1/events)")?;
        progress.finish_and_clear();
        Ok(Self {
            arrivals,
            _streams: streams,
        })
    }

    /// Waits for message `id`, sent at `intended`.
    pub(crate) fn register(&self, id: String, intended: Instant, measured: bool) {
        lock(&self.arrivals).register(id, intended, measured);
    }

    /// (seen, registered).
    pub(crate) fn progress(&self) -> (u64, u64) {
        lock(&self.arrivals).progress()
    }

    /// Closes the streams; the delays of the measured messages.
    pub(crate) fn finish(self) -> Histogram<u64> {
        lock(&self.arrivals).take().0
    }
}

/// Opens `count` idle streams, `per_user` for each of `sessions`.
pub(crate) async fn idle(
    api: &Api,
    sessions: &[Session],
    count: usize,
    per_user: usize,
) -> anyhow::Result<Streams> {
    let progress = crate::loadgen::bar(count as u64, "opening idle streams");
    let streams = open(api, sessions, count, per_user, None, &progress)
        .await
        .context(
            "opening idle events streams: raise the open-files limit (ulimit -n) of loadgen and \
             the server, and [chat.realtime] max_streams_per_user / max_streams",
        )?;
    progress.finish_and_clear();
    Ok(streams)
}
