//! Settings: built-in defaults < an optional TOML file < `ORDO_*` environment
//! variables (and `DATABASE_URL`) < command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Everything Ordo can be configured with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Address to serve HTTP on (`ORDO_LISTEN`).
    pub listen: SocketAddr,
    /// Where the embedded PostgreSQL cluster keeps its data (`ORDO_DATA_DIR`);
    /// unused when `database_url` is set.
    pub data_dir: PathBuf,
    /// An existing PostgreSQL database (`DATABASE_URL`); when unset, Ordo starts its
    /// own cluster in `data_dir`.
    pub database_url: Option<String>,
    /// Connections in the pool (`ORDO_DATABASE_POOL_SIZE`).
    pub database_pool_size: usize,
    /// Minimum minutes between two orders of one customer (`ORDO_SPACING_WINDOW_MINUTES`).
    pub spacing_window_minutes: i64,
    /// Currency of products created without one (`ORDO_DEFAULT_CURRENCY`).
    pub default_currency: String,
    /// `text` or `json` (`ORDO_LOG_FORMAT`).
    pub log_format: LogFormat,
    /// Load sample data on the first start of an empty embedded database
    /// (`ORDO_SAMPLE_DATA`).
    pub sample_data: bool,
    /// HTTP worker threads; one per core when unset (`ORDO_WORKERS`).
    pub workers: Option<usize>,
    /// Seconds in-flight requests get to finish on shutdown (`ORDO_SHUTDOWN_TIMEOUT_SECS`).
    pub shutdown_timeout_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from(".ordo"),
            database_url: None,
            database_pool_size: 16,
            spacing_window_minutes: ordo_domain::orders::SpacingWindow::DEFAULT_MINUTES,
            default_currency: "EUR".into(),
            log_format: LogFormat::Text,
            sample_data: true,
            workers: None,
            shutdown_timeout_secs: 30,
        }
    }
}

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
        Figment::from(Serialized::defaults(Settings::default()))
            .merge(toml)
            .merge(Env::prefixed("ORDO_"))
            .merge(Env::raw().only(&["DATABASE_URL"]))
            .extract()
            .context("reading the configuration")
    }
}
