//! The `ordo-upstream-sim` binary starts, serves the contract, and validates its flags.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn the_binary_serves_on_the_given_address() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ordo-upstream-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--preset",
            "healthy",
            "--seed",
            "7",
        ])
        .args(["--latency-ms", "1", "--failure-rate", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_owned();
    let r = reqwest::Client::new()
        .get(format!("{url}/_admin/config"))
        .send()
        .await
        .unwrap();
    let config: serde_json::Value = r.json().await.unwrap();
    assert_eq!(config["seed"], 7);
    assert_eq!(config["latency_ms"], 1);
    let r = reqwest::Client::new()
        .get(format!("{url}/products/"))
        .header("x-auth-user", "u1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn the_binary_rejects_invalid_rates() {
    let status = Command::new(env!("CARGO_BIN_EXE_ordo-upstream-sim"))
        .args(["--listen", "127.0.0.1:0", "--tail-probability", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success());
}
