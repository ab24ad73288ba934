//! The live window in memory: what the packager publishes and the origin serves.
//!
//! The packager is the only writer. It publishes whole values (a playlist, an init
//! segment, a finished segment) and the origin reads them as cheap `Bytes` clones, so
//! a slow HTTP client never holds a lock. This module knows nothing of GStreamer.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

/// Name of the shared audio track in URLs (`/live/{channel}/audio/...`).
pub const AUDIO_TRACK: &str = "audio";

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
    /// restarted pipeline continues the same window and media sequence).
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

    pub fn channel_ids(&self) -> Vec<String> {
        let channels = self.channels.read().unwrap_or_else(|e| e.into_inner());
        let mut ids: Vec<String> = channels.keys().cloned().collect();
        ids.sort();
        ids
    }
}

/// One channel's published state. Readers take a lock only long enough to clone `Bytes`.
pub struct LiveChannel {
    target_duration: Duration,
    state: RwLock<ChannelState>,
    /// Bumped on every publish; a blocking playlist reload (LL-HLS) waits on it.
    version: watch::Sender<u64>,
}

#[derive(Default)]
struct ChannelState {
    master: Option<Bytes>,
    tracks: HashMap<String, TrackState>,
}

#[derive(Default)]
struct TrackState {
    playlist: Option<Bytes>,
    init: Option<Bytes>,
    segments: VecDeque<(u64, Bytes)>,
}

impl LiveChannel {
    fn new(target_duration: Duration) -> Self {
        let (version, _) = watch::channel(0);
        Self {
            target_duration,
            state: RwLock::default(),
            version,
        }
    }

    /// The configured segment duration; playlists may be cached for at most half of it.
    pub fn target_duration(&self) -> Duration {
        self.target_duration
    }

    pub fn master_playlist(&self) -> Option<Bytes> {
        self.read().master.clone()
    }

    pub fn media_playlist(&self, track: &str) -> Option<Bytes> {
        self.read().tracks.get(track)?.playlist.clone()
    }

    pub fn init_segment(&self, track: &str) -> Option<Bytes> {
        self.read().tracks.get(track)?.init.clone()
    }

    pub fn segment(&self, track: &str, sequence: u64) -> Option<Bytes> {
        let state = self.read();
        let segments = &state.tracks.get(track)?.segments;
        // Segments are stored in sequence order; the window is small, but a binary
        // search keeps this cheap whatever the window size.
        let index = segments
            .binary_search_by_key(&sequence, |(seq, _)| *seq)
            .ok()?;
        Some(segments[index].1.clone())
    }

    /// A receiver that changes whenever anything is published.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Publishes a track's init segment (a new one replaces the old after a restart).
    pub fn publish_init(&self, track: &str, init: Bytes) {
        self.write()
            .tracks
            .entry(track.to_owned())
            .or_default()
            .init = Some(init);
        self.bump();
    }

    /// Publishes a finished segment and the playlist that lists it, and drops
    /// segments older than `retain_from`, in one step so readers never see a playlist
    /// naming a segment that is not there.
    pub fn publish_segment(
        &self,
        track: &str,
        sequence: u64,
        data: Bytes,
        playlist: Bytes,
        retain_from: u64,
    ) {
        {
            let mut state = self.write();
            let entry = state.tracks.entry(track.to_owned()).or_default();
            entry.segments.push_back((sequence, data));
            while entry
                .segments
                .front()
                .is_some_and(|(seq, _)| *seq < retain_from)
            {
                entry.segments.pop_front();
            }
            entry.playlist = Some(playlist);
        }
        self.bump();
    }

    pub fn publish_master(&self, master: Bytes) {
        self.write().master = Some(master);
        self.bump();
    }

    /// Bytes held in segments and init segments: the channel's live-window memory.
    pub fn memory_bytes(&self) -> usize {
        let state = self.read();
        state
            .tracks
            .values()
            .map(|t| {
                t.init.as_ref().map_or(0, Bytes::len)
                    + t.segments.iter().map(|(_, b)| b.len()).sum::<usize>()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_drops_old_segments_and_serves_new() {
        let store = SegmentStore::new();
        let ch = store.channel_or_insert("news", Duration::from_secs(2));
        for seq in 10..20 {
            ch.publish_segment(
                "720p",
                seq,
                Bytes::from(vec![seq as u8; 4]),
                Bytes::from_static(b"#EXTM3U\n"),
                seq.saturating_sub(5),
            );
        }
        assert_eq!(ch.segment("720p", 13), None);
        assert_eq!(ch.segment("720p", 14), Some(Bytes::from(vec![14u8; 4])));
        assert_eq!(ch.segment("720p", 19), Some(Bytes::from(vec![19u8; 4])));
        assert_eq!(ch.segment("720p", 20), None);
        assert_eq!(ch.segment("480p", 19), None);
        assert_eq!(ch.memory_bytes(), 6 * 4);
    }

    #[test]
    fn a_channel_registered_twice_is_the_same_window() {
        let store = SegmentStore::new();
        let a = store.channel_or_insert("news", Duration::from_secs(2));
        a.publish_master(Bytes::from_static(b"m"));
        let b = store.channel_or_insert("news", Duration::from_secs(4));
        assert_eq!(b.master_playlist(), Some(Bytes::from_static(b"m")));
        assert!(store.remove("news").is_some());
        assert!(store.channel("news").is_none());
    }
}
