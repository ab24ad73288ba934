//! Catalog hot reload: the catalog files are read again on a file change
//! ([`watcher`]), on SIGHUP and on `POST /api/v1/reload`, and the running channels are
//! taken to the new catalog by diff.
//!
//! One task, the [`Reloader`], owns the running catalog and the [`Supervisor`], and
//! handles reloads one at a time in the order asked, so two reloads in quick
//! succession end with the second file's catalog. A reload:
//! 1. reads and validates every catalog file (off the runtime's threads);
//! 2. on any problem, rejects the edit whole: the running catalog stays, and the
//!    problems (`file:line:column: message`) are logged and kept for
//!    `GET /api/v1/catalog`;
//! 3. if the catalog is the one running, does nothing;
//! 4. otherwise applies the [`CatalogDiff`] through the supervisor (removed channels
//!    stop, changed channels restart, live fields update, added channels start), then
//!    hands the new catalog to the origin's listings.
//!
//! VOD assets are ingested from the catalog the process started with; a reload lists
//! their changes nowhere and ingests nothing new (a later issue).

pub mod watcher;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::catalog::{Catalog, CatalogDiff, Problem};
use crate::supervisor::Supervisor;

/// Reload requests waiting while one runs. A request that finds the queue full is
/// dropped: the reloads already queued read the same files.
const QUEUE: usize = 8;

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A catalog file was written, renamed over or removed.
    FileChange,
    /// SIGHUP.
    Signal,
    /// `POST /api/v1/reload`.
    Api,
}

impl Trigger {
    /// `file`, `signal` or `api`: the API's and the log's word for it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Trigger::FileChange => "file",
            Trigger::Signal => "signal",
            Trigger::Api => "api",
        }
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadResult {
    /// The new catalog runs; the diff says which channels it touched (it may be
    /// empty: a change to VOD assets, or to a ladder no channel uses).
    Applied(CatalogDiff),
    /// The files hold the catalog that is running: nothing was done.
    Unchanged,
    /// The files hold no valid catalog: nothing was done, and these are the problems.
    Rejected(Vec<Problem>),
}

impl ReloadResult {
    /// `applied`, `unchanged` or `rejected`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ReloadResult::Applied(_) => "applied",
            ReloadResult::Unchanged => "unchanged",
            ReloadResult::Rejected(_) => "rejected",
        }
    }
}

/// One reload: when, why, and what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadOutcome {
    pub trigger: Trigger,
    /// When it finished.
    pub at: SystemTime,
    pub result: ReloadResult,
}

/// The running catalog as `GET /api/v1/catalog` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogStatus {
    /// The catalog files, as given on the command line.
    pub files: Vec<PathBuf>,
    /// When the running catalog was loaded (the start, or the last applied reload).
    pub loaded_at: SystemTime,
    /// The running catalog's channel ids, in catalog order.
    pub channels: Vec<String>,
    /// The latest reload, whatever its result; `None` before the first.
    pub last_reload: Option<ReloadOutcome>,
    /// Reloads rejected since the start (`headend_catalog_reload_failures_total`).
    pub rejected: u64,
}

struct Request {
    trigger: Trigger,
    reply: Option<oneshot::Sender<ReloadOutcome>>,
}

/// A cheap, cloneable way to ask for reloads and to read the catalog's status.
#[derive(Clone)]
pub struct ReloadHandle {
    requests: mpsc::Sender<Request>,
    status: watch::Receiver<CatalogStatus>,
}

impl std::fmt::Debug for ReloadHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadHandle").finish_non_exhaustive()
    }
}

impl ReloadHandle {
    /// Asks for a reload without waiting for it.
    pub fn request(&self, trigger: Trigger) {
        let request = Request {
            trigger,
            reply: None,
        };
        match self.requests.try_send(request) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => info!(
                trigger = trigger.as_str(),
                "Catalog reloads are already queued; this request joins them."
            ),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                debug!(
                    trigger = trigger.as_str(),
                    "The headend is stopping; no reload."
                );
            }
        }
    }

    /// Reloads and answers what the reload did; `None` if the headend is shutting
    /// down.
    pub async fn reload(&self, trigger: Trigger) -> Option<ReloadOutcome> {
        let (reply, outcome) = oneshot::channel();
        let request = Request {
            trigger,
            reply: Some(reply),
        };
        self.requests.send(request).await.ok()?;
        outcome.await.ok()
    }

    /// The running catalog and the latest reload.
    pub fn status(&self) -> CatalogStatus {
        self.status.borrow().clone()
    }

    /// A receiver that changes after every reload.
    pub fn subscribe(&self) -> watch::Receiver<CatalogStatus> {
        self.status.clone()
    }
}

/// Owns the running catalog and the supervisor; applies reloads one at a time.
pub struct Reloader {
    files: Vec<PathBuf>,
    catalog: Arc<Catalog>,
    supervisor: Supervisor,
    /// The catalog the origin lists at `/playlist.m3u` and `/epg.xml`.
    listing: watch::Sender<Arc<Catalog>>,
    status: watch::Sender<CatalogStatus>,
}

/// The reloader's task; [`Running::shutdown`] stops it and every channel (so does
/// dropping it, without waiting).
pub struct Running {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Running {
    /// Finishes the reload in progress, if any, then stops every channel.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(());
        if let Err(err) = self.task.await {
            warn!(%err, "The catalog reloader ended abnormally.");
        }
    }
}

impl Reloader {
    /// `catalog` was loaded from `files` and `supervisor` runs it; `listing` is the
    /// origin's view of it.
    pub fn new(
        files: Vec<PathBuf>,
        catalog: Arc<Catalog>,
        supervisor: Supervisor,
        listing: watch::Sender<Arc<Catalog>>,
    ) -> Reloader {
        let status = CatalogStatus {
            files: files.clone(),
            loaded_at: SystemTime::now(),
            channels: channel_ids(&catalog),
            last_reload: None,
            rejected: 0,
        };
        Reloader {
            files,
            catalog,
            supervisor,
            listing,
            status: watch::Sender::new(status),
        }
    }

    /// Starts the task that applies reloads. Must be called within a tokio runtime.
    pub fn spawn(self) -> (ReloadHandle, Running) {
        let (requests, queue) = mpsc::channel(QUEUE);
        let handle = ReloadHandle {
            requests,
            status: self.status.subscribe(),
        };
        let (shutdown, stopped) = oneshot::channel();
        let task = tokio::spawn(self.run(queue, stopped));
        (handle, Running { shutdown, task })
    }

    async fn run(mut self, mut queue: mpsc::Receiver<Request>, mut stopped: oneshot::Receiver<()>) {
        loop {
            tokio::select! {
                biased;
                _ = &mut stopped => break,
                request = queue.recv() => {
                    let Some(request) = request else {
                        // Nobody can ask for a reload any more; run until shutdown.
                        let _ = (&mut stopped).await;
                        break;
                    };
                    let outcome = self.reload(request.trigger).await;
                    if let Some(reply) = request.reply {
                        let _ = reply.send(outcome);
                    }
                }
            }
        }
        self.supervisor.shutdown().await;
    }

    async fn reload(&mut self, trigger: Trigger) -> ReloadOutcome {
        let files = self.files.clone();
        // Reading the files (and the EPG files they name) blocks.
        let loaded = tokio::task::spawn_blocking(move || Catalog::load(&files)).await;
        let result = match loaded {
            Err(err) => {
                warn!(trigger = trigger.as_str(), %err, "The catalog reload failed; the running catalog stays.");
                ReloadResult::Rejected(vec![Problem {
                    file: self.files.first().cloned().unwrap_or_default(),
                    line: None,
                    column: None,
                    message: format!("the reload failed: {err}"),
                }])
            }
            Ok(Err(err)) => {
                let problems = err.problems();
                warn!(
                    trigger = trigger.as_str(),
                    problems = problems.len(),
                    "Catalog reload rejected; the running catalog stays."
                );
                for problem in &problems {
                    warn!(%problem, "Catalog problem.");
                }
                ReloadResult::Rejected(problems)
            }
            Ok(Ok(catalog)) if catalog == *self.catalog => {
                info!(
                    trigger = trigger.as_str(),
                    "Catalog reloaded: nothing changed."
                );
                ReloadResult::Unchanged
            }
            Ok(Ok(catalog)) => {
                for warning in &catalog.warnings {
                    warn!(%warning, "The catalog has a warning; it is loaded anyway.");
                }
                let catalog = Arc::new(catalog);
                let diff = CatalogDiff::between(&self.catalog, &catalog);
                self.supervisor.apply(&catalog, &diff).await;
                self.listing.send_replace(catalog.clone());
                self.catalog = catalog;
                info!(
                    trigger = trigger.as_str(),
                    added = ?diff.added,
                    removed = ?diff.removed,
                    restarted = ?diff.restarted,
                    updated = ?diff.updated,
                    "Catalog reloaded."
                );
                ReloadResult::Applied(diff)
            }
        };
        let outcome = ReloadOutcome {
            trigger,
            at: SystemTime::now(),
            result,
        };
        let applied = matches!(outcome.result, ReloadResult::Applied(_));
        let rejected = matches!(outcome.result, ReloadResult::Rejected(_));
        let channels = channel_ids(&self.catalog);
        self.status.send_modify(|status| {
            if applied {
                status.loaded_at = outcome.at;
                status.channels = channels;
            }
            if rejected {
                status.rejected += 1;
            }
            status.last_reload = Some(outcome.clone());
        });
        outcome
    }
}

fn channel_ids(catalog: &Catalog) -> Vec<String> {
    catalog.channels.iter().map(|c| c.id.clone()).collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::store::SegmentStore;

    /// Channels with `outputs: { hls: false }` run no pipeline, so the reloader is
    /// tested here without GStreamer; `tests/reload.rs` runs real channels.
    fn catalog_text(channels: &[(&str, u32, &str)]) -> String {
        let mut text = String::from(
            "encoders:\n  x264: { element: x264enc }\n\
             ladders:\n  small:\n    encoder: x264\n    segment_duration: 2\n    gop: 2\n    window: 5\n    \
             renditions:\n      - { name: 240p, width: 320, height: 240, bitrate: 300, profile: main, max_framerate: 25 }\n    \
             audio: { codec: aac, bitrate: 64, channels: 2 }\nchannels:\n",
        );
        for (id, number, name) in channels {
            text.push_str(&format!(
                "  - {{ id: {id}, number: {number}, name: \"{name}\", group: G, source: {{ uri: \"test://\" }}, ladder: small, outputs: {{ hls: false }} }}\n"
            ));
        }
        text
    }

    struct Fixture {
        dir: PathBuf,
        file: PathBuf,
        reloads: ReloadHandle,
        listed: watch::Receiver<Arc<Catalog>>,
        _running: Running,
    }

    impl Fixture {
        fn new(text: &str) -> Fixture {
            static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "headend-reload-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let file = dir.join("catalog.yaml");
            std::fs::write(&file, text).expect("catalog file");
            let catalog = Arc::new(Catalog::load(&[&file]).expect("loads"));
            let supervisor = Supervisor::start(
                catalog.clone(),
                SegmentStore::new(),
                crate::status::Registry::new(),
            );
            let (listing, listed) = watch::channel(catalog.clone());
            let (reloads, running) =
                Reloader::new(vec![file.clone()], catalog, supervisor, listing).spawn();
            Fixture {
                dir,
                file,
                reloads,
                listed,
                _running: running,
            }
        }

        /// Replaces the catalog file as deploy tools do: a new file renamed over it.
        fn replace(&self, text: &str) {
            let temp = self.dir.join(".catalog.yaml.tmp");
            std::fs::write(&temp, text).expect("temp file");
            std::fs::rename(&temp, &self.file).expect("rename");
        }

        fn listed_ids(&self) -> Vec<String> {
            channel_ids(&self.listed.borrow())
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    async fn reload(fixture: &Fixture) -> ReloadOutcome {
        fixture
            .reloads
            .reload(Trigger::Api)
            .await
            .expect("the reloader runs")
    }

    #[tokio::test]
    async fn a_changed_catalog_is_applied_by_diff_and_listed() {
        let fixture = Fixture::new(&catalog_text(&[("a", 1, "A"), ("b", 2, "B")]));
        let before = fixture.reloads.status();
        assert_eq!(before.channels, ids(&["a", "b"]));
        assert_eq!(before.last_reload, None);
        fixture.replace(&catalog_text(&[("a", 1, "Alpha"), ("c", 3, "C")]));
        let outcome = reload(&fixture).await;
        assert_eq!(
            outcome.result,
            ReloadResult::Applied(CatalogDiff {
                added: ids(&["c"]),
                removed: ids(&["b"]),
                restarted: vec![],
                updated: ids(&["a"]),
            })
        );
        let status = fixture.reloads.status();
        assert_eq!(status.channels, ids(&["a", "c"]));
        assert!(status.loaded_at >= before.loaded_at);
        assert_eq!(status.last_reload, Some(outcome));
        assert_eq!(fixture.listed_ids(), ids(&["a", "c"]));
        assert_eq!(fixture.listed.borrow().channels[0].name, "Alpha");
    }

    #[tokio::test]
    async fn the_same_catalog_again_changes_nothing() {
        let text = catalog_text(&[("a", 1, "A")]);
        let fixture = Fixture::new(&text);
        let loaded_at = fixture.reloads.status().loaded_at;
        // Rewritten with the same content (a touch, an editor's save).
        fixture.replace(&text);
        assert_eq!(reload(&fixture).await.result, ReloadResult::Unchanged);
        assert_eq!(fixture.reloads.status().loaded_at, loaded_at);
    }

    #[tokio::test]
    async fn an_invalid_edit_is_rejected_whole_and_the_old_catalog_stays() {
        let fixture = Fixture::new(&catalog_text(&[("a", 1, "A"), ("b", 2, "B")]));
        // Valid YAML but for one line: nothing of it applies, not even the new channel.
        let mut text = catalog_text(&[("a", 1, "A"), ("c", 3, "C")]);
        text.push_str("  - { id: d, number: 1, name: D, group: G, source: { uri: \"ftp://x\" }, ladder: nope }\n");
        fixture.replace(&text);
        let outcome = reload(&fixture).await;
        let ReloadResult::Rejected(problems) = &outcome.result else {
            panic!("applied: {outcome:?}");
        };
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let file = fixture.file.display().to_string();
        assert!(lines.len() >= 3, "{lines:#?}");
        for line in &lines {
            assert!(line.starts_with(&format!("{file}:15:")), "{line}");
        }
        assert!(lines.iter().any(|l| l.contains("ftp")), "{lines:#?}");
        assert_eq!(fixture.listed_ids(), ids(&["a", "b"]));
        let status = fixture.reloads.status();
        assert_eq!(status.channels, ids(&["a", "b"]));
        assert_eq!(status.last_reload, Some(outcome));
        assert_eq!(status.rejected, 1);
    }

    #[tokio::test]
    async fn a_missing_file_is_rejected_and_its_return_is_applied() {
        let fixture = Fixture::new(&catalog_text(&[("a", 1, "A")]));
        std::fs::remove_file(&fixture.file).expect("remove");
        let outcome = reload(&fixture).await;
        let ReloadResult::Rejected(problems) = &outcome.result else {
            panic!("applied: {outcome:?}");
        };
        assert_eq!(problems[0].file, fixture.file);
        assert_eq!(problems[0].line, None);
        assert_eq!(fixture.listed_ids(), ids(&["a"]));
        fixture.replace(&catalog_text(&[("b", 1, "B")]));
        assert!(matches!(
            reload(&fixture).await.result,
            ReloadResult::Applied(_)
        ));
        assert_eq!(fixture.listed_ids(), ids(&["b"]));
    }

    #[tokio::test]
    async fn reloads_asked_for_at_once_run_in_order_and_the_last_file_wins() {
        let fixture = Fixture::new(&catalog_text(&[("a", 1, "A")]));
        fixture.replace(&catalog_text(&[("b", 1, "B")]));
        let first = fixture.reloads.reload(Trigger::Api);
        fixture.replace(&catalog_text(&[("c", 1, "C")]));
        let second = fixture.reloads.reload(Trigger::Signal);
        let (first, second) = tokio::join!(first, second);
        // The first may have read either file; the second read the last one.
        assert!(first.is_some_and(|o| o.trigger == Trigger::Api));
        let second = second.expect("the reloader runs");
        assert_eq!(second.trigger, Trigger::Signal);
        assert_eq!(fixture.listed_ids(), ids(&["c"]));
        assert_eq!(fixture.reloads.status().last_reload, Some(second));
    }

    /// Waits for the next reload's outcome.
    async fn next_outcome(status: &mut watch::Receiver<CatalogStatus>) -> ReloadOutcome {
        tokio::time::timeout(Duration::from_secs(10), status.changed())
            .await
            .expect("a reload within 10 s")
            .expect("the reloader runs");
        status
            .borrow_and_update()
            .last_reload
            .clone()
            .expect("an outcome")
    }

    #[tokio::test]
    async fn a_configmap_style_link_swap_reloads_the_catalog() {
        // `catalog.yaml -> ..data/catalog.yaml`, `..data -> ..v1`; an update renames a
        // new `..data` link (to `..v2`) into place.
        let fixture = Fixture::new("channels: []\n");
        let versions = |name: &str, text: &str| {
            std::fs::create_dir_all(fixture.dir.join(name)).expect("dir");
            std::fs::write(fixture.dir.join(name).join("catalog.yaml"), text).expect("file");
        };
        versions("..v1", &catalog_text(&[("a", 1, "A")]));
        std::os::unix::fs::symlink("..v1", fixture.dir.join("..data")).expect("link");
        std::fs::remove_file(&fixture.file).expect("remove");
        std::os::unix::fs::symlink("..data/catalog.yaml", &fixture.file).expect("link");
        assert!(matches!(
            reload(&fixture).await.result,
            ReloadResult::Applied(_)
        ));
        let _watcher = watcher::watch(std::slice::from_ref(&fixture.file), fixture.reloads.clone())
            .expect("watches");
        let mut status = fixture.reloads.subscribe();
        status.mark_unchanged();
        versions("..v2", &catalog_text(&[("b", 1, "B")]));
        std::os::unix::fs::symlink("..v2", fixture.dir.join("..data_tmp")).expect("link");
        std::fs::rename(fixture.dir.join("..data_tmp"), fixture.dir.join("..data")).expect("swap");
        let outcome = next_outcome(&mut status).await;
        assert_eq!(outcome.trigger, Trigger::FileChange);
        assert_eq!(fixture.listed_ids(), ids(&["b"]));
    }

    #[tokio::test]
    async fn a_file_renamed_over_the_catalog_reloads_it_once() {
        let fixture = Fixture::new(&catalog_text(&[("a", 1, "A")]));
        let _watcher = watcher::watch(std::slice::from_ref(&fixture.file), fixture.reloads.clone())
            .expect("watches");
        let mut status = fixture.reloads.subscribe();
        // A burst: a temp file written, renamed over the catalog, then touched again.
        fixture.replace(&catalog_text(&[("b", 1, "B")]));
        std::fs::write(&fixture.file, catalog_text(&[("b", 1, "B")])).expect("write");
        let outcome = next_outcome(&mut status).await;
        assert_eq!(outcome.trigger, Trigger::FileChange);
        assert!(
            matches!(outcome.result, ReloadResult::Applied(_)),
            "{outcome:?}"
        );
        assert_eq!(fixture.listed_ids(), ids(&["b"]));
        // Debounced into one reload: nothing more comes.
        let more = tokio::time::timeout(watcher::DEBOUNCE * 3, status.changed()).await;
        assert!(
            more.is_err(),
            "a second reload: {:?}",
            status.borrow().last_reload
        );
        // Another file in the directory is not the catalog.
        std::fs::write(fixture.dir.join("notes.txt"), "x").expect("write");
        let more = tokio::time::timeout(watcher::DEBOUNCE * 3, status.changed()).await;
        assert!(more.is_err(), "reloaded for another file");
        assert!(Path::new(&fixture.file).exists());
    }
}
