//! `/api/v1/blocks`: blocking a person (issue 24).
//!
//! `POST /api/v1/blocks {"user_id"}` blocks someone, `DELETE /api/v1/blocks/{user_id}` lifts the
//! block, `GET /api/v1/blocks` lists the caller's own blocks (never who blocks the caller).
//!
//! **What each side sees.** While either of two people blocks the other, neither can start a
//! chat with the other (`POST /api/v1/chats`) nor send a message in their existing chat
//! (`POST /api/v1/chats/{chat_id}/messages`), nor send typing notices there: all answer 403
//! `blocked` with one message whichever side blocked, so the blocked person learns only that
//! they cannot write, not that they were blocked (the blocker knows why). Both can still read
//! the chat's earlier history and see it in their chat list; nothing is deleted. Blocking is
//! silent: the blocked person gets no event. Unblocking restores writing at once, on every
//! instance.
//!
//! **One instance on SQLite** (`confab up`) answers the check from memory after the first read
//! of a pair ([`KnownBlocks`]): every block and unblock goes through this process, which forgets
//! every remembered answer when one is made, so the answer is the database's, without its round
//! trip on each send. With PostgreSQL several instances may write blocks, and each send reads
//! the database.
//!
//! A user holds at most [`MAX_BLOCKS_PER_USER`] blocks, which bounds the list.

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::store::{BlockRecord, Store};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use confab_token::generations::TwoGenerations;
use confab_token::{CurrentUser, ErrorBody};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Most people one user may block; the list endpoint returns them all.
pub const MAX_BLOCKS_PER_USER: u32 = 1_000;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/blocks", post(block).get(list_blocks))
        .route("/api/v1/blocks/{user_id}", delete(unblock))
}

/// Block a person.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBlock {
    /// The user to block.
    pub user_id: Uuid,
}

/// One of the caller's blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlockView {
    /// The blocked user's id.
    pub user_id: Uuid,
    /// Their username; empty if the user no longer exists.
    pub username: String,
    /// When the block was made (RFC 3339).
    pub created_at: DateTime<Utc>,
}

impl From<BlockRecord> for BlockView {
    fn from(record: BlockRecord) -> Self {
        Self {
            user_id: record.blocked,
            username: record.username.unwrap_or_default(),
            created_at: record.created_at,
        }
    }
}

/// The caller's blocks.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BlockList {
    /// Newest first; at most 1,000.
    pub blocks: Vec<BlockView>,
}

/// Block a person: from now on neither of you can start a chat with the other or write in your
/// chat. The blocked person is not told; when they try to write they get 403 `blocked`, the
/// same answer you get if you try to write to them.
#[utoipa::path(
    post,
    path = "/api/v1/blocks",
    tag = "blocks",
    request_body = NewBlock,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Blocked", body = BlockView),
        (status = 200, description = "Already blocked: the existing block", body = BlockView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No user with this user_id", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Blocking yourself (`invalid_user`), more than 1,000 blocks (`too_many_blocks`), or a field is missing, unknown or of the wrong type", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn block(
    user: CurrentUser,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewBlock>,
) -> Result<(StatusCode, Json<BlockView>), ApiError> {
    if body.user_id == user.id {
        return Err(ApiError::invalid(
            "invalid_user",
            "you cannot block yourself",
        ));
    }
    let store = state.store();
    let Some(target) = store.find_user(body.user_id).await? else {
        return Err(ApiError::NotFound(format!(
            "no user with id {}",
            body.user_id
        )));
    };
    if store.count_blocks(user.id).await? >= u64::from(MAX_BLOCKS_PER_USER) {
        return Err(ApiError::invalid(
            "too_many_blocks",
            format!(
                "you block {MAX_BLOCKS_PER_USER} people already, the most allowed; unblock \
                 someone first"
            ),
        ));
    }
    let stored = store.block(user.id, target.id).await;
    if let Some(known) = state.known_blocks() {
        // Also after a failure: the write may have happened.
        known.changed();
    }
    let (created_at, new) = stored?;
    if new {
        tracing::info!(blocker = %user.id, blocked = %target.id, "A user blocked another.");
    }
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(BlockView {
            user_id: target.id,
            username: target.username,
            created_at,
        }),
    ))
}

/// Lift your block of a person: both of you can write to each other again at once (unless they
/// block you too). Idempotent: 204 also when there was no such block.
#[utoipa::path(
    delete,
    path = "/api/v1/blocks/{user_id}",
    tag = "blocks",
    params(("user_id" = Uuid, Path, description = "The blocked user's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Not blocked (any more)"),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn unblock(
    user: CurrentUser,
    State(state): State<AppState>,
    ApiPath(blocked): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    let lifted = state.store().unblock(user.id, blocked).await;
    if let Some(known) = state.known_blocks() {
        known.changed();
    }
    if lifted? {
        tracing::info!(blocker = %user.id, %blocked, "A user lifted a block.");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// List the people you block, newest first. Who blocks you is never shown.
#[utoipa::path(
    get,
    path = "/api/v1/blocks",
    tag = "blocks",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's blocks", body = BlockList),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn list_blocks(
    user: CurrentUser,
    State(state): State<AppState>,
) -> Result<Json<BlockList>, ApiError> {
    let blocks = state
        .store()
        .list_blocks(user.id, MAX_BLOCKS_PER_USER)
        .await?;
    Ok(Json(BlockList {
        blocks: blocks.into_iter().map(BlockView::from).collect(),
    }))
}

/// 403 `blocked` when either of `a` and `b` blocks the other.
pub(crate) async fn refuse_if_blocked(state: &AppState, a: Uuid, b: Uuid) -> Result<(), ApiError> {
    let blocked = match state.known_blocks() {
        Some(known) => known.blocked_between(state.store(), a, b).await?,
        None => state.store().blocked_between(a, b).await?,
    };
    if blocked {
        return Err(ApiError::Blocked);
    }
    Ok(())
}

/// Pairs remembered per generation (about 50 bytes each).
const PAIRS_PER_GENERATION: usize = 16_384;

/// Whether two people block each other, as last read, for a store only this process writes.
///
/// Each answer is kept with the count of block changes at the moment its read began; any block
/// or unblock moves the count on, so an answer read before a change (or during one) is never
/// used after it. Blocks change rarely: forgetting every answer at each change costs a read per
/// pair in use.
pub(crate) struct KnownBlocks {
    pairs: TwoGenerations<(Uuid, Uuid), (bool, u64)>,
    changes: std::sync::atomic::AtomicU64,
}

impl Default for KnownBlocks {
    fn default() -> Self {
        Self {
            pairs: TwoGenerations::new(PAIRS_PER_GENERATION),
            changes: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl KnownBlocks {
    async fn blocked_between(&self, store: &Store, a: Uuid, b: Uuid) -> Result<bool, ApiError> {
        use std::sync::atomic::Ordering::SeqCst;
        let pair = if a < b { (a, b) } else { (b, a) };
        let changes = self.changes.load(SeqCst);
        if let Some((blocked, at)) = self.pairs.get(pair) {
            if at == changes {
                return Ok(blocked);
            }
        }
        let blocked = store.blocked_between(a, b).await?;
        self.pairs.insert(pair, (blocked, changes));
        Ok(blocked)
    }

    /// A block was made or lifted (called once it is stored).
    fn changed(&self) {
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}
