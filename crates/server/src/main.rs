use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use ordo_domain::sealing::FieldCipher;
use ordo_postgres::sealing::Pass;
use ordo_postgres::{PoolConfig, connect_pool};
use ordo_server::database::prepare_database;
use ordo_server::seed::{self, SeedOutcome};
use ordo_server::state::AppState;
use ordo_server::tasks::TaskHealth;
use ordo_server::{Adapters, Application, LogFormat, Services, Settings, StopHandle, telemetry};
use secrecy::ExposeSecret;

// jemalloc rather than the system allocator: glibc keeps a freed Argon2 hash's
// 19 MiB in each thread's arena, so logins alone grew the server to 480 MiB, and
// jemalloc also makes the many small per-request allocations cheaper.
#[cfg(unix)]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Ordo: an order-management backend.
#[derive(Debug, Parser)]
#[command(name = "ordo", version, about = "Ordo: an order-management backend")]
struct Cli {
    /// A TOML configuration file (default: ./ordo.toml when present).
    #[arg(long, global = true, env = "ORDO_CONFIG")]
    config: Option<PathBuf>,
    /// Log as human-readable text or as JSON lines.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate(DataArgs),
    /// Load the sample catalog, customers and orders into an empty database.
    Seed(DataArgs),
    /// Seal every stored personal value again under the current data key
    /// (`ORDO_DATA_KEY`), opening old ones with `ORDO_DATA_KEY_PREVIOUS`; run after
    /// rotating the key, then drop the previous keys. Resumable, safe while serving.
    Rekey(DataArgs),
}

#[derive(Debug, Default, Args)]
struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Debug, Default, Args)]
struct DataArgs {
    /// Data directory of the embedded PostgreSQL cluster [default: ./.ordo].
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

impl DataArgs {
    fn apply(&self, settings: &mut Settings) {
        if let Some(dir) = &self.data_dir {
            settings.database.data_dir.clone_from(dir);
        }
    }
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut settings = Settings::load(cli.config.as_deref())?;
    if let Some(format) = cli.log_format {
        settings.log_format = format;
    }
    telemetry::init(settings.log_format);
    match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => {
            if let Some(listen) = args.listen {
                settings.http.listen = listen;
            }
            args.data.apply(&mut settings);
            let app = Application::build(settings).await?;
            tracing::info!(port = app.port(), "serving; API docs at /docs");
            tokio::spawn(stop_on_signals(app.stop_handle()));
            app.run_until_stopped().await
        }
        Command::Migrate(args) => {
            args.apply(&mut settings);
            let database = prepare_database(&settings).await?;
            tracing::info!("the database is up to date");
            drop(database);
            Ok(())
        }
        Command::Seed(args) => {
            args.apply(&mut settings);
            let database = prepare_database(&settings).await?;
            let pool = connect_pool(database.url.expose_secret(), &PoolConfig::with_max_size(4))?;
            let data_keys = ordo_server::app::data_keyring(&settings, &pool).await?;
            let services = Services::assemble(&Adapters::postgres(&pool, data_keys), &settings)?;
            let state = AppState::new(
                services,
                pool,
                ordo_server::middleware::metrics::handle(),
                TaskHealth::default(),
            );
            let outcome = seed::load(&state).await.context("loading sample data")?;
            match outcome {
                SeedOutcome::Loaded {
                    products,
                    customers,
                    orders,
                } => {
                    println!(
                        "loaded {products} products, {customers} customers and {orders} orders"
                    );
                }
                SeedOutcome::AlreadyPopulated => {
                    println!("the catalog already has products; nothing was loaded");
                }
            }
            drop(state);
            drop(database);
            Ok(())
        }
        Command::Rekey(args) => {
            args.apply(&mut settings);
            let database = prepare_database(&settings).await?;
            let pool = connect_pool(database.url.expose_secret(), &PoolConfig::with_max_size(2))?;
            let data_keys = ordo_server::app::data_keyring(&settings, &pool).await?;
            let current = data_keys.current_key();
            let reports = ordo_postgres::sealing::seal_rows(&pool, &*data_keys, Pass::Rekey)
                .await
                .context("sealing stored personal data under the current key")?;
            for report in reports {
                let by_key = report
                    .rows_by_key
                    .iter()
                    .map(|(key, rows)| format!("{}: {rows}", key.as_deref().unwrap_or("plaintext")))
                    .collect::<Vec<_>>()
                    .join(", ");
                println!(
                    "{}: sealed {} rows under key {current} ({} changed meanwhile, already under it); rows by key now: {}",
                    report.table,
                    report.sealed,
                    report.changed_meanwhile,
                    if by_key.is_empty() { "none" } else { &by_key },
                );
            }
            drop(pool);
            drop(database);
            Ok(())
        }
    }
}

/// SIGTERM or a first SIGINT (Ctrl-C) shuts down gracefully: stop accepting, let
/// in-flight requests finish, then background tasks, then the embedded cluster. A
/// second SIGINT exits at once.
async fn stop_on_signals(app: StopHandle) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("cannot listen for SIGINT/SIGTERM; stop Ordo with SIGKILL");
        return;
    };
    tokio::select! {
        _ = interrupt.recv() => tracing::info!("SIGINT: shutting down gracefully (Ctrl-C again to force)"),
        _ = terminate.recv() => tracing::info!("SIGTERM: shutting down gracefully"),
    }
    tokio::spawn(async move { app.stop(true).await });
    if interrupt.recv().await.is_some() {
        // The embedded cluster's watchdog notices this process is gone and stops
        // PostgreSQL (fast shutdown), so the data stays consistent.
        tracing::warn!("second SIGINT: stopping now, in-flight requests are cut off");
        std::process::exit(130);
    }
}
