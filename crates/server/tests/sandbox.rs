//! Sandbox mode (embedded database, no `ORDO_JWT_SECRET`): the secrets and the
//! administrator are made on the first start and kept; the administrator's
//! password is printed that once only; the sample catalog and the upstream
//! simulator's agree.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Starts `ordo serve` on `data_dir`, with or without sample data; returns it, its
/// port and its log up to "serving".
async fn start_ordo(data_dir: &std::path::Path, sample_data: bool) -> (Child, u16, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ordo"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("DATABASE_URL")
        .env_remove("ORDO_JWT_SECRET")
        .env_remove("ORDO_ADMIN_EMAIL")
        .env_remove("ORDO_ADMIN_PASSWORD")
        .env("ORDO_SAMPLE_DATA", sample_data.to_string())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("ordo starts");
    let mut log = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let seen = tokio::time::timeout(Duration::from_secs(120), async {
        let mut seen = String::new();
        while let Ok(Some(line)) = log.next_line().await {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("serving") {
                return Some(seen);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .expect("ordo starts serving");
    tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
    (child, port, seen)
}

async fn stop(mut child: Child) {
    let pid = Pid::from_raw(i32::try_from(child.id().expect("running")).expect("a pid"));
    kill(pid, Signal::SIGTERM).expect("the signal is sent");
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("ordo stops")
        .expect("an exit status");
    assert!(status.success(), "{status:?}");
}

/// One request over a fresh connection; status line and body.
async fn request(port: u16, method: &str, path: &str, token: Option<&str>, body: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("a connection");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: ordo\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("sent");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("an answer");
    answer
}

async fn login(port: u16, password: &str) -> Option<String> {
    let body = format!(r#"{{"email":"admin@ordo.local","password":"{password}"}}"#);
    let answer = request(port, "POST", "/v1/auth/login", None, &body).await;
    let (_, json) = answer.split_once("\r\n\r\n")?;
    let session: serde_json::Value = serde_json::from_str(json).ok()?;
    session["access_token"].as_str().map(str::to_owned)
}

/// A new data directory the cluster can use.
fn data_dir() -> std::path::PathBuf {
    let data_dir =
        std::env::temp_dir().join(format!("ordo-sandbox-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&data_dir).expect("a data directory");
    // The `postgres` user runs the cluster when the tests run as root.
    std::fs::set_permissions(
        &data_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("permissions");
    data_dir
}

fn printed_password(log: &str) -> String {
    log.lines()
        .find_map(|l| l.trim().strip_prefix("password: "))
        .expect("the sandbox administrator's password is printed")
        .to_owned()
}

#[tokio::test]
async fn the_sandbox_admin_is_printed_once_and_its_secrets_survive_restarts() {
    let data_dir = data_dir();

    let (first, port, log) = start_ordo(&data_dir, false).await;
    let password = printed_password(&log);
    assert!(log.contains("admin@ordo.local"), "{log}");
    let token = login(port, &password)
        .await
        .expect("the sandbox admin logs in");
    let me = request(port, "GET", "/v1/auth/me", Some(&token), "").await;
    assert!(
        me.starts_with("HTTP/1.1 200") && me.contains(r#""role":"admin""#),
        "{me}"
    );
    stop(first).await;

    let (second, port, log) = start_ordo(&data_dir, false).await;
    assert!(
        !log.contains(&password),
        "the password is printed once only: {log}"
    );
    // The same signing key: a token of the first start is still good.
    let me = request(port, "GET", "/v1/auth/me", Some(&token), "").await;
    assert!(me.starts_with("HTTP/1.1 200"), "{me}");
    assert!(login(port, &password).await.is_some());
    stop(second).await;
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[tokio::test]
async fn the_sandbox_catalog_holds_the_sample_products_and_the_simulators() {
    let data_dir = data_dir();

    let (ordo, port, log) = start_ordo(&data_dir, true).await;
    let token = login(port, &printed_password(&log))
        .await
        .expect("the sandbox admin logs in");
    let products = request(port, "GET", "/v1/products?limit=100", Some(&token), "").await;

    assert!(
        log.contains("synced the catalog from the upstream simulator"),
        "{log}"
    );
    assert!(products.starts_with("HTTP/1.1 200"), "{products}");
    for sku in [
        "SVC-INSPECTION",
        "GD-GLOVES",
        "UP-prod_coffee",
        "UP-prod_book",
    ] {
        assert!(
            products.contains(&format!(r#""sku":"{sku}""#)),
            "{sku} is missing: {products}"
        );
    }
    stop(ordo).await;
    let _ = std::fs::remove_dir_all(&data_dir);
}
