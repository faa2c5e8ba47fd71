//! Where the data lives: an existing database, or the embedded cluster.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ordo_postgres::{ClusterError, Durability, LocalCluster, LocalClusterConfig, run_migrations};
use secrecy::{ExposeSecret, SecretString};

use crate::config::Settings;

/// The database of the embedded cluster.
const EMBEDDED_DATABASE: &str = "ordo";

/// Where the data lives: a database URL, and the local cluster if Ordo started one.
#[derive(Debug)]
pub struct Database {
    /// The connection URL; it holds a password, so it never prints.
    pub url: SecretString,
    /// The embedded cluster, stopped when dropped.
    pub cluster: Option<LocalCluster>,
}

/// Connects to `DATABASE_URL`, or starts the embedded cluster in the data directory,
/// and applies pending migrations.
///
/// # Errors
/// When the cluster cannot be started or migrations fail.
pub async fn prepare_database(settings: &Settings) -> anyhow::Result<Database> {
    let database = match &settings.database.url {
        Some(url) => Database {
            url: url.clone(),
            cluster: None,
        },
        None => {
            let cluster = start_embedded(&settings.database.data_dir.join("pg")).await?;
            cluster
                .ensure_database(EMBEDDED_DATABASE)
                .await
                .context("creating the embedded database")?;
            Database {
                url: cluster.database_url(EMBEDDED_DATABASE).into(),
                cluster: Some(cluster),
            }
        }
    };
    run_migrations(database.url.expose_secret()).await?;
    Ok(database)
}

async fn start_embedded(data_dir: &Path) -> anyhow::Result<LocalCluster> {
    let config = |data_dir: PathBuf| LocalClusterConfig {
        data_dir,
        durability: Durability::Durable,
    };
    match LocalCluster::start(config(data_dir.to_path_buf())).await {
        Err(ClusterError::DataDirUnreachable {
            data_dir: wanted,
            blocking,
        }) => {
            // Running as root in a 0700 home directory: PostgreSQL's own user cannot
            // reach the data directory there, so keep it where it can, and say so.
            let fallback = fallback_data_dir(&wanted);
            tracing::warn!(
                wanted = %wanted.display(),
                blocking = %blocking.display(),
                using = %fallback.display(),
                "the postgres user cannot reach the data directory; using a fallback location (set ORDO_DATA_DIR to choose one)"
            );
            Ok(LocalCluster::start(config(fallback)).await?)
        }
        other => Ok(other?),
    }
}

/// `/var/lib/ordo/<name>-<hash>/pg`: stable for one requested directory, distinct
/// for different ones.
fn fallback_data_dir(wanted: &Path) -> PathBuf {
    let text = wanted.to_string_lossy();
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let name = wanted
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ordo".into());
    PathBuf::from("/var/lib/ordo")
        .join(format!("{name}-{hash:016x}"))
        .join("pg")
}
