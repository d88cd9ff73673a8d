//! `confab up`: the whole system in one process on one port: the auth and chat services, the
//! stream and the aggregator (the chat service's embedded mode, or an in-process `confab
//! aggregate` on Kafka), the web client's files, and `/api/v1/stats` (what grouping saves).

mod config;
mod openapi;
mod realtime;
mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{FromRef, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use clap::Args;
use confab_pipeline::Metrics;
use confab_token::TokenVerifier;
use serde::Serialize;
use tokio::sync::watch;
use tower::ServiceExt;

use config::{prepare_data_dir, UpConfig};
use web::WebFiles;

/// Run the whole system in one process, on one port (http://127.0.0.1:3000 by default).
///
/// Sign-up and login, chats and messages, the stream and the aggregator, and the web client.
/// With no configuration everything is embedded: SQLite and the token signing key in the data
/// folder (so accounts, chats, history and logins survive a restart), an in-process log and
/// aggregator, and server-sent events for realtime. Ctrl-C (or SIGTERM) stops taking requests,
/// writes every open group of messages, and exits.
///
/// --config switches parts to the real servers; the file's tables are the existing
/// configurations: [auth] (confab auth's), [chat] (confab chat's: [chat.log] type = "kafka",
/// [chat.history] type = "cassandra", [chat.events] type = "kafka") and [aggregate] (confab
/// aggregate's, run in this process: the aggregator for a Kafka log, writing Firestore and
/// Cassandra). See runners/configs/up/real-servers.toml.
///
/// [auth.signup] mode = "open" (default: anybody may sign up), "invite" (sign-up needs a code
/// that a signed-in user made with POST /api/v1/invites; invite_expiry_secs,
/// max_unused_invites_per_user) or "closed" (403 signup_closed); [auth.first_user] is seeded
/// in every mode. [auth.passwords] min_strength (zxcvbn score 0-4, default 3) refuses common
/// and easily guessed passwords.
///
/// [web] chooses the web client's realtime path: realtime = "sse" (default, the events stream)
/// or "firestore" (the Firebase JS SDK listening to the [aggregate] Firestore sink's documents;
/// [web.firestore] emulator_host for the emulator, or api_key with [auth.firebase] type =
/// "service_account" for a real project).
///
/// Endpoints: the web client at / (built into the binary; --web-dir serves a folder instead),
/// the API reference at /docs/ and its OpenAPI document at /openapi.json, the auth API (/api/v1/users, /api/v1/invites, /api/v1/login,
/// /api/v1/auth/firebase-token, /.well-known/jwks.json), the chat API (/api/v1/chats...,
/// /chat/{id}, /api/v1/blocks, /api/v1/events: each person's live stream), /api/v1/config (the client's realtime settings), /api/v1/stats (messages sent,
/// group documents written, their ratio), /healthz, /readyz.
///
/// Examples:
///   confab up
///   confab up --listen 0.0.0.0:8080 --data-dir /var/lib/confab
///   confab up --database-url postgres://confab:confab@127.0.0.1:5432/confab
///   confab up --config runners/configs/up/real-servers.toml
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct UpArgs {
    /// Address to serve everything on (port 0 picks a free port; the URL is printed).
    #[arg(long, env = "CONFAB_LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Folder for the SQLite database and the token signing key (created if missing). It is
    /// kept owner-only: created 0700 (an existing wider one is tightened, with a warning), the
    /// database and its -wal and -shm files 0600.
    #[arg(long, env = "CONFAB_DATA_DIR", default_value = "confab-data")]
    data_dir: PathBuf,
    /// Serve the web client from this folder (`npm run build` in web/ writes web/dist) instead
    /// of the copy built into the binary: for working on the client.
    #[arg(long, env = "CONFAB_WEB_DIR")]
    web_dir: Option<PathBuf>,
    /// A TOML file with [auth], [chat] and [aggregate] tables: the existing configurations of
    /// confab auth, confab chat and confab aggregate.
    #[arg(long, env = "CONFAB_UP_CONFIG")]
    config: Option<PathBuf>,
    /// postgres://... or sqlite://path for users and chats (wins over the file and the data
    /// folder).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

/// What the stats endpoint reads.
#[derive(Clone)]
struct StatsSource {
    metrics: Option<Arc<Metrics>>,
    started: chrono::DateTime<chrono::Utc>,
}

/// Live figures of the aggregator: how many writes grouping saved.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Stats {
    /// Messages the aggregator read from the log since start.
    messages_sent: u64,
    /// Messages inside group documents written (acknowledged by every sink).
    messages_written: u64,
    /// Group documents written.
    groups_written: u64,
    /// Messages per group document written (0 before the first).
    messages_per_group: f64,
    /// Groups still open (waiting for more messages or their timeout).
    open_groups: u64,
    /// When counting started (the process start).
    since: String,
}

/// The aggregator's figures since start: messages read, group documents written, their ratio.
#[utoipa::path(get, path = "/api/v1/stats", tag = "web",
    responses(
        (status = 200, description = "The figures", body = Stats),
        (status = 503, description = "No aggregator runs in this process", body = confab_token::ErrorBody),
    ))]
async fn stats(State(source): State<StatsSource>) -> Response {
    let Some(metrics) = source.metrics else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(confab_token::ErrorBody::new(
                "unavailable",
                "no aggregator runs in this process: add an [aggregate] table to see its figures",
            )),
        )
            .into_response();
    };
    Json(Stats {
        messages_sent: metrics.messages_in.load(Relaxed),
        messages_written: metrics.messages_out.load(Relaxed),
        groups_written: metrics.groups_out.load(Relaxed),
        messages_per_group: metrics.messages_per_group(),
        open_groups: metrics.open_groups.load(Relaxed),
        since: source
            .started
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
    .into_response()
}

async fn api_not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(confab_token::ErrorBody::new(
            "not_found",
            "no such endpoint under /api; see confab up --help",
        )),
    )
        .into_response()
}

/// The services behind the one port, chosen by path in [`dispatch`].
#[derive(Clone)]
struct Services {
    auth: Router,
    chat: Router,
    web: WebFiles,
}

fn is_auth_path(path: &str) -> bool {
    path == "/api/v1/users"
        || path.starts_with("/api/v1/users/")
        || path == "/api/v1/login"
        || path.starts_with("/api/v1/auth/")
        || path == "/api/v1/invites"
        || path == "/.well-known/jwks.json"
}

fn is_chat_path(path: &str) -> bool {
    path == "/api/v1/chats"
        || path.starts_with("/api/v1/chats/")
        || path == "/api/v1/events"
        || path == "/api/v1/blocks"
        || path.starts_with("/api/v1/blocks/")
        || path.starts_with("/chat/")
        || path == "/readyz"
}

/// Hands the request to the service owning its path. By prefix rather than by nested routes:
/// each service matches its own full paths, and path parameters captured by an outer route
/// would reach its extractors as extra parameters.
async fn dispatch(State(services): State<Services>, request: Request) -> Response {
    let path = request.uri().path();
    let service = if is_auth_path(path) {
        services.auth
    } else if is_chat_path(path) {
        services.chat
    } else if path == "/api" || path.starts_with("/api/") {
        return api_not_found().await;
    } else {
        let uri = request.uri().clone();
        return web::serve_file(State(services.web), uri).await;
    };
    match service.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// The one router: the health and stats endpoints, everything else by [`dispatch`].
fn router(
    services: Services,
    stats_source: StatsSource,
    client: Arc<realtime::ClientConfig>,
    ready: Arc<AtomicBool>,
) -> Router {
    let health = Router::new().route(
        "/healthz",
        get(move || {
            let ready = ready.load(Relaxed);
            async move {
                if ready {
                    (StatusCode::OK, "ok\n")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "stopping\n")
                }
            }
        }),
    );
    Router::new()
        .route("/api/v1/stats", get(stats))
        .with_state(stats_source)
        .route(
            "/api/v1/config",
            get(move || realtime::serve(Arc::clone(&client))),
        )
        .route("/openapi.json", get(openapi::serve))
        .route("/api/v1/openapi.json", get(openapi::serve))
        .merge(health)
        .fallback(any(dispatch).with_state(services))
}

/// Runs `confab up`.
pub(crate) async fn run(args: UpArgs) -> anyhow::Result<()> {
    let data_dir = prepare_data_dir(&args.data_dir)?;
    let config = UpConfig::load(
        args.config.as_deref(),
        &data_dir,
        args.database_url.as_deref(),
    )?;
    let web = WebFiles::new(args.web_dir.clone());
    if !web.is_built() {
        tracing::warn!(
            source = %web.describe(),
            "The web client is not built: run `npm ci --omit=dev && npm run build` in web/, then \
             rebuild confab or pass --web-dir web/dist (the APIs work without it)."
        );
    }

    let auth_state = confab_auth::AppState::build(&config.auth)
        .await
        .context("starting the auth service")?;
    let verifier = Arc::<TokenVerifier>::from_ref(&auth_state);
    let chat_state = confab_chat::AppState::build_with(
        &config.chat,
        confab_chat::Backends {
            verifier: Some(verifier),
            ..Default::default()
        },
    )
    .await
    .context("starting the chat service")?;

    // One stop signal for everything: Ctrl-C or SIGTERM, or the in-process aggregator failing.
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let ready = Arc::new(AtomicBool::new(true));
    let mut metrics = chat_state.pipeline_metrics();
    let aggregate_metrics = Arc::new(Metrics::default());
    if config.aggregate.is_some() {
        metrics = Some(Arc::clone(&aggregate_metrics));
    } else if metrics.is_none() {
        tracing::warn!(
            "The chat service's log is not the in-process one and no [aggregate] table is set: \
             run `confab aggregate` beside this process, or messages reach no history."
        );
    }
    let signal = tokio::spawn({
        let stop_tx = Arc::clone(&stop_tx);
        async move {
            crate::aggregate::shutdown_signal().await;
            let _ = stop_tx.send(true);
        }
    });
    // The aggregator's future is not Send (a file source holds a reader that is not Sync), so it
    // runs beside the server in this task rather than spawned.
    let aggregator = {
        let stop_tx = Arc::clone(&stop_tx);
        let mut stop = stop_rx.clone();
        let aggregate = config.aggregate.clone();
        async move {
            let aggregate = aggregate?;
            let result = crate::aggregate::run_pipeline(
                &aggregate,
                aggregate_metrics,
                Arc::new(AtomicBool::new(false)),
                async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                },
            )
            .await;
            if result.is_err() {
                let _ = stop_tx.send(true);
            }
            Some(result)
        }
    };

    let app = router(
        Services {
            auth: confab_auth::app(auth_state.clone()),
            chat: confab_chat::app_until(chat_state.clone(), stop_rx.clone()),
            web,
        },
        StatsSource {
            metrics,
            started: chrono::Utc::now(),
        },
        Arc::new(config.client.clone()),
        Arc::clone(&ready),
    );
    let listener = confab_service_kit::server::bind(args.listen).with_context(|| {
        format!(
            "cannot listen on {}: is another confab up running? choose another --listen",
            args.listen
        )
    })?;
    let addr = listener.local_addr()?;
    let pruner = tokio::spawn(confab_chat::prune_forever(chat_state.clone()));
    // The first lines a person sees, on stdout (logs go to stderr).
    println!("confab is up: http://{addr}/");
    println!("{}", config.describe_storage(&data_dir));
    println!("{}", config.client.describe());
    println!("Press Ctrl-C to stop.");

    let mut stop = stop_rx.clone();
    let served = confab_service_kit::server::serve_streams(
        listener,
        app,
        &config.server,
        Some(confab_chat::realtime::is_stream_path),
        async move {
            let _ = stop.wait_for(|stop| *stop).await;
            tracing::info!("Stopping: finishing requests, writing open groups.");
            // The events streams end on the same signal (app_until), or they would hold the
            // graceful shutdown open.
            ready.store(false, Relaxed);
        },
    );
    let (served, aggregated) = tokio::join!(served, aggregator);
    signal.abort();
    pruner.abort();
    chat_state.shutdown().await;
    let aggregated = match aggregated {
        None => Ok(()),
        Some(Ok(report)) => {
            tracing::info!(
                messages = report.messages_in,
                groups = report.groups_out,
                "The aggregator stopped."
            );
            Ok(())
        }
        Some(Err(err)) => Err(err.context("the in-process aggregator ([aggregate]) failed")),
    };
    chat_state.store().close().await;
    auth_state.store().close().await;
    served.context("serving")?;
    aggregated?;
    println!("confab stopped; data kept in {}", data_dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{is_auth_path, is_chat_path};
    use utoipa::OpenApi;

    /// Every path a service documents, with its parameters filled in.
    fn documented(doc: &utoipa::openapi::OpenApi) -> Vec<String> {
        doc.paths
            .paths
            .keys()
            .map(|path| {
                path.split('/')
                    .map(|part| {
                        if part.starts_with('{') {
                            "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
                        } else {
                            part
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .collect()
    }

    #[test]
    fn every_documented_endpoint_reaches_its_service() {
        for path in documented(&confab_auth::ApiDoc::openapi()) {
            if path == "/healthz" || path == "/readyz" || path == "/openapi.json" {
                continue; // served by confab up itself (and /readyz by the chat service)
            }
            assert!(is_auth_path(&path) && !is_chat_path(&path), "auth: {path}");
        }
        for path in documented(&confab_chat::ApiDoc::openapi()) {
            if path == "/healthz" || path == "/openapi.json" {
                continue;
            }
            assert!(is_chat_path(&path) && !is_auth_path(&path), "chat: {path}");
        }
    }
}
