//! The configuration of `confab up`: one TOML file whose tables are the existing services'
//! configurations, with the data folder filling in whatever the file leaves out.
//!
//! ```toml
//! [auth]       # confab-auth's Config (its `listen` is ignored: everything shares one port)
//! [chat]       # confab-chat's Config (likewise; its `auth` keys are ignored: tokens are
//!              # verified with the in-process auth service's keys)
//! [aggregate]  # confab aggregate's configuration; run in this process when present (the
//!              # aggregator for a Kafka log; its `http` table is ignored)
//! [web]        # how the web client gets new messages: realtime = "sse" (default) or
//!              # "firestore" (see the realtime module)
//! [server]     # connection limits and timeouts of the one port (confab-service-kit's
//!              # ServerConfig; the [auth.server] and [chat.server] tables are ignored)
//! ```
//!
//! Defaults: SQLite at `<data-dir>/confab.db` for both services, the Ed25519 signing key at
//! `<data-dir>/jwt-ed25519.pem` (so tokens survive a restart), and the chat service's embedded
//! mode (in-process log, aggregator, SQL history, in-process events).

use std::path::{Path, PathBuf};

use anyhow::Context;
use confab_service_kit::server::{ServerConfig, DEFAULT_CONTENT_SECURITY_POLICY};
use confab_token::{Algorithm, Secret};

use crate::aggregate::AggregateConfig;

use super::realtime::{self, ClientConfig, WebConfig};

/// The database file inside the data folder.
pub(crate) const DATABASE_FILE: &str = "confab.db";
/// The signing key inside the data folder.
pub(crate) const SIGNING_KEY_FILE: &str = "jwt-ed25519.pem";

/// What `confab up` runs, every part configured.
#[derive(Debug)]
pub(crate) struct UpConfig {
    pub(crate) auth: confab_auth::Config,
    pub(crate) chat: confab_chat::Config,
    pub(crate) aggregate: Option<AggregateConfig>,
    /// What `GET /api/v1/config` tells the web client.
    pub(crate) client: ClientConfig,
    /// The one port's limits, its content security policy fitted to the web client.
    pub(crate) server: ServerConfig,
}

/// Tables of the file that are not one of these are an error, like an unknown key elsewhere.
const TABLES: [&str; 5] = ["auth", "chat", "aggregate", "web", "server"];

impl UpConfig {
    /// Reads the file (if any), then fills in the data folder and `database_url` (a flag, which
    /// wins over the file).
    pub(crate) fn load(
        file: Option<&Path>,
        data_dir: &Path,
        database_url: Option<&str>,
    ) -> anyhow::Result<Self> {
        let (table, origin) = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                (Self::parse_table(&text)?, path.display().to_string())
            }
            None => (toml::Table::new(), String::from("the defaults")),
        };
        Self::from_table(table, data_dir, database_url)
            .with_context(|| format!("invalid configuration in {origin}"))
    }

    fn parse_table(text: &str) -> anyhow::Result<toml::Table> {
        let table: toml::Table = toml::from_str(text)?;
        if let Some(unknown) = table.keys().find(|k| !TABLES.contains(&k.as_str())) {
            anyhow::bail!(
                "unknown table or key `{unknown}`: use [auth], [chat], [aggregate], [web] and [server]"
            );
        }
        Ok(table)
    }

    fn from_table(
        mut table: toml::Table,
        data_dir: &Path,
        database_url: Option<&str>,
    ) -> anyhow::Result<Self> {
        let auth_table = take_table(&mut table, "auth")?;
        let chat_table = take_table(&mut table, "chat")?;
        let aggregate_table = table.remove("aggregate");
        let web_table = take_table(&mut table, "web")?;
        let server_table = take_table(&mut table, "server")?;
        let auth_sets_database = auth_table.contains_key("database_url");
        let chat_sets_database = chat_table.contains_key("database_url");

        let mut auth: confab_auth::Config = toml::Value::Table(auth_table)
            .try_into()
            .context("[auth]")?;
        let mut chat: confab_chat::Config = toml::Value::Table(chat_table)
            .try_into()
            .context("[chat]")?;
        let aggregate: Option<AggregateConfig> = aggregate_table
            .map(|value| value.try_into().context("[aggregate]"))
            .transpose()?;
        let web: WebConfig = toml::Value::Table(web_table).try_into().context("[web]")?;
        let mut server: ServerConfig = toml::Value::Table(server_table)
            .try_into()
            .context("[server]")?;
        server
            .validate()
            .map_err(anyhow::Error::msg)
            .context("[server]")?;

        let default_database = format!("sqlite://{}", data_dir.join(DATABASE_FILE).display());
        if let Some(url) = database_url {
            auth.database_url = Secret::new(url);
        } else if !auth_sets_database {
            auth.database_url = Secret::new(default_database);
        }
        if database_url.is_some() || !chat_sets_database {
            // The chat service reads the auth service's users: same database unless told.
            chat.database_url = auth.database_url.clone();
        }
        if auth.jwt.algorithm == Algorithm::EdDSA && auth.jwt.ed25519_private_key_file.is_none() {
            auth.jwt.ed25519_private_key_file = Some(data_dir.join(SIGNING_KEY_FILE));
        }
        let emulator = std::env::var("FIRESTORE_EMULATOR_HOST").ok();
        let client =
            realtime::resolve(&web, aggregate.as_ref(), &mut auth, emulator).context("[web]")?;
        if server.content_security_policy == DEFAULT_CONTENT_SECURITY_POLICY {
            server.content_security_policy =
                client.content_security_policy(DEFAULT_CONTENT_SECURITY_POLICY);
        }
        auth.validate()?;
        chat.validate()?;
        if let Some(aggregate) = &aggregate {
            crate::aggregate::check(aggregate).context("[aggregate]")?;
        }
        Ok(Self {
            auth,
            chat,
            aggregate,
            client,
            server,
        })
    }

    /// Where the configured parts keep their data, for the start-up message.
    pub(crate) fn describe_storage(&self, data_dir: &Path) -> String {
        let database = self.auth.database_url.expose();
        let database = if let Some(path) = database.strip_prefix("sqlite://") {
            format!("SQLite {path}")
        } else {
            // Never print credentials: only the scheme and host part after '@'.
            let host = database.rsplit('@').next().unwrap_or("");
            format!("PostgreSQL {}", host.split('?').next().unwrap_or(host))
        };
        let key = self
            .auth
            .jwt
            .ed25519_private_key_file
            .as_ref()
            .map_or_else(|| "HS256 secret".into(), |p| p.display().to_string());
        format!(
            "data folder {} (users and chats: {database}; signing key: {key})",
            data_dir.display()
        )
    }
}

fn take_table(table: &mut toml::Table, name: &str) -> anyhow::Result<toml::Table> {
    match table.remove(name) {
        None => Ok(toml::Table::new()),
        Some(toml::Value::Table(t)) => Ok(t),
        Some(_) => anyhow::bail!("`{name}` must be a table: [{name}]"),
    }
}

/// Owner-only mode of the data folder: it holds the signing key, password hashes and messages.
#[cfg(unix)]
const DATA_DIR_MODE: u32 = 0o700;

/// The data folder, created if missing (mode 0700, as are missing parents), as an absolute
/// path. An existing folder that others can enter or read is tightened to 0700, with a warning.
/// The SQLite files inside get 0600 when the services connect (`confab_service_kit::sql`).
pub(crate) fn prepare_data_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DATA_DIR_MODE);
    }
    builder
        .create(dir)
        .with_context(|| format!("creating the data folder {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)
            .with_context(|| format!("reading the data folder {}", dir.display()))?
            .permissions()
            .mode()
            & 0o777;
        if mode != DATA_DIR_MODE {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DATA_DIR_MODE))
                .with_context(|| {
                    format!(
                        "restricting the data folder {} to its owner (chmod 700)",
                        dir.display()
                    )
                })?;
            tracing::warn!(
                path = %dir.display(),
                was = format!("{mode:o}"),
                now = "700",
                "Tightened the mode of the data folder, which others could enter or read."
            );
        }
    }
    dir.canonicalize()
        .with_context(|| format!("resolving the data folder {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_chat::LogConfig;

    #[test]
    fn no_file_gives_the_embedded_system_in_the_data_folder() {
        let config = UpConfig::from_table(toml::Table::new(), Path::new("/d"), None)
            .expect("defaults are valid");
        assert_eq!(config.auth.database_url.expose(), "sqlite:///d/confab.db");
        assert_eq!(config.chat.database_url.expose(), "sqlite:///d/confab.db");
        assert_eq!(
            config.auth.jwt.ed25519_private_key_file.as_deref(),
            Some(Path::new("/d/jwt-ed25519.pem"))
        );
        assert_eq!(config.chat.log, LogConfig::Memory {});
        assert!(config.aggregate.is_none());
        assert_eq!(config.client, ClientConfig::Sse);
        assert!(config.auth.firebase.is_none());
    }

    #[test]
    fn firestore_realtime_on_the_emulator_fills_in_the_auth_token_mode() {
        let text = "[aggregate.source]\ntype = \"kafka\"\n\
                    [[aggregate.sinks]]\ntype = \"firestore\"\nproject_id = \"p\"\n\
                    collection = \"c\"\n\
                    [web]\nrealtime = \"firestore\"\n\
                    [web.firestore]\nemulator_host = \"127.0.0.1:8080\"\n";
        let table = UpConfig::parse_table(text).expect("parses");
        let config = UpConfig::from_table(table, Path::new("/d"), None).expect("valid");
        assert!(matches!(
            config.auth.firebase,
            Some(confab_auth::FirebaseConfig::Emulator { .. })
        ));
        assert!(matches!(config.client, ClientConfig::Firestore { .. }));
        let typo = UpConfig::parse_table("[web]\nrealtme = \"sse\"\n").expect("parses");
        assert!(UpConfig::from_table(typo, Path::new("/d"), None).is_err());
    }

    #[test]
    fn the_database_flag_wins_over_the_file_and_reaches_both_services() {
        let table =
            UpConfig::parse_table("[auth]\ndatabase_url = \"sqlite://a.db\"\n").expect("parses");
        let config =
            UpConfig::from_table(table, Path::new("/d"), Some("sqlite://b.db")).expect("valid");
        assert_eq!(config.auth.database_url.expose(), "sqlite://b.db");
        assert_eq!(config.chat.database_url.expose(), "sqlite://b.db");
    }

    #[test]
    fn unknown_tables_and_keys_are_refused() {
        assert!(UpConfig::parse_table("[authh]\n").is_err());
        let table = UpConfig::parse_table("[chat]\nlistn = \"x\"\n").expect("parses");
        assert!(UpConfig::from_table(table, Path::new("/d"), None).is_err());
    }

    #[test]
    fn credentials_never_reach_the_start_up_message() {
        let config = UpConfig::from_table(
            toml::Table::new(),
            Path::new("/d"),
            Some("postgres://confab:hunter2@db:5432/confab"),
        )
        .expect("valid");
        let text = config.describe_storage(Path::new("/d"));
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("db:5432/confab"), "{text}");
    }

    #[test]
    fn a_leading_edge_reaches_the_aggregator_and_the_embedded_one_and_a_short_one_is_refused() {
        let text = "[aggregate.source]\ntype = \"kafka\"\n\
                    [[aggregate.sinks]]\ntype = \"stdout\"\n\
                    [aggregate.window]\nleading_edge_idle_ms = 15000\n\
                    [chat.embedded.policy]\nleading_edge_idle_ms = 5000\n";
        let table = UpConfig::parse_table(text).expect("parses");
        let config = UpConfig::from_table(table, Path::new("/d"), None).expect("valid");
        assert_eq!(
            config.aggregate.map(|a| a.window.leading_edge_idle_ms),
            Some(15_000)
        );
        assert_eq!(config.chat.embedded.policy.leading_edge_idle_ms, 5_000);
        let short = "[aggregate.source]\ntype = \"kafka\"\n\
                     [[aggregate.sinks]]\ntype = \"stdout\"\n\
                     [aggregate.window]\nleading_edge_idle_ms = 1000\n";
        let table = UpConfig::parse_table(short).expect("parses");
        let err = UpConfig::from_table(table, Path::new("/d"), None).expect_err("refused");
        assert!(
            format!("{err:#}").contains("leading_edge_idle_ms"),
            "{err:#}"
        );
    }

    #[cfg(unix)]
    fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn the_data_folder_is_created_owner_only_and_an_open_one_is_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().expect("tempdir");
        let fresh = root.path().join("a/b/data");
        let resolved = prepare_data_dir(&fresh).expect("created");
        assert_eq!(mode_of(&resolved), 0o700);
        assert_eq!(
            mode_of(&root.path().join("a")),
            0o700,
            "missing parents too"
        );

        let open = root.path().join("open");
        std::fs::create_dir(&open).expect("mkdir");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        prepare_data_dir(&open).expect("tightened");
        assert_eq!(mode_of(&open), 0o700);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_database_in_the_data_folder_and_its_wal_and_shm_are_owner_only() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = prepare_data_dir(&root.path().join("data")).expect("data folder");
        let config = UpConfig::from_table(toml::Table::new(), &dir, None).expect("defaults");
        let state = confab_auth::AppState::build(&config.auth)
            .await
            .expect("the auth service starts on the data folder");
        let file = dir.join(DATABASE_FILE);
        for suffix in ["", "-wal", "-shm"] {
            let path = PathBuf::from(format!("{}{suffix}", file.display()));
            assert!(path.exists(), "{}", path.display());
            assert_eq!(mode_of(&path), 0o600, "{}", path.display());
        }
        assert_eq!(mode_of(&dir.join(SIGNING_KEY_FILE)), 0o600);
        state.store().close().await;
    }

    #[test]
    fn the_signup_mode_is_read_from_the_auth_table() {
        let default =
            UpConfig::from_table(toml::Table::new(), Path::new("/d"), None).expect("defaults");
        assert_eq!(default.auth.signup.mode, confab_auth::SignupMode::Open);
        let text = "[auth.signup]\nmode = \"invite\"\ninvite_expiry_secs = 3600\n\
                    max_unused_invites_per_user = 3\n";
        let table = UpConfig::parse_table(text).expect("parses");
        let config = UpConfig::from_table(table, Path::new("/d"), None).expect("valid");
        assert_eq!(config.auth.signup.mode, confab_auth::SignupMode::Invite);
        assert_eq!(config.auth.signup.invite_expiry_secs, 3600);
        assert_eq!(config.auth.signup.max_unused_invites_per_user, 3);
        let typo = UpConfig::parse_table("[auth.signup]\nmode = \"shut\"\n").expect("parses");
        assert!(UpConfig::from_table(typo, Path::new("/d"), None).is_err());
    }

    #[test]
    fn the_example_files_parse() {
        let text = include_str!("../../configs/up/real-servers.toml");
        let table = UpConfig::parse_table(text).expect("parses");
        let config = UpConfig::from_table(table, Path::new("/d"), None).expect("valid");
        assert!(matches!(config.chat.log, LogConfig::Kafka(_)));
        assert!(config.aggregate.is_some());
        assert!(config.auth.database_url.expose().starts_with("postgres://"));
        assert!(matches!(config.client, ClientConfig::Firestore { .. }));

        // docker-compose.yml's: the addresses come from the environment and --database-url.
        let text = include_str!("../../configs/up/compose.toml");
        let table = UpConfig::parse_table(text).expect("parses");
        let config = UpConfig::from_table(table, Path::new("/d"), Some("postgres://db/confab"))
            .expect("valid");
        assert!(matches!(config.chat.log, LogConfig::Kafka(_)));
        assert_eq!(config.aggregate.map(|a| a.sinks.len()), Some(3));
    }
}
