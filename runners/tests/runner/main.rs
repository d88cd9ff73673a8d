//! The `confab` binary, run as a process: configuration files, the aggregator on stdin and on
//! the real servers (stopped with SIGTERM), and the tuning harness.

mod aggregate_kafka;
mod aggregate_stdin;
mod configs;
mod crash;
mod harness;
mod poison;
mod scale_out;
mod tune;

pub(crate) use harness::{confab, message_json, repo_root};
