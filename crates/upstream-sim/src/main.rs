//! `ordo-upstream-sim`: the upstream simulator as a stand-alone server.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Parser;
use ordo_upstream_sim::{SimConfig, UpstreamSim};

/// The in-memory upstream order and payment API, slow and flaky on purpose.
#[derive(Debug, Parser)]
#[command(name = "ordo-upstream-sim", version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
    /// Starting preset: sandbox, healthy, slow, flaky, down.
    #[arg(long, default_value = "sandbox")]
    preset: String,
    /// A JSON file with a full or partial `SimConfig` (replaces the preset).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Fixed latency of every call, in milliseconds.
    #[arg(long)]
    latency_ms: Option<u64>,
    /// Random extra latency, 0 to this many milliseconds.
    #[arg(long)]
    jitter_ms: Option<u64>,
    /// Slow tail: extra latency up to this many milliseconds…
    #[arg(long)]
    tail_ms: Option<u64>,
    /// …with this probability.
    #[arg(long)]
    tail_probability: Option<f64>,
    /// Share of calls that fail (spread as in `SimConfig::chaos`).
    #[arg(long)]
    failure_rate: Option<f64>,
    /// Share of failures of mutating calls that happen after the effect.
    #[arg(long)]
    fail_after_effect_ratio: Option<f64>,
    /// How long a hanging call hangs, in milliseconds.
    #[arg(long)]
    hang_ms: Option<u64>,
    /// Seed of the random generator.
    #[arg(long)]
    seed: Option<u64>,
}

impl Cli {
    fn sim_config(&self) -> anyhow::Result<SimConfig> {
        let mut c = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                serde_json::from_str(&text)
                    .with_context(|| format!("parsing {}", path.display()))?
            }
            None => SimConfig::preset(&self.preset)
                .with_context(|| format!("unknown preset {:?}", self.preset))?,
        };
        if let Some(rate) = self.failure_rate {
            let chaos = SimConfig::chaos(rate);
            c.failures = chaos.failures;
            c.fail_after_effect_ratio = chaos.fail_after_effect_ratio;
        }
        let set = |field: &mut u64, v: Option<u64>| {
            if let Some(v) = v {
                *field = v;
            }
        };
        set(&mut c.latency_ms, self.latency_ms);
        set(&mut c.jitter_ms, self.jitter_ms);
        set(&mut c.tail_ms, self.tail_ms);
        set(&mut c.hang_ms, self.hang_ms);
        set(&mut c.seed, self.seed);
        if let Some(p) = self.tail_probability {
            c.tail_probability = p;
        }
        if let Some(r) = self.fail_after_effect_ratio {
            c.fail_after_effect_ratio = r;
        }
        c.validate().map_err(anyhow::Error::msg)?;
        Ok(c)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let config = cli.sim_config()?;
    let sim = UpstreamSim::start_at(cli.listen, config)?;
    tracing::info!(url = %sim.url(), "upstream simulator listening");
    // Logs go to stderr; stdout carries only this line, for scripts and tests.
    println!("ordo-upstream-sim listening on {}", sim.url());
    tokio::signal::ctrl_c().await?;
    sim.stop().await;
    Ok(())
}
