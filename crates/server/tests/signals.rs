//! The `ordo` binary and its signals: the first SIGINT (Ctrl-C) shuts down as
//! gracefully as SIGTERM, letting in-flight requests finish; a second one forces.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use ordo_postgres::testing::fresh_database;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

const ADMIN_EMAIL: &str = "admin@signals.test";
const ADMIN_PASSWORD: &str = "signals admin password";

/// Logs the administrator in over a raw connection; the access token.
async fn login(port: u16) -> String {
    let body = format!(r#"{{"email":"{ADMIN_EMAIL}","password":"{ADMIN_PASSWORD}"}}"#);
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("a connection");
    let request = format!(
        "POST /v1/auth/login HTTP/1.1\r\nHost: ordo\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("sent");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("an answer");
    let (_, json) = answer.split_once("\r\n\r\n").expect("a body");
    let session: serde_json::Value = serde_json::from_str(json).expect("a session");
    session["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

/// Starts `ordo serve` on a fresh database and a free port, with an administrator;
/// returns it, its port and the administrator's access token.
async fn start_ordo() -> (Child, u16, String) {
    let database = fresh_database().await.expect("a database");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ordo"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", &database.url)
        .env("ORDO_JWT_SECRET", "signals-test-secret-signals-test-secret")
        .env("ORDO_DATA_KEY", "signals-test-data-key")
        .env("ORDO_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("ORDO_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("ORDO_SHUTDOWN_TIMEOUT_SECS", "20")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("ordo starts");
    let mut log = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = log.next_line().await {
            if line.contains("serving") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready.ok(), Some(true), "ordo did not start serving");
    tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
    let token = login(port).await;
    (child, port, token)
}

/// Sends the head of a product creation and half of its body: a request in flight.
async fn begin_request(port: u16, token: &str, sku: &str) -> (TcpStream, String) {
    let body =
        format!(r#"{{"sku":"{sku}","name":"In flight","kind":"service","price_minor":100}}"#);
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("a connection");
    let head = format!(
        "POST /v1/products HTTP/1.1\r\nHost: ordo\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head sent");
    let (first, rest) = body.split_at(body.len() / 2);
    stream.write_all(first.as_bytes()).await.expect("half sent");
    (stream, rest.to_owned())
}

async fn finish_request(mut stream: TcpStream, rest: String) -> String {
    stream.write_all(rest.as_bytes()).await.expect("rest sent");
    let mut answer = vec![0_u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut answer))
        .await
        .expect("an answer in time")
        .unwrap_or(0);
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

fn signal(child: &Child, signal: Signal) {
    let pid = Pid::from_raw(i32::try_from(child.id().expect("running")).expect("a pid"));
    kill(pid, signal).expect("the signal is sent");
}

#[tokio::test]
async fn a_first_ctrl_c_lets_in_flight_requests_finish() {
    let (mut ordo, port, token) = start_ordo().await;
    let mut in_flight = Vec::new();
    for i in 0..25 {
        in_flight.push(begin_request(port, &token, &format!("SVC-FLIGHT-{i}")).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    signal(&ordo, Signal::SIGINT);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answers = futures::future::join_all(
        in_flight
            .into_iter()
            .map(|(s, rest)| finish_request(s, rest)),
    )
    .await;

    let created = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 201"))
        .count();
    assert_eq!(created, 25, "in-flight requests were cut off: {answers:?}");
    let status = tokio::time::timeout(Duration::from_secs(30), ordo.wait())
        .await
        .expect("ordo exits after the graceful shutdown")
        .expect("an exit status");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn a_second_ctrl_c_stops_at_once() {
    let (mut ordo, port, token) = start_ordo().await;
    let (stalled, _rest) = begin_request(port, &token, "SVC-STALLED").await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    signal(&ordo, Signal::SIGINT);
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&ordo, Signal::SIGINT);

    // The shutdown timeout is 20 s and the body deadline 10 s: only the forced stop
    // ends ordo within 5 s while a request is still in flight.
    let status = tokio::time::timeout(Duration::from_secs(5), ordo.wait())
        .await
        .expect("ordo stops at the second SIGINT");
    assert!(status.is_ok());
    drop(stalled);
}
