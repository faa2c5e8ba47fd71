//! Settings: built-in defaults < an optional TOML file < `ORDO_*` environment
//! variables (and `DATABASE_URL`) < command-line flags.
//!
//! The settings are nested by concern (`http`, `database`, `orders`); the TOML file
//! uses the same sections. Environment variables keep short flat names
//! (`ORDO_DATABASE_POOL_SIZE`, `ORDO_LISTEN`); any nested key can also be set as
//! `ORDO_<SECTION>__<KEY>` (e.g. `ORDO_HTTP__MAX_CONNECTIONS`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::SecretString;
use serde::Deserialize;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Everything Ordo can be configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The HTTP server.
    pub http: HttpSettings,
    /// The database and its connections.
    pub database: DatabaseSettings,
    /// The order rules.
    pub orders: OrderSettings,
    /// The basket rules.
    pub baskets: BasketSettings,
    /// Users, tokens and secrets.
    pub auth: AuthSettings,
    /// `text` or `json` (`ORDO_LOG_FORMAT`).
    pub log_format: LogFormat,
    /// Load sample data on the first start of a new embedded database
    /// (`ORDO_SAMPLE_DATA`).
    pub sample_data: bool,
}

/// The HTTP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HttpSettings {
    /// Address to serve on (`ORDO_LISTEN`).
    pub listen: SocketAddr,
    /// Worker threads; one per core when unset (`ORDO_WORKERS`).
    pub workers: Option<usize>,
    /// Seconds in-flight requests get to finish on shutdown, and background tasks
    /// get to finish their work after that (`ORDO_SHUTDOWN_TIMEOUT_SECS`).
    pub shutdown_timeout_secs: u64,
    /// Seconds a client has to send a request's head, and then its whole body; a
    /// stalled request is answered 408 and its connection closed
    /// (`ORDO_REQUEST_TIMEOUT_SECS`).
    pub request_timeout_secs: u64,
    /// Open connections per worker at most; more wait in the listen backlog
    /// (`ORDO_MAX_CONNECTIONS`).
    pub max_connections: usize,
}

/// The database and its connections.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DatabaseSettings {
    /// An existing PostgreSQL database (`DATABASE_URL`); when unset, Ordo starts its
    /// own cluster in `data_dir`. It may hold a password, so it never prints.
    pub url: Option<SecretString>,
    /// Where the embedded PostgreSQL cluster keeps its data (`ORDO_DATA_DIR`).
    pub data_dir: PathBuf,
    /// Connections in the pool (`ORDO_DATABASE_POOL_SIZE`).
    pub pool_size: usize,
    /// Seconds a request waits for a free connection before it is answered 503
    /// (`ORDO_DATABASE_POOL_WAIT_SECS`).
    pub pool_wait_secs: u64,
    /// `statement_timeout` of Ordo's connections (`ORDO_DATABASE_STATEMENT_TIMEOUT_MS`).
    pub statement_timeout_ms: u64,
    /// `lock_timeout` of Ordo's connections (`ORDO_DATABASE_LOCK_TIMEOUT_MS`).
    pub lock_timeout_ms: u64,
    /// `idle_in_transaction_session_timeout` of Ordo's connections
    /// (`ORDO_DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS`).
    pub idle_in_transaction_timeout_ms: u64,
}

/// The order rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct OrderSettings {
    /// Minimum minutes between two orders of one customer (`ORDO_SPACING_WINDOW_MINUTES`).
    pub spacing_window_minutes: i64,
    /// Currency of products created without one (`ORDO_DEFAULT_CURRENCY`).
    pub default_currency: String,
}

/// The basket rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BasketSettings {
    /// Seconds a basket lives after its last change, 60 to 30 days
    /// (`ORDO_BASKET_TTL_SECS`).
    pub ttl_secs: u64,
}

impl Default for BasketSettings {
    fn default() -> Self {
        Self {
            ttl_secs: ordo_domain::baskets::BasketTtl::DEFAULT_SECS,
        }
    }
}

/// Users, tokens and secrets. Secrets never print.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    /// The HMAC key access tokens are signed with, at least 32 bytes
    /// (`ORDO_JWT_SECRET`). Required with `DATABASE_URL`; in sandbox mode (embedded
    /// database, no secret) one is generated and kept in the database.
    pub jwt_secret: Option<SecretString>,
    /// The key that will encrypt stored secrets (`ORDO_DATA_KEY`). Required with
    /// `DATABASE_URL`; generated and kept in the database in sandbox mode.
    pub data_key: Option<SecretString>,
    /// An administrator created when there is no user yet (`ORDO_ADMIN_EMAIL`).
    pub admin_email: Option<String>,
    /// That administrator's password (`ORDO_ADMIN_PASSWORD`).
    pub admin_password: Option<SecretString>,
    /// `iss` of access tokens (`ORDO_AUTH__ISSUER`).
    pub issuer: String,
    /// `aud` of access tokens (`ORDO_AUTH__AUDIENCE`).
    pub audience: String,
    /// Seconds an access token is accepted (`ORDO_ACCESS_TTL_SECS`).
    pub access_ttl_secs: u64,
    /// Seconds a refresh token can be exchanged (`ORDO_REFRESH_TTL_SECS`).
    pub refresh_ttl_secs: u64,
    /// Seconds of clock skew tolerated on `exp` and `iat` (`ORDO_AUTH__LEEWAY_SECS`).
    pub leeway_secs: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            data_key: None,
            admin_email: None,
            admin_password: None,
            issuer: "ordo".into(),
            audience: "ordo-api".into(),
            access_ttl_secs: 900,
            refresh_ttl_secs: 2_592_000,
            leeway_secs: 30,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            http: HttpSettings::default(),
            database: DatabaseSettings::default(),
            orders: OrderSettings::default(),
            baskets: BasketSettings::default(),
            auth: AuthSettings::default(),
            log_format: LogFormat::Text,
            sample_data: true,
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: None,
            shutdown_timeout_secs: 30,
            request_timeout_secs: 10,
            max_connections: 10_000,
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        let pool = ordo_postgres::PoolConfig::default();
        Self {
            url: None,
            data_dir: PathBuf::from(".ordo"),
            pool_size: pool.max_size,
            pool_wait_secs: pool.wait.as_secs(),
            statement_timeout_ms: millis(pool.statement_timeout),
            lock_timeout_ms: millis(pool.lock_timeout),
            idle_in_transaction_timeout_ms: millis(pool.idle_in_transaction_timeout),
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Default for OrderSettings {
    fn default() -> Self {
        Self {
            spacing_window_minutes: ordo_domain::orders::SpacingWindow::DEFAULT_MINUTES,
            default_currency: "EUR".into(),
        }
    }
}

impl DatabaseSettings {
    /// The pool configuration these settings describe.
    pub fn pool_config(&self) -> ordo_postgres::PoolConfig {
        ordo_postgres::PoolConfig {
            max_size: self.pool_size,
            wait: Duration::from_secs(self.pool_wait_secs),
            statement_timeout: Duration::from_millis(self.statement_timeout_ms),
            lock_timeout: Duration::from_millis(self.lock_timeout_ms),
            idle_in_transaction_timeout: Duration::from_millis(self.idle_in_transaction_timeout_ms),
        }
    }
}

impl HttpSettings {
    /// How long a client has for a request's head, and then for its body.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs.max(1))
    }

    /// How long in-flight requests, then background tasks, get on shutdown.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }
}

/// The flat environment names of the README, and the setting each one sets.
const FLAT_ENV_NAMES: &[(&str, &str)] = &[
    ("listen", "http.listen"),
    ("workers", "http.workers"),
    ("shutdown_timeout_secs", "http.shutdown_timeout_secs"),
    ("request_timeout_secs", "http.request_timeout_secs"),
    ("max_connections", "http.max_connections"),
    ("data_dir", "database.data_dir"),
    ("database_pool_size", "database.pool_size"),
    ("database_pool_wait_secs", "database.pool_wait_secs"),
    (
        "database_statement_timeout_ms",
        "database.statement_timeout_ms",
    ),
    ("database_lock_timeout_ms", "database.lock_timeout_ms"),
    (
        "database_idle_in_transaction_timeout_ms",
        "database.idle_in_transaction_timeout_ms",
    ),
    ("spacing_window_minutes", "orders.spacing_window_minutes"),
    ("default_currency", "orders.default_currency"),
    ("basket_ttl_secs", "baskets.ttl_secs"),
    ("jwt_secret", "auth.jwt_secret"),
    ("data_key", "auth.data_key"),
    ("admin_email", "auth.admin_email"),
    ("admin_password", "auth.admin_password"),
    ("access_ttl_secs", "auth.access_ttl_secs"),
    ("refresh_ttl_secs", "auth.refresh_ttl_secs"),
    ("log_format", "log_format"),
    ("sample_data", "sample_data"),
];

impl Settings {
    /// Loads the settings. `file` must exist when given; otherwise `ordo.toml` in the
    /// working directory is read if present.
    ///
    /// # Errors
    /// When the file is missing or a value has the wrong type.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let toml = match file {
            Some(path) => {
                anyhow::ensure!(
                    path.is_file(),
                    "configuration file {} does not exist",
                    path.display()
                );
                Toml::file_exact(path)
            }
            None => Toml::file("ordo.toml"),
        };
        // `ORDO_CONFIG` names the file (a CLI flag); it is not a setting.
        let env = Env::prefixed("ORDO_").ignore(&["config"]).map(|key| {
            let key = key.as_str().to_ascii_lowercase();
            FLAT_ENV_NAMES
                .iter()
                .find(|(flat, _)| *flat == key)
                .map_or_else(
                    || key.replace("__", "."),
                    |(_, nested)| (*nested).to_owned(),
                )
                .into()
        });
        Figment::new()
            .merge(toml)
            .merge(env)
            .merge(
                Env::raw()
                    .only(&["DATABASE_URL"])
                    .map(|_| "database.url".into()),
            )
            .extract()
            .context("reading the configuration")
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
mod tests {
    use super::*;

    #[test]
    fn flat_and_nested_environment_names_reach_the_nested_settings() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("ORDO_DATABASE_POOL_SIZE", "7");
            jail.set_env("ORDO_LISTEN", "0.0.0.0:9000");
            jail.set_env("ORDO_HTTP__MAX_CONNECTIONS", "12");
            jail.set_env("ORDO_SPACING_WINDOW_MINUTES", "60");
            jail.set_env("DATABASE_URL", "postgres://u:secret@db/ordo");
            let settings = Settings::load(None).map_err(|e| e.to_string())?;
            assert_eq!(settings.database.pool_size, 7);
            assert_eq!(settings.http.listen.port(), 9000);
            assert_eq!(settings.http.max_connections, 12);
            assert_eq!(settings.orders.spacing_window_minutes, 60);
            assert!(settings.database.url.is_some());
            Ok(())
        });
    }

    #[test]
    fn a_toml_file_uses_the_same_sections() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "ordo.toml",
                "sample_data = false\n[http]\nrequest_timeout_secs = 3\n[orders]\ndefault_currency = \"DKK\"\n",
            )?;
            let settings = Settings::load(None).map_err(|e| e.to_string())?;
            assert!(!settings.sample_data);
            assert_eq!(settings.http.request_timeout_secs, 3);
            assert_eq!(settings.orders.default_currency, "DKK");
            Ok(())
        });
    }

    #[test]
    fn auth_secrets_come_from_flat_names_and_never_print() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("ORDO_JWT_SECRET", "s3cret-s3cret-s3cret-s3cret-s3cret");
            jail.set_env("ORDO_DATA_KEY", "data-key-data-key");
            jail.set_env("ORDO_ADMIN_EMAIL", "boss@example.com");
            jail.set_env("ORDO_ADMIN_PASSWORD", "hunter2hunter2");
            let settings = Settings::load(None).map_err(|e| e.to_string())?;
            assert!(settings.auth.jwt_secret.is_some());
            assert!(settings.auth.data_key.is_some());
            assert_eq!(
                settings.auth.admin_email.as_deref(),
                Some("boss@example.com")
            );
            assert_eq!(settings.auth.access_ttl_secs, 900);
            let printed = format!("{settings:?}");
            assert!(!printed.contains("s3cret") && !printed.contains("hunter2"));
            Ok(())
        });
    }

    #[test]
    fn the_database_url_never_prints() {
        let settings = Settings {
            database: DatabaseSettings {
                url: Some("postgres://u:hunter2@db/ordo".into()),
                ..DatabaseSettings::default()
            },
            ..Settings::default()
        };
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}
