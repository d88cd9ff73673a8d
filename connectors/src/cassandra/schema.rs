//! The history keyspace: every table, and the versioned migrations that create them. This is the
//! one place the schema is defined; the aggregator and the chat service both run [`migrate`].
//!
//! Tables (query-first, so no read needs `ALLOW FILTERING`):
//! - `messages ((chat_id, bucket), time DESC)`: one row per message; a page of history is
//!   `WHERE chat_id = ? AND bucket = ? AND time < ? LIMIT ?`.
//! - `chat_buckets ((chat_id), bucket DESC)`: the buckets that hold messages of a chat, so that
//!   paging skips empty buckets and stops at the oldest one instead of scanning back to 1970.
//! - `chats ((chat_id))` and `chats_by_user ((user_id), chat_id)` (migration 2): never written;
//!   superseded by migration 3, whose tables the chat service's store uses. They stay because
//!   migrations only add.
//! - `chat_pairs ((user_low, user_high))`: the chat of an ordered pair of users, inserted with
//!   `IF NOT EXISTS` (a lightweight transaction), so concurrent requests make one chat per pair.
//! - `chats_by_id ((chat_id))`: a chat, its members and times. `last_activity` is written
//!   `USING TIMESTAMP` of the activity itself, so the newest activity wins whatever the order
//!   writes arrive in (it never moves back, without a read or a transaction).
//! - `chats_by_member ((user_id), chat_id)`: a user's chats with their activity (same
//!   timestamp rule); "my chats, most recent first" reads the user's partition and sorts it
//!   (a partition holds one row per chat of the user, so it stays small).
//! - `client_messages ((sender, client_message_id))`: the record produced for an idempotent
//!   send, inserted with `IF NOT EXISTS`, kept for a TTL.
//! - `read_positions ((user_id), chat_id)` (migration 4): how far a member has read a chat, the
//!   `time` of the newest message seen, written `USING TIMESTAMP` of that message's own time so
//!   the position only moves forward without a read or a transaction; one partition per user
//!   serves the chat list.
//! - `schema_migrations ((version))`: which migrations ran.
//!
//! Migrations only add (`CREATE ... IF NOT EXISTS`, `ALTER ... ADD`), so running them from two
//! processes at once, or again, is harmless. Append new ones to [`MIGRATIONS`]; never edit one
//! that has shipped.

use std::collections::BTreeSet;

use scylla::client::session::Session;
use tracing::info;

use super::{check_keyspace, CassandraError};

/// One schema change. `{ks}` in a statement stands for the keyspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Position in the history of the schema; applied in increasing order.
    pub version: i32,
    /// What it does, in a few words.
    pub name: &'static str,
    /// CQL statements, each idempotent.
    pub statements: &'static [&'static str],
}

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "message history in time buckets",
        statements: &[
            "CREATE TABLE IF NOT EXISTS {ks}.messages (
                chat_id text,
                bucket bigint,
                time timeuuid,
                message_id text,
                from_user text,
                to_user text,
                body text,
                time_iso text,
                group_id uuid,
                PRIMARY KEY ((chat_id, bucket), time)
            ) WITH CLUSTERING ORDER BY (time DESC)",
            "CREATE TABLE IF NOT EXISTS {ks}.chat_buckets (
                chat_id text,
                bucket bigint,
                PRIMARY KEY ((chat_id), bucket)
            ) WITH CLUSTERING ORDER BY (bucket DESC)",
        ],
    },
    Migration {
        version: 2,
        name: "chats and chats by user",
        statements: &[
            "CREATE TABLE IF NOT EXISTS {ks}.chats (
                chat_id text PRIMARY KEY,
                user_ids set<text>,
                created_by text,
                created_at timestamp
            )",
            "CREATE TABLE IF NOT EXISTS {ks}.chats_by_user (
                user_id text,
                chat_id text,
                other_user_ids set<text>,
                created_at timestamp,
                PRIMARY KEY ((user_id), chat_id)
            )",
        ],
    },
    Migration {
        version: 3,
        name: "the chat service's store: pairs, chats, members' chats, client message ids",
        statements: &[
            "CREATE TABLE IF NOT EXISTS {ks}.chat_pairs (
                user_low uuid,
                user_high uuid,
                chat_id uuid,
                created_by uuid,
                created_at timestamp,
                PRIMARY KEY ((user_low, user_high))
            )",
            "CREATE TABLE IF NOT EXISTS {ks}.chats_by_id (
                chat_id uuid PRIMARY KEY,
                user_low uuid,
                user_high uuid,
                created_by uuid,
                created_at timestamp,
                last_activity timestamp
            )",
            "CREATE TABLE IF NOT EXISTS {ks}.chats_by_member (
                user_id uuid,
                chat_id uuid,
                peer uuid,
                created_by uuid,
                created_at timestamp,
                last_activity timestamp,
                PRIMARY KEY ((user_id), chat_id)
            )",
            "CREATE TABLE IF NOT EXISTS {ks}.client_messages (
                sender uuid,
                client_message_id text,
                chat_id uuid,
                record text,
                acked boolean,
                created_at timestamp,
                PRIMARY KEY ((sender, client_message_id))
            )",
        ],
    },
    Migration {
        version: 4,
        name: "read positions of the members of each chat",
        statements: &["CREATE TABLE IF NOT EXISTS {ks}.read_positions (
                user_id uuid,
                chat_id uuid,
                read_up_to timeuuid,
                PRIMARY KEY ((user_id), chat_id)
            )"],
    },
];

/// Creates `keyspace` (with `replication`, a CQL map) if needed and applies every migration not
/// yet recorded in it. Returns the versions applied by this call.
pub async fn migrate(
    session: &Session,
    keyspace: &str,
    replication: &str,
) -> Result<Vec<i32>, CassandraError> {
    check_keyspace(keyspace)?;
    let ddl = |what: &'static str, e: &dyn std::fmt::Display| CassandraError::query(what, e);
    session
        .query_unpaged(
            format!("CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication}"),
            &[],
        )
        .await
        .map_err(|e| ddl("CREATE KEYSPACE", &e))?;
    session
        .query_unpaged(
            format!(
                "CREATE TABLE IF NOT EXISTS {keyspace}.schema_migrations \
                 (version int PRIMARY KEY, name text, applied_at timestamp)"
            ),
            &[],
        )
        .await
        .map_err(|e| ddl("CREATE TABLE schema_migrations", &e))?;
    let applied: BTreeSet<i32> = session
        .query_unpaged(
            format!("SELECT version FROM {keyspace}.schema_migrations"),
            &[],
        )
        .await
        .map_err(|e| ddl("reading schema_migrations", &e))?
        .into_rows_result()
        .map_err(|e| ddl("reading schema_migrations", &e))?
        .rows::<(i32,)>()
        .map_err(|e| ddl("reading schema_migrations", &e))?
        .map(|row| row.map(|(v,)| v))
        .collect::<Result<_, _>>()
        .map_err(|e| ddl("reading schema_migrations", &e))?;

    let mut ran = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        let failed = |e: &dyn std::fmt::Display| CassandraError::Migration {
            version: migration.version,
            name: migration.name,
            message: e.to_string(),
        };
        for statement in migration.statements {
            session
                .query_unpaged(statement.replace("{ks}", keyspace), &[])
                .await
                .map_err(|e| failed(&e))?;
        }
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {keyspace}.schema_migrations (version, name, applied_at) \
                     VALUES (?, ?, toTimestamp(now()))"
                ),
                (migration.version, migration.name),
            )
            .await
            .map_err(|e| failed(&e))?;
        info!(
            keyspace,
            version = migration.version,
            name = migration.name,
            "Cassandra migration applied"
        );
        ran.push(migration.version);
    }
    if !ran.is_empty() {
        session
            .await_schema_agreement()
            .await
            .map_err(|e| ddl("waiting for schema agreement", &e))?;
    }
    Ok(ran)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_in_increasing_order_and_only_add() {
        let versions: Vec<i32> = MIGRATIONS.iter().map(|m| m.version).collect();
        let mut sorted = versions.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(versions, sorted, "versions must be unique and increasing");
        for m in MIGRATIONS {
            for s in m.statements {
                let s = s.trim_start().to_ascii_uppercase();
                assert!(
                    s.starts_with("CREATE TABLE IF NOT EXISTS")
                        || s.starts_with("CREATE INDEX IF NOT EXISTS")
                        || s.starts_with("ALTER TABLE"),
                    "migration {} must only add: {s}",
                    m.version
                );
            }
        }
    }
}
