//! `/openapi.json`: every endpoint, generated from the handlers' annotations so it cannot drift
//! from the code.

use crate::blocks::{BlockList, BlockView, NewBlock};
use crate::chats::{ChatPage, ChatView, Member, NewChat};
use crate::events::GroupEvent;
use crate::health::Status;
use crate::messages::{MessagePage, MessageView, SendMessage};
use crate::reads::{MarkRead, ReadState};
use crate::realtime::{ReadEvent, TypingEvent};
use crate::AppState;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use confab_service_kit::openapi::BearerAuth;
use confab_token::ErrorBody;
use utoipa::OpenApi;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi_json))
}

/// The OpenAPI document of the chat service.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "confab chat",
        description = "1:1 chats, sending messages into the stream, history pagination and \
                       realtime events."
    ),
    paths(
        crate::blocks::block,
        crate::blocks::unblock,
        crate::blocks::list_blocks,
        crate::chats::create_chat,
        crate::chats::list_chats,
        crate::reads::mark_read,
        crate::messages::send_message,
        crate::messages::history_page,
        crate::messages::seed_history_page,
        crate::events::events,
        crate::realtime::person::person_events,
        crate::realtime::person::typing,
        crate::health::healthz,
        crate::health::readyz,
        openapi_json,
    ),
    components(schemas(
        NewChat, Member, ChatView, ChatPage, SendMessage, MessageView, MessagePage, GroupEvent,
        TypingEvent, ReadEvent, MarkRead, ReadState, Status, ErrorBody, NewBlock, BlockView,
        BlockList
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "chats", description = "Starting and listing chats"),
        (name = "blocks", description = "Blocking a person: neither side can start a chat or write to the other; the blocked person sees only 403 `blocked` when writing"),
        (name = "messages", description = "Sending messages and reading history"),
        (name = "events", description = "Realtime: each person's live stream, typing notices, and per-chat streams"),
        (name = "health", description = "Liveness and readiness"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

/// This OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
pub(crate) async fn openapi_json() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}
