//! A private PostgreSQL cluster started from the machine's PostgreSQL binaries:
//! the embedded default of `ordo serve` and the database of the tests.
//!
//! The server runs under a tiny `sh` watchdog whose standard input is a pipe from
//! this process. When this process stops — cleanly, by panic or by `SIGKILL` — the
//! kernel closes the pipe, the watchdog reads end-of-file and shuts PostgreSQL down
//! (fast shutdown), so no cluster outlives its owner. No `unsafe` is needed for it.
//! When PostgreSQL exits by itself, the watchdog reaps it and exits too, so that no
//! zombie keeps `postmaster.pid` looking alive and the exit is visible to this
//! process at once.
//!
//! - **Own process group.** The watchdog and PostgreSQL run in a process group of
//!   their own: a terminal's Ctrl-C reaches Ordo only, which stops the cluster last.
//! - **Stable port.** A data directory's port is chosen once (a free loopback port)
//!   and recorded beside it (`<data dir>.port`); every start uses it again.
//! - **Fast failure.** While waiting for readiness the launcher watches the server
//!   process: when it exits, the start fails at once with the tail of the server log
//!   and a fix.
//! - **Supervision.** [`Supervisor::run`] notices that the postmaster died and starts
//!   it again on the same port with backoff; [`ClusterHealth`] says meanwhile that it
//!   is down.
//! - **Two Ordos on one data directory.** The second start reuses the running
//!   cluster; whoever supervises it takes the cluster over when the Ordo that
//!   started it stops (its supervisor starts the server again, on the same port,
//!   under its own watchdog). One data directory can therefore serve several Ordos
//!   of one machine, none of which depends on the others staying up.

use std::fs;
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection};

/// The superuser the cluster is created with.
const SUPERUSER: &str = "ordo";

/// How long a first start may take until the server accepts connections.
const START_LIMIT: Duration = Duration::from_secs(60);
/// How long a restart may take; crash recovery replays the WAL first.
const RESTART_LIMIT: Duration = Duration::from_secs(30);
/// How often the supervisor looks at the postmaster.
const SUPERVISION_INTERVAL: Duration = Duration::from_millis(200);
/// The first wait before a restart, doubled after every failed one up to the maximum.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// One connection attempt while waiting for readiness: a port held by a program that
/// accepts but never answers must not stall the wait.
const CONNECT_ATTEMPT_LIMIT: Duration = Duration::from_secs(1);

/// The watchdog: runs PostgreSQL and exits when it exits. A background reader waits
/// for end-of-file on stdin (fd 3 carries it past the `/dev/null` that `sh` gives
/// background jobs), then stops PostgreSQL. Only when that reader finished — the
/// owner is gone, not PostgreSQL alone — are a throw-away cluster's data directory
/// and the files beside it removed.
const WATCHDOG: &str = r#"
"$@" &
pg=$!
exec 3<&0
{ while read -r _; do :; done; kill -INT "$pg" 2>/dev/null; } <&3 &
owner=$!
exec 3<&-
wait "$pg"
status=$?
kill "$owner" 2>/dev/null
if wait "$owner" 2>/dev/null && [ -n "$ORDO_REMOVE_DATA_DIR" ]; then
  rm -rf "$ORDO_REMOVE_DATA_DIR" "$ORDO_REMOVE_DATA_DIR.log" "$ORDO_REMOVE_DATA_DIR.password" "$ORDO_REMOVE_DATA_DIR.port"
fi
exit "$status"
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

/// Runs file-system and process work on the blocking pool, in the caller's span.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ClusterError> + Send + 'static,
) -> Result<T, ClusterError> {
    let span = tracing::Span::current();
    match tokio::task::spawn_blocking(move || span.in_scope(work)).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(ClusterError::Failed {
            what: "a blocking launcher step",
            details: e.to_string(),
        }),
    }
}

/// The user PostgreSQL runs as when this process is root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

/// A running local cluster. Dropping it stops the server if this value started it
/// (or its supervisor restarted it).
#[derive(Debug)]
pub struct LocalCluster {
    shared: Arc<Shared>,
}

/// What the cluster handle and its supervisor share.
#[derive(Debug)]
struct Shared {
    data_dir: PathBuf,
    port: u16,
    password: String,
    bin_dir: PathBuf,
    run_as: Option<RunAs>,
    durability: Durability,
    /// The watchdog this process started, if any: absent when the cluster was
    /// reused from another process, or after it exited.
    watchdog: Mutex<Option<Watchdog>>,
    /// Set once the owner stops the cluster: no restart after that.
    stopping: AtomicBool,
    up: Arc<AtomicBool>,
}

#[derive(Debug)]
struct Watchdog {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Where this start's output begins in the server log.
    log_start: u64,
}

impl Watchdog {
    fn stop(&mut self) {
        // Closing the pipe is the stop signal; waiting makes the shutdown complete.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }

    /// How the watchdog (and so PostgreSQL) ended, once it has; reaps it.
    fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.shared.stop();
    }
}

/// Whether the embedded server is up, as its [`Supervisor`] last saw it. Cheap to
/// clone and to read, e.g. from a readiness probe.
#[derive(Debug, Clone)]
pub struct ClusterHealth(Arc<AtomicBool>);

impl ClusterHealth {
    /// `false` from the moment the supervisor notices that the server died until
    /// it accepts connections again, and after the cluster was stopped.
    pub fn is_up(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Keeps the cluster of a [`LocalCluster`] running: a background task for the
/// server to own. It holds no connection and stops the server never; the
/// [`LocalCluster`] handle does that.
#[derive(Debug)]
pub struct Supervisor {
    shared: Arc<Shared>,
}

impl Supervisor {
    /// Watches the postmaster every 200 ms until `shutdown` completes or the
    /// cluster is stopped. When the server is gone — killed, crashed, or stopped by
    /// the other Ordo that started it — it starts it again on the same port, waiting
    /// 0.2 s before the first attempt and doubling the wait after each failed one up
    /// to 5 s, and logs every step.
    #[tracing::instrument(name = "supervise_postgres", skip_all, fields(data_dir = %self.shared.data_dir.display(), port = self.shared.port))]
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut backoff = FIRST_BACKOFF;
        let mut delay = SUPERVISION_INTERVAL;
        let mut attempt: u32 = 0;
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(delay) => {}
            }
            if self.shared.stopping.load(Ordering::SeqCst) {
                return;
            }
            let shared = Arc::clone(&self.shared);
            if blocking(move || Ok(shared.is_running()))
                .await
                .unwrap_or(false)
            {
                if !self.shared.up.swap(true, Ordering::Relaxed) {
                    tracing::info!("the embedded PostgreSQL server is up again");
                }
                (backoff, delay, attempt) = (FIRST_BACKOFF, SUPERVISION_INTERVAL, 0);
                continue;
            }
            if self.shared.up.swap(false, Ordering::Relaxed) {
                tracing::warn!(
                    restart_in = ?backoff,
                    "the embedded PostgreSQL server is down; restarting it"
                );
                delay = backoff;
                continue;
            }
            attempt += 1;
            tracing::info!(attempt, "restarting the embedded PostgreSQL server");
            match self.shared.launch(RESTART_LIMIT).await {
                Ok(()) => {
                    self.shared.up.store(true, Ordering::Relaxed);
                    tracing::info!(attempt, "restarted the embedded PostgreSQL server");
                    (backoff, delay, attempt) = (FIRST_BACKOFF, SUPERVISION_INTERVAL, 0);
                }
                Err(e) => {
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    delay = backoff;
                    tracing::warn!(attempt, error = %e, retry_in = ?backoff, "restarting the embedded PostgreSQL server failed");
                }
            }
        }
    }
}

impl LocalCluster {
    /// Starts the cluster of `config.data_dir`, initialising it on first use, or
    /// reuses one already running there. The port is the data directory's
    /// recorded one (chosen and recorded on first use).
    ///
    /// # Errors
    /// When the binaries are missing, the data directory cannot be used, or the
    /// server does not come up: at once when it exits (the error carries the tail
    /// of its log and a fix), else after 60 seconds.
    #[tracing::instrument(skip_all, fields(data_dir = %config.data_dir.display()))]
    pub async fn start(config: LocalClusterConfig) -> Result<Self, ClusterError> {
        let durability = config.durability;
        let (bin_dir, run_as, data_dir, password, running) = blocking(move || {
            let bin_dir = find_bin_dir()?;
            let run_as = run_as()?;
            let data_dir = absolute(&config.data_dir)?;
            prepare_data_dir(&data_dir, run_as)?;
            let password = read_or_create_password(&data_dir, run_as)?;
            if !data_dir.join("PG_VERSION").exists() {
                initdb(&bin_dir, &data_dir, run_as, durability)?;
            }
            let running = running_port(&data_dir);
            Ok((bin_dir, run_as, data_dir, password, running))
        })
        .await?;
        let port = {
            let data_dir = data_dir.clone();
            blocking(move || record_port(&data_dir, run_as, running)).await?
        };
        let cluster = Self {
            shared: Arc::new(Shared {
                data_dir,
                port,
                password,
                bin_dir,
                run_as,
                durability,
                watchdog: Mutex::new(None),
                stopping: AtomicBool::new(false),
                up: Arc::new(AtomicBool::new(false)),
            }),
        };

        if running.is_some() {
            if cluster
                .shared
                .wait_until_ready(Duration::from_secs(5))
                .await
                .is_ok()
            {
                cluster.shared.up.store(true, Ordering::Relaxed);
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
                    cluster.shared.data_dir.join("postmaster.pid").display()
                ),
            });
        }

        cluster.shared.launch(START_LIMIT).await?;
        cluster.shared.up.store(true, Ordering::Relaxed);
        tracing::info!(port, "started a local PostgreSQL cluster");
        Ok(cluster)
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.shared.port
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.shared.data_dir
    }

    /// A connection URL for `database` as the cluster's superuser.
    pub fn database_url(&self, database: &str) -> String {
        self.shared.database_url(database)
    }

    /// The supervisor of this cluster, to run as a background task; see
    /// [`Supervisor::run`]. Without one, a server that dies stays down.
    pub fn supervisor(&self) -> Supervisor {
        Supervisor {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Whether the server is up, as the supervisor last saw it.
    pub fn health(&self) -> ClusterHealth {
        ClusterHealth(Arc::clone(&self.shared.up))
    }

    /// Creates `database` unless it exists.
    ///
    /// # Errors
    /// When the server cannot be reached or refuses.
    #[tracing::instrument(skip_all, fields(data_dir = %self.shared.data_dir.display(), database))]
    pub async fn ensure_database(&self, database: &str) -> anyhow::Result<()> {
        // Scoped here: its `load` would shadow `AtomicBool::load` elsewhere.
        use diesel_async::RunQueryDsl;

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

    /// Stops the server if this value started it (or its supervisor restarted it),
    /// waiting until it is down. Blocks: call it from a blocking context.
    pub fn stop(self) {
        self.shared.stop();
    }
}

impl Shared {
    fn database_url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    fn watchdog(&self) -> MutexGuard<'_, Option<Watchdog>> {
        self.watchdog.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.up.store(false, Ordering::Relaxed);
        let watchdog = self.watchdog().take();
        if let Some(mut watchdog) = watchdog {
            watchdog.stop();
        }
    }

    /// Whether a live postmaster serves the data directory on our port. Reaps our
    /// watchdog when it has exited.
    fn is_running(&self) -> bool {
        let mut slot = self.watchdog();
        if let Some(status) = slot.as_mut().and_then(Watchdog::exit_status) {
            tracing::warn!(%status, "the embedded PostgreSQL server exited");
            *slot = None;
        }
        drop(slot);
        running_port(&self.data_dir) == Some(self.port)
    }

    /// Starts the server under a new watchdog and waits until it accepts
    /// connections, failing at once when it exits.
    async fn launch(self: &Arc<Self>, limit: Duration) -> Result<(), ClusterError> {
        let this = Arc::clone(self);
        let watchdog = blocking(move || {
            spawn_server(
                &this.bin_dir,
                &this.data_dir,
                this.port,
                this.run_as,
                this.durability,
            )
        })
        .await?;
        let log_start = watchdog.log_start;
        let replaced = {
            let mut slot = self.watchdog();
            if self.stopping.load(Ordering::SeqCst) {
                // Stopped meanwhile: the new server must not outlive the stop.
                Some(watchdog)
            } else {
                slot.replace(watchdog)
            }
        };
        if let Some(mut old) = replaced {
            blocking(move || {
                old.stop();
                Ok(())
            })
            .await?;
        }
        if self.stopping.load(Ordering::SeqCst) {
            return Err(ClusterError::Failed {
                what: "starting postgres",
                details: "the cluster was stopped meanwhile".into(),
            });
        }
        self.wait_until_ready_watching(limit, Some(log_start)).await
    }

    async fn wait_until_ready(&self, limit: Duration) -> Result<(), ClusterError> {
        self.wait_until_ready_watching(limit, None).await
    }

    /// Polls until the server accepts connections. With `log_start`, the server is
    /// ours: when our watchdog exits, PostgreSQL did, and the wait ends at once with
    /// what it logged since `log_start`.
    async fn wait_until_ready_watching(
        &self,
        limit: Duration,
        log_start: Option<u64>,
    ) -> Result<(), ClusterError> {
        let deadline = Instant::now() + limit;
        let url = self.database_url("postgres");
        loop {
            let error = match tokio::time::timeout(
                CONNECT_ATTEMPT_LIMIT,
                AsyncPgConnection::establish(&url),
            )
            .await
            {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {CONNECT_ATTEMPT_LIMIT:?}"),
            };
            let exited = match log_start {
                Some(_) => self.watchdog().as_mut().and_then(Watchdog::exit_status),
                None => None,
            };
            if let (Some(log_start), Some(status)) = (log_start, exited) {
                let log = self.log_since(log_start).await;
                return Err(ClusterError::Failed {
                    what: "starting postgres",
                    details: format!(
                        "the server exited ({status}) before accepting connections on port {}. {}\nserver log ({}):\n{log}",
                        self.port,
                        failure_hint(&log, &self.data_dir, self.port),
                        log_path(&self.data_dir).display(),
                    ),
                });
            }
            if Instant::now() >= deadline {
                let log = self.log_since(log_start.unwrap_or(0)).await;
                return Err(ClusterError::Failed {
                    what: "starting postgres",
                    details: format!(
                        "{error}; server log ({}):\n{log}",
                        log_path(&self.data_dir).display()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The end of the server log from `start` on, at most the last 4000 bytes.
    async fn log_since(&self, start: u64) -> String {
        let path = log_path(&self.data_dir);
        blocking(move || Ok(log_tail(&path, start)))
            .await
            .unwrap_or_else(|e| e.to_string())
    }
}

fn log_tail(path: &Path, start: u64) -> String {
    let Ok(mut file) = fs::File::open(path) else {
        return String::from("(no log)");
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(4000).max(start)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// What to do about a server that exited during start-up, judged by its log.
fn failure_hint(log: &str, data_dir: &Path, port: u16) -> String {
    if log.contains("Address already in use") {
        format!(
            "Port {port}, recorded in {}, is taken by another program: stop that program, \
             or delete the file so that Ordo chooses a new free port",
            port_path(data_dir).display()
        )
    } else if log.contains("lock file") {
        format!(
            "Another PostgreSQL server uses {}: stop it, or remove its postmaster.pid if no such server runs",
            data_dir.display()
        )
    } else {
        format!(
            "Fix the cause the server log names below; or use another data directory \
             (--data-dir / ORDO_DATA_DIR), or set DATABASE_URL. Data directory: {}",
            data_dir.display()
        )
    }
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
/// (line 1: pid, line 4: port) when that process is alive. A zombie is not: it is
/// dead, only not yet reaped.
fn running_port(data_dir: &Path) -> Option<u16> {
    let pid_file = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let mut lines = pid_file.lines();
    let pid: u32 = lines.next()?.trim().parse().ok()?;
    let port: u16 = lines.nth(2)?.trim().parse().ok()?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state …`: the name may hold spaces and parentheses, the state
    // follows the last `)`.
    let state = stat.rsplit_once(')')?.1.split_whitespace().next()?;
    (state != "Z" && state != "X").then_some(port)
}

/// The data directory's port: the one a running server uses, else the recorded
/// one, else a free one. Recorded when no port is yet.
fn record_port(
    data_dir: &Path,
    run_as: Option<RunAs>,
    running: Option<u16>,
) -> Result<u16, ClusterError> {
    let path = port_path(data_dir);
    let recorded = fs::read_to_string(&path)
        .ok()
        .and_then(|text| text.trim().parse::<u16>().ok());
    if let Some(recorded) = recorded {
        return Ok(running.unwrap_or(recorded));
    }
    let port = match running {
        Some(port) => port,
        None => free_port()?,
    };
    fs::write(&path, format!("{port}\n")).map_err(io_err(format!("writing {}", path.display())))?;
    if let Some(user) = run_as {
        // The watchdog, running as that user, removes a throw-away cluster's files.
        std::os::unix::fs::chown(&path, Some(user.uid), Some(user.gid)).map_err(io_err(
            format!("handing {} to the postgres user", path.display()),
        ))?;
    }
    Ok(port)
}

/// The port is recorded beside the data directory so that every start, and every
/// Ordo sharing the directory, uses the same one.
fn port_path(data_dir: &Path) -> PathBuf {
    beside(data_dir, "port")
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
    let log_start = log
        .metadata()
        .map_err(io_err("opening the PostgreSQL log"))?
        .len();
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
        // A test process runs a hundred apps against one cluster, each with its
        // own pool; connections of a finished test close only as its runtime
        // winds down, so the cap is set well above what they hold at once.
        command
            .args([
                "-c",
                "max_connections=900",
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
    // A process group of its own: a terminal's Ctrl-C (SIGINT to the foreground
    // group) reaches Ordo only, which then stops the cluster last.
    let mut child = command
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(io_err("starting postgres"))?;
    let stdin = child.stdin.take();
    Ok(Watchdog {
        child,
        stdin,
        log_start,
    })
}
