//! Origin: the HTTP server that plays out the live window from the [`SegmentStore`]
//! and published VOD assets from disk, lists the catalog's channels and their guide
//! for IPTV apps (`listing.rs`: `/playlist.m3u`, `/epg.xml`), and answers operators:
//! the API (`api.rs`: `/api/v1/catalog`, `/api/v1/reload`, `/api/v1/channels`,
//! `/api/v1/vod`), `/metrics` (`metrics.rs`, the Prometheus text format), `/healthz`
//! and `/readyz`. Every request is counted by route kind and status for `/metrics`.
//!
//! hyper 1.x on tokio, HTTP/1.1 and HTTP/2 (h2c prior knowledge) on one port through
//! hyper-util's auto builder, served by one thread per core (`origin-worker`), each
//! with a single-threaded runtime of its own (see [`Origin::serve`]). Live answers are
//! built from `Bytes` already in memory (`service.rs`), so they never wait on anything
//! but their own socket; a VOD answer reads one file through tokio's blocking pool.
//!
//! Limits a hostile or broken client meets:
//! - request head size: `max_header_bytes` (HTTP/1 read buffer, HTTP/2 header list);
//!   an oversized HTTP/1 head gets 431 from hyper;
//! - `header_read_timeout` for an HTTP/1 request head. hyper 1.x also runs this timer
//!   while a keep-alive connection waits for its next request, so an idle HTTP/1
//!   connection closes after the shorter of this and `idle_timeout`;
//! - `idle_timeout`: no byte read or written for this long closes any connection
//!   (`idle.rs`), including one that never sends a byte;
//! - shutdown drains open connections for at most [`DRAIN_TIMEOUT`], then drops them.

mod api;
mod etag;
mod idle;
mod listing;
mod metrics;
mod page;
mod range;
mod route;
mod sendfile;
mod service;

pub use api::{ApiSettings, ApiToken, ApiTokenError, MIN_TOKEN_LEN, TOKEN_ENV};
pub use listing::{PublicUrl, PublicUrlError};

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use self::sendfile::SocketTuning;
use crate::catalog::Catalog;
use crate::status::Registry;
use crate::store::SegmentStore;

/// How long open connections may take to finish after shutdown is asked for.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// hyper panics on an HTTP/1 read buffer below 8 KiB (`MINIMUM_MAX_BUFFER_SIZE`), so
/// smaller limits are refused at bind time instead.
const MIN_HEADER_BYTES: usize = 8 * 1024;

/// A pause after an accept error that is not about one connection (out of file
/// descriptors, say), so the loop does not spin while the condition lasts.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// What the origin listens on and the limits it puts on clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginConfig {
    pub listen: SocketAddr,
    /// Largest request head accepted, in bytes (at least 8 KiB).
    pub max_header_bytes: usize,
    /// A connection with no traffic either way for this long is closed.
    pub idle_timeout: Duration,
    /// Time allowed for an HTTP/1 request head to arrive in full.
    pub header_read_timeout: Duration,
    /// The VOD library (`{data}/vod`, see `vod::Library`) served under `/vod/`;
    /// `None` serves no VOD.
    pub vod_root: Option<PathBuf>,
    /// The base of the absolute URLs in `/playlist.m3u` and `/epg.xml`; `None` takes
    /// `http://` and the request's `Host`.
    pub public_url: Option<PublicUrl>,
    /// Threads serving connections (see [`Origin::serve`]); by default one per core.
    pub workers: usize,
}

impl Default for OriginConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            // Players send short heads; 16 KiB leaves room for long cookies and tokens.
            max_header_bytes: 16 * 1024,
            idle_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(10),
            vod_root: None,
            public_url: None,
            workers: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        }
    }
}

/// The origin's errors. Match on the variant; the wording may change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OriginError {
    #[error("invalid origin configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("cannot start the origin's worker threads")]
    Worker {
        #[source]
        source: io::Error,
    },
}

/// A bound origin server; [`Origin::serve`] runs it.
pub struct Origin {
    listener: TcpListener,
    local_addr: SocketAddr,
    config: OriginConfig,
    store: Arc<SegmentStore>,
    catalog: Option<watch::Receiver<Arc<Catalog>>>,
    api: Option<ApiSettings>,
    status: Arc<Registry>,
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin")
            .field("local_addr", &self.local_addr)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Origin {
    /// Checks the configuration and binds the listening socket.
    pub async fn bind(
        config: OriginConfig,
        store: Arc<SegmentStore>,
    ) -> Result<Origin, OriginError> {
        validate(&config)?;
        let addr = config.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| OriginError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| OriginError::Bind { addr, source })?;
        Ok(Origin {
            listener,
            local_addr,
            config,
            store,
            catalog: None,
            api: None,
            status: Registry::new(),
        })
    }

    /// Lists `catalog`'s channels at `/playlist.m3u` and their guide at `/epg.xml`.
    /// Without a catalog both answer 404.
    pub fn with_catalog(self, catalog: Arc<Catalog>) -> Origin {
        // A receiver keeps the last value once its sender is gone.
        self.with_live_catalog(watch::channel(catalog).1)
    }

    /// As [`with_catalog`](Self::with_catalog), for a catalog that reloads replace:
    /// each request lists the catalog `catalog` holds at that moment.
    pub fn with_live_catalog(mut self, catalog: watch::Receiver<Arc<Catalog>>) -> Origin {
        self.catalog = Some(catalog);
        self
    }

    /// Answers the operations API under `/api/v1/`. Without it those paths are 404.
    pub fn with_api(mut self, api: ApiSettings) -> Origin {
        self.api = Some(api);
        self
    }

    /// Reports the channels and VOD assets of `status` in the API, `/metrics` and
    /// `/readyz`, and counts segment requests into it. Without it nothing is
    /// registered: no channel is listed or waited for.
    pub fn with_status(mut self, status: Arc<Registry>) -> Origin {
        self.status = status;
        self
    }

    /// The address actually bound (the port is chosen by the OS for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` resolves, then stops accepting and drains open
    /// connections for at most [`DRAIN_TIMEOUT`].
    ///
    /// Connections are served by [`OriginConfig::workers`] threads named
    /// `origin-worker`, each with a single-threaded tokio runtime of its own that
    /// accepts from the one listening socket, as nginx's worker processes do: a
    /// connection stays on the thread that accepted it, so its state stays in that
    /// core's cache and no task moves between threads. Against one multi-threaded
    /// runtime this serves about a third more segment requests at 1024 connections, for
    /// about a sixth less CPU each (`docs/benchmarks.md`).
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), OriginError> {
        let Origin {
            listener,
            local_addr,
            config,
            store,
            catalog,
            api,
            status,
        } = self;
        let worker_error = |source| OriginError::Worker { source };
        let listener = listener.into_std().map_err(worker_error)?;
        let template = Worker {
            builder: connection_builder(&config),
            sources: service::Sources {
                vod_root: config.vod_root,
                catalog,
                public_url: config.public_url,
                api,
                status,
                ..service::Sources::new(store)
            },
            idle_timeout: config.idle_timeout,
            local_addr,
        };
        let (stop, stopping) = watch::channel(false);
        let mut finished = Vec::with_capacity(config.workers);
        for _ in 0..config.workers {
            let listener = listener.try_clone().map_err(worker_error)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(worker_error)?;
            // Nothing is ever sent: the receiver resolves when the thread drops `done`.
            let (done, finish) = tokio::sync::oneshot::channel::<()>();
            // Each thread its own copy, so the reference count every request takes and
            // drops stays in that thread's core.
            let worker = Arc::new(template.clone());
            let mut stopping = stopping.clone();
            std::thread::Builder::new()
                .name("origin-worker".to_owned())
                .spawn(move || {
                    runtime.block_on(async move {
                        let stop = async move {
                            // An error means the sender is gone: stop then too.
                            let _ = stopping.wait_for(|stop| *stop).await;
                        };
                        worker.serve(listener, stop).await;
                    });
                    drop(done);
                })
                .map_err(worker_error)?;
            finished.push(finish);
        }
        drop(listener);
        info!(addr = %local_addr, workers = config.workers, "Origin listening.");
        shutdown.await;
        info!(addr = %local_addr, "Origin stopping: no new connections; draining open ones.");
        let _ = stop.send(true);
        for finish in finished {
            let _ = finish.await;
        }
        info!(addr = %local_addr, "Origin stopped.");
        Ok(())
    }
}

/// What a request knows of the connection it came in on, in its extensions.
#[derive(Debug, Clone)]
pub(crate) struct ClientConnection {
    /// The address this client reached (not 0.0.0.0): listings fall back to it for
    /// their URLs when a request names no host.
    pub(crate) local_addr: SocketAddr,
    /// Socket options a response asks for (a `/ts/` stream: a send buffer sized to it).
    pub(crate) socket: SocketTuning,
}

/// One origin worker thread's settings and sources (the sources shared by all).
#[derive(Clone)]
struct Worker {
    builder: auto::Builder<TokioExecutor>,
    sources: service::Sources,
    idle_timeout: Duration,
    local_addr: SocketAddr,
}

impl Worker {
    /// Accepts and serves connections from `listener` until `stop` resolves, then
    /// stops accepting and drains this worker's connections for at most
    /// [`DRAIN_TIMEOUT`].
    async fn serve(
        self: Arc<Self>,
        listener: std::net::TcpListener,
        stop: impl Future<Output = ()>,
    ) {
        let listener = match TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(e) => {
                warn!(error = %e, "An origin worker could not listen; the others serve.");
                return;
            }
        };
        let graceful = GracefulShutdown::new();
        let mut connections = JoinSet::new();
        let mut stop = std::pin::pin!(stop);
        loop {
            tokio::select! {
                biased;
                () = &mut stop => break,
                Some(joined) = connections.join_next(), if !connections.is_empty() => {
                    if let Err(e) = joined {
                        if e.is_panic() {
                            warn!(error = %e, "Origin connection task panicked.");
                        }
                    }
                }
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(accepted) => accepted,
                        // Another worker took the connection first.
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(e) => {
                            warn!(error = %e, "Origin could not accept a connection.");
                            if !is_per_connection(&e) {
                                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                            }
                            continue;
                        }
                    };
                    let worker = Arc::clone(&self);
                    connections.spawn(worker.connection(stream, peer, graceful.watcher()));
                }
            }
        }

        drop(listener);
        debug!(
            addr = %self.local_addr,
            connections = graceful.count(),
            "Origin worker stopped accepting; draining its connections."
        );
        // A `/ts/` response never ends by itself; end them, so they drain like the rest.
        // Every worker does it once it accepts no more, so none is missed.
        self.sources.store.end_ts_streams();
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
            .await
            .is_err()
        {
            warn!(
                addr = %self.local_addr,
                timeout = ?DRAIN_TIMEOUT,
                "Origin connections did not drain in time; closing them."
            );
        }
        // Aborts whatever did not drain and waits for the tasks to go.
        connections.shutdown().await;
    }

    /// Serves one connection until it closes or the shutdown `watcher` ends it.
    async fn connection(
        self: Arc<Self>,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        watcher: hyper_util::server::graceful::Watcher,
    ) {
        // Playlists and small segments go out in few writes; Nagle would only add
        // latency at the live edge.
        if let Err(e) = stream.set_nodelay(true) {
            debug!(%peer, error = %e, "Could not set TCP_NODELAY.");
        }
        let client = ClientConnection {
            local_addr: stream.local_addr().unwrap_or(self.local_addr),
            socket: SocketTuning::default(),
        };
        let stream = sendfile::SendfileStream::new(stream, client.socket.clone());
        let io = TokioIo::new(idle::IdleTimeout::new(stream, self.idle_timeout));
        let worker = Arc::clone(&self);
        let service = service_fn(move |mut req: Request<Incoming>| {
            let worker = Arc::clone(&worker);
            req.extensions_mut().insert(client.clone());
            async move {
                let response = service::respond(&worker.sources, &req).await;
                debug!(
                    %peer,
                    method = %req.method(),
                    path = ?req.uri().path(),
                    version = ?req.version(),
                    status = response.status().as_u16(),
                    "Request served."
                );
                Ok::<_, Infallible>(response)
            }
        });
        let connection = self.builder.serve_connection(io, service);
        if let Err(e) = watcher.watch(connection).await {
            log_connection_error(peer, e.as_ref());
        }
    }
}

fn validate(config: &OriginConfig) -> Result<(), OriginError> {
    let mut problems = Vec::new();
    if config.max_header_bytes < MIN_HEADER_BYTES {
        problems.push(format!(
            "max_header_bytes is {}, the least allowed is {MIN_HEADER_BYTES}",
            config.max_header_bytes
        ));
    }
    if u32::try_from(config.max_header_bytes).is_err() {
        problems.push(format!(
            "max_header_bytes is {}, the most allowed is {}",
            config.max_header_bytes,
            u32::MAX
        ));
    }
    if config.idle_timeout.is_zero() {
        problems.push("idle_timeout must be more than zero".to_owned());
    }
    if config.header_read_timeout.is_zero() {
        problems.push("header_read_timeout must be more than zero".to_owned());
    }
    if config.workers == 0 {
        problems.push("workers must be at least 1".to_owned());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(OriginError::Config(problems.join("; ")))
    }
}

fn connection_builder(config: &OriginConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(config.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        // `validate` checked that it fits.
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// Accept errors that concern only the connection being accepted: the next accept may
/// well succeed at once.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// Clients that send garbage, stall or vanish are routine for a public server and are
/// logged at debug, so they cannot flood the log; anything else is a warning.
fn log_connection_error(peer: SocketAddr, error: &(dyn StdError + 'static)) {
    if is_client_fault(error) {
        debug!(%peer, error = %error, "Origin connection ended by a client error.");
    } else {
        warn!(%peer, error = %error, "Origin connection failed.");
    }
}

fn is_client_fault(error: &(dyn StdError + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        // A `/ts/` client that fell behind; the hub has said so already.
        if e.is::<crate::ts::TooSlow>() {
            return true;
        }
        if let Some(e) = e.downcast_ref::<hyper::Error>() {
            if e.is_parse() || e.is_parse_too_large() || e.is_timeout() || e.is_incomplete_message()
            {
                return true;
            }
        }
        if let Some(e) = e.downcast_ref::<io::Error>() {
            if matches!(
                e.kind(),
                io::ErrorKind::TimedOut
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            ) {
                return true;
            }
        }
        cause = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_problems_are_reported_together() {
        let config = OriginConfig {
            max_header_bytes: 1024,
            idle_timeout: Duration::ZERO,
            header_read_timeout: Duration::ZERO,
            workers: 0,
            ..OriginConfig::default()
        };
        let Err(OriginError::Config(message)) = validate(&config) else {
            panic!("invalid configuration accepted");
        };
        assert_eq!(
            message,
            "max_header_bytes is 1024, the least allowed is 8192; \
             idle_timeout must be more than zero; \
             header_read_timeout must be more than zero; \
             workers must be at least 1"
        );
        assert!(validate(&OriginConfig::default()).is_ok());
    }

    #[test]
    fn default_listens_on_localhost_8080() {
        assert_eq!(
            OriginConfig::default().listen,
            SocketAddr::from(([127, 0, 0, 1], 8080))
        );
    }

    #[test]
    fn timeouts_resets_and_slow_ts_clients_are_client_faults() {
        let timeout = io::Error::new(io::ErrorKind::TimedOut, "idle");
        assert!(is_client_fault(&timeout));
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        let wrapped: Box<dyn StdError + Send + Sync> = Box::new(reset);
        assert!(is_client_fault(wrapped.as_ref()));
        let other = io::Error::from(io::ErrorKind::PermissionDenied);
        assert!(!is_client_fault(&other));
        let too_slow: Box<dyn StdError + Send + Sync> = Box::new(crate::ts::TooSlow);
        assert!(is_client_fault(too_slow.as_ref()));
    }
}
