//! Reload on a file change. The directories of the catalog files are watched, not the
//! files: editors and deploy tools replace a file by renaming a new one over it, which
//! a watch on the old file (its inode) never sees. Events come in bursts (an editor's
//! write, chmod and rename; a deploy of several files), so a reload is asked for once
//! the catalog files have been quiet for [`DEBOUNCE`].

use std::collections::BTreeSet;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use notify::event::EventKind;
use notify::{Event, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::{ReloadHandle, Trigger};

/// Quiet time after the last event before reloading.
pub const DEBOUNCE: Duration = Duration::from_millis(400);

/// Why the catalog files cannot be watched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    #[error("cannot resolve the directory of {}: {source}", .path.display())]
    Resolve { path: PathBuf, source: io::Error },
    #[error("cannot start watching files: {0}")]
    Start(#[source] notify::Error),
    #[error("cannot watch {}: {source}", .dir.display())]
    Watch { dir: PathBuf, source: notify::Error },
}

/// Watches the catalog files until dropped.
pub struct CatalogWatcher {
    // Dropping it stops the notifications, which ends the task.
    _watcher: RecommendedWatcher,
    task: JoinHandle<()>,
}

impl Drop for CatalogWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Asks `reloads` for a reload whenever one of `files` is created, written, renamed
/// or removed, once things are quiet. Must be called within a tokio runtime.
pub fn watch(files: &[PathBuf], reloads: ReloadHandle) -> Result<CatalogWatcher, WatchError> {
    let targets = targets(files)?;
    // One slot: an event only says "something changed"; more say nothing more.
    let (changed, mut events) = mpsc::channel::<()>(1);
    let watched = targets.clone();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<Event>| match event {
            Ok(event) if concerns(&event, &watched) => {
                debug!(kind = ?event.kind, paths = ?event.paths, "A catalog file changed.");
                let _ = changed.try_send(());
            }
            Ok(_) => {}
            Err(error) => warn!(%error, "The catalog file watch reported an error."),
        })
        .map_err(WatchError::Start)?;
    let dirs: BTreeSet<&Path> = targets.iter().filter_map(|t| t.parent()).collect();
    for dir in &dirs {
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError::Watch {
                dir: dir.to_path_buf(),
                source,
            })?;
    }
    info!(directories = ?dirs, debounce_ms = DEBOUNCE.as_millis() as u64, "Watching the catalog files.");
    let task = tokio::spawn(async move {
        while events.recv().await.is_some() {
            loop {
                match tokio::time::timeout(DEBOUNCE, events.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            info!("A catalog file changed; reloading the catalog.");
            reloads.request(Trigger::FileChange);
        }
    });
    Ok(CatalogWatcher {
        _watcher: watcher,
        task,
    })
}

/// Each catalog file as its canonical directory joined with its name: the paths the
/// watch reports (the file itself may be a link, or be replaced, so only its directory
/// is resolved). A file that is a relative link also counts the first name its link
/// goes through: a Kubernetes ConfigMap volume holds `catalog.yaml ->
/// ..data/catalog.yaml` and publishes an update by renaming a new `..data` link into
/// place, which is an event on `..data` alone.
fn targets(files: &[PathBuf]) -> Result<BTreeSet<PathBuf>, WatchError> {
    let mut targets = BTreeSet::new();
    for file in files {
        let resolve = |source| WatchError::Resolve {
            path: file.clone(),
            source,
        };
        let absolute = std::path::absolute(file).map_err(resolve)?;
        let (Some(dir), Some(name)) = (absolute.parent(), absolute.file_name()) else {
            return Err(resolve(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a file path",
            )));
        };
        let dir = dir.canonicalize().map_err(resolve)?;
        if let Ok(link) = std::fs::read_link(&absolute) {
            if let Some(Component::Normal(first)) = link.components().next() {
                if link.components().count() > 1 {
                    targets.insert(dir.join(first));
                }
            }
        }
        targets.insert(dir.join(name));
    }
    Ok(targets)
}

/// A creation, a write, a rename or a removal of one of the catalog files.
fn concerns(event: &Event, targets: &BTreeSet<PathBuf>) -> bool {
    matches!(
        event.kind,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any
    ) && event.paths.iter().any(|path| targets.contains(path))
}

#[cfg(test)]
mod tests {
    use notify::event::{AccessKind, CreateKind, ModifyKind, RenameMode};

    use super::*;

    #[test]
    fn only_changes_to_the_catalog_files_count() {
        let targets: BTreeSet<PathBuf> = [PathBuf::from("/srv/manifests/channels.yaml")].into();
        let event = |kind, path: &str| Event::new(kind).add_path(PathBuf::from(path));
        let renamed_over = Event::new(EventKind::Modify(ModifyKind::Name(RenameMode::Both)))
            .add_path(PathBuf::from("/srv/manifests/.channels.yaml.tmp"))
            .add_path(PathBuf::from("/srv/manifests/channels.yaml"));
        assert!(concerns(&renamed_over, &targets));
        assert!(concerns(
            &event(
                EventKind::Modify(ModifyKind::Name(RenameMode::To)),
                "/srv/manifests/channels.yaml"
            ),
            &targets
        ));
        assert!(concerns(
            &event(
                EventKind::Create(CreateKind::File),
                "/srv/manifests/channels.yaml"
            ),
            &targets
        ));
        assert!(!concerns(
            &event(
                EventKind::Create(CreateKind::File),
                "/srv/manifests/.channels.yaml.tmp"
            ),
            &targets
        ));
        assert!(!concerns(
            &event(
                EventKind::Access(AccessKind::Any),
                "/srv/manifests/channels.yaml"
            ),
            &targets
        ));
    }

    #[test]
    fn a_link_through_a_swapped_directory_link_counts_that_link() {
        let dir = std::env::temp_dir().join(format!("headend-watch-link-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("..v1")).expect("dirs");
        std::fs::write(dir.join("..v1/catalog.yaml"), "channels: []\n").expect("file");
        std::os::unix::fs::symlink("..v1", dir.join("..data")).expect("link");
        std::os::unix::fs::symlink("..data/catalog.yaml", dir.join("catalog.yaml")).expect("link");
        let found = targets(&[dir.join("catalog.yaml")]).expect("resolves");
        let canonical = dir.canonicalize().expect("exists");
        assert_eq!(
            found.into_iter().collect::<Vec<_>>(),
            [canonical.join("..data"), canonical.join("catalog.yaml")]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn targets_are_in_the_canonical_directory() {
        let dir = std::env::temp_dir();
        let file = dir.join("headend-watch-target.yaml");
        let targets = targets(std::slice::from_ref(&file)).expect("resolves");
        let expected = dir
            .canonicalize()
            .expect("exists")
            .join("headend-watch-target.yaml");
        assert_eq!(targets.into_iter().collect::<Vec<_>>(), [expected]);
        assert!(matches!(
            super::targets(&[PathBuf::from("/no/such/dir/catalog.yaml")]),
            Err(WatchError::Resolve { .. })
        ));
    }
}
