//! What the headend is doing, for operators: each channel's state and numbers, and
//! each VOD asset's ingest. Plain Rust, no GStreamer: the supervisor, the pipeline's
//! source probes, the packager and the origin write into a [`ChannelStatus`]; the
//! operations API (`/api/v1/channels`, `/api/v1/vod`), `/metrics` and `/readyz` read
//! [`ChannelSnapshot`]s copied out of it.
//!
//! A channel's state machine (the supervisor drives it, the packager takes it live):
//!
//! ```text
//!            first segment published
//! starting ──────────────────────────► live
//!    ▲  │ run fails                      │ run fails
//!    │  ▼                                ▼
//!    └─ error ◄──────────────────────────┘     (restart after backoff: restarts + 1)
//!
//! any state ──removed by a reload──► stopped
//! ```
//!
//! A channel with failover (a `backup:` or `slate:` in the catalog) that switches
//! input starts a run on its backup or slate: such a run goes from starting to
//! `failover` (backup) or `slate` instead of live at its first segment, and each
//! switch away from the primary counts in `failovers`.
//!
//! Every lock here is held only to copy a few values in or out, never across I/O.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use tracing::info;

/// Rates (input bitrate, encode speed) are averaged over about this long.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Arrivals closer together than this are one sample of a rate: a source that hands
/// over a buffer per packet keeps a meter's memory small.
const RATE_COALESCE: Duration = Duration::from_millis(100);
/// Viewers are counted from segment requests over at least this long (see
/// [`ChannelStatus::snapshot`]).
const VIEWER_WINDOW: Duration = Duration::from_secs(10);
/// ... and over at least this many segment durations, so even long segments are
/// requested a few times per window.
const VIEWER_WINDOW_SEGMENTS: u32 = 3;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a channel is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChannelState {
    /// A pipeline run is starting; no segment of this run is published yet.
    Starting,
    /// The current run has published a segment.
    Live,
    /// The current run plays the channel's backup source and has published a segment.
    Failover,
    /// The current run plays the slate (no input works) and has published a segment.
    Slate,
    /// The last run failed; the supervisor restarts it after a backoff.
    Error,
    /// Not running: removed by a reload, or a channel that publishes nothing.
    Stopped,
}

impl ChannelState {
    /// Every state, in the order the API documents them.
    pub const ALL: [ChannelState; 6] = [
        ChannelState::Starting,
        ChannelState::Live,
        ChannelState::Failover,
        ChannelState::Slate,
        ChannelState::Error,
        ChannelState::Stopped,
    ];

    /// The API's and the metrics' word for it.
    pub fn as_str(&self) -> &'static str {
        match self {
            ChannelState::Starting => "starting",
            ChannelState::Live => "live",
            ChannelState::Failover => "failover",
            ChannelState::Slate => "slate",
            ChannelState::Error => "error",
            ChannelState::Stopped => "stopped",
        }
    }
}

/// A failure and when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    pub message: String,
    pub at: SystemTime,
}

/// One channel's live numbers. Cheap to write from any thread.
#[derive(Debug)]
pub struct ChannelStatus {
    id: String,
    lifecycle: Mutex<Lifecycle>,
    /// Bytes entering the pipeline from the source: in all, and per second.
    input_total: AtomicU64,
    input: Mutex<Rate>,
    tracks: Mutex<BTreeMap<String, TrackCounters>>,
    requests: Mutex<SegmentRequests>,
}

#[derive(Debug)]
struct Lifecycle {
    state: ChannelState,
    since: SystemTime,
    live_since: Option<SystemTime>,
    /// A segment was published since the channel was registered.
    published: bool,
    restarts: u64,
    failovers: u64,
    /// What the current run's first segment takes the channel to: live, failover or
    /// slate.
    on_air: ChannelState,
    input: Option<String>,
    last_error: Option<LastError>,
    segment_duration: Duration,
    /// The end of the newest segment published, on the wall clock.
    newest_end: Option<SystemTime>,
}

#[derive(Debug, Default)]
struct TrackCounters {
    segments: u64,
    /// Content nanoseconds out of the track's encoder and muxer.
    produced: Rate,
}

/// A copy of a channel's status at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelSnapshot {
    pub id: String,
    pub state: ChannelState,
    /// When the channel entered `state`.
    pub since: SystemTime,
    /// When the current run went live; `None` unless `state` is live.
    pub live_since: Option<SystemTime>,
    /// Pipeline runs started again after a failure (a reload's restart for a new
    /// configuration is not counted).
    pub restarts: u64,
    pub failovers: u64,
    /// The source URI of the current run, with any password left out.
    pub input: Option<String>,
    /// Bits per second entering the pipeline from the source, over [`RATE_WINDOW`].
    pub input_bitrate: Option<f64>,
    /// Bytes that entered the pipeline from the source since the channel was
    /// registered.
    pub input_bytes: u64,
    pub last_error: Option<LastError>,
    pub segment_duration: Duration,
    /// The end of the newest published segment; `None` before the first, or once
    /// the channel is stopped.
    pub newest_segment_end: Option<SystemTime>,
    pub tracks: Vec<TrackSnapshot>,
    /// HLS and DASH viewers, estimated from segment requests (see
    /// [`ChannelStatus::snapshot`]); `/ts/` clients are counted by the store.
    pub segment_viewers: u64,
    /// Ready for `/readyz`: it published a segment or failed since it was registered,
    /// or it is stopped.
    pub ready: bool,
}

impl ChannelSnapshot {
    /// How old the live edge is at `now`: the time since the end of the newest
    /// published segment.
    pub fn live_edge_age(&self, now: SystemTime) -> Option<Duration> {
        self.newest_segment_end
            .map(|end| now.duration_since(end).unwrap_or_default())
    }

    /// How long the current run has been live at `now`.
    pub fn uptime(&self, now: SystemTime) -> Option<Duration> {
        self.live_since
            .map(|since| now.duration_since(since).unwrap_or_default())
    }
}

/// One track's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackSnapshot {
    pub name: String,
    /// Segments published since the channel was registered.
    pub segments: u64,
    /// Content seconds the track's encoder produced per wall-clock second over about
    /// [`RATE_WINDOW`]: about 1.0 while it keeps up with a live source.
    pub encode_speed: Option<f64>,
}

impl ChannelStatus {
    fn new(id: &str, state: ChannelState) -> ChannelStatus {
        ChannelStatus {
            id: id.to_owned(),
            lifecycle: Mutex::new(Lifecycle {
                state,
                since: SystemTime::now(),
                live_since: None,
                published: false,
                restarts: 0,
                failovers: 0,
                on_air: ChannelState::Live,
                input: None,
                last_error: None,
                segment_duration: Duration::ZERO,
                newest_end: None,
            }),
            input_total: AtomicU64::new(0),
            input: Mutex::default(),
            tracks: Mutex::default(),
            requests: Mutex::default(),
        }
    }

    /// A status no registry lists: what is written into it is seen nowhere (a
    /// probe pipeline's input bytes).
    pub fn detached(id: &str) -> Arc<ChannelStatus> {
        Arc::new(ChannelStatus::new(id, ChannelState::Starting))
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// A pipeline run is starting, reading `input` into segments of
    /// `segment_duration`.
    pub fn run_starting(&self, input: &str, segment_duration: Duration) {
        self.run_starting_as(input, segment_duration, ChannelState::Live);
    }

    /// A pipeline run is starting, as [`run_starting`](Self::run_starting), whose
    /// first segment takes the channel to `on_air`: live for its primary source,
    /// failover for its backup, slate for the slate.
    pub fn run_starting_as(&self, input: &str, segment_duration: Duration, on_air: ChannelState) {
        let mut lifecycle = lock(&self.lifecycle);
        if lifecycle.state == ChannelState::Stopped {
            return;
        }
        lifecycle.enter(ChannelState::Starting);
        lifecycle.on_air = on_air;
        lifecycle.live_since = None;
        lifecycle.input = Some(redact_uri(input));
        lifecycle.segment_duration = segment_duration;
    }

    /// The current run failed.
    pub fn run_failed(&self, message: String) {
        let mut lifecycle = lock(&self.lifecycle);
        if lifecycle.state == ChannelState::Stopped {
            return;
        }
        let at = SystemTime::now();
        lifecycle.enter(ChannelState::Error);
        lifecycle.live_since = None;
        lifecycle.last_error = Some(LastError { message, at });
    }

    /// The supervisor starts the channel again after a failure.
    pub fn count_restart(&self) {
        lock(&self.lifecycle).restarts += 1;
    }

    /// The supervisor switches the channel from its primary source to its backup or
    /// slate.
    pub fn count_failover(&self) {
        lock(&self.lifecycle).failovers += 1;
    }

    /// The channel no longer runs. This is the end of this status: whatever a
    /// stopping pipeline still reports changes no state (a channel started again gets
    /// a new status).
    pub fn stopped(&self) {
        let mut lifecycle = lock(&self.lifecycle);
        lifecycle.enter(ChannelState::Stopped);
        lifecycle.live_since = None;
        lifecycle.newest_end = None;
    }

    /// `bytes` entered the pipeline from the source (called from streaming threads).
    pub fn input_bytes(&self, bytes: u64) {
        self.input_total.fetch_add(bytes, Ordering::Relaxed);
        lock(&self.input).add(bytes, Instant::now());
    }

    /// A track's encoder and muxer handed over `duration` of content.
    pub fn produced(&self, track: &str, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let mut tracks = lock(&self.tracks);
        let counters = match tracks.get_mut(track) {
            Some(counters) => counters,
            None => tracks.entry(track.to_owned()).or_default(),
        };
        counters.produced.add(nanos, Instant::now());
    }

    /// A track published a segment that ends at `end`. The first one of a run takes
    /// a starting channel live.
    pub fn segment_published(&self, track: &str, end: SystemTime) {
        {
            let mut tracks = lock(&self.tracks);
            match tracks.get_mut(track) {
                Some(counters) => counters.segments += 1,
                None => {
                    tracks.entry(track.to_owned()).or_default().segments = 1;
                }
            }
        }
        let mut lifecycle = lock(&self.lifecycle);
        if lifecycle.state == ChannelState::Stopped {
            return;
        }
        lifecycle.published = true;
        lifecycle.newest_end = Some(lifecycle.newest_end.map_or(end, |newest| newest.max(end)));
        if lifecycle.state == ChannelState::Starting {
            let on_air = lifecycle.on_air;
            lifecycle.enter(on_air);
            if on_air == ChannelState::Live {
                lifecycle.live_since = Some(lifecycle.since);
            }
            info!(channel = %self.id, state = on_air.as_str(), "Channel is on air.");
        }
    }

    /// The channel's tracks are now these (a reload changed its ladder): the others'
    /// numbers are forgotten.
    pub fn retain_tracks(&self, names: &[&str]) {
        lock(&self.tracks).retain(|name, _| names.contains(&name.as_str()));
    }

    /// A client was sent a media segment of this channel.
    pub fn segment_requested(&self, audio: bool) {
        let segment_duration = lock(&self.lifecycle).segment_duration;
        lock(&self.requests).add(audio, viewer_window(segment_duration), Instant::now());
    }

    /// The channel's numbers now.
    ///
    /// `segment_viewers` estimates the HLS and DASH players watching: a player fetches
    /// one video segment (and one audio segment) per segment duration, so the segment
    /// requests of the last window (at least 10 s and three segment durations, whole
    /// seconds) times the segment duration over the window is the number of players,
    /// counting video and audio requests apart and taking the larger (an audio-only
    /// player fetches no video). Rounded to a whole viewer. A cache in front of the
    /// origin counts as the players it fetches for.
    pub fn snapshot(&self) -> ChannelSnapshot {
        let now = Instant::now();
        let lifecycle = lock(&self.lifecycle);
        let stopped = lifecycle.state == ChannelState::Stopped;
        let input_bitrate = if stopped {
            None
        } else {
            lock(&self.input).per_second(now).map(|bytes| bytes * 8.0)
        };
        let tracks = lock(&self.tracks)
            .iter_mut()
            .map(|(name, counters)| TrackSnapshot {
                name: name.clone(),
                segments: counters.segments,
                encode_speed: if stopped {
                    None
                } else {
                    counters.produced.per_second(now).map(|nanos| nanos / 1e9)
                },
            })
            .collect();
        let segment_viewers = if stopped {
            0
        } else {
            lock(&self.requests).viewers(lifecycle.segment_duration, now)
        };
        ChannelSnapshot {
            id: self.id.clone(),
            state: lifecycle.state,
            since: lifecycle.since,
            live_since: lifecycle.live_since,
            restarts: lifecycle.restarts,
            failovers: lifecycle.failovers,
            input: lifecycle.input.clone(),
            input_bitrate,
            input_bytes: self.input_total.load(Ordering::Relaxed),
            last_error: lifecycle.last_error.clone(),
            segment_duration: lifecycle.segment_duration,
            newest_segment_end: lifecycle.newest_end,
            tracks,
            segment_viewers,
            ready: stopped || lifecycle.published || lifecycle.last_error.is_some(),
        }
    }
}

impl Lifecycle {
    fn enter(&mut self, state: ChannelState) {
        if self.state != state {
            self.state = state;
            self.since = SystemTime::now();
        }
    }
}

/// A source URI as the API shows it: a password in it (`rtsp://user:pass@host`, an
/// SRT `passphrase`) is replaced by `***`, so `--public-api` does not publish it.
pub fn redact_uri(uri: &str) -> String {
    /// Query keys whose values are secrets (SRT's `passphrase`, tokens in HLS URLs).
    const SECRET_KEYS: [&str; 6] = ["passphrase", "password", "pass", "token", "key", "secret"];
    let Ok(mut url) = url::Url::parse(uri) else {
        return uri.to_owned();
    };
    let secret = |key: &str| SECRET_KEYS.iter().any(|k| key.eq_ignore_ascii_case(k));
    let secret_query = url.query_pairs().any(|(key, _)| secret(&key));
    // Written back only when something is hidden: the parser normalises a URI
    // (`udp://@group:port` loses its `@`), and operators should see theirs.
    if url.password().is_none() && !secret_query {
        return uri.to_owned();
    }
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    if secret_query {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(key, value)| {
                let value = if secret(&key) {
                    "***".to_owned()
                } else {
                    value.into_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

/// An amount per second (bytes from a source, content nanoseconds out of an
/// encoder), averaged over about [`RATE_WINDOW`].
///
/// It keeps the arrivals of the window (those closer than 100 ms merged) and one
/// before it as a base, and divides what arrived after the base by the time from the
/// base to the newest arrival: arrivals in bursts (a segment at a time, a downloaded
/// HLS segment) are measured exactly, without the jitter of counting whole bursts in
/// a fixed window. Once the next arrival is overdue (later than the mean interval),
/// the time since counts too, so a stalled stream falls towards 0, and reads 0 once
/// nothing arrived for a whole window.
#[derive(Debug, Default)]
pub struct Rate {
    /// `(first arrival, last arrival, amount)` per sample, oldest first.
    samples: VecDeque<(Instant, Instant, u64)>,
}

impl Rate {
    pub fn add(&mut self, amount: u64, now: Instant) {
        match self.samples.back_mut() {
            Some((first, last, total)) if now.saturating_duration_since(*first) < RATE_COALESCE => {
                *last = now;
                *total = total.saturating_add(amount);
            }
            _ => self.samples.push_back((now, now, amount)),
        }
        self.prune(now);
    }

    fn prune(&mut self, now: Instant) {
        let Some(start) = now.checked_sub(RATE_WINDOW) else {
            return;
        };
        // Keep one sample older than the window: the base.
        while self
            .samples
            .get(1)
            .is_some_and(|(_, last, _)| *last < start)
        {
            self.samples.pop_front();
        }
    }

    /// The amount per second at `now`; `None` until two samples are in.
    pub fn per_second(&mut self, now: Instant) -> Option<f64> {
        self.prune(now);
        let (_, newest, _) = *self.samples.back()?;
        if now.saturating_duration_since(newest) > RATE_WINDOW {
            return Some(0.0);
        }
        let (_, base, _) = *self.samples.front()?;
        let intervals = u32::try_from(self.samples.len() - 1)
            .ok()
            .filter(|n| *n > 0)?;
        let amount: u64 = self.samples.iter().skip(1).map(|(_, _, a)| *a).sum();
        let span = newest.saturating_duration_since(base);
        let mean_interval = span / intervals;
        let end = newest.max(now.checked_sub(mean_interval).unwrap_or(newest));
        let span = end.saturating_duration_since(base);
        (!span.is_zero()).then(|| amount as f64 / span.as_secs_f64())
    }
}

/// Media segment requests per whole second, video and audio apart.
#[derive(Debug, Default)]
struct SegmentRequests {
    origin: Option<Instant>,
    /// `(second since origin, video, audio)`, oldest first.
    seconds: VecDeque<(u64, u64, u64)>,
}

/// The whole seconds of segment requests viewers are counted from, for segments of
/// `segment_duration`.
fn viewer_window(segment_duration: Duration) -> u64 {
    VIEWER_WINDOW
        .max(segment_duration * VIEWER_WINDOW_SEGMENTS)
        .as_secs_f64()
        .ceil() as u64
}

impl SegmentRequests {
    /// Counts a request; seconds older than `window` are forgotten.
    fn add(&mut self, audio: bool, window: u64, now: Instant) {
        let origin = *self.origin.get_or_insert(now);
        let second = now.saturating_duration_since(origin).as_secs();
        if self.seconds.back().is_none_or(|(s, _, _)| *s != second) {
            self.seconds.push_back((second, 0, 0));
        }
        if let Some((_, video_count, audio_count)) = self.seconds.back_mut() {
            if audio {
                *audio_count += 1;
            } else {
                *video_count += 1;
            }
        }
        while self
            .seconds
            .front()
            .is_some_and(|(s, _, _)| second.saturating_sub(*s) > window)
        {
            self.seconds.pop_front();
        }
    }

    /// Players fetching segments of `segment_duration` (see [`ChannelStatus::snapshot`]).
    fn viewers(&mut self, segment_duration: Duration, now: Instant) -> u64 {
        let Some(origin) = self.origin else {
            return 0;
        };
        if segment_duration.is_zero() {
            return 0;
        }
        let window = viewer_window(segment_duration);
        let current = now.saturating_duration_since(origin).as_secs();
        // Whole seconds before the current one.
        let from = current.saturating_sub(window);
        while self.seconds.front().is_some_and(|(s, _, _)| *s < from) {
            self.seconds.pop_front();
        }
        let (video, audio) = self
            .seconds
            .iter()
            .filter(|(s, _, _)| *s < current)
            .fold((0, 0), |(v, a), (_, video, audio)| (v + video, a + audio));
        let requests = video.max(audio) as f64;
        (requests * segment_duration.as_secs_f64() / window as f64).round() as u64
    }
}

/// Where a VOD asset's ingest stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetState {
    /// Waiting for its turn (ingests run one at a time).
    Pending,
    Ingesting,
    /// The version the catalog describes is published (ingested now, or up to date).
    Published,
    Failed,
}

impl AssetState {
    pub const ALL: [AssetState; 4] = [
        AssetState::Pending,
        AssetState::Ingesting,
        AssetState::Published,
        AssetState::Failed,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            AssetState::Pending => "pending",
            AssetState::Ingesting => "ingesting",
            AssetState::Published => "published",
            AssetState::Failed => "failed",
        }
    }
}

/// A VOD asset's ingest.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetStatus {
    pub id: String,
    pub title: String,
    pub state: AssetState,
    /// 0 to 1 while ingesting (`None` until the source's duration is known), 1 once
    /// published, `None` otherwise.
    pub progress: Option<f64>,
    /// A version of the asset is served at `/vod/{id}/` (an earlier one while a new
    /// one is ingested, or after a failed ingest).
    pub available: bool,
    pub last_error: Option<LastError>,
}

/// Every channel's and VOD asset's status.
#[derive(Debug, Default)]
pub struct Registry {
    channels: RwLock<BTreeMap<String, Arc<ChannelStatus>>>,
    /// In catalog order.
    assets: RwLock<Vec<AssetStatus>>,
}

impl Registry {
    pub fn new() -> Arc<Registry> {
        Arc::new(Registry::default())
    }

    /// A new status for a channel about to start (`Starting`), or one that publishes
    /// nothing (`Stopped`). It replaces one the channel had before (a channel removed
    /// and added again starts its counts over).
    pub fn register(&self, id: &str, state: ChannelState) -> Arc<ChannelStatus> {
        let status = Arc::new(ChannelStatus::new(id, state));
        self.channels
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_owned(), status.clone());
        status
    }

    pub fn channel(&self, id: &str) -> Option<Arc<ChannelStatus>> {
        self.channels
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// Every channel registered, stopped ones included, by id.
    pub fn channels(&self) -> Vec<ChannelSnapshot> {
        let channels: Vec<Arc<ChannelStatus>> = self
            .channels
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        channels.iter().map(|c| c.snapshot()).collect()
    }

    /// The assets the background ingest will work through, in catalog order.
    pub fn set_assets(&self, assets: Vec<AssetStatus>) {
        *self.assets.write().unwrap_or_else(PoisonError::into_inner) = assets;
    }

    /// Changes one asset's status.
    pub fn update_asset(&self, id: &str, change: impl FnOnce(&mut AssetStatus)) {
        let mut assets = self.assets.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(asset) = assets.iter_mut().find(|a| a.id == id) {
            change(asset);
        }
    }

    pub fn assets(&self) -> Vec<AssetStatus> {
        self.assets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_backup_or_slate_run_goes_to_failover_or_slate_and_counts_the_switch() {
        let registry = Registry::new();
        let status = registry.register("news", ChannelState::Starting);
        let segment = Duration::from_secs(1);
        status.run_starting("udp://127.0.0.1:5000", segment);
        status.segment_published("audio", SystemTime::now());
        assert_eq!(status.snapshot().state, ChannelState::Live);
        for (input, on_air) in [
            ("udp://127.0.0.1:5002", ChannelState::Failover),
            ("slate", ChannelState::Slate),
        ] {
            status.run_failed("the input delivered no video for 3s".to_owned());
            status.count_failover();
            status.run_starting_as(input, segment, on_air);
            assert_eq!(status.snapshot().state, ChannelState::Starting);
            status.segment_published("audio", SystemTime::now());
            let snapshot = status.snapshot();
            assert_eq!(snapshot.state, on_air);
            assert_eq!(snapshot.live_since, None);
            assert_eq!(snapshot.input.as_deref(), Some(input));
        }
        status.run_starting("udp://127.0.0.1:5000", segment);
        status.segment_published("audio", SystemTime::now());
        let back = status.snapshot();
        assert_eq!(back.state, ChannelState::Live);
        assert!(back.live_since.is_some());
        assert_eq!((back.failovers, back.restarts), (2, 0));
    }

    #[test]
    fn a_channel_goes_live_with_its_first_segment_and_errors_are_kept() {
        let registry = Registry::new();
        let status = registry.register("news", ChannelState::Starting);
        status.run_starting("udp://@239.1.1.1:5000", Duration::from_secs(2));
        let before = status.snapshot();
        assert_eq!(before.state, ChannelState::Starting);
        assert!(!before.ready);
        assert_eq!(before.live_since, None);
        assert_eq!(before.newest_segment_end, None);

        let end = SystemTime::now();
        status.segment_published("720p", end);
        status.segment_published("audio", end);
        let live = status.snapshot();
        assert_eq!(live.state, ChannelState::Live);
        assert!(live.ready);
        assert_eq!(live.live_since, Some(live.since));
        assert_eq!(live.newest_segment_end, Some(end));
        assert_eq!(
            live.tracks
                .iter()
                .map(|t| (t.name.as_str(), t.segments))
                .collect::<Vec<_>>(),
            [("720p", 1), ("audio", 1)]
        );

        status.run_failed("the source ended".to_owned());
        let failed = status.snapshot();
        assert_eq!(failed.state, ChannelState::Error);
        assert_eq!(failed.live_since, None);
        assert_eq!(
            failed.last_error.as_ref().map(|e| e.message.as_str()),
            Some("the source ended")
        );
        status.count_restart();
        status.run_starting("udp://@239.1.1.1:5000", Duration::from_secs(2));
        let restarted = status.snapshot();
        assert_eq!(restarted.state, ChannelState::Starting);
        assert_eq!(restarted.restarts, 1);
        assert!(restarted.ready, "it went live once");
        assert!(restarted.last_error.is_some(), "the last error stays");

        status.stopped();
        // What a stopping pipeline still reports changes nothing.
        status.segment_published("720p", SystemTime::now());
        status.run_failed("stopping".to_owned());
        status.run_starting("udp://@239.1.1.1:5000", Duration::from_secs(2));
        let stopped = status.snapshot();
        assert_eq!(stopped.state, ChannelState::Stopped);
        assert_eq!(stopped.newest_segment_end, None);
        assert_eq!(
            stopped.last_error.as_ref().map(|e| e.message.as_str()),
            Some("the source ended")
        );
        assert_eq!(registry.channels(), [stopped]);
    }

    #[test]
    fn a_channel_that_only_fails_is_ready_once_it_failed() {
        let registry = Registry::new();
        let status = registry.register("broken", ChannelState::Starting);
        assert!(!status.snapshot().ready);
        status.run_failed("no such file".to_owned());
        assert!(status.snapshot().ready);
        // Registered again (removed, then added): a fresh start.
        let again = registry.register("broken", ChannelState::Starting);
        assert!(!again.snapshot().ready);
        assert!(Arc::ptr_eq(&registry.channel("broken").unwrap(), &again));
        let off = registry.register("off", ChannelState::Stopped);
        assert!(off.snapshot().ready, "a stopped channel waits for nothing");
    }

    #[test]
    fn the_live_edge_age_and_uptime_count_from_their_moments() {
        let status = ChannelStatus::new("news", ChannelState::Starting);
        let end = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        status.segment_published("720p", end);
        // An older segment of another track does not move the edge back.
        status.segment_published("audio", end - Duration::from_secs(2));
        let snapshot = status.snapshot();
        let now = end + ms(1500);
        assert_eq!(snapshot.live_edge_age(now), Some(ms(1500)));
        assert_eq!(snapshot.live_edge_age(end - ms(5)), Some(Duration::ZERO));
        let since = snapshot.live_since.unwrap();
        assert_eq!(snapshot.uptime(since + ms(250)), Some(ms(250)));
    }

    #[test]
    fn secrets_in_source_uris_are_not_shown() {
        assert_eq!(
            redact_uri("rtsp://cam:hunter2@10.0.0.5:554/stream"),
            "rtsp://cam:***@10.0.0.5:554/stream"
        );
        assert_eq!(
            redact_uri("srt://10.0.0.5:9000?mode=caller&passphrase=0123456789"),
            "srt://10.0.0.5:9000?mode=caller&passphrase=***"
        );
        assert_eq!(redact_uri("udp://@239.1.1.1:5000"), "udp://@239.1.1.1:5000");
        assert_eq!(redact_uri("test://"), "test://");
        assert_eq!(redact_uri("not a uri"), "not a uri");
    }

    #[test]
    fn a_steady_stream_measures_its_rate() {
        let t0 = Instant::now();
        let mut rate = Rate::default();
        assert_eq!(rate.per_second(t0), None);
        // 1000 bytes every 10 ms: 100 kB/s, coalesced into 100 ms samples.
        for i in 0..=2000u64 {
            rate.add(1000, t0 + ms(10 * i));
        }
        let now = t0 + ms(20_005);
        let per_second = rate.per_second(now).unwrap();
        assert!((per_second - 100_000.0).abs() < 2_000.0, "{per_second}");
        assert!(rate.samples.len() <= 102, "{}", rate.samples.len());
    }

    #[test]
    fn bursts_are_measured_without_window_jitter_and_a_stall_falls_to_zero() {
        let t0 = Instant::now();
        let mut rate = Rate::default();
        // A 2 s segment every 2 s (the encode speed of a track keeping up).
        let two = 2_000_000_000u64;
        for i in 0..20u64 {
            rate.add(two, t0 + ms(2000 * i));
        }
        let last = t0 + ms(2000 * 19);
        for after in [0, 500, 1000, 1999] {
            let speed = rate.per_second(last + ms(after)).unwrap() / 1e9;
            assert!((speed - 1.0).abs() < 1e-9, "{after} ms after: {speed}");
        }
        // Overdue: the time since counts.
        let speed = rate.per_second(last + ms(4000)).unwrap() / 1e9;
        assert!(speed < 0.85 && speed > 0.5, "{speed}");
        assert_eq!(rate.per_second(last + RATE_WINDOW + ms(1)), Some(0.0));
        // Half speed: a 2 s segment every 4 s.
        let mut slow = Rate::default();
        for i in 0..10u64 {
            slow.add(two, t0 + ms(4000 * i));
        }
        let speed = slow.per_second(t0 + ms(4000 * 9 + 100)).unwrap() / 1e9;
        assert!((speed - 0.5).abs() < 1e-9, "{speed}");
    }

    #[test]
    fn viewers_are_segment_requests_per_segment_duration() {
        let t0 = Instant::now();
        let mut requests = SegmentRequests::default();
        let segment = Duration::from_secs(2);
        assert_eq!(requests.viewers(segment, t0), 0);
        // Three players on 2 s segments for 30 s, each fetching video and audio; one
        // more fetches audio only.
        for s in 0..15u64 {
            let at = t0 + ms(2000 * s + 300);
            for _ in 0..3 {
                requests.add(false, 10, at);
                requests.add(true, 10, at);
            }
            requests.add(true, 10, at);
        }
        assert!(requests.seconds.len() <= 6, "{:?}", requests.seconds);
        assert_eq!(requests.viewers(segment, t0 + ms(30_500)), 4);
        // Nothing for a window: nobody watches.
        assert_eq!(requests.viewers(segment, t0 + ms(45_000)), 0);
        assert_eq!(requests.viewers(Duration::ZERO, t0), 0);
    }

    #[test]
    fn assets_are_listed_in_order_and_updated_by_id() {
        let registry = Registry::new();
        let asset = |id: &str| AssetStatus {
            id: id.to_owned(),
            title: id.to_uppercase(),
            state: AssetState::Pending,
            progress: None,
            available: false,
            last_error: None,
        };
        registry.set_assets(vec![asset("b"), asset("a")]);
        registry.update_asset("a", |a| {
            a.state = AssetState::Ingesting;
            a.progress = Some(0.5);
        });
        registry.update_asset("unknown", |a| a.state = AssetState::Failed);
        let assets = registry.assets();
        assert_eq!(assets[0], asset("b"));
        assert_eq!(assets[1].state, AssetState::Ingesting);
        assert_eq!(assets[1].progress, Some(0.5));
        assert_eq!(assets.len(), 2);
    }
}
