//! The `headend` binary: `headend run` serves a catalog, `headend check` validates one,
//! `headend vod ingest` ingests a VOD asset.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tracing::{debug, error, info, warn};

use headend::catalog::{Catalog, VodAsset};
use headend::origin::{ApiSettings, ApiToken, Origin, OriginConfig, PublicUrl, TOKEN_ENV};
use headend::reload::{watcher, ReloadHandle, Reloader, Trigger};
use headend::status::Registry;
use headend::store::SegmentStore;
use headend::supervisor::Supervisor;
use headend::vod::progress::IngestBar;
use headend::vod::{self, Library, Outcome};

/// The catalog `make run` starts when no file is named.
const DEMO_CATALOG: [&str; 3] = [
    "manifests/demo.yaml",
    "manifests/vod.yaml",
    "pipelines/ladders.yaml",
];

/// Where VOD assets are written (`{data}/vod/{asset}/`) when `--data` is not given.
const DEFAULT_DATA_DIR: &str = "var/data";

/// The ladder of a file ingested by path: the broadcast-style ladder of
/// `pipelines/ladders.yaml`.
const AD_HOC_LADDER: &str = "default";

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
        /// Data directory: VOD assets are ingested into and served from DATA/vod.
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        /// The http(s) URL viewers reach the headend at (a proxy or CDN in front), used
        /// for the absolute URLs in /playlist.m3u and /epg.xml. Default: http:// and
        /// the Host each request names.
        #[arg(long, value_name = "URL")]
        public_url: Option<PublicUrl>,
        /// A file holding the bearer token of the /api/v1/ endpoints (default: the
        /// HEADEND_API_TOKEN environment variable; without either the API answers 403,
        /// and a request without the right token gets 401).
        #[arg(long, value_name = "PATH")]
        api_token_file: Option<PathBuf>,
        /// Let anyone call the read-only API (every GET: /api/v1/catalog, channels,
        /// vod) without a token; reloading still needs one.
        #[arg(long)]
        public_api: bool,
        /// Log lines as human-readable text or as one JSON object per line (for a log
        /// shipper).
        #[arg(long, value_enum, env = "HEADEND_LOG_FORMAT", default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// Do not reload when a catalog file changes; reload only on SIGHUP or
        /// POST /api/v1/reload (for a deploy that writes several files one by one).
        #[arg(long)]
        no_watch: bool,
        /// Catalog files (channels, VOD assets, ladders, encoder profiles), merged.
        #[arg(default_values = DEMO_CATALOG)]
        files: Vec<PathBuf>,
    },
    /// Validate catalog files and print every problem, with file, line and column.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Video on demand.
    Vod {
        #[command(subcommand)]
        command: VodCommand,
    },
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// `2026-11-21T12:00:00.123456Z  INFO headend::supervisor: Channel started. channel=news`
    Text,
    /// `{"timestamp":"…","level":"INFO","message":"Channel started.","channel":"news","target":"headend::supervisor"}`
    Json,
}

#[derive(Subcommand)]
enum VodCommand {
    /// Transcode and package one asset, unless it is up to date. Shows a progress bar
    /// on a terminal; prints one line when done.
    Ingest {
        /// Data directory: the asset is written to DATA/vod/ASSET_ID.
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        /// No progress bar and no result line (errors are still printed).
        #[arg(long)]
        quiet: bool,
        /// Ingest even if the asset is up to date.
        #[arg(long)]
        force: bool,
        /// Ladder for a file given by path (assets from the catalog name their own).
        #[arg(long, default_value = AD_HOC_LADDER)]
        ladder: String,
        /// Catalog files (default: the demo catalog, manifests/vod.yaml and
        /// pipelines/ladders.yaml), then an asset id of the catalog or the path of a
        /// media file (its asset id is the file name without extension, lowercased,
        /// other characters than a-z, 0-9, `_` and `-` made `-`).
        #[arg(required = true, value_name = "[FILES...] ASSET_ID|PATH")]
        args: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A progress bar and log lines on one terminal garble each other: while the bar
    // shows, only warnings are logged unless RUST_LOG asks for more.
    let bar_shows = matches!(
        &cli.command,
        Command::Vod {
            command: VodCommand::Ingest { quiet: false, .. }
        }
    ) && std::io::stderr().is_terminal();
    let default_level = if bar_shows { "warn" } else { "info" };
    let log_format = match &cli.command {
        Command::Run { log_format, .. } => *log_format,
        _ => LogFormat::Text,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log_format {
        LogFormat::Text => logs.init(),
        // The event's fields at the top level, as log shippers index them; no span
        // lists (the headend opens no spans).
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
    match cli.command {
        Command::Check { files } => match Catalog::load(&files) {
            Ok(catalog) => {
                for warning in &catalog.warnings {
                    eprintln!("{}", warning.as_warning());
                }
                println!(
                    "ok: {} channels, {} VOD assets, {} ladders, {} encoder profiles",
                    catalog.channels.len(),
                    catalog.assets.len(),
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
        Command::Run {
            listen,
            data,
            public_url,
            api_token_file,
            public_api,
            no_watch,
            files,
            log_format,
        } => match run(RunOptions {
            listen,
            data,
            public_url,
            api_token_file,
            public_api,
            watch: !no_watch,
            files,
        }) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                // Every line of a JSON log is JSON, the last one too.
                match log_format {
                    LogFormat::Text => eprintln!("error: {err:#}"),
                    LogFormat::Json => error!(error = %format!("{err:#}"), "The headend stopped."),
                }
                ExitCode::FAILURE
            }
        },
        Command::Vod {
            command:
                VodCommand::Ingest {
                    data,
                    quiet,
                    force,
                    ladder,
                    mut args,
                },
        } => {
            // `args` is required, so it has a last element.
            let target = args.pop().unwrap_or_default();
            let files = if args.is_empty() {
                DEMO_CATALOG.iter().map(PathBuf::from).collect()
            } else {
                args
            };
            match vod_ingest(&data, &files, &target, &ladder, force, quiet) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("error: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `headend vod ingest`: one asset, from the catalog or a file path.
fn vod_ingest(
    data: &Path,
    files: &[PathBuf],
    target: &Path,
    ad_hoc_ladder: &str,
    force: bool,
    quiet: bool,
) -> anyhow::Result<()> {
    let catalog = Catalog::load(files).context("loading the catalog")?;
    let asset = match target.to_str().and_then(|id| catalog.asset(id)) {
        Some(asset) => asset.clone(),
        None if target.is_file() => ad_hoc_asset(target, ad_hoc_ladder)?,
        None => anyhow::bail!(
            "`{}` is neither an asset of the catalog ({}) nor a file",
            target.display(),
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let (ladder, encoder) = vod::settings(&catalog, &asset)?;
    headend::pipeline::init().context("initialising GStreamer")?;
    let library = Library::new(data);
    if let Err(error) = library.clean_stale() {
        warn!(root = %library.root().display(), %error, "Could not clean the VOD library.");
    }
    let bar = IngestBar::new(&asset.id, !quiet && std::io::stderr().is_terminal());
    let result = vod::ingest(&library, &asset, ladder, encoder, force, |p| bar.update(p));
    bar.finish();
    let outcome = result?;
    if !quiet {
        println!("{}", outcome_line(&asset.id, &outcome));
    }
    Ok(())
}

/// The one line `vod ingest` prints.
fn outcome_line(id: &str, outcome: &Outcome) -> String {
    match outcome {
        Outcome::UpToDate { fingerprint } => {
            format!("{id}: up to date (fingerprint {fingerprint}), nothing to do")
        }
        Outcome::Ingested {
            duration,
            elapsed,
            dir,
            ..
        } => format!(
            "{id}: ingested {:.1} s of media in {:.1} s ({:.1}× real time) into {}",
            duration.as_secs_f64(),
            elapsed.as_secs_f64(),
            outcome.speed().unwrap_or_default(),
            dir.display()
        ),
    }
}

/// An asset for a bare file path: its id from the file name.
fn ad_hoc_asset(path: &Path, ladder: &str) -> anyhow::Result<VodAsset> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let id: String = stem
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '_' | '-' => c,
            _ => '-',
        })
        .skip_while(|c| !c.is_ascii_alphanumeric())
        .take(64)
        .collect();
    anyhow::ensure!(
        headend::catalog::is_url_segment(&id),
        "cannot make an asset id from the file name of {}",
        path.display()
    );
    let source =
        std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))?;
    Ok(VodAsset::from_file(id, source, ladder.to_owned()))
}

/// What `headend run` was asked to do.
struct RunOptions {
    listen: SocketAddr,
    data: PathBuf,
    public_url: Option<PublicUrl>,
    api_token_file: Option<PathBuf>,
    public_api: bool,
    watch: bool,
    files: Vec<PathBuf>,
}

fn run(options: RunOptions) -> anyhow::Result<()> {
    let RunOptions {
        listen,
        data,
        public_url,
        api_token_file,
        public_api,
        watch,
        files,
    } = options;
    let catalog = Arc::new(Catalog::load(&files).context("loading the catalog")?);
    for warning in &catalog.warnings {
        warn!(%warning, "The catalog has a warning; it is loaded anyway.");
    }
    let token = api_token(api_token_file.as_deref())?;
    // Every segment in the live windows holds a file (`headend::sealed`), beside every
    // client connection: the soft limit (1024 by default) would be too low.
    match headend::sealed::raise_open_file_limit() {
        Ok(limit) => debug!(limit, "Open file limit."),
        Err(error) => warn!(%error, "Could not raise the open file limit."),
    }
    // Live segments in unnamed files of the data directory's filesystem, sent from its
    // page cache as nginx sends files; memory files where it cannot take them.
    let segments = data.join("segments");
    if let Err(error) = headend::sealed::use_directory(&segments) {
        warn!(directory = %segments.display(), %error, "Cannot keep live segments in files there; they are kept in memory files.");
    }
    headend::pipeline::init().context("initialising GStreamer")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        // SIGHUP's default action ends the process: listen for it before anyone can
        // send it expecting a reload.
        let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("listening for SIGHUP")?;
        let store = SegmentStore::new();
        let library = Library::new(&data);
        let config = OriginConfig {
            listen,
            vod_root: Some(library.root().to_owned()),
            public_url: public_url.clone(),
            ..OriginConfig::default()
        };
        let origin = Origin::bind(config, store.clone())
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let (listing, listed) = tokio::sync::watch::channel(catalog.clone());
        let status = Registry::new();
        let supervisor = Supervisor::start(catalog.clone(), store, status.clone());
        let (reloads, reloader) =
            Reloader::new(files.clone(), catalog.clone(), supervisor, listing).spawn();
        if token.is_none() {
            info!(variable = TOKEN_ENV, "No API token is configured; /api/v1/ answers 403.");
        }
        let origin = origin
            .with_live_catalog(listed)
            .with_status(status.clone())
            .with_api(ApiSettings {
                reloads: reloads.clone(),
                token,
                public_read: public_api,
            });
        let addr = origin.local_addr();
        let base = public_url.map_or_else(|| format!("http://{addr}"), |url| url.to_string());
        info!(playlist = %format!("{base}/playlist.m3u"), guide = %format!("{base}/epg.xml"), "IPTV playlist and guide URLs.");
        info!(%addr, channels = catalog.channels.len(), "Headend serving.");
        for channel in &catalog.channels {
            info!(channel = %channel.id, url = %format!("http://{addr}/live/{}/master.m3u8", channel.id), "Channel URL.");
        }
        tokio::spawn(reload_on_hangup(hangups, reloads.clone()));
        // A catalog that cannot be watched still reloads on SIGHUP and by the API.
        let _watcher = if watch {
            watcher::watch(&files, reloads)
                .inspect_err(|error| warn!(%error, "The catalog files are not watched; reload with SIGHUP or POST /api/v1/reload."))
                .ok()
        } else {
            info!("The catalog files are not watched (--no-watch).");
            None
        };
        // Transcodes block, so VOD ingests run on a thread of their own, one at a time;
        // each asset is served as soon as it is published.
        let stop_ingest = Arc::new(AtomicBool::new(false));
        if !catalog.assets.is_empty() {
            for asset in &catalog.assets {
                info!(asset = %asset.id, url = %format!("http://{addr}/vod/{}/master.m3u8", asset.id), "VOD asset URL.");
            }
            vod::spawn_background(library, catalog.clone(), stop_ingest.clone(), format!("http://{addr}"), status)
                .context("starting the VOD ingest thread")?;
        }
        origin.serve(shutdown_signal()).await.context("serving")?;
        // An ingest in progress is abandoned with the process; its staging folder is
        // removed at the next start.
        stop_ingest.store(true, Ordering::Relaxed);
        info!("Stopping channels.");
        reloader.shutdown().await;
        Ok(())
    })
}

/// The API token: from `--api-token-file`, else from the environment.
fn api_token(file: Option<&Path>) -> anyhow::Result<Option<ApiToken>> {
    if let Some(file) = file {
        return Ok(Some(ApiToken::read(file)?));
    }
    match std::env::var(TOKEN_ENV) {
        Ok(text) if !text.trim().is_empty() => Ok(Some(
            ApiToken::new(&text).with_context(|| format!("reading {TOKEN_ENV}"))?,
        )),
        _ => Ok(None),
    }
}

/// Asks for a catalog reload on every SIGHUP.
async fn reload_on_hangup(mut hangups: tokio::signal::unix::Signal, reloads: ReloadHandle) {
    while hangups.recv().await.is_some() {
        info!("SIGHUP received; reloading the catalog.");
        reloads.request(Trigger::Signal);
    }
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
