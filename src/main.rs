//! Command line: parse flags, load the config, set up logging, run until SIGTERM/SIGINT.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use barman_cloud_exporter::config::Config;
use barman_cloud_exporter::shard::Shard;
use barman_cloud_exporter::web_config::WebConfig;

/// Default listen address; port 9875 avoids 9187 (postgres_exporter, CNPG) and 9780 (barman exporter).
const DEFAULT_LISTEN: &str = ":9875";

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Prometheus exporter for barman-cloud backups in S3-compatible storage"
)]
struct Cli {
    /// Path to the YAML configuration file.
    #[arg(long = "config.file", default_value = "config.yaml", global = true)]
    config_file: PathBuf,
    /// Address to listen on, `[host]:port`.
    #[arg(long = "web.listen-address", default_value = DEFAULT_LISTEN)]
    listen_address: String,
    /// Web config file (Prometheus exporter-toolkit format) enabling TLS and/or
    /// basic auth on every path; plain HTTP without auth when absent.
    #[arg(long = "web.config.file", global = true)]
    web_config_file: Option<PathBuf>,
    /// Path under which to expose metrics.
    #[arg(long = "web.telemetry-path", default_value = "/metrics")]
    telemetry_path: String,
    /// Log level (error, warn, info, debug, trace) or a tracing filter directive.
    #[arg(long = "log.level", default_value = "info", global = true)]
    log_level: String,
    /// Log format.
    #[arg(long = "log.format", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    /// This replica's shard, 0-based, of `--total-shards`: it collects only the
    /// targets whose name hashes to it (kube-state-metrics' convention).
    #[arg(long = "shard", global = true, conflicts_with = "shard_from_pod_name")]
    shard: Option<u32>,
    /// How many replicas share the configured targets.
    #[arg(long = "total-shards", default_value_t = 1, global = true)]
    total_shards: u32,
    /// Take `--shard` from the ordinal of a StatefulSet pod name
    /// (`barman-cloud-exporter-2` is shard 2): the name given, else `$POD_NAME`
    /// (the downward API), else `$HOSTNAME` (a StatefulSet pod's hostname is its name).
    #[arg(
        long = "shard-from-pod-name",
        value_name = "POD_NAME",
        num_args = 0..=1,
        default_missing_value = "",
        global = true
    )]
    shard_from_pod_name: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

impl Cli {
    /// The shard the flags name (shard 0 of 1 without any).
    fn shard(&self) -> anyhow::Result<Shard> {
        let shard = match &self.shard_from_pod_name {
            Some(given) => {
                let name = Some(given.clone())
                    .filter(|n| !n.is_empty())
                    .or_else(|| std::env::var("POD_NAME").ok().filter(|n| !n.is_empty()))
                    .or_else(|| std::env::var("HOSTNAME").ok().filter(|n| !n.is_empty()))
                    .context("--shard-from-pod-name: no pod name given and neither POD_NAME nor HOSTNAME is set")?;
                Shard::from_pod_name(&name, self.total_shards)
            }
            None => Shard::new(self.shard.unwrap_or(0), self.total_shards),
        };
        shard.context("sharding flags")
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate the configuration file and exit (0 if valid).
    CheckConfig,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    Text,
    Json,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(barman_cloud_exporter::log_filter(&cli.log_level))
        .context("invalid --log.level")?;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
    let shard = cli.shard()?;
    let config =
        Config::load(&cli.config_file).with_context(|| format!("config file {}", cli.config_file.display()))?;
    let web = match &cli.web_config_file {
        Some(path) => WebConfig::load(path)?,
        None => WebConfig::default(),
    };
    if matches!(cli.command, Some(Command::CheckConfig)) {
        println!(
            "{}: valid, {} target(s)",
            cli.config_file.display(),
            config.targets.len()
        );
        for t in &config.targets {
            let d = t.destination_path.split(['?', '#']).next().unwrap_or_default();
            let owner = if shard.is_sharded() {
                format!(" (shard {})", Shard::of(&t.name, shard.total))
            } else {
                String::new()
            };
            println!(
                "  target {:?}: {} {}{owner}",
                t.name,
                t.provider(),
                barman_cloud_exporter::config::redact_url(d)
            );
        }
        if shard.is_sharded() {
            let own = config.targets.iter().filter(|t| shard.owns(&t.name)).count();
            println!("{shard}: collects {own} of {} target(s)", config.targets.len());
        }
        if let Some(path) = &cli.web_config_file {
            println!("{}: valid, {web:?}", path.display());
        }
        return Ok(());
    }
    let configured = config.targets.len();
    let config = config.into_shard(shard);
    if shard.is_sharded() {
        tracing::info!(
            shard = shard.index,
            total_shards = shard.total,
            "{shard}: collecting {} of {configured} configured target(s)",
            config.targets.len()
        );
    }
    let addr = match cli.listen_address.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => cli.listen_address.clone(),
    };
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    barman_cloud_exporter::run_with_web_config(config, listener, cli.telemetry_path, web, shutdown).await?;
    Ok(())
}

/// Cancels `shutdown` on SIGINT (Ctrl-C) or SIGTERM.
async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown requested");
    shutdown.cancel();
}
