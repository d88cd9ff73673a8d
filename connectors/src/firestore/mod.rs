//! Firestore, through the `firestore` crate: one document per group, for realtime listeners.
//!
//! [`FirestoreSink`] writes each group as the document `<collection>/<group id>` (collection
//! `messages` by default) with the seed web client's fields (`chat_id`, `from_user`,
//! `list_of_messages`, `latest_message_time_iso`) and ours ([`GroupDocument`]). Grouping is what
//! makes Firestore cheap: N messages cost one document write and one read per listener.
//!
//! Writes are upserts that merge, so a replay is harmless: the scalar fields are set,
//! `list_of_messages` is extended with the messages it lacks (`appendMissingElements`), and the
//! count and times take the maximum/minimum. Rewriting the same group changes nothing; and should
//! a consumer that lost its partitions in a rebalance flush a group's head after the new owner
//! wrote the whole group (same id, the head being a prefix; the runtime drops such groups, but a
//! write already in flight is not recalled), the document still keeps every message.
//!
//! Batches go through `BatchWrite` (not atomic: each write succeeds or fails alone), at most
//! `max_batch_documents` per request. A retryable gRPC code (`UNAVAILABLE`, `ABORTED`,
//! `RESOURCE_EXHAUSTED`, `DEADLINE_EXCEEDED`, `INTERNAL`, ...) on the request or on any write
//! fails the call as retryable, and the runtime, the one layer that retries, writes the batch
//! again with backoff (rewriting a document already written changes nothing). An invalid
//! document is rejected (dead-lettered alone); other codes are fatal.
//!
//! A per-chat rate guard spaces writes of one chat (`chat_write_interval_ms`, with a burst), so a
//! hot chat or a replay never writes one chat's documents faster than listeners and indexes
//! absorb; it delays (backpressure), it never drops.
//!
//! The emulator is chosen by `FIRESTORE_EMULATOR_HOST` (the client library reads only that
//! variable); without it, Application Default Credentials are used.

mod config;
mod document;
mod rate;
mod sink;

pub use config::FirestoreConfig;
pub use document::GroupDocument;
pub use rate::ChatRateGuard;
pub use sink::FirestoreSink;

use firestore::gcloud_sdk::tonic::Code;

/// Whether a gRPC status code means a retry can succeed: the server is away, overloaded, timed
/// out or aborted a contended write. Everything else (invalid argument, permission denied, not
/// found, failed precondition, ...) will fail again.
pub fn is_retryable_code(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::Aborted
            | Code::ResourceExhausted
            | Code::DeadlineExceeded
            | Code::Internal
            | Code::Cancelled
            | Code::Unknown
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_grpc_codes_are_retryable_and_request_errors_are_not() {
        for code in [Code::Unavailable, Code::Aborted, Code::ResourceExhausted] {
            assert!(is_retryable_code(code), "{code:?}");
        }
        for code in [
            Code::InvalidArgument,
            Code::PermissionDenied,
            Code::NotFound,
            Code::FailedPrecondition,
            Code::Unauthenticated,
        ] {
            assert!(!is_retryable_code(code), "{code:?}");
        }
    }
}
