//! Creating a topic and waiting until it can be used: what a deployment script, a benchmark and
//! a test each need before the first record, in one place.
//!
//! The SC answers a creation before the SPU has taken the new partitions on; a producer or a
//! stream opened in between fails. [`create_topic`] returns only once every partition reports
//! an online leader.

use std::time::{Duration, Instant};

use fluvio::metadata::partition::PartitionSpec;
use fluvio::metadata::topic::TopicSpec;
use fluvio::Fluvio;

/// Between two looks at the partitions' status.
const POLL: Duration = Duration::from_millis(200);

/// Why a topic could not be made ready.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateTopicError {
    /// The SC refused or failed the creation (for instance, the topic exists).
    #[error("cannot create Fluvio topic `{topic}`: {reason}")]
    Create {
        /// The topic.
        topic: String,
        /// What the client reported.
        reason: String,
    },
    /// The partitions did not all come online in time.
    #[error(
        "Fluvio topic `{topic}`: {online} of {partitions} partitions online after {} s: is the \
         SPU running? (scripts/infra status fluvio)",
        waited.as_secs()
    )]
    NotOnline {
        /// The topic.
        topic: String,
        /// Partitions with an online leader at the end of the wait.
        online: usize,
        /// Partitions asked for.
        partitions: u32,
        /// How long it was waited for.
        waited: Duration,
    },
}

/// Creates `topic` with `partitions` partitions and one replica, and waits up to `wait` until
/// every partition is online.
pub async fn create_topic(
    fluvio: &Fluvio,
    topic: &str,
    partitions: u32,
    wait: Duration,
) -> Result<(), CreateTopicError> {
    let failed = |e: &dyn std::fmt::Display| CreateTopicError::Create {
        topic: topic.to_string(),
        reason: e.to_string(),
    };
    let admin = fluvio.admin().await;
    admin
        .create(
            topic.to_string(),
            false,
            TopicSpec::new_computed(partitions, 1, None),
        )
        .await
        .map_err(|e| failed(&format!("{e:#}")))?;
    let started = Instant::now();
    let prefix = format!("{topic}-");
    loop {
        let listed = admin
            .list::<PartitionSpec, String>(Vec::new())
            .await
            .map_err(|e| failed(&format!("listing its partitions: {e:#}")))?;
        let online = listed
            .iter()
            .filter(|p| {
                p.name
                    .strip_prefix(&prefix)
                    .is_some_and(|n| n.parse::<u32>().is_ok())
                    && p.status.is_online()
            })
            .count();
        if online == partitions as usize {
            return Ok(());
        }
        if started.elapsed() >= wait {
            return Err(CreateTopicError::NotOnline {
                topic: topic.to_string(),
                online,
                partitions,
                waited: wait,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}
