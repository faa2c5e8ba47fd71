//! A private PostgreSQL cluster started from the machine's PostgreSQL binaries:
//! the embedded default of `ordo serve` and the database of the tests.
//!
//! The server runs under a tiny `sh` watchdog whose standard input is a pipe from
//! this process. When this process stops — cleanly, by panic or by `SIGKILL` — the
//! kernel closes the pipe, the watchdog reads end-of-file and shuts PostgreSQL down
//! (fast shutdown), so no cluster outlives its owner. No `unsafe` is needed for it.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

/// The superuser the cluster is created with.
const SUPERUSER: &str = "ordo";

/// The watchdog: runs PostgreSQL, waits for end-of-file on stdin, then stops it and,
/// for throw-away clusters, removes the data directory and the files beside it.
const WATCHDOG: &str = r#"
"$@" &
pg=$!
while read -r _; do :; done
kill -INT "$pg" 2>/dev/null
wait "$pg"
if [ -n "$ORDO_REMOVE_DATA_DIR" ]; then
  rm -rf "$ORDO_REMOVE_DATA_DIR" "$ORDO_REMOVE_DATA_DIR.log" "$ORDO_REMOVE_DATA_DIR.password"
fi
"#;

/// How much a cluster may trade safety for speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every commit reaches the disk; the data directory is kept. For `ordo serve`.
    Durable,
    /// No fsync, and the data directory is removed when the cluster stops. For tests.
    Ephemeral,
}

/// Where and how to run a local cluster.
#[derive(Debug, Clone)]
pub struct LocalClusterConfig {
    /// The data directory; created and initialised on first use.
    pub data_dir: PathBuf,
    /// Durable or throw-away.
    pub durability: Durability,
}

/// Why a local cluster could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No PostgreSQL server binaries were found.
    #[error(
        "PostgreSQL server binaries (initdb, postgres) were not found on PATH, via `pg_config --bindir`, \
         or under /usr/lib/postgresql/*/bin. Install them (Debian/Ubuntu: `apt-get install postgresql`) \
         or set DATABASE_URL to use an existing PostgreSQL server"
    )]
    BinariesNotFound,
    /// Running as root without a `postgres` user to drop privileges to.
    #[error(
        "PostgreSQL refuses to run as root and there is no `postgres` system user to run it as. \
         Run Ordo as an ordinary user, create a `postgres` user, or set DATABASE_URL"
    )]
    NoUnprivilegedUser,
    /// The unprivileged user cannot reach the data directory.
    #[error(
        "the `postgres` user cannot reach the data directory {data_dir}: {blocking} is not searchable by it. \
         Choose a data directory outside it (--data-dir / ORDO_DATA_DIR), or set DATABASE_URL"
    )]
    DataDirUnreachable {
        /// The data directory asked for.
        data_dir: PathBuf,
        /// The ancestor that blocks the way.
        blocking: PathBuf,
    },
    /// `initdb` or `postgres` failed.
    #[error("{what} failed: {details}")]
    Failed {
        /// Which step.
        what: &'static str,
        /// What it printed.
        details: String,
    },
    /// A file-system or process error.
    #[error("{what}: {source}")]
    Io {
        /// Which step.
        what: String,
        /// The cause.
        source: io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Io { what, source }
}

/// The user PostgreSQL runs as when this process is root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

/// A running local cluster. Dropping it stops the server if this value started it.
#[derive(Debug)]
pub struct LocalCluster {
    data_dir: PathBuf,
    port: u16,
    password: String,
    watchdog: Option<Watchdog>,
}

#[derive(Debug)]
struct Watchdog {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Watchdog {
    fn stop(&mut self) {
        // Closing the pipe is the stop signal; waiting makes the shutdown complete.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            watchdog.stop();
        }
    }
}

impl LocalCluster {
    /// Starts the cluster of `config.data_dir`, initialising it on first use, or
    /// reuses one already running there.
    ///
    /// # Errors
    /// When the binaries are missing, the data directory cannot be used, or the
    /// server does not come up within 60 seconds.
    pub async fn start(config: LocalClusterConfig) -> Result<Self, ClusterError> {
        let bin_dir = find_bin_dir()?;
        let run_as = run_as()?;
        let data_dir = absolute(&config.data_dir)?;
        prepare_data_dir(&data_dir, run_as)?;
        let password = read_or_create_password(&data_dir, run_as)?;

        if !data_dir.join("PG_VERSION").exists() {
            initdb(&bin_dir, &data_dir, run_as, config.durability)?;
        }
        if let Some(port) = running_port(&data_dir) {
            let cluster = Self {
                data_dir,
                port,
                password,
                watchdog: None,
            };
            if cluster
                .wait_until_ready(Duration::from_secs(5))
                .await
                .is_ok()
            {
                tracing::info!(
                    port,
                    "reusing the PostgreSQL cluster already running in the data directory"
                );
                return Ok(cluster);
            }
            return Err(ClusterError::Failed {
                what: "connecting to the PostgreSQL server already running in the data directory",
                details: format!(
                    "{} names port {port}, which does not answer; stop that server or remove a stale postmaster.pid",
                    cluster.data_dir.join("postmaster.pid").display()
                ),
            });
        }

        let mut last_error = None;
        for _ in 0..3 {
            let port = free_port()?;
            let watchdog = spawn_server(&bin_dir, &data_dir, port, run_as, config.durability)?;
            let cluster = Self {
                data_dir: data_dir.clone(),
                port,
                password: password.clone(),
                watchdog: Some(watchdog),
            };
            match cluster.wait_until_ready(Duration::from_secs(60)).await {
                Ok(()) => {
                    tracing::info!(port, data_dir = %cluster.data_dir.display(), "started a local PostgreSQL cluster");
                    return Ok(cluster);
                }
                // Another process may have taken the port between probe and start.
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or(ClusterError::Failed {
            what: "starting postgres",
            details: "no attempt was made".into(),
        }))
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A connection URL for `database` as the cluster's superuser.
    pub fn database_url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// Creates `database` unless it exists.
    ///
    /// # Errors
    /// When the server cannot be reached or refuses.
    pub async fn ensure_database(&self, database: &str) -> anyhow::Result<()> {
        let mut conn = AsyncPgConnection::establish(&self.database_url("postgres")).await?;
        let exists: i64 = diesel::sql_query(format!(
            "SELECT 1 AS found FROM pg_database WHERE datname = '{}'",
            database.replace('\'', "''")
        ))
        .execute(&mut conn)
        .await? as i64;
        if exists == 0 {
            diesel::sql_query(format!(
                "CREATE DATABASE \"{}\"",
                database.replace('"', "\"\"")
            ))
            .execute(&mut conn)
            .await?;
        }
        Ok(())
    }

    /// Stops the server if this value started it, waiting until it is down.
    pub fn stop(mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            watchdog.stop();
        }
    }

    async fn wait_until_ready(&self, limit: Duration) -> Result<(), ClusterError> {
        let deadline = Instant::now() + limit;
        let url = self.database_url("postgres");
        loop {
            match AsyncPgConnection::establish(&url).await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(ClusterError::Failed {
                        what: "starting postgres",
                        details: format!("{e}; server log:\n{}", self.log_tail()),
                    });
                }
                Err(_) => {}
            }
            if let Some(watchdog) = &self.watchdog
                && !watchdog_alive(watchdog)
            {
                return Err(ClusterError::Failed {
                    what: "starting postgres",
                    details: format!("the server exited; server log:\n{}", self.log_tail()),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_tail(&self) -> String {
        let Ok(mut file) = fs::File::open(log_path(&self.data_dir)) else {
            return String::from("(no log)");
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(4000)));
        let mut tail = String::new();
        let _ = file.read_to_string(&mut tail);
        tail
    }
}

fn watchdog_alive(watchdog: &Watchdog) -> bool {
    // `try_wait` needs `&mut`; /proc tells the same without it.
    Path::new(&format!("/proc/{}", watchdog.child.id())).exists()
}

/// The server log sits beside the data directory, not in it, so that it survives
/// the removal of a throw-away cluster's data long enough to be read.
fn log_path(data_dir: &Path) -> PathBuf {
    beside(data_dir, "log")
}

/// `<parent>/<name>.<extension>` for a data directory `<parent>/<name>`: the files
/// the watchdog removes together with a throw-away cluster's data.
fn beside(data_dir: &Path, extension: &str) -> PathBuf {
    let name = data_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pg".into());
    data_dir.with_file_name(format!("{name}.{extension}"))
}

fn absolute(path: &Path) -> Result<PathBuf, ClusterError> {
    std::path::absolute(path).map_err(io_err(format!("resolving {}", path.display())))
}

/// Finds the directory holding `initdb` and `postgres`.
fn find_bin_dir() -> Result<PathBuf, ClusterError> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has_both(&dir) {
                // Debian links the binaries into PATH; the real directory holds the
                // rest of the installation that postgres expects beside itself.
                let real = fs::canonicalize(dir.join("postgres"))
                    .ok()
                    .and_then(|p| p.parent().map(Path::to_path_buf))
                    .filter(|d| has_both(d))
                    .unwrap_or(dir);
                return Ok(real);
            }
        }
    }
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if has_both(&dir) {
            return Ok(dir);
        }
    }
    let mut candidates: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let dir = entry.path().join("bin");
            has_both(&dir).then_some((version, dir))
        })
        .collect();
    candidates.sort();
    candidates
        .pop()
        .map(|(_, dir)| dir)
        .ok_or(ClusterError::BinariesNotFound)
}

/// PostgreSQL refuses to run as root; as root, run it as the `postgres` user.
fn run_as() -> Result<Option<RunAs>, ClusterError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    match nix::unistd::User::from_name("postgres") {
        Ok(Some(user)) => Ok(Some(RunAs {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        })),
        _ => Err(ClusterError::NoUnprivilegedUser),
    }
}

/// Creates the data directory, hands it to the unprivileged user and checks that
/// user can reach it through every ancestor.
fn prepare_data_dir(data_dir: &Path, run_as: Option<RunAs>) -> Result<(), ClusterError> {
    let parent = data_dir.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(parent).map_err(io_err(format!("creating {}", parent.display())))?;
    if let Some(user) = run_as
        && let Some(blocking) = first_unsearchable_ancestor(data_dir, user)
    {
        return Err(ClusterError::DataDirUnreachable {
            data_dir: data_dir.to_path_buf(),
            blocking,
        });
    }
    if !data_dir.exists() {
        fs::create_dir(data_dir).map_err(io_err(format!("creating {}", data_dir.display())))?;
    }
    fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700))
        .map_err(io_err(format!("restricting {}", data_dir.display())))?;
    if let Some(user) = run_as {
        std::os::unix::fs::chown(data_dir, Some(user.uid), Some(user.gid)).map_err(io_err(
            format!("handing {} to the postgres user", data_dir.display()),
        ))?;
    }
    Ok(())
}

fn first_unsearchable_ancestor(data_dir: &Path, user: RunAs) -> Option<PathBuf> {
    data_dir.ancestors().skip(1).find_map(|dir| {
        let meta = fs::metadata(dir).ok()?;
        let mode = meta.mode();
        let searchable = if meta.uid() == user.uid {
            mode & 0o100 != 0
        } else if meta.gid() == user.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        (!searchable).then(|| dir.to_path_buf())
    })
}

/// The superuser's password lives beside the data directory, readable by its owner
/// only, so that a second start of the same data directory can connect.
fn read_or_create_password(data_dir: &Path, run_as: Option<RunAs>) -> Result<String, ClusterError> {
    let path = password_path(data_dir);
    if let Ok(existing) = fs::read_to_string(&path) {
        let existing = existing.trim().to_owned();
        if !existing.is_empty() {
            return Ok(existing);
        }
    }
    let password = uuid::Uuid::new_v4().simple().to_string();
    fs::write(&path, &password).map_err(io_err(format!("writing {}", path.display())))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
        .map_err(io_err(format!("restricting {}", path.display())))?;
    if let Some(user) = run_as {
        std::os::unix::fs::chown(&path, Some(user.uid), Some(user.gid)).map_err(io_err(
            format!("handing {} to the postgres user", path.display()),
        ))?;
    }
    Ok(password)
}

fn password_path(data_dir: &Path) -> PathBuf {
    beside(data_dir, "password")
}

fn command_as(program: &Path, run_as: Option<RunAs>, cwd: &Path) -> Command {
    let mut command = Command::new(program);
    command.current_dir(cwd);
    if let Some(user) = run_as {
        command.uid(user.uid).gid(user.gid);
    }
    command
}

fn initdb(
    bin_dir: &Path,
    data_dir: &Path,
    run_as: Option<RunAs>,
    durability: Durability,
) -> Result<(), ClusterError> {
    let mut command = command_as(&bin_dir.join("initdb"), run_as, data_dir);
    command
        .arg("-D")
        .arg(data_dir)
        .args([
            "-U",
            SUPERUSER,
            "-E",
            "UTF8",
            "--locale=C",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ])
        .arg(format!("--pwfile={}", password_path(data_dir).display()));
    if durability == Durability::Ephemeral {
        command.arg("--no-sync");
    }
    let output = command.output().map_err(io_err("running initdb"))?;
    if !output.status.success() {
        return Err(ClusterError::Failed {
            what: "initdb",
            details: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    Ok(())
}

/// The port of a server already running in `data_dir`, from its `postmaster.pid`
/// (line 1: pid, line 4: port) when that process is alive.
fn running_port(data_dir: &Path) -> Option<u16> {
    let pid_file = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let mut lines = pid_file.lines();
    let pid: u32 = lines.next()?.trim().parse().ok()?;
    let port: u16 = lines.nth(2)?.trim().parse().ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(port)
}

fn free_port() -> Result<u16, ClusterError> {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(io_err("finding a free loopback port"))
}

fn spawn_server(
    bin_dir: &Path,
    data_dir: &Path,
    port: u16,
    run_as: Option<RunAs>,
    durability: Durability,
) -> Result<Watchdog, ClusterError> {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path(data_dir))
        .map_err(io_err("opening the PostgreSQL log"))?;
    if let Some(user) = run_as {
        // The watchdog, running as that user, removes a throw-away cluster's log.
        std::os::unix::fs::chown(log_path(data_dir), Some(user.uid), Some(user.gid))
            .map_err(io_err("handing the PostgreSQL log to the postgres user"))?;
    }
    let log_err = log
        .try_clone()
        .map_err(io_err("opening the PostgreSQL log"))?;
    let mut command = command_as(Path::new("/bin/sh"), run_as, data_dir);
    command
        .args(["-c", WATCHDOG, "ordo-postgres-watchdog"])
        .arg(bin_dir.join("postgres"))
        .arg("-D")
        .arg(data_dir)
        .args(["-p", &port.to_string()])
        .args(["-c", "listen_addresses=127.0.0.1"])
        .arg("-c")
        .arg(format!("unix_socket_directories={}", data_dir.display()))
        .args(["-c", "max_connections=200"]);
    if durability == Durability::Ephemeral {
        command
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .env("ORDO_REMOVE_DATA_DIR", data_dir);
    } else {
        command.env_remove("ORDO_REMOVE_DATA_DIR");
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(io_err("starting postgres"))?;
    let stdin = child.stdin.take();
    Ok(Watchdog { child, stdin })
}
