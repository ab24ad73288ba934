//! The live window in memory: what the packager publishes and the origin serves.
//!
//! The packager is the only writer. It publishes whole values (a playlist, an init
//! segment, a finished segment) and the origin reads them as cheap `Bytes` clones, so
//! a slow HTTP client never holds a lock. This module knows nothing of GStreamer.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use crate::ts::TsHub;

/// Name of the shared audio track in URLs (`/live/{channel}/audio/...`).
pub const AUDIO_TRACK: &str = "audio";

/// How often a channel's pipeline publishes a new thumbnail: "every few seconds" on
/// the operator page, which reloads its table on the same beat.
pub const THUMBNAIL_INTERVAL: Duration = Duration::from_secs(4);

/// All live channels the origin can serve, by channel id.
#[derive(Default)]
pub struct SegmentStore {
    channels: RwLock<HashMap<String, Arc<LiveChannel>>>,
}

impl SegmentStore {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Registers a channel (or returns the one already registered under `id`, so a
    /// restarted pipeline continues the same window and media sequence). A channel
    /// that was removed and is registered again starts a new window.
    pub fn channel_or_insert(&self, id: &str, target_duration: Duration) -> Arc<LiveChannel> {
        let mut channels = self.channels.write().unwrap_or_else(|e| e.into_inner());
        channels
            .entry(id.to_owned())
            .or_insert_with(|| Arc::new(LiveChannel::new(target_duration)))
            .clone()
    }

    pub fn channel(&self, id: &str) -> Option<Arc<LiveChannel>> {
        let channels = self.channels.read().unwrap_or_else(|e| e.into_inner());
        channels.get(id).cloned()
    }

    /// Removes a channel: its URLs answer 404 from now on.
    pub fn remove(&self, id: &str) -> Option<Arc<LiveChannel>> {
        let mut channels = self.channels.write().unwrap_or_else(|e| e.into_inner());
        channels.remove(id)
    }

    /// Ends every channel's `/ts/` streams: at shutdown, so the drain does not wait
    /// on responses that never end.
    pub fn end_ts_streams(&self) {
        let channels = self.channels.read().unwrap_or_else(|e| e.into_inner());
        for channel in channels.values() {
            channel.ts.end_streams();
        }
    }

    pub fn channel_ids(&self) -> Vec<String> {
        let channels = self.channels.read().unwrap_or_else(|e| e.into_inner());
        let mut ids: Vec<String> = channels.keys().cloned().collect();
        ids.sort();
        ids
    }
}

/// One channel's published state. Readers take a lock only long enough to clone `Bytes`.
pub struct LiveChannel {
    /// Nanoseconds; a restart with another ladder may change it.
    target_duration: AtomicU64,
    state: RwLock<ChannelState>,
    /// Bumped on every publish; a blocking playlist reload (LL-HLS) waits on it.
    version: watch::Sender<u64>,
    /// The channel's transport stream for HTTP clients; it outlives pipeline restarts.
    ts: Arc<TsHub>,
}

#[derive(Default)]
struct ChannelState {
    master: Option<Document>,
    manifest: Option<Document>,
    tracks: HashMap<String, TrackState>,
    thumbnail: Option<Thumbnail>,
}

/// The newest still picture of a channel, for the operator page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    /// Counts up with every picture the channel publishes, so a page can name each
    /// picture by its own URL (`thumbnail.jpg?v=…`) and a cache never shows an old one.
    pub version: u64,
    pub jpeg: Bytes,
}

#[derive(Default)]
struct TrackState {
    playlist: Option<Document>,
    /// Init segments by version, oldest first: one per pipeline start, kept while a
    /// retained segment refers to it.
    inits: VecDeque<(u32, Bytes)>,
    segments: VecDeque<StoredSegment>,
}

/// A playlist or manifest as published, with a hash of its bytes taken once, when it
/// was published, rather than by every request that revalidates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub bytes: Bytes,
    /// [`content_hash`] of `bytes`.
    pub hash: u64,
}

impl Document {
    pub fn new(bytes: Bytes) -> Document {
        Document {
            hash: content_hash(&bytes),
            bytes,
        }
    }
}

impl std::ops::Deref for Document {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// FNV-1a (64 bits) of `bytes`: the hash behind content entity tags. Not `std`'s
/// `DefaultHasher`, whose output may change between Rust releases: two origins built
/// by different toolchains behind one load balancer must tag the same bytes alike.
pub fn content_hash(bytes: &[u8]) -> u64 {
    fnv1a(FNV_OFFSET, bytes)
}

/// FNV-1a, continuing from `hash` (start from [`FNV_OFFSET`]).
pub fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(hash, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(FNV_PRIME)
    })
}

/// FNV-1a's starting value.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// A finished segment and the version of the init segment that decodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSegment {
    pub sequence: u64,
    pub init: u32,
    pub data: Bytes,
}

/// The file name of an init segment version (`init-3.mp4`); playlists and MPDs name
/// the version their segments need, so a restart's new init never decodes old segments.
pub fn init_name(version: u32) -> String {
    format!("init-{version}.mp4")
}

impl LiveChannel {
    fn new(target_duration: Duration) -> Self {
        let (version, _) = watch::channel(0);
        Self {
            target_duration: AtomicU64::new(nanos(target_duration)),
            state: RwLock::default(),
            version,
            ts: Arc::new(TsHub::new()),
        }
    }

    /// The channel's MPEG-TS fan-out (`/ts/{channel}`).
    pub fn ts(&self) -> Arc<TsHub> {
        self.ts.clone()
    }

    /// The configured segment duration; playlists may be cached for at most half of it.
    pub fn target_duration(&self) -> Duration {
        Duration::from_nanos(self.target_duration.load(Ordering::Relaxed))
    }

    /// A restart with another segment duration.
    pub fn set_target_duration(&self, target_duration: Duration) {
        self.target_duration
            .store(nanos(target_duration), Ordering::Relaxed);
    }

    /// A restart with another set of tracks (the ladder's renditions changed): the
    /// tracks not in `keep` are forgotten (their URLs answer 404), and the
    /// multivariant playlist and the MPD, which list the old set, are withdrawn until
    /// the packager publishes them again for the new one (503 meanwhile, as for a
    /// channel that is starting).
    pub fn replace_tracks(&self, keep: &[&str]) {
        {
            let mut state = self.write();
            state.tracks.retain(|name, _| keep.contains(&name.as_str()));
            state.master = None;
            state.manifest = None;
        }
        self.bump();
    }

    pub fn master_playlist(&self) -> Option<Document> {
        self.read().master.clone()
    }

    pub fn media_playlist(&self, track: &str) -> Option<Document> {
        self.read().tracks.get(track)?.playlist.clone()
    }

    /// The DASH MPD over the window.
    pub fn manifest(&self) -> Option<Document> {
        self.read().manifest.clone()
    }

    /// An init segment by version, or the newest (`init.mp4`) when `version` is `None`.
    pub fn init_segment(&self, track: &str, version: Option<u32>) -> Option<Bytes> {
        let state = self.read();
        let inits = &state.tracks.get(track)?.inits;
        match version {
            None => inits.back().map(|(_, init)| init.clone()),
            Some(version) => inits
                .iter()
                .find(|(v, _)| *v == version)
                .map(|(_, init)| init.clone()),
        }
    }

    pub fn segment(&self, track: &str, sequence: u64) -> Option<Bytes> {
        let state = self.read();
        let segments = &state.tracks.get(track)?.segments;
        // Segments are stored in sequence order; the window is small, but a binary
        // search keeps this cheap whatever the window size.
        let index = segments
            .binary_search_by_key(&sequence, |s| s.sequence)
            .ok()?;
        Some(segments[index].data.clone())
    }

    /// A receiver that changes whenever anything is published.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Publishes version `version` of a track's init segment (a pipeline start makes a
    /// new version; the same version published again replaces it).
    pub fn publish_init(&self, track: &str, version: u32, init: Bytes) {
        {
            let mut state = self.write();
            let inits = &mut state.tracks.entry(track.to_owned()).or_default().inits;
            inits.retain(|(v, _)| *v != version);
            inits.push_back((version, init));
        }
        self.bump();
    }

    /// Publishes a finished segment and the playlist that lists it, and drops
    /// segments older than `retain_from` (and init versions no retained segment needs),
    /// in one step so readers never see a playlist naming a segment that is not there.
    pub fn publish_segment(
        &self,
        track: &str,
        segment: StoredSegment,
        playlist: Bytes,
        retain_from: u64,
    ) {
        // Sealed and hashed before the lock is taken.
        let segment = StoredSegment {
            data: sealed_or_as_is(segment.data),
            ..segment
        };
        let playlist = Document::new(playlist);
        {
            let mut state = self.write();
            let entry = state.tracks.entry(track.to_owned()).or_default();
            entry.segments.push_back(segment);
            while entry
                .segments
                .front()
                .is_some_and(|s| s.sequence < retain_from)
            {
                entry.segments.pop_front();
            }
            if let Some(oldest) = entry.segments.front().map(|s| s.init) {
                while entry.inits.len() > 1 && entry.inits.front().is_some_and(|(v, _)| *v < oldest)
                {
                    entry.inits.pop_front();
                }
            }
            entry.playlist = Some(playlist);
        }
        self.bump();
    }

    /// Publishes the DASH MPD (refreshed with every segment, like the playlists).
    pub fn publish_manifest(&self, manifest: Bytes) {
        let manifest = Document::new(manifest);
        self.write().manifest = Some(manifest);
        self.bump();
    }

    pub fn publish_master(&self, master: Bytes) {
        let master = Document::new(master);
        self.write().master = Some(master);
        self.bump();
    }

    /// Publishes a new still picture of the channel, replacing the one before.
    pub fn publish_thumbnail(&self, jpeg: Bytes) {
        let mut state = self.write();
        let version = state.thumbnail.as_ref().map_or(0, |t| t.version + 1);
        state.thumbnail = Some(Thumbnail { version, jpeg });
    }

    /// The newest still picture, once the pipeline has made one.
    pub fn thumbnail(&self) -> Option<Thumbnail> {
        self.read().thumbnail.clone()
    }

    /// Bytes held in segments and init segments: the channel's live-window memory.
    pub fn memory_bytes(&self) -> usize {
        let state = self.read();
        state
            .tracks
            .values()
            .map(|t| {
                t.inits.iter().map(|(_, b)| b.len()).sum::<usize>()
                    + t.segments.iter().map(|s| s.data.len()).sum::<usize>()
            })
            .sum()
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, ChannelState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, ChannelState> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// `data` in a sealed file (`crate::sealed`) the origin can send with sendfile, or as
/// it is if none can be made (the origin then copies it, as any other body).
fn sealed_or_as_is(data: Bytes) -> Bytes {
    match crate::sealed::seal(&data) {
        Ok(sealed) => sealed,
        Err(error) => {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!(%error, "Cannot keep segments in sealed files; they are served by copying.");
            });
            data
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacing_the_tracks_forgets_the_others_and_withdraws_the_listings() {
        let store = SegmentStore::new();
        let ch = store.channel_or_insert("news", Duration::from_secs(2));
        for track in ["720p", "480p", "audio"] {
            ch.publish_init(track, 0, Bytes::from_static(b"init"));
        }
        ch.publish_master(Bytes::from_static(b"#EXTM3U\n"));
        ch.publish_manifest(Bytes::from_static(b"<MPD/>"));
        ch.replace_tracks(&["720p", "audio", "1080p"]);
        assert!(ch.init_segment("480p", None).is_none());
        assert!(ch.init_segment("720p", Some(0)).is_some());
        assert!(ch.init_segment("audio", Some(0)).is_some());
        assert!(ch.master_playlist().is_none());
        assert!(ch.manifest().is_none());
        ch.set_target_duration(Duration::from_secs(4));
        assert_eq!(ch.target_duration(), Duration::from_secs(4));
    }

    #[test]
    fn window_drops_old_segments_and_serves_new() {
        let store = SegmentStore::new();
        let ch = store.channel_or_insert("news", Duration::from_secs(2));
        for seq in 10..20 {
            let segment = StoredSegment {
                sequence: seq,
                init: 0,
                data: Bytes::from(vec![seq as u8; 4]),
            };
            ch.publish_segment("720p", segment, Bytes::from_static(b"#EXTM3U\n"), seq - 5);
        }
        assert_eq!(ch.segment("720p", 13), None);
        assert_eq!(ch.segment("720p", 14), Some(Bytes::from(vec![14u8; 4])));
        assert_eq!(ch.segment("720p", 19), Some(Bytes::from(vec![19u8; 4])));
        assert_eq!(ch.segment("720p", 20), None);
        assert_eq!(ch.segment("480p", 19), None);
        assert_eq!(ch.memory_bytes(), 6 * 4);
    }

    #[test]
    fn init_versions_live_as_long_as_their_segments() {
        let store = SegmentStore::new();
        let ch = store.channel_or_insert("news", Duration::from_secs(2));
        let publish = |sequence: u64, init: u32| {
            let segment = StoredSegment {
                sequence,
                init,
                data: Bytes::from_static(b"s"),
            };
            ch.publish_segment(
                "720p",
                segment,
                Bytes::from_static(b"#EXTM3U\n"),
                sequence - 2,
            );
        };
        ch.publish_init("720p", 0, Bytes::from_static(b"zero"));
        publish(10, 0);
        ch.publish_init("720p", 1, Bytes::from_static(b"one"));
        publish(11, 1);
        assert_eq!(
            ch.init_segment("720p", Some(0)),
            Some(Bytes::from_static(b"zero"))
        );
        assert_eq!(
            ch.init_segment("720p", None),
            Some(Bytes::from_static(b"one"))
        );
        publish(12, 1);
        publish(13, 1);
        assert_eq!(ch.init_segment("720p", Some(0)), None);
        assert_eq!(
            ch.init_segment("720p", Some(1)),
            Some(Bytes::from_static(b"one"))
        );
        assert_eq!(ch.init_segment("720p", Some(2)), None);
        assert_eq!(init_name(2), "init-2.mp4");
    }

    #[test]
    fn each_thumbnail_replaces_the_last_with_a_new_version() {
        let store = SegmentStore::new();
        let ch = store.channel_or_insert("news", Duration::from_secs(2));
        assert_eq!(ch.thumbnail(), None);
        ch.publish_thumbnail(Bytes::from_static(b"one"));
        ch.publish_thumbnail(Bytes::from_static(b"two"));
        assert_eq!(
            ch.thumbnail(),
            Some(Thumbnail {
                version: 1,
                jpeg: Bytes::from_static(b"two")
            })
        );
    }

    #[test]
    fn a_channel_registered_twice_is_the_same_window() {
        let store = SegmentStore::new();
        let a = store.channel_or_insert("news", Duration::from_secs(2));
        a.publish_master(Bytes::from_static(b"m"));
        let b = store.channel_or_insert("news", Duration::from_secs(4));
        assert_eq!(
            b.master_playlist().map(|d| d.bytes),
            Some(Bytes::from_static(b"m"))
        );
        assert!(store.remove("news").is_some());
        assert!(store.channel("news").is_none());
    }
}
