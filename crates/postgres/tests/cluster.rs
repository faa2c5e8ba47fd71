//! The local-cluster launcher: the embedded default of `ordo serve`.

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection};
use ordo_postgres::{ClusterError, Durability, LocalCluster, LocalClusterConfig};
use tokio::sync::oneshot;

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ordo-launcher-{name}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

async fn answers(url: &str) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(2), AsyncPgConnection::establish(url)).await,
        Ok(Ok(_))
    )
}

/// Polls `condition` every 50 ms until it holds or `limit` passed.
async fn eventually<F: Future<Output = bool>>(limit: Duration, condition: impl Fn() -> F) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The postmaster's PID, from line 1 of its `postmaster.pid`.
fn postmaster_pid(data_dir: &Path) -> u32 {
    let pid_file =
        std::fs::read_to_string(data_dir.join("postmaster.pid")).expect("postmaster.pid");
    pid_file
        .lines()
        .next()
        .expect("pid line")
        .trim()
        .parse()
        .expect("pid")
}

/// Fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, …
fn stat_fields(pid: &str) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let (_, rest) = stat.rsplit_once(')').expect("comm");
    rest.split_whitespace().map(str::to_owned).collect()
}

async fn stop(cluster: LocalCluster) {
    tokio::task::spawn_blocking(move || cluster.stop())
        .await
        .expect("stopped");
}

fn durable(root: &Path) -> LocalClusterConfig {
    LocalClusterConfig {
        data_dir: root.join("pg"),
        durability: Durability::Durable,
    }
}

#[tokio::test]
async fn a_second_start_on_the_same_data_dir_reuses_the_running_cluster() {
    let root = scratch_dir("reuse");
    let config = LocalClusterConfig {
        data_dir: root.join("pg"),
        durability: Durability::Durable,
    };

    let first = LocalCluster::start(config.clone())
        .await
        .expect("first start");
    first.ensure_database("ordo").await.expect("database");
    let second = LocalCluster::start(config.clone())
        .await
        .expect("second start");

    assert_eq!(second.port(), first.port());
    assert_eq!(second.database_url("ordo"), first.database_url("ordo"));
    // The second handle did not start the server, so dropping it leaves it running.
    drop(second);
    assert!(answers(&first.database_url("ordo")).await);

    let url = first.database_url("ordo");
    tokio::task::spawn_blocking(move || first.stop())
        .await
        .expect("stopped");
    assert!(!answers(&url).await, "the server must be down after stop");

    // A durable cluster keeps its data and starts again from it.
    let again = LocalCluster::start(config).await.expect("restart");
    assert!(
        answers(&again.database_url("ordo")).await,
        "the database survived the restart"
    );
    tokio::task::spawn_blocking(move || again.stop())
        .await
        .expect("stopped");
    let _ = std::fs::remove_dir_all(root);
}

#[tokio::test]
async fn a_data_dir_the_postgres_user_cannot_reach_is_named_in_the_error() {
    if !nix::unistd::geteuid().is_root() {
        // Only root hands the server to another user; nothing to check otherwise.
        return;
    }
    let root = scratch_dir("private");
    let private = root.join("home");
    std::fs::create_dir(&private).expect("dir");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).expect("chmod");

    let result = LocalCluster::start(LocalClusterConfig {
        data_dir: private.join("ordo").join("pg"),
        durability: Durability::Ephemeral,
    })
    .await;

    match result {
        Err(ClusterError::DataDirUnreachable { blocking, .. }) => assert_eq!(blocking, private),
        other => panic!("expected DataDirUnreachable, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(root);
}

#[tokio::test]
async fn a_killed_postmaster_is_restarted_by_the_supervisor_on_the_same_port() {
    let root = scratch_dir("kill");
    let cluster = LocalCluster::start(durable(&root)).await.expect("start");
    cluster.ensure_database("ordo").await.expect("database");
    let url = cluster.database_url("ordo");
    let health = cluster.health();
    assert!(health.is_up());

    let killed = postmaster_pid(cluster.data_dir());
    let status = std::process::Command::new("kill")
        .args(["-9", &killed.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    // Before any supervision: the watchdog itself reaps it, so no zombie keeps
    // postmaster.pid looking alive.
    assert!(
        eventually(Duration::from_secs(5), || async {
            !Path::new(&format!("/proc/{killed}")).exists()
        })
        .await,
        "the killed postmaster is reaped, not left a zombie"
    );
    assert!(
        !answers(&url).await,
        "queries fail while the server is down"
    );

    let (shutdown, stopped) = oneshot::channel::<()>();
    let supervisor = tokio::spawn(cluster.supervisor().run(async move {
        let _ = stopped.await;
    }));
    assert!(
        eventually(Duration::from_secs(5), || async { !health.is_up() }).await,
        "health reports the server down"
    );

    assert!(
        eventually(Duration::from_secs(20), || answers(&url)).await,
        "the supervisor brings the server back on the same port"
    );
    assert!(eventually(Duration::from_secs(5), || async { health.is_up() }).await);
    assert_ne!(postmaster_pid(cluster.data_dir()), killed);

    let _ = shutdown.send(());
    supervisor.await.expect("supervisor");
    stop(cluster).await;
    assert!(!answers(&url).await, "stop still stops a restarted server");
    let _ = std::fs::remove_dir_all(root);
}

#[tokio::test]
async fn the_cluster_runs_in_a_process_group_of_its_own() {
    let root = scratch_dir("pgrp");
    let cluster = LocalCluster::start(LocalClusterConfig {
        data_dir: root.join("pg"),
        durability: Durability::Ephemeral,
    })
    .await
    .expect("start");

    let ours = stat_fields("self")[2].clone();
    let postmaster = postmaster_pid(cluster.data_dir()).to_string();
    let postmaster_stat = stat_fields(&postmaster);
    let watchdog = postmaster_stat[1].clone();
    let watchdog_stat = stat_fields(&watchdog);
    assert_ne!(
        postmaster_stat[2], ours,
        "postmaster outside our process group"
    );
    assert_ne!(watchdog_stat[2], ours, "watchdog outside our process group");
    assert_eq!(
        watchdog_stat[2], watchdog,
        "the watchdog leads the cluster's group"
    );
    assert_eq!(
        postmaster_stat[2], watchdog,
        "postgres stays in the watchdog's group"
    );

    stop(cluster).await;
    let _ = std::fs::remove_dir_all(root);
}

#[tokio::test]
async fn when_the_first_of_two_ordos_stops_the_second_takes_the_cluster_over_on_the_same_port() {
    let root = scratch_dir("takeover");
    let first = LocalCluster::start(durable(&root)).await.expect("first");
    first.ensure_database("ordo").await.expect("database");
    let second = LocalCluster::start(durable(&root)).await.expect("second");
    let port = first.port();
    assert_eq!(second.port(), port);
    let url = second.database_url("ordo");
    let (shutdown, stopped) = oneshot::channel::<()>();
    let supervisor = tokio::spawn(second.supervisor().run(async move {
        let _ = stopped.await;
    }));

    stop(first).await;
    assert!(!answers(&url).await, "stopping the first stops the server");
    assert!(
        eventually(Duration::from_secs(20), || answers(&url)).await,
        "the second Ordo's supervisor starts it again"
    );
    assert!(eventually(Duration::from_secs(5), || async { second.health().is_up() }).await);

    let _ = shutdown.send(());
    supervisor.await.expect("supervisor");
    stop(second).await;
    assert!(
        !answers(&url).await,
        "the second stops what its supervisor started"
    );

    // The port is the data directory's: a later start uses it again.
    let again = LocalCluster::start(durable(&root)).await.expect("again");
    assert_eq!(again.port(), port);
    assert!(answers(&again.database_url("ordo")).await);
    stop(again).await;
    let _ = std::fs::remove_dir_all(root);
}

#[tokio::test]
async fn a_taken_port_fails_the_start_within_seconds_naming_the_cause() {
    let root = scratch_dir("port-taken");
    let cluster = LocalCluster::start(durable(&root)).await.expect("start");
    let port = cluster.port();
    stop(cluster).await;
    // Accepts connections (the kernel completes the handshake) but never answers.
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind the port");

    let started = Instant::now();
    let error = LocalCluster::start(durable(&root))
        .await
        .expect_err("the port is taken");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "failed after {:?}",
        started.elapsed()
    );
    let message = error.to_string();
    assert!(message.contains("Address already in use"), "{message}");
    assert!(message.contains(&format!("Port {port}")), "{message}");
    assert!(
        message.contains("pg.port"),
        "names the file to delete: {message}"
    );
    let _ = std::fs::remove_dir_all(root);
}

#[tokio::test]
async fn a_broken_configuration_fails_the_start_within_seconds_with_the_server_log() {
    let root = scratch_dir("bad-conf");
    let cluster = LocalCluster::start(durable(&root)).await.expect("start");
    let conf = cluster.data_dir().join("postgresql.conf");
    stop(cluster).await;
    let mut text = std::fs::read_to_string(&conf).expect("conf");
    text.push_str("\nthis is = not = a setting\n");
    std::fs::write(&conf, text).expect("write conf");

    let started = Instant::now();
    let error = LocalCluster::start(durable(&root))
        .await
        .expect_err("the configuration is broken");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "failed after {:?}",
        started.elapsed()
    );
    let message = error.to_string();
    assert!(message.contains("postgresql.conf"), "{message}");
    assert!(message.contains("syntax error"), "{message}");
    let _ = std::fs::remove_dir_all(root);
}
