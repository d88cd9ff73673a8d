//! Reading the consumer offsets a cluster stores, riding out a cluster that has just started.
//!
//! A new cluster's SC answers clients a moment before its internal `consumer-offset` topic is
//! ready: until the SC has created it, a read of consumer offsets fails with `Partition not
//! found: consumer-offset-0` (2 of 6 test runs begun right after a cluster's start met it), and
//! until the SPU has taken its partition on, with `the partition is not initialized` or `the
//! partition is not a leader` (the latter met by the fresh-cluster test). [`consumer_offsets`] waits these two errors out, for at most
//! [`OFFSETS_TOPIC_WAIT`], logging once what it waits for; any other error returns at once.

use std::time::{Duration, Instant};

use fluvio::consumer::ConsumerOffset;
use fluvio::dataplane::link::ErrorCode;
use fluvio::{Fluvio, FluvioError};
use tracing::info;

/// How long a read of consumer offsets waits for a new cluster's `consumer-offset` topic. A
/// cluster on loopback creates it within a second or two of answering; far longer means the SC
/// or its SPU is not working, which the error then says.
pub const OFFSETS_TOPIC_WAIT: Duration = Duration::from_secs(30);

/// The internal topic Fluvio keeps consumer offsets in.
const OFFSETS_TOPIC: &str = "consumer-offset";

/// Between two reads while the topic is missing.
const RETRY: Duration = Duration::from_millis(200);

/// Why the consumer offsets could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumerOffsetsError {
    /// The cluster's `consumer-offset` topic is still missing or leaderless after the wait.
    #[error(
        "the Fluvio cluster's `consumer-offset` topic is not ready after {} s (a new cluster \
         readies it within seconds): look at its SC and SPU logs (scripts/infra logs fluvio)",
        waited.as_secs()
    )]
    NoOffsetsTopic {
        /// How long it was waited for.
        waited: Duration,
    },
    /// Any other failure, as the client reported it.
    #[error("{0}")]
    Read(String),
}

/// Every consumer offset the cluster stores, waiting up to `wait` for a new cluster to create
/// its `consumer-offset` topic.
pub async fn consumer_offsets(
    fluvio: &Fluvio,
    wait: Duration,
) -> Result<Vec<ConsumerOffset>, ConsumerOffsetsError> {
    let started = Instant::now();
    let mut said = false;
    loop {
        let error = match fluvio.consumer_offsets().await {
            Ok(offsets) => {
                if said {
                    info!(
                        waited_ms = started.elapsed().as_millis() as u64,
                        "the Fluvio consumer-offset topic is ready"
                    );
                }
                return Ok(offsets);
            }
            Err(error) => error,
        };
        let missing_topic = matches!(
            error.downcast_ref::<FluvioError>(),
            Some(FluvioError::PartitionNotFound(topic, _)) if topic == OFFSETS_TOPIC
        );
        // The client reports the SPU's error code as text only ("fetch consumer offsets failed
        // with: <code>"), so the code is recognised by its own wording.
        let text = error.to_string();
        let no_leader_yet = [
            ErrorCode::PartitionPendingInitialization,
            ErrorCode::PartitionNotLeader,
        ]
        .iter()
        .any(|code| text.ends_with(&code.to_string()));
        if !missing_topic && !no_leader_yet {
            return Err(ConsumerOffsetsError::Read(format!("{error:#}")));
        }
        if started.elapsed() >= wait {
            return Err(ConsumerOffsetsError::NoOffsetsTopic { waited: wait });
        }
        if !said {
            info!(
                wait_s = wait.as_secs(),
                error = %error,
                "the Fluvio consumer-offset topic is not ready yet (a cluster that has just \
                 started readies it in a moment); waiting for it"
            );
            said = true;
        }
        tokio::time::sleep(RETRY).await;
    }
}
