//! The `headend` binary: `headend run` serves a catalog, `headend check` validates one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing::info;

use headend::catalog::Catalog;
use headend::origin::{Origin, OriginConfig};
use headend::store::SegmentStore;
use headend::supervisor::Supervisor;

/// The catalog `make run` starts when no file is named.
const DEMO_CATALOG: [&str; 2] = ["manifests/demo.yaml", "pipelines/ladders.yaml"];

#[derive(Parser)]
#[command(
    version,
    about = "IPTV/OTT video headend: one catalog, one encode, every screen"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start every channel of the catalog and serve it over HTTP.
    Run {
        /// Address the origin listens on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Catalog files (channels, ladders, encoder profiles), merged.
        #[arg(default_values = DEMO_CATALOG)]
        files: Vec<PathBuf>,
    },
    /// Validate catalog files and print every problem, with file, line and column.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Check { files } => match Catalog::load(&files) {
            Ok(catalog) => {
                println!(
                    "ok: {} channels, {} ladders, {} encoder profiles",
                    catalog.channels.len(),
                    catalog.ladders.len(),
                    catalog.encoders.len()
                );
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("{err}");
                ExitCode::FAILURE
            }
        },
        Command::Run { listen, files } => match run(listen, files) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: {err:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn run(listen: SocketAddr, files: Vec<PathBuf>) -> anyhow::Result<()> {
    let catalog = Arc::new(Catalog::load(&files).context("loading the catalog")?);
    headend::pipeline::init().context("initialising GStreamer")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let store = SegmentStore::new();
        let config = OriginConfig {
            listen,
            ..OriginConfig::default()
        };
        let origin = Origin::bind(config, store.clone())
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let addr = origin.local_addr();
        let supervisor = Supervisor::start(catalog.clone(), store);
        info!(%addr, channels = catalog.channels.len(), "Headend serving.");
        for channel in &catalog.channels {
            info!(channel = %channel.id, url = %format!("http://{addr}/live/{}/master.m3u8", channel.id), "Channel URL.");
        }
        origin.serve(shutdown_signal()).await.context("serving")?;
        info!("Stopping channels.");
        supervisor.shutdown().await;
        Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    info!("Shutdown requested; draining connections.");
}
