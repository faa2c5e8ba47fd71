//! A throw-away `redis-server` for tests, the way `ordo_postgres::testing` gives
//! each test process a PostgreSQL: started on a free loopback port without
//! persistence, owned by the test, and gone when the test drops it — or when the
//! test process dies, since a watchdog shell kills it once the test's end of a
//! pipe closes.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

const BINARY: &str = "redis-server";

/// Where distributions put `redis-server` when it is not on `PATH` (Debian's is
/// in `/usr/bin`, which a minimal `PATH` may lack).
const USUAL_DIRECTORIES: &[&str] = &["/usr/bin", "/usr/sbin", "/usr/local/bin"];

/// A running `redis-server` of one test, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    url: String,
    watchdog: Child,
    /// Closing it makes the watchdog kill the server.
    lifeline: Option<ChildStdin>,
}

impl RedisServer {
    /// The `redis-server` binary, when the machine has one.
    pub fn binary() -> Option<PathBuf> {
        let on_path = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .unwrap_or_default();
        on_path
            .into_iter()
            .chain(USUAL_DIRECTORIES.iter().map(PathBuf::from))
            .map(|dir| dir.join(BINARY))
            .find(|candidate| candidate.is_file())
    }

    /// A server for `test`, or `None` — with the reason printed — when the machine
    /// has no `redis-server` (`.ci/run` installs it, so CI never skips).
    ///
    /// # Panics
    /// When the binary exists but the server does not start.
    pub fn start_or_skip(test: &str) -> Option<Self> {
        let Some(binary) = Self::binary() else {
            eprintln!(
                "skipping {test}: no `{BINARY}` on PATH or in {USUAL_DIRECTORIES:?} \
                 (install the distribution's redis-server package)"
            );
            return None;
        };
        #[allow(clippy::expect_used)] // a test that needs Redis cannot go on without it
        Some(Self::start_with(&binary).expect("redis-server starts"))
    }

    /// Starts a server.
    ///
    /// # Errors
    /// When there is no `redis-server`, or it does not answer within ten seconds.
    pub fn start() -> anyhow::Result<Self> {
        let binary = Self::binary().with_context(|| format!("no `{BINARY}` found"))?;
        Self::start_with(&binary)
    }

    fn start_with(binary: &Path) -> anyhow::Result<Self> {
        // The free port is found by binding it and letting go; another process may
        // take it in between, so a server that exits at once is tried again.
        let mut last_error = None;
        for _ in 0..5 {
            match Self::start_on(binary, free_port()?) {
                Ok(server) => return Ok(server),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("redis-server did not start")))
    }

    fn start_on(binary: &Path, port: u16) -> anyhow::Result<Self> {
        let port_text = port.to_string();
        let dir = std::env::temp_dir();
        // The shell starts the server, kills it when its stdin (the test's end of
        // the pipe) closes or gets a line, and exits when the server does. The
        // pipe is handed to the background reader as fd 3, since a background
        // job's stdin is /dev/null.
        let mut watchdog = Command::new("sh")
            .args([
                "-c",
                r#"exec 3<&0; "$0" "$@" 3<&- & server=$!; (read -r _ <&3; kill -9 "$server" 2>/dev/null) & exec 3<&-; wait "$server""#,
            ])
            .arg(binary)
            .args(["--port", &port_text, "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--loglevel", "warning"])
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server")?;
        let lifeline = watchdog.stdin.take();
        let mut server = Self {
            port,
            url: format!("redis://127.0.0.1:{port}"),
            watchdog,
            lifeline,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if answers_ping(port) {
                return Ok(server);
            }
            if let Some(status) = server.watchdog.try_wait()? {
                anyhow::bail!("redis-server on port {port} exited at once ({status})");
            }
            if Instant::now() > deadline {
                server.stop();
                anyhow::bail!("redis-server on port {port} did not answer within ten seconds");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server and starts an empty one on the same port, as a Redis that
    /// restarts without persistence does.
    ///
    /// # Errors
    /// When the new server does not start.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        let binary = Self::binary().with_context(|| format!("no `{BINARY}` found"))?;
        *self = Self::start_on(&binary, self.port)?;
        Ok(())
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server and waits until it is gone: from now on its port refuses
    /// connections.
    pub fn stop(&mut self) {
        if let Some(mut lifeline) = self.lifeline.take() {
            // The watchdog reads a line or the end of its input: either kills.
            let _ = lifeline.write_all(b"\n");
        }
        let _ = self.watchdog.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn answers_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0_u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}
