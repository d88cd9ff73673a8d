//! The chat store: where chats, who is in which chat, and `client_message_id` records live.
//!
//! [`ChatStore`] is the trait the handlers use. Two implementations:
//! - [`Store`], the SQL database: PostgreSQL in production, SQLite as the embedded default, one
//!   code path (the auth service's approach: an enum of two typed pools, each query written once
//!   with `$n` placeholders and compiled against each driver by `on_pool!`; only the migrations
//!   differ).
//! - [`CassandraChatStore`] (feature `cassandra`), tables in the connectors' keyspace schema.
//!
//! Whichever holds the chats, the SQL database is always there: it is the auth service's, and
//! the service reads its `users` table (does a peer exist, what are the members' usernames) and
//! never writes it. Its own SQL tables (`chats`, `client_messages`, `message_history`, `blocks`) are
//! migrated through a separate migrations table, `_confab_chat_migrations`, so that neither
//! service's migrator sees the other's versions. Start (or migrate) the auth service first:
//! [`Store::check_users_table`] refuses to start without a `users` table and says so.
//!
//! Guarantees of every implementation: one chat per pair of users, also under concurrent
//! requests ([`ChatStore::create_chat`]); a `client_message_id` maps to exactly one record per
//! sender ([`ChatStore::reserve_client_message`]); a chat's activity only moves forward.

mod blocks;
#[cfg(feature = "cassandra")]
mod cassandra;
mod reads;
pub use blocks::BlockRecord;
#[cfg(feature = "cassandra")]
pub use cassandra::{CassandraChatStore, MAX_LISTED_CHATS};

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, TimeZone, Utc};
use confab_pipeline::ChatMessage;
use confab_service_kit::sql::{self, ConnectError, SqlPool};
use confab_token::Secret;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use std::collections::HashMap;
use uuid::Uuid;

/// The table recording which chat migrations ran (the auth service uses sqlx's default).
const MIGRATIONS_TABLE: &str = "_confab_chat_migrations";

/// Store failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The URL names no supported database.
    #[error("unsupported database URL {url:?}: use postgres://... or sqlite://...")]
    UnsupportedUrl {
        /// The URL, password removed.
        url: String,
    },
    /// The database could not be reached on start; retrying later can help.
    #[error("cannot reach the database at {url}: {source}{hint}")]
    Connect {
        /// The URL, password removed.
        url: String,
        /// What happened.
        source: sqlx::Error,
        /// How to start it, when we know.
        hint: &'static str,
    },
    /// The auth service's `users` table is missing from the database.
    #[error(
        "the database has no `users` table: the chat service shares the auth service's database \
         (it reads its users); point database_url at it and run `confab auth migrate` first"
    )]
    NoUsersTable,
    /// The database stopped answering (connection, pool timeout, I/O); retrying later can help.
    #[error("the database is unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// Applying the migrations failed.
    #[error("cannot apply the chat migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored record could not be read back.
    #[error("a stored record is corrupt: {0}")]
    Corrupt(String),
    /// A chat store other than SQL failed; `retryable` says whether trying again can help.
    #[error("the chat store failed: {message}")]
    Backend {
        /// What happened.
        message: String,
        /// Whether trying again later can help (a node down or timing out).
        retryable: bool,
    },
    /// Any other database error; retrying will not help.
    #[error("chat database query failed: {0}")]
    Query(sqlx::Error),
}

impl StoreError {
    /// Whether trying again later can help.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_)
                | StoreError::Connect { .. }
                | StoreError::Backend {
                    retryable: true,
                    ..
                }
        )
    }
}

/// A user as the chat service sees it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserRef {
    /// The user's id.
    pub id: Uuid,
    /// The (lowercase) username.
    pub username: String,
}

/// A stored chat: the ordered pair of members and its times.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ChatRecord {
    /// The chat's id (UUIDv7).
    pub id: Uuid,
    /// The member with the smaller id.
    pub user_low: Uuid,
    /// The member with the larger id.
    pub user_high: Uuid,
    /// Who started it.
    pub created_by: Uuid,
    /// When it was started.
    pub created_at: DateTime<Utc>,
    /// When it was started or last received a message.
    pub last_activity: DateTime<Utc>,
}

impl ChatRecord {
    /// Whether `user` is one of the two members.
    pub fn has_member(&self, user: Uuid) -> bool {
        self.user_low == user || self.user_high == user
    }

    /// A chat of two new random users, started now (for unit tests).
    #[cfg(test)]
    pub(crate) fn sample() -> Self {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let now = Utc::now();
        ChatRecord {
            id: Uuid::now_v7(),
            user_low: a.min(b),
            user_high: a.max(b),
            created_by: a,
            created_at: now,
            last_activity: now,
        }
    }

    /// The member who is not `user` (`None` when `user` is not a member).
    pub fn peer_of(&self, user: Uuid) -> Option<Uuid> {
        if self.user_low == user {
            Some(self.user_high)
        } else if self.user_high == user {
            Some(self.user_low)
        } else {
            None
        }
    }
}

/// A chat with its members' usernames (`None` for a user no longer in `users`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ChatWithNames {
    /// The chat.
    #[sqlx(flatten)]
    pub chat: ChatRecord,
    /// `user_low`'s username.
    pub low_name: Option<String>,
    /// `user_high`'s username.
    pub high_name: Option<String>,
}

/// Whether [`Store::create_chat`] made a new chat or found the pair's existing one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// A new chat.
    New(ChatRecord),
    /// The pair's chat, which existed already.
    Existing(ChatRecord),
}

/// A `client_message_id`'s stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMessage {
    /// The chat it was sent to.
    pub chat_id: Uuid,
    /// The record produced (or to produce again) for it.
    pub message: ChatMessage,
    /// Whether the log acknowledged it.
    pub acked: bool,
}

#[derive(sqlx::FromRow)]
struct ClientMessageRow {
    chat_id: Uuid,
    record: String,
    acked: bool,
}

impl TryFrom<ClientMessageRow> for ClientMessage {
    type Error = StoreError;

    fn try_from(row: ClientMessageRow) -> Result<Self, StoreError> {
        let message = serde_json::from_str(&row.record)
            .map_err(|err| StoreError::Corrupt(format!("client message record: {err}")))?;
        Ok(ClientMessage {
            chat_id: row.chat_id,
            message,
            acked: row.acked,
        })
    }
}

/// Chats and idempotent sends: what the handlers need from a store.
#[async_trait]
pub trait ChatStore: Send + Sync + 'static {
    /// `"sql"` or `"cassandra"`.
    fn name(&self) -> &'static str;

    /// Checks that the store answers.
    async fn check(&self) -> Result<(), StoreError>;

    /// The chat with this id.
    async fn find_chat(&self, id: Uuid) -> Result<Option<ChatRecord>, StoreError>;

    /// The chat of the pair `a`, `b` (in either order).
    async fn find_chat_of_pair(&self, a: Uuid, b: Uuid) -> Result<Option<ChatRecord>, StoreError>;

    /// Creates the chat of `creator` and `peer`, or returns the one the pair has. Concurrent
    /// calls for one pair make exactly one chat.
    async fn create_chat(&self, creator: Uuid, peer: Uuid) -> Result<Created, StoreError>;

    /// Up to `limit` chats of `user`, most recently active first, after the cursor
    /// `(last_activity, id)` of the previous page's last chat (from the start when `None`).
    async fn list_chats(
        &self,
        user: Uuid,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: u32,
    ) -> Result<Vec<ChatWithNames>, StoreError>;

    /// Moves the chat's `last_activity` forward to `at` (never back).
    async fn touch_chat(&self, chat: &ChatRecord, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// [`ChatStore::touch_chat`] for each of `chats`, each tried; the first failure is
    /// returned. A store that can moves them all in one write.
    async fn touch_chats(&self, chats: &[(ChatRecord, DateTime<Utc>)]) -> Result<(), StoreError> {
        let mut first = Ok(());
        for (chat, at) in chats {
            let touched = self.touch_chat(chat, *at).await;
            if first.is_ok() {
                first = touched;
            }
        }
        first
    }

    /// The record stored for `sender`'s `client_message_id`.
    async fn find_client_message(
        &self,
        sender: Uuid,
        client_message_id: &str,
    ) -> Result<Option<ClientMessage>, StoreError>;

    /// Stores `message` as the record of `sender`'s `client_message_id`, not yet acknowledged,
    /// unless one is stored already: then that one is returned and `message` is dropped, so
    /// concurrent retries all produce the same record.
    async fn reserve_client_message(
        &self,
        sender: Uuid,
        client_message_id: &str,
        chat_id: Uuid,
        message: &ChatMessage,
    ) -> Result<ClientMessage, StoreError>;

    /// Records that the log acknowledged `sender`'s `client_message_id`.
    async fn ack_client_message(
        &self,
        sender: Uuid,
        client_message_id: &str,
    ) -> Result<(), StoreError>;

    /// Forgets client message ids stored before `before`; returns how many (a store that
    /// expires them by itself returns 0).
    async fn prune_client_messages(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Moves `user`'s read position in `chat_id` forward to `time` (the version-1 TimeUUID
    /// `time` of a message), never back; returns the position stored after the call.
    async fn mark_read(&self, user: Uuid, chat_id: Uuid, time: Uuid) -> Result<Uuid, StoreError>;

    /// `user`'s read positions in `chats`; a chat never marked read is absent.
    async fn read_positions(
        &self,
        user: Uuid,
        chats: &[Uuid],
    ) -> Result<HashMap<Uuid, Uuid>, StoreError>;
}

/// The SQL database: the auth service's `users`, and (with `[store] type = "sql"`) the chat
/// store. Cheap to clone (pools are shared).
#[derive(Debug, Clone)]
pub enum Store {
    /// PostgreSQL.
    Postgres(PgPool),
    /// SQLite, the embedded default.
    Sqlite(SqlitePool),
}

/// Runs the same code against whichever pool the store holds; `$pool` is bound to a `&PgPool`
/// or a `&SqlitePool`, so `sqlx` encodes the binds natively for each.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Postgres($pool) => $body,
            $crate::store::Store::Sqlite($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Chats per activity `UPDATE`: two parameters each, far under both databases' limits.
const TOUCH_ROWS: usize = 200;

/// The newest instant a chat cursor can name: later than any stored activity, and encoded by
/// both databases so that it sorts after every real timestamp.
fn end_of_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Now, truncated to what PostgreSQL keeps (microseconds), so what we return is what we stored.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

impl Store {
    /// Connects to `database_url` (`postgres://` or `sqlite://`) and checks the connection.
    pub async fn connect(database_url: &Secret, max_connections: u32) -> Result<Self, StoreError> {
        Ok(match sql::connect(database_url, max_connections).await? {
            SqlPool::Postgres(pool) => Store::Postgres(pool),
            SqlPool::Sqlite(pool) => Store::Sqlite(pool),
        })
    }

    /// Applies the migrations kept in `services/chat/migrations/` (embedded at build time),
    /// recorded in `_confab_chat_migrations`.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        fn own_table(mut migrator: Migrator) -> Migrator {
            migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
            migrator
        }
        match self {
            Store::Postgres(pool) => {
                own_table(sqlx::migrate!("./migrations/postgres"))
                    .run(pool)
                    .await?
            }
            Store::Sqlite(pool) => {
                own_table(sqlx::migrate!("./migrations/sqlite"))
                    .run(pool)
                    .await?
            }
        }
        Ok(())
    }

    /// Checks that the auth service's `users` table is there to read.
    pub async fn check_users_table(&self) -> Result<(), StoreError> {
        let result = on_pool!(self, pool => {
            sqlx::query("SELECT id, username FROM users LIMIT 1")
                .execute(pool)
                .await
                .map(|_| ())
        });
        match result {
            Ok(()) => Ok(()),
            Err(sqlx::Error::Database(db)) if !is_transient(db.code().as_deref()) => {
                Err(StoreError::NoUsersTable)
            }
            Err(err) => Err(classify(err)),
        }
    }

    /// `"postgres"` or `"sqlite"`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Postgres(_) => "postgres",
            Store::Sqlite(_) => "sqlite",
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))
            .map_err(classify)
    }

    /// The user with this id, from the auth service's `users` table.
    pub async fn find_user(&self, id: Uuid) -> Result<Option<UserRef>, StoreError> {
        on_pool!(self, pool => {
            sqlx::query_as::<_, UserRef>("SELECT id, username FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })
        .map_err(classify)
    }

    /// The users with these ids that exist (in no particular order).
    pub async fn find_users(&self, ids: &[Uuid]) -> Result<Vec<UserRef>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        on_pool!(self, pool => {
            let mut query = sqlx::QueryBuilder::new("SELECT id, username FROM users WHERE id IN (");
            let mut list = query.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            query.push(")");
            query.build_query_as::<UserRef>().fetch_all(pool).await
        })
        .map_err(classify)
    }

    /// Closes the pool.
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await);
    }
}

#[async_trait]
impl ChatStore for Store {
    fn name(&self) -> &'static str {
        "sql"
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.ping().await
    }

    /// The chat with this id.
    async fn find_chat(&self, id: Uuid) -> Result<Option<ChatRecord>, StoreError> {
        on_pool!(self, pool => {
            sqlx::query_as::<_, ChatRecord>(
                "SELECT id, user_low, user_high, created_by, created_at, last_activity \
                 FROM chats WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await
        })
        .map_err(classify)
    }

    /// The chat of the pair `a`, `b` (in either order).
    async fn find_chat_of_pair(&self, a: Uuid, b: Uuid) -> Result<Option<ChatRecord>, StoreError> {
        let (low, high) = if a < b { (a, b) } else { (b, a) };
        on_pool!(self, pool => {
            sqlx::query_as::<_, ChatRecord>(
                "SELECT id, user_low, user_high, created_by, created_at, last_activity \
                 FROM chats WHERE user_low = $1 AND user_high = $2",
            )
            .bind(low)
            .bind(high)
            .fetch_optional(pool)
            .await
        })
        .map_err(classify)
    }

    /// Creates the chat of `creator` and `peer`, or returns the one the pair has. Concurrent
    /// calls for one pair make exactly one chat: the insert is `ON CONFLICT DO NOTHING` on the
    /// ordered pair's unique constraint, and the loser reads the winner's row.
    async fn create_chat(&self, creator: Uuid, peer: Uuid) -> Result<Created, StoreError> {
        let (low, high) = if creator < peer {
            (creator, peer)
        } else {
            (peer, creator)
        };
        let now = now();
        let chat = ChatRecord {
            id: Uuid::now_v7(),
            user_low: low,
            user_high: high,
            created_by: creator,
            created_at: now,
            last_activity: now,
        };
        let inserted = on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO chats (id, user_low, user_high, created_by, created_at, last_activity) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_low, user_high) DO NOTHING",
            )
            .bind(chat.id)
            .bind(chat.user_low)
            .bind(chat.user_high)
            .bind(chat.created_by)
            .bind(chat.created_at)
            .bind(chat.last_activity)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })
        .map_err(classify)?;
        if inserted == 1 {
            return Ok(Created::New(chat));
        }
        match self.find_chat_of_pair(low, high).await? {
            Some(existing) => Ok(Created::Existing(existing)),
            None => Err(StoreError::Corrupt(
                "a chat insert conflicted, yet the pair has no chat".into(),
            )),
        }
    }

    /// Up to `limit` chats of `user`, most recently active first, after the cursor
    /// `(last_activity, id)` of the previous page's last chat (from the start when `None`).
    async fn list_chats(
        &self,
        user: Uuid,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: u32,
    ) -> Result<Vec<ChatWithNames>, StoreError> {
        let (before_time, before_id) = after.unwrap_or((end_of_time(), Uuid::max()));
        on_pool!(self, pool => {
            sqlx::query_as::<_, ChatWithNames>(
                "SELECT c.id, c.user_low, c.user_high, c.created_by, c.created_at, \
                        c.last_activity, ul.username AS low_name, uh.username AS high_name \
                 FROM chats c \
                 LEFT JOIN users ul ON ul.id = c.user_low \
                 LEFT JOIN users uh ON uh.id = c.user_high \
                 WHERE (c.user_low = $1 OR c.user_high = $1) \
                   AND (c.last_activity, c.id) < ($2, $3) \
                 ORDER BY c.last_activity DESC, c.id DESC \
                 LIMIT $4",
            )
            .bind(user)
            .bind(before_time)
            .bind(before_id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        })
        .map_err(classify)
    }

    /// One statement per up to [`TOUCH_ROWS`] chats: a busy instance stores a few hundred chats'
    /// activity a second, and a statement per chat (on SQLite a commit per chat) was most of
    /// that work.
    async fn touch_chats(&self, chats: &[(ChatRecord, DateTime<Utc>)]) -> Result<(), StoreError> {
        for chunk in chats.chunks(TOUCH_ROWS) {
            on_pool!(self, pool => {
                let mut update = sqlx::QueryBuilder::new(
                    "UPDATE chats SET last_activity = v.column2 FROM (",
                );
                update.push_values(chunk, |mut row, (chat, at)| {
                    row.push_bind(chat.id).push_bind(*at);
                });
                update.push(
                    ") AS v WHERE chats.id = v.column1 AND chats.last_activity < v.column2",
                );
                update.build().execute(pool).await.map(|_| ())
            })
            .map_err(classify)?;
        }
        Ok(())
    }

    /// Moves the chat's `last_activity` forward to `at` (never back).
    async fn touch_chat(&self, chat: &ChatRecord, at: DateTime<Utc>) -> Result<(), StoreError> {
        let id = chat.id;
        on_pool!(self, pool => {
            sqlx::query("UPDATE chats SET last_activity = $1 WHERE id = $2 AND last_activity < $1")
                .bind(at)
                .bind(id)
                .execute(pool)
                .await
                .map(|_| ())
        })
        .map_err(classify)
    }

    /// The record stored for `sender`'s `client_message_id`.
    async fn find_client_message(
        &self,
        sender: Uuid,
        client_message_id: &str,
    ) -> Result<Option<ClientMessage>, StoreError> {
        let row = on_pool!(self, pool => {
            sqlx::query_as::<_, ClientMessageRow>(
                "SELECT chat_id, record, acked FROM client_messages \
                 WHERE sender = $1 AND client_message_id = $2",
            )
            .bind(sender)
            .bind(client_message_id)
            .fetch_optional(pool)
            .await
        })
        .map_err(classify)?;
        row.map(ClientMessage::try_from).transpose()
    }

    /// Stores `message` as the record of `sender`'s `client_message_id`, not yet acknowledged,
    /// unless one is stored already: then that one is returned and `message` is dropped, so
    /// concurrent retries all produce the same record.
    async fn reserve_client_message(
        &self,
        sender: Uuid,
        client_message_id: &str,
        chat_id: Uuid,
        message: &ChatMessage,
    ) -> Result<ClientMessage, StoreError> {
        let record = serde_json::to_string(message)
            .map_err(|err| StoreError::Corrupt(format!("cannot encode a message: {err}")))?;
        let inserted = on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO client_messages \
                   (sender, client_message_id, chat_id, record, acked, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (sender, client_message_id) DO NOTHING",
            )
            .bind(sender)
            .bind(client_message_id)
            .bind(chat_id)
            .bind(&record)
            .bind(false)
            .bind(now())
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })
        .map_err(classify)?;
        if inserted == 1 {
            return Ok(ClientMessage {
                chat_id,
                message: message.clone(),
                acked: false,
            });
        }
        self.find_client_message(sender, client_message_id)
            .await?
            .ok_or_else(|| {
                StoreError::Corrupt("a client message insert conflicted, yet none is stored".into())
            })
    }

    /// Records that the log acknowledged `sender`'s `client_message_id`.
    async fn ack_client_message(
        &self,
        sender: Uuid,
        client_message_id: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE client_messages SET acked = $1 \
                 WHERE sender = $2 AND client_message_id = $3",
            )
            .bind(true)
            .bind(sender)
            .bind(client_message_id)
            .execute(pool)
            .await
            .map(|_| ())
        })
        .map_err(classify)
    }

    /// Forgets client message ids stored before `before`; returns how many.
    async fn prune_client_messages(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM client_messages WHERE created_at < $1")
                .bind(before)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(classify)
    }

    async fn mark_read(&self, user: Uuid, chat_id: Uuid, time: Uuid) -> Result<Uuid, StoreError> {
        self.mark_read_sql(user, chat_id, time).await
    }

    async fn read_positions(
        &self,
        user: Uuid,
        chats: &[Uuid],
    ) -> Result<HashMap<Uuid, Uuid>, StoreError> {
        self.read_positions_sql(user, chats).await
    }
}

/// Errors a retry can fix (connection, pool, I/O, and unlike the auth service's store also a
/// busy database or a lost serialization race) become [`StoreError::Unavailable`].
pub(crate) fn classify(err: sqlx::Error) -> StoreError {
    match err {
        err if sql::is_connection_error(&err) => StoreError::Unavailable(err),
        sqlx::Error::Database(db) if is_transient(db.code().as_deref()) => {
            StoreError::Unavailable(sqlx::Error::Database(db))
        }
        other => StoreError::Query(other),
    }
}

/// SQLite's busy/locked codes and PostgreSQL's serialization, deadlock, connection and
/// shutdown classes: the statement can succeed if sent again.
fn is_transient(code: Option<&str>) -> bool {
    match code {
        Some(code) => {
            matches!(code, "5" | "6" | "40001" | "40P01" | "57P01" | "57P02" | "57P03")
                || code.starts_with("08")
                // SQLite extended codes of BUSY (5) and LOCKED (6): 261, 517, 773, 262, 518.
                || matches!(code, "261" | "517" | "773" | "262" | "518")
        }
        None => false,
    }
}

impl From<ConnectError> for StoreError {
    fn from(err: ConnectError) -> Self {
        match err {
            ConnectError::UnsupportedUrl { url } => StoreError::UnsupportedUrl { url },
            ConnectError::Connect { url, source, hint } => {
                StoreError::Connect { url, source, hint }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_url_that_does_not_parse_is_named_without_its_password() {
        let url = Secret::new("postgres://confab:pw@127.0.0.1:notaport/confab");
        let err = Store::connect(&url, 1).await.expect_err("no port");
        assert!(matches!(err, StoreError::Connect { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains("postgres://confab:***@127.0.0.1:notaport/confab"),
            "{message}"
        );
        assert!(!message.contains(":pw@"), "{message}");
    }

    #[test]
    fn a_chat_knows_its_members() {
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let chat = ChatRecord {
            id: Uuid::now_v7(),
            user_low: a,
            user_high: b,
            created_by: b,
            created_at: now(),
            last_activity: now(),
        };
        assert!(chat.has_member(a) && chat.has_member(b) && !chat.has_member(c));
        assert_eq!(chat.peer_of(a), Some(b));
        assert_eq!(chat.peer_of(b), Some(a));
        assert_eq!(chat.peer_of(c), None);
    }

    #[test]
    fn the_end_of_time_sorts_after_now_as_sqlite_text() {
        let text = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false);
        assert!(text(end_of_time()) > text(now()));
    }

    #[test]
    fn busy_and_connection_codes_are_transient() {
        for code in ["5", "517", "40001", "08006", "57P01"] {
            assert!(is_transient(Some(code)), "{code}");
        }
        for code in ["23505", "19", "42P01"] {
            assert!(!is_transient(Some(code)), "{code}");
        }
        assert!(!is_transient(None));
    }
}
