//! `POST /api/v1/auth/firebase-token`: the token a signed-in web client uses to sign in to
//! Firebase, so that it can listen to its chats' group documents in Firestore. Its uid is the
//! confab user id, the value `firestore.rules` looks for in a document's `members`.
//!
//! Two modes ([`FirebaseConfig`]):
//! - **A real project**: a Firebase custom token, an RS256 JWT signed with a service account's
//!   private key (`iss` = `sub` = the account's email, `aud` = the Identity Toolkit, `uid`, at
//!   most an hour), which the client exchanges with `signInWithCustomToken`.
//! - **The emulator**: the same endpoint answers `"emulator": true` and an unsigned ID token
//!   (`alg: none`, the shape the Firebase JS SDK's own `mockUserToken` helper builds), which the
//!   client passes to `connectFirestoreEmulator(db, host, port, { mockUserToken })`. The server
//!   mints it rather than letting the client build one, so the client never chooses its own uid
//!   and both modes take the same path: one bearer-protected request whose answer says how to
//!   use it. (The emulator trusts any such token, so this guards nothing there; it keeps the
//!   client honest and the flow identical.)
//!
//! Without a configuration the endpoint answers 503 `firebase_not_configured`.

use crate::config::FirebaseConfig;
use crate::error::ApiError;
use crate::AppState;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use confab_token::jsonwebtoken::{self, EncodingKey, Header};
use confab_token::{CurrentUser, ErrorBody, KeyError};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};
use utoipa::ToSchema;

/// The audience of every Firebase custom token.
pub const CUSTOM_TOKEN_AUDIENCE: &str =
    "https://identitytoolkit.googleapis.com/google.identity.identitytoolkit.v1.IdentityToolkit";

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/v1/auth/firebase-token", post(firebase_token))
}

/// A token to sign in to Firebase with.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct FirebaseTokenResponse {
    /// The token. `emulator: false`: a custom token for `signInWithCustomToken`; `emulator:
    /// true`: an unsigned ID token for `connectFirestoreEmulator`'s `mockUserToken`.
    pub token: String,
    /// Whether the token is for the Firestore emulator (unsigned) rather than a real project.
    pub emulator: bool,
    /// The Firebase uid the token signs in as: the caller's confab user id.
    pub uid: String,
    /// The Firebase project the token is for.
    pub project_id: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

// Hand-written: the token signs its holder in to Firebase as this user.
impl std::fmt::Debug for FirebaseTokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirebaseTokenResponse")
            .field("token", &"***")
            .field("emulator", &self.emulator)
            .field("uid", &self.uid)
            .field("project_id", &self.project_id)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// The parts of a service account's JSON key file a custom token needs.
#[derive(Deserialize)]
struct ServiceAccountFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    project_id: String,
    client_email: String,
    private_key: String,
}

/// Mints Firebase tokens as configured. The private key never shows in `Debug`.
pub struct FirebaseTokens {
    mode: Mode,
    expiry_secs: u64,
}

enum Mode {
    ServiceAccount {
        project_id: String,
        client_email: String,
        key: EncodingKey,
    },
    Emulator {
        project_id: String,
    },
}

impl std::fmt::Debug for FirebaseTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("FirebaseTokens");
        match &self.mode {
            Mode::ServiceAccount {
                project_id,
                client_email,
                ..
            } => out
                .field("mode", &"service_account")
                .field("project_id", project_id)
                .field("client_email", client_email),
            Mode::Emulator { project_id } => out
                .field("mode", &"emulator")
                .field("project_id", project_id),
        };
        out.finish_non_exhaustive()
    }
}

/// The claims of a Firebase custom token.
#[derive(Debug, Serialize, Deserialize)]
struct CustomTokenClaims {
    iss: String,
    sub: String,
    aud: String,
    iat: u64,
    exp: u64,
    uid: String,
}

impl FirebaseTokens {
    /// Builds the minter, reading and checking the service account file in that mode.
    pub fn from_config(config: &FirebaseConfig) -> Result<Self, KeyError> {
        confab_token::install_crypto_provider();
        let mode = match config {
            FirebaseConfig::ServiceAccount {
                service_account_file,
                ..
            } => load_service_account(service_account_file)?,
            FirebaseConfig::Emulator { project_id, .. } => Mode::Emulator {
                project_id: project_id.clone(),
            },
        };
        Ok(Self {
            mode,
            expiry_secs: config.expiry_secs(),
        })
    }

    /// The project tokens are minted for.
    pub fn project_id(&self) -> &str {
        match &self.mode {
            Mode::ServiceAccount { project_id, .. } | Mode::Emulator { project_id } => project_id,
        }
    }

    /// A token signing in as `uid`, issued at `now` (seconds since the Unix epoch).
    pub fn mint(
        &self,
        uid: &str,
        now: u64,
    ) -> Result<FirebaseTokenResponse, jsonwebtoken::errors::Error> {
        let exp = now + self.expiry_secs;
        let (token, emulator) = match &self.mode {
            Mode::ServiceAccount {
                client_email, key, ..
            } => {
                let claims = CustomTokenClaims {
                    iss: client_email.clone(),
                    sub: client_email.clone(),
                    aud: CUSTOM_TOKEN_AUDIENCE.to_owned(),
                    iat: now,
                    exp,
                    uid: uid.to_owned(),
                };
                let header = Header::new(jsonwebtoken::Algorithm::RS256);
                (jsonwebtoken::encode(&header, &claims, key)?, false)
            }
            Mode::Emulator { project_id } => (emulator_token(project_id, uid, now, exp), true),
        };
        Ok(FirebaseTokenResponse {
            token,
            emulator,
            uid: uid.to_owned(),
            project_id: self.project_id().to_owned(),
            expires_in: self.expiry_secs,
        })
    }
}

/// The unsigned ID token the Firestore emulator accepts, with the claims the Firebase JS SDK's
/// `createMockUserToken` writes (the emulator reads `sub`/`user_id` as `request.auth.uid`).
fn emulator_token(project_id: &str, uid: &str, iat: u64, exp: u64) -> String {
    let header = serde_json::json!({ "alg": "none", "type": "JWT" });
    let payload = serde_json::json!({
        "iss": format!("https://securetoken.google.com/{project_id}"),
        "aud": project_id,
        "iat": iat,
        "exp": exp,
        "auth_time": iat,
        "sub": uid,
        "user_id": uid,
        "firebase": { "sign_in_provider": "custom", "identities": {} },
    });
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    )
}

fn load_service_account(path: &Path) -> Result<Mode, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })?;
    let invalid = |reason: String| KeyError::Invalid {
        what: format!("firebase.service_account_file {}", path.display()),
        reason,
    };
    // serde's message names the missing field, never the file's values.
    let account: ServiceAccountFile = serde_json::from_str(&text).map_err(|err| {
        invalid(format!(
            "not a service account JSON key file ({err}); download one from the Firebase \
             console: Project settings, Service accounts, Generate new private key"
        ))
    })?;
    if account
        .kind
        .as_deref()
        .is_some_and(|kind| kind != "service_account")
    {
        return Err(invalid(
            "its `type` is not \"service_account\" (a user or OAuth client file cannot sign \
             custom tokens)"
                .into(),
        ));
    }
    let key = EncodingKey::from_rsa_pem(account.private_key.as_bytes()).map_err(|_| {
        invalid("its private_key is not an RSA private key in PEM (PKCS#8 or PKCS#1)".into())
    })?;
    tracing::info!(
        project_id = %account.project_id,
        client_email = %account.client_email,
        "Firebase custom tokens will be signed with this service account."
    );
    Ok(Mode::ServiceAccount {
        project_id: account.project_id,
        client_email: account.client_email,
        key,
    })
}

/// Get a token to sign in to Firebase (realtime through Firestore).
#[utoipa::path(
    post,
    path = "/api/v1/auth/firebase-token",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A token for the caller's uid", body = FirebaseTokenResponse),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 503, description = "This service mints no Firebase tokens (`firebase_not_configured`)", body = ErrorBody),
    )
)]
pub(crate) async fn firebase_token(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let Some(tokens) = state.firebase() else {
        return Err(ApiError::NotConfigured {
            code: "firebase_not_configured",
            message: "this server mints no Firebase tokens: realtime goes through its events \
                      stream (set [firebase] in the auth configuration to enable Firestore)"
                .into(),
        });
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let minted = tokens.mint(&user.id.to_string(), now).map_err(|err| {
        tracing::error!(error = %err, "Signing a Firebase token failed.");
        ApiError::Internal
    })?;
    tracing::debug!(user_id = %user.id, emulator = minted.emulator, "Minted a Firebase token.");
    // A token response is never cached (RFC 6749 §5.1, as for the login's).
    Ok((
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Json(minted),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_token::jsonwebtoken::{DecodingKey, Validation};
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

    const EMAIL: &str = "confab-web@demo-project.iam.gserviceaccount.com";

    #[test]
    fn a_firebase_token_does_not_show_in_debug() {
        let response = FirebaseTokenResponse {
            token: "eyJhbGciOiJSUzI1NiJ9.custom.token".into(),
            emulator: false,
            uid: "u".into(),
            project_id: "p".into(),
            expires_in: 60,
        };
        let text = format!("{response:?}");
        assert!(
            !text.contains("eyJ") && !text.contains("custom.token"),
            "{text}"
        );
    }

    /// A service account file with a fresh RSA key; returns the file and the public key PEM.
    fn service_account(dir: &Path) -> (std::path::PathBuf, String) {
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("RSA key");
        let private = key.to_pkcs8_pem(LineEnding::LF).expect("private PEM");
        let public = key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("public PEM");
        let file = dir.join("service-account.json");
        let json = serde_json::json!({
            "type": "service_account",
            "project_id": "demo-project",
            "private_key_id": "0123abcd",
            "private_key": private.as_str(),
            "client_email": EMAIL,
            "client_id": "1234567890",
            "token_uri": "https://oauth2.googleapis.com/token",
        });
        std::fs::write(&file, json.to_string()).expect("write");
        (file, public)
    }

    #[test]
    fn a_custom_token_is_rs256_signed_by_the_service_account_with_firebase_claims() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (file, public_pem) = service_account(dir.path());
        let tokens = FirebaseTokens::from_config(&FirebaseConfig::ServiceAccount {
            service_account_file: file,
            expiry_secs: 3600,
        })
        .expect("minter");
        assert!(
            !format!("{tokens:?}").contains("PRIVATE"),
            "the key stays out of Debug"
        );
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let minted = tokens.mint("0192f1c6-user", now).expect("mint");
        assert!(!minted.emulator);
        assert_eq!(minted.project_id, "demo-project");
        assert_eq!(minted.uid, "0192f1c6-user");

        let mut validation = Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_audience(&[CUSTOM_TOKEN_AUDIENCE]);
        validation.set_issuer(&[EMAIL]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
        let key = DecodingKey::from_rsa_pem(public_pem.as_bytes()).expect("public key");
        let decoded = jsonwebtoken::decode::<CustomTokenClaims>(&minted.token, &key, &validation)
            .expect("the signature and claims verify with the account's public key");
        assert_eq!(decoded.header.alg, jsonwebtoken::Algorithm::RS256);
        let claims = decoded.claims;
        assert_eq!(claims.sub, EMAIL);
        assert_eq!(claims.uid, "0192f1c6-user");
        assert_eq!(claims.iat, now);
        assert_eq!(claims.exp, now + 3600, "Firebase accepts at most an hour");

        // Another key does not verify it: the signature is real.
        let (_, other_public) = service_account(tempfile::tempdir().expect("tempdir").path());
        let other = DecodingKey::from_rsa_pem(other_public.as_bytes()).expect("public key");
        assert!(
            jsonwebtoken::decode::<CustomTokenClaims>(&minted.token, &other, &validation).is_err()
        );
    }

    #[test]
    fn the_emulator_token_is_unsigned_and_names_the_uid() {
        let tokens = FirebaseTokens::from_config(&FirebaseConfig::Emulator {
            project_id: "confab-local".into(),
            expiry_secs: 600,
        })
        .expect("minter");
        let minted = tokens.mint("user-1", 1_000).expect("mint");
        assert!(minted.emulator);
        assert_eq!(minted.expires_in, 600);
        let parts: Vec<&str> = minted.token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[2], "", "no signature");
        let decode = |part: &str| -> serde_json::Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
        };
        assert_eq!(decode(parts[0])["alg"], "none");
        let claims = decode(parts[1]);
        assert_eq!(claims["sub"], "user-1");
        assert_eq!(claims["user_id"], "user-1");
        assert_eq!(claims["aud"], "confab-local");
        assert_eq!(claims["iss"], "https://securetoken.google.com/confab-local");
        assert_eq!(claims["exp"], 1_600);
    }

    #[test]
    fn a_bad_service_account_file_is_refused_without_echoing_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = |file: &Path| FirebaseConfig::ServiceAccount {
            service_account_file: file.to_owned(),
            expiry_secs: 3600,
        };
        let missing = FirebaseTokens::from_config(&config(&dir.path().join("nope.json")))
            .expect_err("missing file");
        assert!(matches!(missing, KeyError::Read { .. }), "{missing}");

        let file = dir.path().join("bad.json");
        let secret_looking =
            "-----BEGIN PRIVATE KEY-----\nnot-really-a-key-but-secret\n-----END PRIVATE KEY-----\n";
        std::fs::write(
            &file,
            serde_json::json!({
                "type": "service_account", "project_id": "p",
                "client_email": "a@b", "private_key": secret_looking,
            })
            .to_string(),
        )
        .expect("write");
        let err = FirebaseTokens::from_config(&config(&file)).expect_err("bad key");
        let text = err.to_string();
        assert!(text.contains("RSA private key"), "{text}");
        assert!(!text.contains("not-really-a-key-but-secret"), "{text}");

        std::fs::write(&file, r#"{"type":"authorized_user","client_id":"x"}"#).expect("write");
        let err = FirebaseTokens::from_config(&config(&file)).expect_err("wrong file");
        assert!(err.to_string().contains("service account"), "{err}");
    }
}
