//! The `confab` binary, run as a process: configuration files, the aggregator on stdin and on
//! the real servers (Kafka and Fluvio; stopped with SIGTERM and SIGKILL), the tuning harness,
//! `confab up`, and the docker-compose file's fit with the variables the binary reads.

mod abuse;
mod aggregate_fluvio;
mod aggregate_kafka;
mod aggregate_stdin;
mod compose;
mod configs;
mod crash;
mod harness;
#[cfg(feature = "loadgen")]
mod loadgen;
mod poison;
mod scale_out;
mod tune;
mod up;

pub(crate) use harness::{confab, message_json, repo_root};
