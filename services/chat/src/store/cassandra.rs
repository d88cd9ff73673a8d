//! The chat store on Cassandra / ScyllaDB: the tables of migration 3 in the connectors' schema
//! (`confab_connectors::cassandra::schema`), in the same keyspace as the history. Every query
//! names its partition; none needs `ALLOW FILTERING`.
//!
//! - **One chat per pair.** `chat_pairs` is keyed by the ordered pair and written only with
//!   `INSERT ... IF NOT EXISTS` (a lightweight transaction at `SERIAL`), so of concurrent
//!   creations exactly one applies; the others read the winner's row at `SERIAL`. The winner then
//!   writes both members' `chats_by_member` rows and, last, `chats_by_id`. Whoever finds a pair
//!   without its `chats_by_id` row (the creator died in between, or is still writing) writes the
//!   same rows again from the pair's row: they are identical, so this repair is harmless.
//! - **Recency without read-before-write.** `last_activity` in `chats_by_id` and in both members'
//!   `chats_by_member` rows is written `USING TIMESTAMP` of the activity itself (in
//!   microseconds), so the cell keeps the newest activity whatever order writes arrive in: it
//!   never moves back, and a send costs three plain writes, no read and no transaction.
//! - **"My chats, most recent first"** reads the user's `chats_by_member` partition (one row
//!   per chat) and sorts it by activity here. A table clustered by activity would serve the
//!   first page without sorting, but moving a chat up means deleting its old row on every send:
//!   a tombstone per message at the head of the partition, which every list read scans (the
//!   queue anti-pattern). The partition is read up to [`MAX_LISTED_CHATS`] rows; a user in more
//!   chats sees only that many of them (the first ones in id order), and a warning is logged.
//! - **Client message ids** are inserted `IF NOT EXISTS` with a TTL of the configured retention,
//!   so Cassandra expires them and [`ChatStore::prune_client_messages`] has nothing to do. The
//!   acknowledgement is a plain write of `acked` alone, a cell the transaction never writes, so
//!   transactional and plain writes never race on one cell.
//! - Usernames come from the SQL database's `users` table (the auth service's), as with the SQL
//!   store.
//!
//! Cassandra keeps timestamps in milliseconds, so this store truncates the times it hands out to
//! milliseconds: what it returns is what it stored.

use super::{ChatRecord, ChatStore, ChatWithNames, ClientMessage, Created, Store, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, TimeZone, Utc};
use confab_connectors::cassandra::{self, CassandraConfig, CassandraError};
use confab_pipeline::ChatMessage;
use futures::TryStreamExt;
use scylla::client::session::Session;
use scylla::errors::ExecutionError;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};
use scylla::value::{CqlTimestamp, CqlTimeuuid, CqlValue, Row};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use uuid::Uuid;

/// Most chats of one user that a list reads (and sorts) before answering.
pub const MAX_LISTED_CHATS: usize = 10_000;

/// The longest TTL Cassandra accepts (20 years), in seconds.
const MAX_TTL_SECS: u64 = 630_720_000;

/// A `chats_by_id` row.
type ChatColumns = (
    Option<Uuid>,
    Option<Uuid>,
    Option<Uuid>,
    Option<CqlTimestamp>,
    Option<CqlTimestamp>,
);

/// A `chats_by_member` row.
type MemberColumns = (
    Uuid,
    Option<Uuid>,
    Option<Uuid>,
    Option<CqlTimestamp>,
    Option<CqlTimestamp>,
);

/// A `chat_pairs` row.
type PairColumns = (Option<Uuid>, Option<Uuid>, Option<CqlTimestamp>);

/// A `client_messages` row.
type ClientColumns = (Option<Uuid>, Option<String>, Option<bool>);

/// The prepared statements.
struct Statements {
    insert_pair: PreparedStatement,
    select_pair: PreparedStatement,
    select_pair_serial: PreparedStatement,
    insert_chat: PreparedStatement,
    select_chat: PreparedStatement,
    insert_member: PreparedStatement,
    select_members: PreparedStatement,
    touch_chat: PreparedStatement,
    touch_member: PreparedStatement,
    insert_client: PreparedStatement,
    select_client: PreparedStatement,
    select_client_serial: PreparedStatement,
    ack_client: PreparedStatement,
    mark_read: PreparedStatement,
    select_read: PreparedStatement,
    select_reads: PreparedStatement,
    ping: PreparedStatement,
}

/// Chats and client message ids in Cassandra; usernames from the SQL database.
pub struct CassandraChatStore {
    session: Arc<Session>,
    statements: Statements,
    users: Store,
    keyspace: String,
    ttl_secs: i32,
}

impl std::fmt::Debug for CassandraChatStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CassandraChatStore")
            .field("keyspace", &self.keyspace)
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

fn store_error(err: CassandraError) -> StoreError {
    let retryable = matches!(
        err,
        CassandraError::Unreachable { .. }
            | CassandraError::Query {
                retryable: true,
                ..
            }
    );
    StoreError::Backend {
        message: err.to_string(),
        retryable,
    }
}

fn execution(what: &'static str, err: &ExecutionError) -> StoreError {
    StoreError::Backend {
        message: format!("Cassandra {what} failed: {err}"),
        retryable: cassandra::is_retryable(err),
    }
}

fn read(what: &'static str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend {
        message: format!("Cassandra {what} failed: {err}"),
        retryable: false,
    }
}

fn timestamp(at: DateTime<Utc>) -> CqlTimestamp {
    CqlTimestamp(at.timestamp_millis())
}

fn time_of(value: Option<CqlTimestamp>, what: &str) -> Result<DateTime<Utc>, StoreError> {
    let CqlTimestamp(ms) = value.ok_or_else(|| StoreError::Corrupt(format!("{what} is null")))?;
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("{what} {ms} is out of range")))
}

fn required<T>(value: Option<T>, what: &str) -> Result<T, StoreError> {
    value.ok_or_else(|| StoreError::Corrupt(format!("{what} is null")))
}

/// The write timestamp (microseconds) that makes the newest activity win.
fn write_time(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// Now, in the precision Cassandra keeps.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

fn ordered(a: Uuid, b: Uuid) -> (Uuid, Uuid) {
    if a < b {
        (a, b)
    } else {
        (b, a)
    }
}

impl CassandraChatStore {
    /// Connects to `config.nodes`, migrates the keyspace if `config.migrate`, and prepares the
    /// statements. `users` is the SQL database holding the auth service's `users`; client
    /// message ids are kept `retention_secs`.
    pub async fn connect(
        config: &CassandraConfig,
        users: Store,
        retention_secs: u64,
    ) -> Result<Self, StoreError> {
        let session = cassandra::connect(config).await.map_err(store_error)?;
        if config.migrate {
            cassandra::migrate(&session, &config.keyspace, &config.replication)
                .await
                .map_err(store_error)?;
        }
        Self::with_session(session, config, users, retention_secs).await
    }

    /// Like [`CassandraChatStore::connect`], on an open session (the keyspace must be migrated).
    pub async fn with_session(
        session: Arc<Session>,
        config: &CassandraConfig,
        users: Store,
        retention_secs: u64,
    ) -> Result<Self, StoreError> {
        // The keyspace is spliced into the statements.
        cassandra::check_keyspace(&config.keyspace).map_err(store_error)?;
        let ks = config.keyspace.as_str();
        let consistency: Consistency = config.consistency.into();
        let prepare = |cql: String, idempotent: bool, serial: bool| {
            let session = Arc::clone(&session);
            async move {
                let mut statement = session
                    .prepare(cql)
                    .await
                    .map_err(|e| read("preparing a chat query", e))?;
                statement.set_consistency(consistency);
                // A transaction's winner must be unique across datacenters, hence SERIAL.
                statement.set_serial_consistency(Some(SerialConsistency::Serial));
                if serial {
                    // Reading at SERIAL sees (and completes) any transaction in progress.
                    statement.set_consistency(Consistency::Serial);
                }
                statement.set_is_idempotent(idempotent);
                Ok::<_, StoreError>(statement)
            }
        };
        let chat_columns = "user_low, user_high, created_by, created_at, last_activity";
        let member_columns = "chat_id, peer, created_by, created_at, last_activity";
        let statements = Statements {
            insert_pair: prepare(
                format!(
                    "INSERT INTO {ks}.chat_pairs (user_low, user_high, chat_id, created_by, \
                     created_at) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS"
                ),
                false,
                false,
            )
            .await?,
            select_pair: prepare(
                format!(
                    "SELECT chat_id, created_by, created_at FROM {ks}.chat_pairs \
                     WHERE user_low = ? AND user_high = ?"
                ),
                true,
                false,
            )
            .await?,
            select_pair_serial: prepare(
                format!(
                    "SELECT chat_id, created_by, created_at FROM {ks}.chat_pairs \
                     WHERE user_low = ? AND user_high = ?"
                ),
                true,
                true,
            )
            .await?,
            insert_chat: prepare(
                format!(
                    "INSERT INTO {ks}.chats_by_id (chat_id, {chat_columns}) \
                     VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
                ),
                true,
                false,
            )
            .await?,
            select_chat: prepare(
                format!("SELECT {chat_columns} FROM {ks}.chats_by_id WHERE chat_id = ?"),
                true,
                false,
            )
            .await?,
            insert_member: prepare(
                format!(
                    "INSERT INTO {ks}.chats_by_member (user_id, {member_columns}) \
                     VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
                ),
                true,
                false,
            )
            .await?,
            select_members: {
                let mut statement = prepare(
                    format!("SELECT {member_columns} FROM {ks}.chats_by_member WHERE user_id = ?"),
                    true,
                    false,
                )
                .await?;
                statement.set_page_size(1_000);
                statement
            },
            touch_chat: prepare(
                format!(
                    "UPDATE {ks}.chats_by_id USING TIMESTAMP ? SET last_activity = ? \
                     WHERE chat_id = ?"
                ),
                true,
                false,
            )
            .await?,
            touch_member: prepare(
                format!(
                    "UPDATE {ks}.chats_by_member USING TIMESTAMP ? SET last_activity = ? \
                     WHERE user_id = ? AND chat_id = ?"
                ),
                true,
                false,
            )
            .await?,
            insert_client: prepare(
                format!(
                    "INSERT INTO {ks}.client_messages (sender, client_message_id, chat_id, \
                     record, created_at) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS USING TTL ?"
                ),
                false,
                false,
            )
            .await?,
            select_client: prepare(
                format!(
                    "SELECT chat_id, record, acked FROM {ks}.client_messages \
                     WHERE sender = ? AND client_message_id = ?"
                ),
                true,
                false,
            )
            .await?,
            select_client_serial: prepare(
                format!(
                    "SELECT chat_id, record, acked FROM {ks}.client_messages \
                     WHERE sender = ? AND client_message_id = ?"
                ),
                true,
                true,
            )
            .await?,
            ack_client: prepare(
                format!(
                    "UPDATE {ks}.client_messages USING TTL ? SET acked = true \
                     WHERE sender = ? AND client_message_id = ?"
                ),
                true,
                false,
            )
            .await?,
            mark_read: prepare(
                format!(
                    "UPDATE {ks}.read_positions USING TIMESTAMP ? SET read_up_to = ? \
                     WHERE user_id = ? AND chat_id = ?"
                ),
                true,
                false,
            )
            .await?,
            select_read: prepare(
                format!(
                    "SELECT read_up_to FROM {ks}.read_positions WHERE user_id = ? AND chat_id = ?"
                ),
                true,
                false,
            )
            .await?,
            select_reads: {
                let mut statement = prepare(
                    format!(
                        "SELECT chat_id, read_up_to FROM {ks}.read_positions WHERE user_id = ?"
                    ),
                    true,
                    false,
                )
                .await?;
                statement.set_page_size(1_000);
                statement
            },
            ping: prepare(
                "SELECT release_version FROM system.local".to_owned(),
                true,
                false,
            )
            .await?,
        };
        Ok(Self {
            session,
            statements,
            users,
            keyspace: config.keyspace.clone(),
            ttl_secs: i32::try_from(retention_secs.clamp(1, MAX_TTL_SECS)).unwrap_or(i32::MAX),
        })
    }

    /// The session (tests use it to look at the rows).
    pub fn session(&self) -> Arc<Session> {
        Arc::clone(&self.session)
    }

    /// Whether a transaction applied: the `[applied]` column of its answer.
    fn applied(result: scylla::response::query_result::QueryResult) -> Result<bool, StoreError> {
        let rows = result
            .into_rows_result()
            .map_err(|e| read("reading a transaction's outcome", e))?;
        let row: Row = rows
            .first_row()
            .map_err(|e| read("reading a transaction's outcome", e))?;
        match row.columns.first() {
            Some(Some(CqlValue::Boolean(applied))) => Ok(*applied),
            other => Err(StoreError::Corrupt(format!(
                "a transaction answered {other:?} instead of [applied]"
            ))),
        }
    }

    /// The pair's row: `(chat_id, created_by, created_at)`.
    async fn pair(
        &self,
        low: Uuid,
        high: Uuid,
        serial: bool,
    ) -> Result<Option<(Uuid, Uuid, DateTime<Utc>)>, StoreError> {
        let statement = if serial {
            &self.statements.select_pair_serial
        } else {
            &self.statements.select_pair
        };
        let result = self
            .session
            .execute_unpaged(statement, (low, high))
            .await
            .map_err(|e| execution("reading a chat pair", &e))?
            .into_rows_result()
            .map_err(|e| read("reading a chat pair", e))?;
        let Some((chat_id, created_by, created_at)) = result
            .maybe_first_row::<PairColumns>()
            .map_err(|e| read("reading a chat pair", e))?
        else {
            return Ok(None);
        };
        Ok(Some((
            required(chat_id, "chat_pairs.chat_id")?,
            required(created_by, "chat_pairs.created_by")?,
            time_of(created_at, "chat_pairs.created_at")?,
        )))
    }

    /// Writes both members' rows, then the chat's own, all as of its creation (so a later
    /// activity already written keeps winning).
    async fn write_chat(&self, chat: &ChatRecord) -> Result<(), StoreError> {
        let at = write_time(chat.created_at);
        let created_at = timestamp(chat.created_at);
        let member = |user: Uuid, peer: Uuid| {
            self.session.execute_unpaged(
                &self.statements.insert_member,
                (
                    user,
                    chat.id,
                    peer,
                    chat.created_by,
                    created_at,
                    created_at,
                    at,
                ),
            )
        };
        let (low, high) = futures::join!(
            member(chat.user_low, chat.user_high),
            member(chat.user_high, chat.user_low)
        );
        low.and(high)
            .map_err(|e| execution("writing a chat's members", &e))?;
        self.session
            .execute_unpaged(
                &self.statements.insert_chat,
                (
                    chat.id,
                    chat.user_low,
                    chat.user_high,
                    chat.created_by,
                    created_at,
                    created_at,
                    at,
                ),
            )
            .await
            .map_err(|e| execution("writing a chat", &e))?;
        Ok(())
    }

    /// The chat a pair's row names, writing its rows first if they are missing.
    async fn complete(
        &self,
        low: Uuid,
        high: Uuid,
        (chat_id, created_by, created_at): (Uuid, Uuid, DateTime<Utc>),
    ) -> Result<ChatRecord, StoreError> {
        if let Some(chat) = self.find_chat(chat_id).await? {
            return Ok(chat);
        }
        let chat = ChatRecord {
            id: chat_id,
            user_low: low,
            user_high: high,
            created_by,
            created_at,
            last_activity: created_at,
        };
        tracing::info!(%chat_id, "Writing the rows of a chat whose creation did not finish.");
        self.write_chat(&chat).await?;
        // Read back: a message may have moved its activity on meanwhile.
        Ok(self.find_chat(chat_id).await?.unwrap_or(chat))
    }

    async fn client_message(
        &self,
        sender: Uuid,
        client_message_id: &str,
        serial: bool,
    ) -> Result<Option<ClientMessage>, StoreError> {
        let statement = if serial {
            &self.statements.select_client_serial
        } else {
            &self.statements.select_client
        };
        let result = self
            .session
            .execute_unpaged(statement, (sender, client_message_id))
            .await
            .map_err(|e| execution("reading a client message", &e))?
            .into_rows_result()
            .map_err(|e| read("reading a client message", e))?;
        let Some((chat_id, record, acked)) = result
            .maybe_first_row::<ClientColumns>()
            .map_err(|e| read("reading a client message", e))?
        else {
            return Ok(None);
        };
        // A row without its record is an acknowledgement that outlived its insert: expired.
        let (Some(chat_id), Some(record)) = (chat_id, record) else {
            return Ok(None);
        };
        let message = serde_json::from_str(&record)
            .map_err(|err| StoreError::Corrupt(format!("client message record: {err}")))?;
        Ok(Some(ClientMessage {
            chat_id,
            message,
            acked: acked.unwrap_or(false),
        }))
    }
}

#[async_trait]
impl ChatStore for CassandraChatStore {
    fn name(&self) -> &'static str {
        "cassandra"
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(&self.statements.ping, ())
            .await
            .map(|_| ())
            .map_err(|e| execution("answering", &e))
    }

    async fn find_chat(&self, id: Uuid) -> Result<Option<ChatRecord>, StoreError> {
        let result = self
            .session
            .execute_unpaged(&self.statements.select_chat, (id,))
            .await
            .map_err(|e| execution("reading a chat", &e))?
            .into_rows_result()
            .map_err(|e| read("reading a chat", e))?;
        let Some((low, high, created_by, created_at, last_activity)) = result
            .maybe_first_row::<ChatColumns>()
            .map_err(|e| read("reading a chat", e))?
        else {
            return Ok(None);
        };
        // Only a creation writes the members: a row without them is not a chat (yet).
        let (Some(user_low), Some(user_high)) = (low, high) else {
            return Ok(None);
        };
        Ok(Some(ChatRecord {
            id,
            user_low,
            user_high,
            created_by: required(created_by, "chats_by_id.created_by")?,
            created_at: time_of(created_at, "chats_by_id.created_at")?,
            last_activity: time_of(last_activity, "chats_by_id.last_activity")?,
        }))
    }

    async fn find_chat_of_pair(&self, a: Uuid, b: Uuid) -> Result<Option<ChatRecord>, StoreError> {
        let (low, high) = ordered(a, b);
        match self.pair(low, high, false).await? {
            Some(pair) => self.complete(low, high, pair).await.map(Some),
            None => Ok(None),
        }
    }

    async fn create_chat(&self, creator: Uuid, peer: Uuid) -> Result<Created, StoreError> {
        let (low, high) = ordered(creator, peer);
        let now = now();
        let chat = ChatRecord {
            id: Uuid::now_v7(),
            user_low: low,
            user_high: high,
            created_by: creator,
            created_at: now,
            last_activity: now,
        };
        let result = self
            .session
            .execute_unpaged(
                &self.statements.insert_pair,
                (low, high, chat.id, creator, timestamp(now)),
            )
            .await
            .map_err(|e| execution("inserting a chat pair", &e))?;
        if Self::applied(result)? {
            self.write_chat(&chat).await?;
            return Ok(Created::New(chat));
        }
        match self.pair(low, high, true).await? {
            Some(pair) => Ok(Created::Existing(self.complete(low, high, pair).await?)),
            None => Err(StoreError::Corrupt(
                "a chat pair insert did not apply, yet the pair has no chat".into(),
            )),
        }
    }

    async fn list_chats(
        &self,
        user: Uuid,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: u32,
    ) -> Result<Vec<ChatWithNames>, StoreError> {
        let mut rows = self
            .session
            .execute_iter(self.statements.select_members.clone(), (user,))
            .await
            .map_err(|e| StoreError::Backend {
                // Statements are prepared on start: what fails here is a node or the network.
                message: format!("Cassandra listing a user's chats failed: {e}"),
                retryable: true,
            })?
            .rows_stream::<MemberColumns>()
            .map_err(|e| read("listing a user's chats", e))?;
        let mut chats = Vec::new();
        while let Some((chat_id, peer, created_by, created_at, last_activity)) = rows
            .try_next()
            .await
            .map_err(|e| read("listing a user's chats", e))?
        {
            if chats.len() == MAX_LISTED_CHATS {
                tracing::warn!(%user, max = MAX_LISTED_CHATS, "A user is in more chats than a list reads; listing the first ones.");
                break;
            }
            // A row holding only an activity (its creation not written yet) is skipped.
            let Some(peer) = peer else { continue };
            let (user_low, user_high) = ordered(user, peer);
            chats.push(ChatRecord {
                id: chat_id,
                user_low,
                user_high,
                created_by: required(created_by, "chats_by_member.created_by")?,
                created_at: time_of(created_at, "chats_by_member.created_at")?,
                last_activity: time_of(last_activity, "chats_by_member.last_activity")?,
            });
        }
        // Newest activity first, ties by id, as the SQL store orders them.
        chats.sort_unstable_by_key(|chat| std::cmp::Reverse((chat.last_activity, chat.id)));
        if let Some(cursor) = after {
            chats.retain(|chat| (chat.last_activity, chat.id) < cursor);
        }
        chats.truncate(limit as usize);
        let ids: BTreeSet<Uuid> = chats
            .iter()
            .flat_map(|chat| [chat.user_low, chat.user_high])
            .collect();
        let ids: Vec<Uuid> = ids.into_iter().collect();
        let names: HashMap<Uuid, String> = self
            .users
            .find_users(&ids)
            .await?
            .into_iter()
            .map(|user| (user.id, user.username))
            .collect();
        Ok(chats
            .into_iter()
            .map(|chat| ChatWithNames {
                low_name: names.get(&chat.user_low).cloned(),
                high_name: names.get(&chat.user_high).cloned(),
                chat,
            })
            .collect())
    }

    async fn touch_chat(&self, chat: &ChatRecord, at: DateTime<Utc>) -> Result<(), StoreError> {
        let at = at.trunc_subsecs(3);
        let (micros, value) = (write_time(at), timestamp(at));
        let member = |user: Uuid| {
            self.session.execute_unpaged(
                &self.statements.touch_member,
                (micros, value, user, chat.id),
            )
        };
        let (by_id, low, high) = futures::join!(
            self.session
                .execute_unpaged(&self.statements.touch_chat, (micros, value, chat.id)),
            member(chat.user_low),
            member(chat.user_high),
        );
        by_id
            .and(low)
            .and(high)
            .map(|_| ())
            .map_err(|e| execution("recording a chat's activity", &e))
    }

    async fn find_client_message(
        &self,
        sender: Uuid,
        client_message_id: &str,
    ) -> Result<Option<ClientMessage>, StoreError> {
        self.client_message(sender, client_message_id, false).await
    }

    async fn reserve_client_message(
        &self,
        sender: Uuid,
        client_message_id: &str,
        chat_id: Uuid,
        message: &ChatMessage,
    ) -> Result<ClientMessage, StoreError> {
        let record = serde_json::to_string(message)
            .map_err(|err| StoreError::Corrupt(format!("cannot encode a message: {err}")))?;
        let result = self
            .session
            .execute_unpaged(
                &self.statements.insert_client,
                (
                    sender,
                    client_message_id,
                    chat_id,
                    &record,
                    timestamp(Utc::now()),
                    self.ttl_secs,
                ),
            )
            .await
            .map_err(|e| execution("inserting a client message", &e))?;
        if Self::applied(result)? {
            return Ok(ClientMessage {
                chat_id,
                message: message.clone(),
                acked: false,
            });
        }
        self.client_message(sender, client_message_id, true)
            .await?
            .ok_or_else(|| {
                StoreError::Corrupt(
                    "a client message insert did not apply, yet none is stored".into(),
                )
            })
    }

    async fn ack_client_message(
        &self,
        sender: Uuid,
        client_message_id: &str,
    ) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(
                &self.statements.ack_client,
                (self.ttl_secs, sender, client_message_id),
            )
            .await
            .map(|_| ())
            .map_err(|e| execution("acknowledging a client message", &e))
    }

    async fn prune_client_messages(&self, _before: DateTime<Utc>) -> Result<u64, StoreError> {
        // Rows expire by their TTL.
        Ok(0)
    }

    async fn mark_read(&self, user: Uuid, chat_id: Uuid, time: Uuid) -> Result<Uuid, StoreError> {
        // The cell's write time is the message's own time, so of any two marks the later
        // message wins whatever order they arrive in (two marks within one microsecond tie,
        // and Cassandra keeps the larger value: the position stays within that microsecond).
        let micros = crate::timeuuid::unix_micros(&time).ok_or_else(|| {
            StoreError::Corrupt(format!("read position {time} is not a version-1 TimeUUID"))
        })?;
        self.session
            .execute_unpaged(
                &self.statements.mark_read,
                (micros, CqlTimeuuid::from(time), user, chat_id),
            )
            .await
            .map_err(|e| execution("marking a chat read", &e))?;
        let result = self
            .session
            .execute_unpaged(&self.statements.select_read, (user, chat_id))
            .await
            .map_err(|e| execution("reading a read position", &e))?
            .into_rows_result()
            .map_err(|e| read("reading a read position", e))?;
        let stored = result
            .maybe_first_row::<(Option<CqlTimeuuid>,)>()
            .map_err(|e| read("reading a read position", e))?
            .and_then(|(at,)| at)
            .map(Uuid::from);
        stored.ok_or_else(|| StoreError::Corrupt("a read position vanished after its write".into()))
    }

    async fn read_positions(
        &self,
        user: Uuid,
        chats: &[Uuid],
    ) -> Result<HashMap<Uuid, Uuid>, StoreError> {
        if chats.is_empty() {
            return Ok(HashMap::new());
        }
        let wanted: BTreeSet<Uuid> = chats.iter().copied().collect();
        let rows = self
            .session
            .execute_iter(self.statements.select_reads.clone(), (user,))
            .await
            .map_err(|e| StoreError::Backend {
                // Statements are prepared on start: what fails here is a node or the network.
                message: format!("Cassandra listing read positions failed: {e}"),
                retryable: true,
            })?
            .rows_stream::<(Uuid, Option<CqlTimeuuid>)>()
            .map_err(|e| read("listing read positions", e))?;
        let all: Vec<(Uuid, Option<CqlTimeuuid>)> = rows
            .try_collect()
            .await
            .map_err(|e| read("listing read positions", e))?;
        Ok(all
            .into_iter()
            .filter(|(chat, _)| wanted.contains(chat))
            .filter_map(|(chat, at)| Some((chat, Uuid::from(at?))))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_activity_gets_a_later_write_time() {
        let earlier = now();
        let later = earlier + chrono::Duration::milliseconds(1);
        assert!(write_time(later) > write_time(earlier));
        assert_eq!(time_of(Some(timestamp(earlier)), "t").ok(), Some(earlier));
    }

    #[test]
    fn pairs_are_ordered() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert_eq!(ordered(a, b), (a, b));
        assert_eq!(ordered(b, a), (a, b));
    }
}
