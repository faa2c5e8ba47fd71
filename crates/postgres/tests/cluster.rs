//! The local-cluster launcher: the embedded default of `ordo serve`.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use diesel_async::{AsyncConnection, AsyncPgConnection};
use ordo_postgres::{ClusterError, Durability, LocalCluster, LocalClusterConfig};

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ordo-launcher-{name}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

async fn answers(url: &str) -> bool {
    AsyncPgConnection::establish(url).await.is_ok()
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
