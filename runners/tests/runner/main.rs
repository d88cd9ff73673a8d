//! The `confab` binary, run as a process: configuration files, the aggregator on stdin and on
//! the real servers (stopped with SIGTERM), the tuning harness, `confab up`, and the
//! docker-compose file's fit with the variables the binary reads.

mod aggregate_kafka;
mod aggregate_stdin;
mod compose;
mod configs;
mod tune;
mod up;

use std::path::PathBuf;
use std::process::Command;

/// The built `confab` binary.
fn confab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_confab"))
}

/// The repository's root folder.
fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A chat message as JSON, with a version-1 TimeUUID at `ms`.
fn message_json(i: u64, chat: &str, ms: u64) -> String {
    use confab_pipeline::record::{iso_from_ms, timeuuid_from_ms};
    let m = confab_pipeline::ChatMessage {
        message_id: format!("m{i}"),
        chat_id: chat.to_string(),
        from_user: format!("u{}", i % 2),
        to_user: format!("u{}", (i + 1) % 2),
        body: format!("message {i}"),
        time: timeuuid_from_ms(ms, (i % 10_000) as u16, [0, 0, 0, 0, 0, 7]),
        time_iso: iso_from_ms(ms),
    };
    String::from_utf8(m.encode()).unwrap_or_default()
}
