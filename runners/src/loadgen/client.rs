//! The auth and chat HTTP APIs as the load generator calls them: sign up (or find the user
//! exists), log in, start a chat, send a message. Tokens and passwords stay in memory: nothing
//! here logs or prints them.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use confab_token::Secret;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::loadgen::stats::Failure;

/// A signed-in user.
#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) id: String,
    pub(crate) token: Secret,
    /// Seconds the access token was valid for when it was issued.
    pub(crate) expires_in: u64,
}

/// The two services' base URLs and a pooled HTTP client.
#[derive(Clone)]
pub(crate) struct Api {
    http: reqwest::Client,
    /// For events streams: no overall timeout (a stream lasts the run), one connection each.
    streams: reqwest::Client,
    auth: String,
    chat: String,
}

#[derive(Deserialize)]
struct Login {
    access_token: String,
    expires_in: u64,
    id: String,
}

#[derive(Deserialize)]
struct Chat {
    chat_id: String,
}

#[derive(Deserialize)]
struct Sent {
    message_id: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: String,
}

/// The service's error message from a JSON error body, or the start of the body.
fn message_of(body: &str) -> String {
    serde_json::from_str::<ErrorBody>(body)
        .map(|e| e.message)
        .unwrap_or_else(|_| body.chars().take(200).collect())
}

impl Api {
    pub(crate) fn new(
        auth: &str,
        chat: &str,
        timeout: Duration,
        connections: usize,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(connections)
            .tcp_nodelay(true)
            .build()
            .context("building the HTTP client")?;
        let streams = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .build()
            .context("building the HTTP client for events streams")?;
        Ok(Self {
            http,
            streams,
            auth: auth.trim_end_matches('/').to_string(),
            chat: chat.trim_end_matches('/').to_string(),
        })
    }

    fn unreachable(&self, url: &str, e: &reqwest::Error) -> anyhow::Error {
        // The client's message alone ("error sending request") hides the cause.
        let mut cause = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(inner) = source {
            cause = format!("{cause}: {inner}");
            source = inner.source();
        }
        anyhow!(
            "cannot reach {url} ({cause}): start the services (`confab up`, or `confab auth` \
             and `confab chat`) or pass --url / --auth-url / --chat-url"
        )
    }

    /// POSTs `body` as JSON to `url` (with `token` as bearer, if any) for the set-up calls;
    /// an unreachable server gets the error naming how to start it.
    async fn post(
        &self,
        url: &str,
        token: Option<&Secret>,
        body: &serde_json::Value,
    ) -> anyhow::Result<reqwest::Response> {
        let mut request = self.http.post(url).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token.expose());
        }
        request.send().await.map_err(|e| self.unreachable(url, &e))
    }

    /// Opens `session`'s events stream (`GET /api/v1/events`).
    pub(crate) async fn events(&self, session: &Session) -> anyhow::Result<reqwest::Response> {
        let url = format!("{}/api/v1/events", self.chat);
        let response = self
            .streams
            .get(&url)
            .bearer_auth(session.token.expose())
            .header("accept", "text/event-stream")
            .send()
            .await
            .map_err(|e| self.unreachable(&url, &e))?;
        let status = response.status();
        if status != StatusCode::OK {
            let body = response.text().await.unwrap_or_default();
            bail!("GET {url}: {status}: {}", message_of(&body));
        }
        Ok(response)
    }

    /// Creates `username` if it does not exist, then logs it in.
    pub(crate) async fn sign_in(
        &self,
        username: &str,
        password: &Secret,
    ) -> anyhow::Result<Session> {
        let credentials = json!({"username": username, "password": password.expose()});
        let url = format!("{}/api/v1/users", self.auth);
        let response = self.post(&url, None, &credentials).await?;
        let status = response.status();
        if !(status == StatusCode::CREATED || status == StatusCode::CONFLICT) {
            let body = response.text().await.unwrap_or_default();
            let hint = if status == StatusCode::TOO_MANY_REQUESTS {
                "; the auth service limits sign-ups per address ([auth.throttle] \
                 signups_per_address, 10 an hour by default): raise it on the server for a load \
                 test, or reuse users with the same --user-prefix"
            } else {
                ""
            };
            bail!(
                "signing up {username}: {status}: {}{hint}",
                message_of(&body)
            );
        }
        let url = format!("{}/api/v1/login", self.auth);
        let response = self.post(&url, None, &credentials).await?;
        let status = response.status();
        if status != StatusCode::OK {
            let body = response.text().await.unwrap_or_default();
            let hint = if status == StatusCode::UNAUTHORIZED {
                "; the user exists with another password: pass its --password or choose another \
                 --user-prefix"
            } else {
                ""
            };
            bail!(
                "logging in {username}: {status}: {}{hint}",
                message_of(&body)
            );
        }
        let login: Login = response
            .json()
            .await
            .with_context(|| format!("logging in {username}: unexpected response"))?;
        Ok(Session {
            id: login.id,
            token: Secret::new(login.access_token),
            expires_in: login.expires_in,
        })
    }

    /// Starts the chat between `me` and `peer` (or gets the one they have); returns its id.
    pub(crate) async fn start_chat(&self, me: &Session, peer: &Session) -> anyhow::Result<String> {
        let url = format!("{}/api/v1/chats", self.chat);
        let response = self
            .post(&url, Some(&me.token), &json!({"peer_id": peer.id}))
            .await?;
        let status = response.status();
        if !(status == StatusCode::CREATED || status == StatusCode::OK) {
            let body = response.text().await.unwrap_or_default();
            let hint = if status == StatusCode::TOO_MANY_REQUESTS {
                "; the chat service limits new chats per user ([chat.limits] new_chats_per_hour, \
                 30 by default): raise --users for as many --chats, or the limit on the server"
            } else {
                ""
            };
            bail!("starting a chat: {status}: {}{hint}", message_of(&body));
        }
        let chat: Chat = response
            .json()
            .await
            .context("starting a chat: unexpected response")?;
        Ok(chat.chat_id)
    }

    /// Sends one message; the message id on 201.
    pub(crate) async fn send(
        &self,
        from: &Session,
        chat_id: &str,
        body: String,
    ) -> Result<String, (Failure, String)> {
        let url = format!("{}/api/v1/chats/{chat_id}/messages", self.chat);
        let response = self
            .http
            .post(&url)
            .bearer_auth(from.token.expose())
            .json(&json!({ "body": body }))
            .send()
            .await
            .map_err(|e| (classify(&e), e.to_string()))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| (classify(&e), e.to_string()))?;
        if status != StatusCode::CREATED {
            return Err((Failure::Status(status.as_u16()), message_of(&text)));
        }
        serde_json::from_str::<Sent>(&text)
            .map(|s| s.message_id)
            .map_err(|e| (Failure::BadResponse, e.to_string()))
    }
}

fn classify(e: &reqwest::Error) -> Failure {
    if e.is_timeout() {
        Failure::Timeout
    } else if e.is_connect() {
        Failure::Connect
    } else {
        Failure::Other
    }
}
