//! The VOD library on disk, and how an ingest is published into it.
//!
//! ```text
//! {data}/vod/
//!   film -> film.3f9c0a1b2c3d4e5f.1763726400123     (symbolic link: the published version)
//!   film.3f9c0a1b2c3d4e5f.1763726400123/            (one ingest: asset.json, master.m3u8, …)
//!   .tmp-film-4242-1763726512345678901/             (an ingest in progress, by process 4242)
//! ```
//!
//! An ingest writes everything into a staging directory on the same filesystem, then
//! renames it to a version directory and points the asset's link at it by renaming a
//! new link over the old one. Both renames are atomic (POSIX `rename(2)`), so a reader
//! sees the old version or the new one in full, never a mix, and a crash at any point
//! leaves the published version as it was. Asset ids have no dots and staging names
//! start with one, so a URL can name only a published asset.
//!
//! What a crash leaves behind (a staging directory of a dead process, a version that
//! was never linked) is removed by [`Library::clean_stale`] at the next start.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use super::fingerprint::FORMAT_VERSION;
use crate::catalog::is_url_segment;

/// Prefix of staging directories.
const STAGING_PREFIX: &str = ".tmp-";
/// Prefix of a new link before it is renamed over the asset's.
const LINK_PREFIX: &str = ".link-";
/// A version directory that no link names is removed only when older than this, so
/// one that another process has just renamed into place, and is about to link, is
/// left alone.
const ORPHAN_AGE: Duration = Duration::from_secs(60);
/// The file describing a published version.
pub const ASSET_JSON: &str = "asset.json";

/// What `asset.json` says: what was ingested, from what, when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetRecord {
    /// [`FORMAT_VERSION`] of the headend that wrote it.
    pub format: u32,
    pub id: String,
    pub fingerprint: String,
    /// Seconds of media (the longest track).
    pub duration: f64,
    /// RFC 3339, UTC.
    pub created: String,
    pub tracks: Vec<TrackRecord>,
    pub subtitles: Vec<SubtitleRecord>,
    /// File name of the poster in the asset's folder.
    pub poster: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackRecord {
    pub name: String,
    /// `video` or `audio`.
    pub kind: String,
    pub codecs: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub frame_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub channels: Option<u32>,
    /// Peak and average bit rates, bits per second.
    pub bandwidth: u64,
    pub average_bandwidth: u64,
    pub segments: usize,
    pub duration: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubtitleRecord {
    pub lang: String,
    pub name: String,
}

/// `{data}/vod`, and `{data}/sources`, where the copies of sources fetched over HTTP
/// are kept (`vod::fetch`).
#[derive(Debug, Clone)]
pub struct Library {
    root: PathBuf,
    sources: PathBuf,
}

/// A staging directory; removed on drop unless published, so an ingest that fails or
/// panics leaves nothing behind.
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
    asset: String,
    published: bool,
}

impl Staging {
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.published {
            return;
        }
        if let Err(error) = fs::remove_dir_all(&self.dir) {
            if error.kind() != io::ErrorKind::NotFound {
                warn!(asset = %self.asset, dir = %self.dir.display(), %error, "Could not remove a VOD staging directory.");
            }
        }
    }
}

impl Library {
    /// The library under a data directory.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("vod"),
            sources: data_dir.join("sources"),
        }
    }

    /// `{data}/sources`: the copies of sources fetched over HTTP, outside what the
    /// origin serves.
    pub fn sources_dir(&self) -> &Path {
        &self.sources
    }

    /// `{data}/vod`, which the origin serves `/vod/` from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The published version's folder of an asset (through its link).
    pub fn asset_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// The published version's record, if there is one this headend can serve. A
    /// record of another format, or one that does not parse, counts as none.
    pub fn current(&self, id: &str) -> Option<AssetRecord> {
        let text = fs::read(self.asset_dir(id).join(ASSET_JSON)).ok()?;
        let record: AssetRecord = serde_json::from_slice(&text).ok()?;
        (record.format == FORMAT_VERSION && record.id == id).then_some(record)
    }

    /// A new, empty staging directory for an ingest of `id`.
    pub fn stage(&self, id: &str) -> io::Result<Staging> {
        fs::create_dir_all(&self.root)?;
        let name = format!(
            "{STAGING_PREFIX}{id}-{}-{}",
            std::process::id(),
            unix_nanos()
        );
        let dir = self.root.join(name);
        fs::create_dir(&dir)?;
        Ok(Staging {
            dir,
            asset: id.to_owned(),
            published: false,
        })
    }

    /// Makes the staged ingest the published version of its asset, atomically, and
    /// returns the version's folder. The version it replaces is kept (a player in the
    /// middle of it can finish its segment) until the next publish or start; older
    /// ones are removed.
    pub fn publish(&self, mut staging: Staging, fingerprint: &str) -> io::Result<PathBuf> {
        let id = staging.asset.clone();
        sync_dir(&staging.dir)?;
        let version = format!(
            "{id}.{}.{}",
            &fingerprint[..16.min(fingerprint.len())],
            unix_millis()
        );
        let version_dir = self.root.join(&version);
        fs::rename(&staging.dir, &version_dir)?;
        staging.published = true;

        let link = self.asset_dir(&id);
        let previous = fs::read_link(&link).ok();
        let new_link = self.root.join(format!(
            "{LINK_PREFIX}{id}-{}-{}",
            std::process::id(),
            unix_nanos()
        ));
        std::os::unix::fs::symlink(&version, &new_link)?;
        if let Err(error) = fs::rename(&new_link, &link) {
            let _ = fs::remove_file(&new_link);
            return Err(error);
        }
        sync_dir(&self.root)?;

        let keep: Vec<&Path> = [Some(Path::new(&version)), previous.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        for old in self.versions_of(&id)? {
            if !keep.iter().any(|k| *k == Path::new(&old)) {
                remove_dir(&self.root.join(&old));
            }
        }
        Ok(version_dir)
    }

    /// Version folder names of an asset, whatever their state.
    fn versions_of(&self, id: &str) -> io::Result<Vec<String>> {
        let prefix = format!("{id}.");
        Ok(self
            .entry_names()?
            .into_iter()
            .filter(|name| name.starts_with(&prefix))
            .collect())
    }

    fn entry_names(&self) -> io::Result<Vec<String>> {
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error),
        };
        let mut names = Vec::new();
        for entry in entries {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Removes what interrupted ingests left: staging folders and links of processes
    /// that are gone, and version folders no link names (older than a minute). Returns
    /// what it removed. A library that does not exist yet has nothing to clean.
    pub fn clean_stale(&self) -> io::Result<Vec<PathBuf>> {
        let names = self.entry_names()?;
        let linked: Vec<PathBuf> = names
            .iter()
            .filter(|name| is_url_segment(name))
            .filter_map(|name| fs::read_link(self.root.join(name)).ok())
            .collect();
        let mut removed = Vec::new();
        for name in &names {
            let path = self.root.join(name);
            let stale = if let Some(rest) = name
                .strip_prefix(STAGING_PREFIX)
                .or_else(|| name.strip_prefix(LINK_PREFIX))
            {
                !owner_alive(rest)
            } else if let Some((id, _)) = name.split_once('.') {
                is_url_segment(id)
                    && !linked.iter().any(|l| l == Path::new(name))
                    && older_than(&path, ORPHAN_AGE)
            } else {
                false
            };
            if stale {
                debug!(path = %path.display(), "Removing what an interrupted VOD ingest left.");
                if path.is_dir() && !path.is_symlink() {
                    remove_dir(&path);
                } else {
                    let _ = fs::remove_file(&path);
                }
                removed.push(path);
            }
        }
        if !removed.is_empty() {
            info!(count = removed.len(), root = %self.root.display(), "Removed what interrupted VOD ingests left.");
        }
        Ok(removed)
    }
}

/// `{id}-{pid}-{nanos}`: whether process `pid` still runs (Linux `/proc`). A name
/// that does not parse belongs to no one.
fn owner_alive(rest: &str) -> bool {
    let mut parts = rest.rsplitn(3, '-');
    let (_nanos, pid) = (parts.next(), parts.next());
    match pid.and_then(|pid| pid.parse::<u32>().ok()) {
        Some(pid) => Path::new("/proc").join(pid.to_string()).exists(),
        None => false,
    }
}

fn older_than(path: &Path, age: Duration) -> bool {
    fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|modified| SystemTime::now().duration_since(modified).ok())
        .is_some_and(|elapsed| elapsed > age)
}

fn remove_dir(path: &Path) {
    if let Err(error) = fs::remove_dir_all(path) {
        warn!(path = %path.display(), %error, "Could not remove an old VOD version.");
    }
}

/// Makes a directory's entries (renames, new files) durable.
fn sync_dir(path: &Path) -> io::Result<()> {
    fs::File::open(path)?.sync_all()
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn unix_millis() -> u128 {
    unix_nanos() / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vod::writer::tests::Staging as TempDir;

    fn record(id: &str, fingerprint: &str) -> AssetRecord {
        AssetRecord {
            format: FORMAT_VERSION,
            id: id.into(),
            fingerprint: fingerprint.into(),
            duration: 12.0,
            created: "2026-11-21T12:00:00Z".into(),
            tracks: Vec::new(),
            subtitles: Vec::new(),
            poster: None,
        }
    }

    fn stage_with_record(library: &Library, id: &str, fingerprint: &str) -> Staging {
        let staging = library.stage(id).unwrap();
        let json = serde_json::to_vec(&record(id, fingerprint)).unwrap();
        fs::write(staging.path().join(ASSET_JSON), json).unwrap();
        staging
    }

    fn names(library: &Library) -> Vec<String> {
        library.entry_names().unwrap()
    }

    #[test]
    fn publishing_swaps_the_link_and_keeps_one_previous_version() {
        let temp = TempDir::new("library");
        let library = Library::new(&temp.0);
        assert_eq!(library.current("film"), None);

        let first = library
            .publish(
                stage_with_record(&library, "film", "aaaaaaaaaaaaaaaa1111"),
                "aaaaaaaaaaaaaaaa1111",
            )
            .unwrap();
        assert_eq!(
            library.current("film").unwrap().fingerprint,
            "aaaaaaaaaaaaaaaa1111"
        );
        let first_name = first.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(
            first_name.starts_with("film.aaaaaaaaaaaaaaaa."),
            "{first_name}"
        );
        assert_eq!(names(&library), ["film".to_owned(), first_name.clone()]);

        std::thread::sleep(Duration::from_millis(2));
        let second = library
            .publish(
                stage_with_record(&library, "film", "bbbbbbbbbbbbbbbb"),
                "bbbbbbbbbbbbbbbb",
            )
            .unwrap();
        assert_eq!(
            library.current("film").unwrap().fingerprint,
            "bbbbbbbbbbbbbbbb"
        );
        let second_name = second.file_name().unwrap().to_str().unwrap().to_owned();
        assert_eq!(
            fs::read_link(library.asset_dir("film")).unwrap(),
            PathBuf::from(&second_name)
        );
        assert!(
            names(&library).contains(&first_name),
            "the previous version stays"
        );

        std::thread::sleep(Duration::from_millis(2));
        library
            .publish(
                stage_with_record(&library, "film", "cccccccccccccccc"),
                "cccccccccccccccc",
            )
            .unwrap();
        let now = names(&library);
        assert!(!now.contains(&first_name), "{now:?}");
        assert!(now.contains(&second_name), "{now:?}");
        assert_eq!(now.len(), 3, "{now:?}");
    }

    #[test]
    fn a_dropped_staging_directory_leaves_nothing() {
        let temp = TempDir::new("library-drop");
        let library = Library::new(&temp.0);
        let staging = library.stage("film").unwrap();
        fs::write(staging.path().join("x"), b"half").unwrap();
        drop(staging);
        assert_eq!(names(&library), Vec::<String>::new());
        assert_eq!(library.current("film"), None);
    }

    #[test]
    fn stale_staging_and_orphans_are_cleaned_and_live_ones_kept() {
        let temp = TempDir::new("library-clean");
        let library = Library::new(&temp.0);
        library
            .publish(
                stage_with_record(&library, "film", "aaaaaaaaaaaaaaaa"),
                "aaaaaaaaaaaaaaaa",
            )
            .unwrap();
        // A staging folder of this (live) process, one of a dead process, and a
        // folder no link names, made long ago.
        let live = library.stage("film").unwrap();
        let dead = library.root().join(".tmp-film-4294967-1");
        fs::create_dir(&dead).unwrap();
        let orphan = library.root().join("film.0000000000000000.1");
        fs::create_dir(&orphan).unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        fs::File::open(&orphan).unwrap().set_modified(old).unwrap();
        let young_orphan = library.root().join("film.0000000000000000.2");
        fs::create_dir(&young_orphan).unwrap();

        let removed = library.clean_stale().unwrap();
        assert_eq!(removed, [dead.clone(), orphan.clone()]);
        assert!(live.path().exists());
        assert!(young_orphan.exists());
        assert_eq!(
            library.current("film").unwrap().fingerprint,
            "aaaaaaaaaaaaaaaa"
        );
    }

    #[test]
    fn an_unknown_format_is_not_current() {
        let temp = TempDir::new("library-format");
        let library = Library::new(&temp.0);
        let staging = library.stage("film").unwrap();
        let mut old = record("film", "aaaaaaaaaaaaaaaa");
        old.format = FORMAT_VERSION + 1;
        fs::write(
            staging.path().join(ASSET_JSON),
            serde_json::to_vec(&old).unwrap(),
        )
        .unwrap();
        library.publish(staging, "aaaaaaaaaaaaaaaa").unwrap();
        assert_eq!(library.current("film"), None);
    }

    #[test]
    fn missing_library_is_empty() {
        let library = Library::new(Path::new("/nonexistent/data"));
        assert_eq!(library.clean_stale().unwrap(), Vec::<PathBuf>::new());
        assert_eq!(library.current("film"), None);
    }
}
