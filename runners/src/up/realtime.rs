//! How the web client gets new messages: `[web]` in `confab up`'s configuration, resolved
//! against the rest of it and served at `GET /api/v1/config`.
//!
//! ```toml
//! [web]
//! realtime = "firestore"        # or "sse" (the default): the chat service's events stream
//! [web.firestore]
//! emulator_host = "127.0.0.1:8080"   # the emulator as the browser reaches it
//! # api_key = "AIza..."              # a real project's web API key instead
//! ```
//!
//! With `firestore` the browser listens to the documents the `[aggregate]` table's Firestore
//! sink writes (its project, database and collection, so the two cannot disagree), signed in
//! with a token from the auth service's `POST /api/v1/auth/firebase-token`. The auth side
//! must fit the mode: the emulator gets `[auth.firebase] type = "emulator"` filled in when it
//! is missing; a real project needs `[auth.firebase] type = "service_account"` and the web API
//! key (which is public: it names the project, the security rules protect the data).

use anyhow::{bail, Context};
use axum::http::header::CACHE_CONTROL;
use axum::response::{IntoResponse, Response};
use axum::Json;
use confab_auth::FirebaseConfig;
use confab_connectors::registry::SinkConfig;
use serde::{Deserialize, Serialize};

use crate::aggregate::AggregateConfig;

/// The `[web]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct WebConfig {
    /// `sse` (default): new messages through the chat service's server-sent events.
    /// `firestore`: through the Firebase JS SDK, listening to the documents of the `[aggregate]`
    /// table's Firestore sink.
    pub(crate) realtime: Realtime,
    /// Where the browser finds Firestore, with `realtime = "firestore"`.
    pub(crate) firestore: Option<WebFirestoreConfig>,
}

/// The realtime path of the web client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Realtime {
    /// The chat service's events stream.
    #[default]
    Sse,
    /// Firestore, through the Firebase JS SDK.
    Firestore,
}

/// The `[web.firestore]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct WebFirestoreConfig {
    /// `host:port` of the Firestore emulator as the browser reaches it (default
    /// `$FIRESTORE_EMULATOR_HOST`, which the sink writes to). Unset with no variable: a real
    /// project.
    pub(crate) emulator_host: Option<String>,
    /// A real project's web API key (Firebase console, Project settings, Your apps, the web
    /// app's `apiKey`). Public by design; required without an emulator.
    pub(crate) api_key: Option<String>,
    /// A real project's `authDomain` (`<project>.firebaseapp.com`); optional, the client signs
    /// in with a custom token, which needs no redirect.
    pub(crate) auth_domain: Option<String>,
}

/// What `GET /api/v1/config` answers: `{"realtime":"sse"}` or
/// `{"realtime":"firestore","firestore":{...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "realtime", rename_all = "snake_case")]
pub(crate) enum ClientConfig {
    /// The events stream.
    Sse,
    /// Firestore.
    Firestore {
        /// Where and what to listen to.
        firestore: FirestoreClient,
    },
}

/// The Firebase settings the browser needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub(crate) struct FirestoreClient {
    /// The project.
    pub(crate) project_id: String,
    /// The database within it (`(default)` unless the sink names another).
    pub(crate) database_id: String,
    /// The collection of group documents.
    pub(crate) collection: String,
    /// The emulator, `host:port`; absent for a real project.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) emulator_host: Option<String>,
    /// A real project's web API key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) api_key: Option<String>,
    /// A real project's auth domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) auth_domain: Option<String>,
}

impl ClientConfig {
    /// The content security policy the web client needs: the default one, plus the Firestore
    /// origins the Firebase SDK talks to when realtime goes through Firestore.
    pub(crate) fn content_security_policy(&self, base: &str) -> String {
        match self {
            ClientConfig::Sse => base.to_owned(),
            ClientConfig::Firestore { firestore } => {
                let origins = match &firestore.emulator_host {
                    Some(host) => format!("http://{host} ws://{host}"),
                    None => "https://*.googleapis.com wss://*.googleapis.com".to_owned(),
                };
                format!("{base}; connect-src 'self' {origins}")
            }
        }
    }

    /// One line for the start-up message.
    pub(crate) fn describe(&self) -> String {
        match self {
            ClientConfig::Sse => {
                "realtime: the chat service's events stream (server-sent events)".into()
            }
            ClientConfig::Firestore { firestore } => format!(
                "realtime: Firestore {} (project {}, collection {})",
                firestore.emulator_host.as_deref().map_or_else(
                    || "(the real project)".to_owned(),
                    |h| format!("emulator at {h}")
                ),
                firestore.project_id,
                firestore.collection
            ),
        }
    }
}

/// Checks `[web]` against `[aggregate]` and `[auth]`, fills in the emulator's token mode, and
/// returns what the browser is told. `env_emulator` is `$FIRESTORE_EMULATOR_HOST`.
pub(crate) fn resolve(
    web: &WebConfig,
    aggregate: Option<&AggregateConfig>,
    auth: &mut confab_auth::Config,
    env_emulator: Option<String>,
) -> anyhow::Result<ClientConfig> {
    if web.realtime == Realtime::Sse {
        if web.firestore.is_some() {
            bail!("[web.firestore] is set but [web] realtime is \"sse\": set realtime = \"firestore\" or remove the table");
        }
        return Ok(ClientConfig::Sse);
    }
    let sink = aggregate
        .and_then(|a| {
            a.sinks.iter().find_map(|s| match s {
                SinkConfig::Firestore(f) => Some(f),
                _ => None,
            })
        })
        .context(
            "realtime = \"firestore\" needs a Firestore sink in [aggregate] \
             ([[aggregate.sinks]] type = \"firestore\"): the browser listens to its documents",
        )?;
    let table = web.firestore.clone().unwrap_or_default();
    let emulator_host = table
        .emulator_host
        .or(env_emulator)
        .filter(|h| !h.trim().is_empty());
    match (&emulator_host, &auth.firebase) {
        (Some(_), None) => {
            auth.firebase = Some(FirebaseConfig::Emulator {
                project_id: sink.project_id.clone(),
                expiry_secs: confab_auth::config::FIREBASE_MAX_EXPIRY_SECS,
            });
        }
        (Some(_), Some(FirebaseConfig::Emulator { project_id, .. })) => {
            if *project_id != sink.project_id {
                bail!(
                    "[auth.firebase] project_id {project_id:?} is not the Firestore sink's {:?}",
                    sink.project_id
                );
            }
        }
        (Some(host), Some(FirebaseConfig::ServiceAccount { .. })) => bail!(
            "[auth.firebase] is a service account but the browser is sent to the emulator at \
             {host} ([web.firestore] emulator_host or $FIRESTORE_EMULATOR_HOST): use \
             type = \"emulator\" there, or unset the emulator for a real project"
        ),
        (None, Some(FirebaseConfig::ServiceAccount { .. })) => {
            if table.api_key.as_deref().is_none_or(str::is_empty) {
                bail!(
                    "[web.firestore] api_key is required for a real Firebase project (the web \
                     app's apiKey in the Firebase console), or set emulator_host for the emulator"
                );
            }
        }
        (None, _) => bail!(
            "realtime through a real Firebase project needs [auth.firebase] type = \
             \"service_account\" with service_account_file (to sign the custom tokens), and \
             [web.firestore] api_key; for the emulator set [web.firestore] emulator_host or \
             $FIRESTORE_EMULATOR_HOST"
        ),
    }
    let real = emulator_host.is_none();
    Ok(ClientConfig::Firestore {
        firestore: FirestoreClient {
            project_id: sink.project_id.clone(),
            database_id: sink.database_id.clone(),
            collection: sink.collection.clone(),
            emulator_host,
            api_key: table.api_key.filter(|_| real),
            auth_domain: table.auth_domain.filter(|_| real),
        },
    })
}

/// How the web client gets new messages: the events stream, or Firestore and its settings.
#[utoipa::path(get, path = "/api/v1/config", tag = "web",
    responses((status = 200, description = "The client's realtime settings", body = ClientConfig)))]
pub(crate) async fn serve(config: std::sync::Arc<ClientConfig>) -> Response {
    ([(CACHE_CONTROL, "no-cache")], Json(config.as_ref().clone())).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn aggregate(with_firestore: bool) -> AggregateConfig {
        let mut sinks = vec![];
        if with_firestore {
            sinks.push(SinkConfig::Firestore(
                confab_connectors::firestore::FirestoreConfig {
                    project_id: "demo".into(),
                    collection: "groups".into(),
                    ..Default::default()
                },
            ));
        }
        AggregateConfig {
            sinks,
            ..Default::default()
        }
    }

    fn firestore(table: WebFirestoreConfig) -> WebConfig {
        WebConfig {
            realtime: Realtime::Firestore,
            firestore: Some(table),
        }
    }

    #[test]
    fn sse_is_the_default_and_says_so() {
        let mut auth = confab_auth::Config::default();
        let client =
            resolve(&WebConfig::default(), None, &mut auth, Some("x:1".into())).expect("valid");
        assert_eq!(client, ClientConfig::Sse);
        assert_eq!(
            serde_json::to_value(&client).expect("json"),
            serde_json::json!({"realtime": "sse"})
        );
        assert_eq!(
            auth.firebase, None,
            "no Firebase token without Firestore realtime"
        );
    }

    #[test]
    fn the_emulator_takes_the_sinks_place_and_gets_emulator_tokens() {
        let mut auth = confab_auth::Config::default();
        let web = firestore(WebFirestoreConfig {
            emulator_host: Some("127.0.0.1:8080".into()),
            ..Default::default()
        });
        let client = resolve(&web, Some(&aggregate(true)), &mut auth, None).expect("valid");
        assert_eq!(
            serde_json::to_value(&client).expect("json"),
            serde_json::json!({"realtime": "firestore", "firestore": {
                "project_id": "demo", "database_id": "(default)", "collection": "groups",
                "emulator_host": "127.0.0.1:8080"}})
        );
        assert!(matches!(
            auth.firebase,
            Some(FirebaseConfig::Emulator { ref project_id, .. }) if project_id == "demo"
        ));
        // The variable the sink reads stands in for the table.
        let mut auth = confab_auth::Config::default();
        let client = resolve(
            &firestore(WebFirestoreConfig::default()),
            Some(&aggregate(true)),
            &mut auth,
            Some("emulator:8080".into()),
        )
        .expect("valid");
        assert!(client.describe().contains("emulator at emulator:8080"));
    }

    #[test]
    fn firestore_realtime_without_a_sink_or_credentials_is_refused() {
        let mut auth = confab_auth::Config::default();
        let web = firestore(WebFirestoreConfig {
            emulator_host: Some("127.0.0.1:8080".into()),
            ..Default::default()
        });
        let err = resolve(&web, Some(&aggregate(false)), &mut auth, None).expect_err("no sink");
        assert!(format!("{err:#}").contains("Firestore sink"), "{err:#}");
        let err = resolve(&web, None, &mut auth, None).expect_err("no aggregate");
        assert!(format!("{err:#}").contains("Firestore sink"), "{err:#}");

        // A real project: the service account and the API key are both needed.
        let real = firestore(WebFirestoreConfig {
            api_key: Some("AIza-public".into()),
            ..Default::default()
        });
        let err = resolve(&real, Some(&aggregate(true)), &mut auth, None).expect_err("no account");
        assert!(format!("{err:#}").contains("service_account"), "{err:#}");
        auth.firebase = Some(FirebaseConfig::ServiceAccount {
            service_account_file: PathBuf::from("/etc/sa.json"),
            expiry_secs: 3600,
        });
        let client = resolve(&real, Some(&aggregate(true)), &mut auth, None).expect("valid");
        let ClientConfig::Firestore { firestore } = client else {
            panic!("firestore");
        };
        assert_eq!(firestore.api_key.as_deref(), Some("AIza-public"));
        assert_eq!(firestore.emulator_host, None);
        let no_key = firestore_table_without_key();
        assert!(resolve(&no_key, Some(&aggregate(true)), &mut auth, None).is_err());
        // A service account cannot sign in to the emulator's stand-in tokens, and vice versa.
        assert!(resolve(
            &no_key,
            Some(&aggregate(true)),
            &mut auth,
            Some("h:1".into())
        )
        .is_err());
    }

    fn firestore_table_without_key() -> WebConfig {
        firestore(WebFirestoreConfig::default())
    }

    #[test]
    fn a_firestore_table_with_sse_is_a_mistake() {
        let web = WebConfig {
            realtime: Realtime::Sse,
            firestore: Some(WebFirestoreConfig::default()),
        };
        let mut auth = confab_auth::Config::default();
        assert!(resolve(&web, None, &mut auth, None).is_err());
    }
}
