//! Packager: CMAF fragments in, numbered segments and HLS playlists out.
//!
//! The packager owns segment numbering, the sliding window and the playlists, so
//! restarts, discontinuities (and later LL-HLS parts, DASH and the DVR window) are
//! ours to control. It knows nothing of GStreamer: the pipeline hands it init
//! segments and whole fragments as `Bytes` with their timing.

pub mod codecs;
pub mod dash;
pub mod mp4;
pub mod playlist;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tracing::{debug, info, warn};

use crate::status::ChannelStatus;
use crate::store::{init_name, LiveChannel, StoredSegment};
use dash::{Mpd, MpdAudio, MpdKind, MpdPeriod, MpdVideo, TimelineSegment, TrackTimeline};
use playlist::{AudioInfo, Bandwidth, SegmentEntry, VariantInfo};

/// RFC 8216 6.2.2: a segment removed from the playlist stays available for at least
/// its own duration plus the playlist's duration, so `window + 1` segments are kept
/// beyond the listed window (see `retained_from`).
pub fn retained_from(oldest_listed: u64, window: usize) -> u64 {
    oldest_listed.saturating_sub(window as u64 + 1)
}

/// What a track carries, as the pipeline negotiated it.
#[derive(Debug, Clone, PartialEq)]
pub enum TrackMedia {
    Video {
        codecs: String,
        width: u32,
        height: u32,
        frame_rate: f64,
    },
    Audio {
        codecs: String,
        channels: u32,
    },
}

/// How far from a segment boundary a fragment may end and still close the segment.
/// The video's forced keyframe is the first frame at or after the boundary (within
/// one frame); audio frames straddle it (within one AAC frame, 21 ms at 48 kHz).
pub const BOUNDARY_TOLERANCE: Duration = Duration::from_millis(50);

/// One CMAF fragment (`moof` + `mdat`) from cmafmux. A segment is one or more
/// consecutive fragments: the muxer may split early (a live timeout at a GOP, or a
/// one-frame audio fragment where a frame straddles the boundary), and several
/// fragments in a row are still one valid CMAF segment. These are also the parts
/// LL-HLS will list.
#[derive(Debug, Clone)]
pub struct Fragment {
    pub data: Bytes,
    /// Wall-clock time of the fragment's first sample.
    pub start: SystemTime,
    pub duration: Duration,
}

/// The segment being assembled from fragments.
struct OpenSegment {
    start: SystemTime,
    end: SystemTime,
    parts: Vec<Bytes>,
}

/// A finished segment not numbered yet: the index of the wall-clock boundary it ends
/// at, and its content.
struct ClosedSegment {
    clock_index: u64,
    start: SystemTime,
    end: SystemTime,
    data: Bytes,
}

struct Track {
    name: String,
    open: Option<OpenSegment>,
    /// Segments closed before every track of this run has one (see `start_run`).
    held: VecDeque<ClosedSegment>,
    media: Option<TrackMedia>,
    /// The current run's init segment, as the DASH timeline needs it.
    init: Option<mp4::InitInfo>,
    window: VecDeque<SegmentEntry>,
    /// Per listed segment (same order as `window`): its place on the media timeline,
    /// when its fragments could be read.
    timeline: VecDeque<Option<TimelineSegment>>,
    /// `presentationTimeOffset` of this track in each run's DASH Period.
    offsets: VecDeque<(Epoch, u64)>,
    last_sequence: Option<u64>,
    discontinuity_sequence: u64,
    /// The next segment starts after a source restart.
    pending_discontinuity: bool,
}

/// Which pipeline start of the channel produced something: each start has its own
/// init segment version and, in DASH, its own Period.
pub type Epoch = u32;

/// One channel's packager. The pipeline's appsink callbacks share it behind a mutex.
pub struct Packager {
    channel: Arc<LiveChannel>,
    /// Where the channel's segment counts, encode speed and live edge are reported.
    status: Arc<ChannelStatus>,
    segment_duration: Duration,
    window: usize,
    tracks: Vec<Track>,
    epoch: Epoch,
    /// Subtracted from the wall-clock segment index: after a restart the numbers go on
    /// from the last one published, not from the clock (see `start_run`). Negative
    /// after a restart with a longer segment duration (fewer boundaries so far).
    sequence_offset: i128,
    /// The boundary index this pipeline run's first segment ends at, in every track;
    /// `None` until each track has closed a segment.
    run_start: Option<u64>,
    /// DASH: `availabilityStartTime` (the first run's start, to the second) and each
    /// run's Period start on the wall clock.
    availability_start: Option<SystemTime>,
    periods: VecDeque<(Epoch, SystemTime)>,
}

/// Track index as handed to the pipeline for its appsinks.
pub type TrackId = usize;

impl Packager {
    /// `tracks` are the rendition names in ladder order, then the audio track.
    pub fn new(
        channel: Arc<LiveChannel>,
        tracks: impl IntoIterator<Item = String>,
        segment_duration: Duration,
        window: u32,
        status: Arc<ChannelStatus>,
    ) -> Self {
        Self {
            channel,
            status,
            segment_duration,
            window: window.max(1) as usize,
            tracks: tracks.into_iter().map(Track::new).collect(),
            epoch: 0,
            sequence_offset: 0,
            run_start: None,
            availability_start: None,
            periods: VecDeque::new(),
        }
    }

    pub fn track_id(&self, name: &str) -> Option<TrackId> {
        self.tracks.iter().position(|t| t.name == name)
    }

    /// A new pipeline instance is about to start: the next segment of every track that
    /// already has segments is a discontinuity.
    pub fn restart(&mut self) {
        self.epoch += 1;
        self.run_start = None;
        for track in &mut self.tracks {
            // What the failed pipeline left half-assembled is dropped, not published.
            track.open = None;
            track.held.clear();
            track.pending_discontinuity = track.last_sequence.is_some();
        }
    }

    /// A new pipeline instance with another ladder is about to start (a catalog
    /// reload changed it): as [`restart`](Self::restart), with `tracks` (rendition
    /// names in ladder order, then the audio track) and the new segment duration and
    /// window. A track that stays keeps its window, so the media sequence goes on from
    /// the channel's last number in every track; a new track starts at that number too.
    /// A track that goes is forgotten, here and in the store.
    pub fn restart_with(
        &mut self,
        tracks: impl IntoIterator<Item = String>,
        segment_duration: Duration,
        window: u32,
    ) {
        // The DISCONTINUITY-SEQUENCE the kept tracks will have reached at the first
        // segment of the new run, so a new track's playlist lines up with theirs
        // (RFC 8216 6.2.2: the same number for the same content in every variant).
        let discontinuity_sequence = self
            .tracks
            .iter()
            .filter(|t| t.last_sequence.is_some())
            .map(|t| {
                t.discontinuity_sequence
                    + t.window.iter().filter(|s| s.discontinuity).count() as u64
                    + 1
            })
            .max()
            .unwrap_or(0);
        let mut old = std::mem::take(&mut self.tracks);
        let mut added = false;
        self.tracks = tracks
            .into_iter()
            .map(|name| match old.iter().position(|t| t.name == name) {
                Some(index) => old.swap_remove(index),
                None => {
                    added = true;
                    let mut track = Track::new(name);
                    track.discontinuity_sequence = discontinuity_sequence;
                    track
                }
            })
            .collect();
        if added || !old.is_empty() {
            let names: Vec<&str> = self.tracks.iter().map(|t| t.name.as_str()).collect();
            self.channel.replace_tracks(&names);
            self.status.retain_tracks(&names);
        }
        self.segment_duration = segment_duration;
        self.window = window.max(1) as usize;
        self.channel.set_target_duration(segment_duration);
        self.restart();
    }

    /// The channel this packager publishes to.
    pub fn channel(&self) -> &Arc<LiveChannel> {
        &self.channel
    }

    /// The channel's status, which the packager reports segments into.
    pub fn status(&self) -> &Arc<ChannelStatus> {
        &self.status
    }

    /// Publishes a track's init segment and remembers what it carries.
    pub fn push_init(&mut self, id: TrackId, init: Bytes, media: TrackMedia) {
        let Some(track) = self.tracks.get_mut(id) else {
            return;
        };
        debug!(track = %track.name, bytes = init.len(), ?media, "Init segment.");
        track.init = mp4::parse_init(&init)
            .inspect_err(
                |err| warn!(track = %track.name, %err, "Unreadable init segment; no DASH."),
            )
            .ok();
        self.channel.publish_init(&track.name, self.epoch, init);
        track.media = Some(media);
    }

    /// Adds a fragment to the track's open segment. When the segment reaches the next
    /// boundary it is numbered and published with the new media playlist, and the
    /// multivariant playlist is refreshed. Returns the sequence number of a segment it
    /// published.
    pub fn push_fragment(&mut self, id: TrackId, fragment: Fragment) -> Option<u64> {
        let segment_duration = self.segment_duration;
        let track = self.tracks.get_mut(id)?;
        self.status.produced(&track.name, fragment.duration);
        // A fragment that starts at or past the open segment's boundary belongs to the
        // next segment: the open one ended early (a gap in the media), and it is closed
        // as it is rather than joined with the next, which would skip a number.
        let ended_early = track
            .open
            .as_ref()
            .map(|open| next_boundary(open.start + BOUNDARY_TOLERANCE, segment_duration))
            .filter(|&boundary| fragment.start + BOUNDARY_TOLERANCE >= boundary);
        if let Some(boundary) = ended_early {
            debug!(track = %track.name, "A segment ended early; closing it.");
            self.close_open(id, boundary);
        }
        let track = self.tracks.get_mut(id)?;
        let end = fragment.start + fragment.duration;
        let open = track.open.get_or_insert_with(|| OpenSegment {
            start: fragment.start,
            end,
            parts: Vec::new(),
        });
        open.parts.push(fragment.data);
        open.end = end;
        let boundary = next_boundary(open.start + BOUNDARY_TOLERANCE, segment_duration);
        if open.end + BOUNDARY_TOLERANCE >= boundary {
            self.close_open(id, boundary);
        } else if ended_early.is_none() {
            return None;
        }
        let published = self.release();
        self.publish_master();
        self.publish_manifest();
        published
            .into_iter()
            .rev()
            .find(|(track, _)| *track == id)
            .map(|(_, sequence)| sequence)
    }

    /// Closes a track's open segment as the one ending at `boundary`, and holds it
    /// until every track has reached that boundary.
    fn close_open(&mut self, id: TrackId, boundary: SystemTime) {
        let segment_duration = self.segment_duration;
        let window = self.window;
        let Some(track) = self.tracks.get_mut(id) else {
            return;
        };
        let Some(open) = track.open.take() else {
            return;
        };
        track.held.push_back(ClosedSegment {
            clock_index: segment_index_ending_at(boundary, segment_duration),
            start: open.start,
            end: open.end,
            data: concat(open.parts),
        });
        // A track that never makes a segment must not grow the others' memory.
        while track.held.len() > window {
            track.held.pop_front();
        }
    }

    /// Publishes the closed segments every track has got past. A segment is held until
    /// each track has closed one ending at the same boundary or later, so all tracks
    /// publish the same numbers: a run starts at the latest of the tracks' first
    /// boundaries (a track's earlier piece is dropped), and what a failed run leaves
    /// unmatched at its end is dropped by `restart`, so no track has a hole where
    /// another started earlier or ended later. Returns the (track, sequence) pairs it
    /// published.
    fn release(&mut self) -> Vec<(TrackId, u64)> {
        let reached = self
            .tracks
            .iter()
            .map(|t| t.held.back().map(|s| s.clock_index))
            .collect::<Option<Vec<u64>>>();
        if self.run_start.is_none() {
            let Some(first) = self
                .tracks
                .iter()
                .map(|t| t.held.front().map(|s| s.clock_index))
                .collect::<Option<Vec<u64>>>()
                .and_then(|firsts| firsts.into_iter().max())
            else {
                return Vec::new();
            };
            self.start_run(first);
        }
        let Some(until) = reached.and_then(|r| r.into_iter().min()) else {
            return Vec::new();
        };
        let start = self.run_start.unwrap_or(0);
        let mut published = Vec::new();
        for id in 0..self.tracks.len() {
            while self.tracks[id]
                .held
                .front()
                .is_some_and(|s| s.clock_index <= until)
            {
                let Some(closed) = self.tracks[id].held.pop_front() else {
                    break;
                };
                if closed.clock_index < start {
                    continue;
                }
                if let Some(sequence) = self.publish_segment(id, closed) {
                    published.push((id, sequence));
                }
            }
        }
        published
    }

    /// A pipeline run starts at boundary index `start` in every track. After a restart
    /// its first number is the one after the channel's last, so the media sequence goes
    /// on without a hole (HLS sequence numbers and DASH `$Number$` stay the numbers in
    /// the URLs); every track applies the same offset, so the same moment keeps one
    /// number in all of them.
    fn start_run(&mut self, start: u64) {
        let last = self.tracks.iter().filter_map(|t| t.last_sequence).max();
        if let Some(last) = last {
            self.sequence_offset = i128::from(start) - i128::from(last) - 1;
        }
        self.run_start = Some(start);
        // The run's DASH Period starts with its earliest published sample.
        let period_start = self
            .tracks
            .iter()
            .flat_map(|t| t.held.iter().filter(|s| s.clock_index >= start))
            .map(|s| s.start)
            .min();
        if let Some(period_start) = period_start {
            // The first run's Period starts at `availabilityStartTime` itself
            // (`Period@start` 0), which GStreamer 1.22's DASH clients need: they place
            // a live Period's segments as if its start were 0.
            let period_start = match self.availability_start {
                Some(availability_start) => period_start.max(availability_start),
                None => *self
                    .availability_start
                    .insert(whole_millisecond_before(period_start)),
            };
            self.periods.push_back((self.epoch, period_start));
        }
    }

    /// Numbers a closed segment and publishes it with the track's new media playlist.
    fn publish_segment(&mut self, id: TrackId, closed: ClosedSegment) -> Option<u64> {
        let segment_duration = self.segment_duration;
        let window = self.window;
        let epoch = self.epoch;
        let sequence_offset = self.sequence_offset;
        let track = self.tracks.get_mut(id)?;
        let from_clock = i128::from(closed.clock_index) - sequence_offset;
        let sequence = next_sequence(
            u64::try_from(from_clock.max(0)).unwrap_or(u64::MAX),
            track.last_sequence,
        );
        track.last_sequence = Some(sequence);
        let end = closed.end;
        let data = closed.data;
        let entry = SegmentEntry {
            sequence,
            duration: closed.end.duration_since(closed.start).unwrap_or_default(),
            program_date_time: closed.start,
            discontinuity: std::mem::take(&mut track.pending_discontinuity),
            bytes: data.len(),
            init: epoch,
        };
        if entry.discontinuity {
            info!(track = %track.name, sequence, "Discontinuity after a source restart.");
        }
        let timeline = track.init.as_ref().and_then(|init| {
            let fragments = mp4::parse_track_fragments(&data, init)
                .inspect_err(|err| warn!(track = %track.name, sequence, %err, "Unreadable segment; left out of DASH."))
                .ok()?;
            let first = fragments.first()?;
            let duration = fragments.iter().map(|f| f.duration).sum::<u64>();
            (duration > 0).then(|| TimelineSegment {
                media_time: first.earliest_presentation_time(),
                duration,
            })
        });
        if let (Some(segment), Some(init)) = (timeline, &track.init) {
            let period = self.periods.iter().find(|(e, _)| *e == epoch);
            if let (Some((_, period_start)), false) =
                (period, track.offsets.iter().any(|(e, _)| *e == epoch))
            {
                let offset = dash::presentation_time_offset(
                    segment.media_time,
                    entry.program_date_time,
                    *period_start,
                    init.timescale,
                );
                track.offsets.push_back((epoch, offset));
            }
        }
        track.window.push_back(entry);
        track.timeline.push_back(timeline);
        while track.window.len() > window {
            track.window.pop_front();
            track.timeline.pop_front();
            // A discontinuity on the oldest listed segment is not tagged
            // (RFC 8216 6.2.2); DISCONTINUITY-SEQUENCE counts it instead.
            if track.window.front().is_some_and(|s| s.discontinuity) {
                track.discontinuity_sequence += 1;
            }
        }
        let segments: Vec<SegmentEntry> = track.window.iter().cloned().collect();
        let media_playlist = playlist::render(|w| {
            playlist::media_playlist(&segments, track.discontinuity_sequence, segment_duration)
                .write_to(w)
        });
        let oldest_listed = segments.first().map_or(sequence, |s| s.sequence);
        let segment = StoredSegment {
            sequence,
            init: epoch,
            data,
        };
        self.channel.publish_segment(
            &track.name,
            segment,
            media_playlist,
            retained_from(oldest_listed, window),
        );
        // Once it is served: a channel reported live has a segment to fetch.
        self.status.segment_published(&track.name, end);
        Some(sequence)
    }

    /// The multivariant playlist appears once every track has a segment (its
    /// bandwidths are measured, never guessed) and is refreshed with each segment.
    fn publish_master(&self) {
        let mut variants = Vec::new();
        let mut audio = None;
        for track in &self.tracks {
            let segments: Vec<SegmentEntry> = track.window.iter().cloned().collect();
            let target =
                Duration::from_secs(playlist::target_duration(&segments, self.segment_duration));
            let (Some(media), Some(bandwidth)) =
                (&track.media, Bandwidth::measure(&segments, target))
            else {
                return;
            };
            match media {
                TrackMedia::Video {
                    codecs,
                    width,
                    height,
                    frame_rate,
                } => variants.push(VariantInfo {
                    name: track.name.clone(),
                    codecs: codecs.clone(),
                    width: *width,
                    height: *height,
                    frame_rate: *frame_rate,
                    bandwidth,
                }),
                TrackMedia::Audio { codecs, channels } => {
                    audio = Some(AudioInfo {
                        codecs: codecs.clone(),
                        channels: *channels,
                        bandwidth,
                    })
                }
            }
        }
        let Some(audio) = audio else {
            warn!("A channel without an audio track cannot list its variants yet.");
            return;
        };
        let master = playlist::render(|w| playlist::master_playlist(&variants, &audio).write_to(w));
        self.channel.publish_master(master);
    }
}

impl Packager {
    /// The live DASH MPD over the same window as the playlists: one Period per pipeline
    /// run still listed, a Representation per track, `$Number$` the HLS sequence
    /// number. Published once every track has a measured segment, like the master.
    fn publish_manifest(&mut self) {
        // Periods (and offsets) of runs no longer listed anywhere are forgotten.
        let oldest = self
            .tracks
            .iter()
            .filter_map(|t| t.window.front().map(|s| s.init))
            .min();
        if let Some(oldest) = oldest {
            while self.periods.front().is_some_and(|(e, _)| *e < oldest) {
                self.periods.pop_front();
            }
            for track in &mut self.tracks {
                while track.offsets.front().is_some_and(|(e, _)| *e < oldest) {
                    track.offsets.pop_front();
                }
            }
        }
        if let Some(mpd) = self.manifest() {
            self.channel
                .publish_manifest(Bytes::from(dash::render(&mpd)));
        }
    }

    fn manifest(&self) -> Option<Mpd> {
        let availability_start = self.availability_start?;
        let mut videos = Vec::new();
        let mut audio = None;
        let mut longest = self.segment_duration;
        for track in &self.tracks {
            let segments: Vec<SegmentEntry> = track.window.iter().cloned().collect();
            let target = playlist::target_duration(&segments, self.segment_duration);
            longest = longest.max(Duration::from_secs(target));
            let bandwidth = Bandwidth::measure(&segments, Duration::from_secs(target))?.peak;
            match track.media.as_ref()? {
                TrackMedia::Video {
                    codecs,
                    width,
                    height,
                    frame_rate,
                } => videos.push(MpdVideo {
                    id: track.name.clone(),
                    codecs: codecs.clone(),
                    width: *width,
                    height: *height,
                    frame_rate: *frame_rate,
                    bandwidth,
                }),
                TrackMedia::Audio { codecs, channels } => {
                    audio = Some(MpdAudio {
                        id: track.name.clone(),
                        codecs: codecs.clone(),
                        channels: *channels,
                        // An AAC track's timescale is its sample rate.
                        sampling_rate: track.init.as_ref()?.timescale,
                        bandwidth,
                        lang: None,
                    })
                }
            }
        }
        let periods = self
            .periods
            .iter()
            .map(|(epoch, start)| MpdPeriod {
                id: epoch.to_string(),
                start: start.duration_since(availability_start).unwrap_or_default(),
                tracks: self
                    .tracks
                    .iter()
                    .filter_map(|t| t.period_timeline(*epoch))
                    .collect(),
            })
            .filter(|p| !p.tracks.is_empty())
            .collect();
        Some(Mpd {
            kind: MpdKind::Dynamic {
                availability_start,
                publish_time: SystemTime::now(),
                minimum_update_period: self.segment_duration,
                time_shift_buffer_depth: self.segment_duration * self.window as u32,
                // Three segments behind the live edge, as HLS players start.
                suggested_presentation_delay: self.segment_duration * 3,
                utc_timing_url: TIME_URL.to_owned(),
            },
            min_buffer_time: self.segment_duration,
            max_segment_duration: longest,
            videos,
            audio,
            subtitles: Vec::new(),
            periods,
        })
    }
}

/// Where DASH players read the origin's clock (`UTCTiming`, http-iso). Path-absolute,
/// so it resolves on the origin for players on the same origin.
pub const TIME_URL: &str = "/time";

impl Track {
    fn new(name: String) -> Track {
        Track {
            name,
            open: None,
            held: VecDeque::new(),
            media: None,
            init: None,
            window: VecDeque::new(),
            timeline: VecDeque::new(),
            offsets: VecDeque::new(),
            last_sequence: None,
            discontinuity_sequence: 0,
            pending_discontinuity: false,
        }
    }

    /// This track's listed segments of run `epoch` as a DASH timeline: the newest run
    /// of consecutive numbers (a hole, from a stalled source, ends the older part).
    fn period_timeline(&self, epoch: Epoch) -> Option<TrackTimeline> {
        let init = self.init.as_ref()?;
        let offset = self.offsets.iter().find(|(e, _)| *e == epoch)?.1;
        let mut segments: Vec<TimelineSegment> = Vec::new();
        let mut start_number = 0;
        let mut previous: Option<u64> = None;
        for (entry, timeline) in self.window.iter().zip(&self.timeline) {
            if entry.init != epoch {
                continue;
            }
            let Some(timeline) = timeline else {
                segments.clear();
                previous = None;
                continue;
            };
            if previous.is_none_or(|p| entry.sequence != p + 1) {
                segments.clear();
                start_number = entry.sequence;
            }
            previous = Some(entry.sequence);
            segments.push(*timeline);
        }
        (!segments.is_empty()).then(|| TrackTimeline {
            id: self.name.clone(),
            timescale: init.timescale,
            init_name: init_name(epoch),
            presentation_time_offset: offset,
            start_number,
            segments,
        })
    }
}

/// `time` rounded down to a whole millisecond (the MPD states times to the millisecond).
fn whole_millisecond_before(time: SystemTime) -> SystemTime {
    let millis = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
}

fn nanos_since_epoch(time: SystemTime) -> u128 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

/// The first multiple of `segment_duration` on the wall clock strictly after `time`.
pub fn next_boundary(time: SystemTime, segment_duration: Duration) -> SystemTime {
    let step = segment_duration.as_nanos().max(1);
    let next = (nanos_since_epoch(time) / step + 1) * step;
    SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(next).unwrap_or(u64::MAX))
}

/// Segment numbers come from the wall clock: the segment that ends at boundary `b` has
/// index `b / segment_duration - 1`. Every rendition and the audio get the same number
/// for the same moment (so HLS and DASH `$Number$` agree), and a later process start
/// continues above the numbers an earlier one published.
pub fn segment_index_ending_at(boundary: SystemTime, segment_duration: Duration) -> u64 {
    let step = segment_duration.as_nanos().max(1);
    // Boundaries are computed, but be robust to a few nanoseconds of rounding.
    let index = (nanos_since_epoch(boundary) + step / 2) / step;
    u64::try_from(index).unwrap_or(u64::MAX).saturating_sub(1)
}

/// A track's number never repeats or goes backwards, whatever the clock does.
pub fn next_sequence(from_clock: u64, last: Option<u64>) -> u64 {
    match last {
        Some(last) if from_clock <= last => last + 1,
        _ => from_clock,
    }
}

fn concat(parts: Vec<Bytes>) -> Bytes {
    if parts.len() == 1 {
        return parts.into_iter().next().unwrap_or_default();
    }
    let mut out = bytes::BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
    for part in parts {
        out.extend_from_slice(&part);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SegmentStore;

    fn at_ms(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn sequence_is_the_boundary_a_segment_ends_at() {
        let two = Duration::from_secs(2);
        assert_eq!(segment_index_ending_at(at_ms(2_002_000), two), 1000);
        assert_eq!(segment_index_ending_at(at_ms(2_001_999), two), 1000);
        assert_eq!(next_boundary(at_ms(2_000_050), two), at_ms(2_002_000));
        assert_eq!(next_boundary(at_ms(2_002_000), two), at_ms(2_004_000));
    }

    #[test]
    fn sequence_never_repeats_or_goes_back() {
        assert_eq!(next_sequence(1000, Some(1000)), 1001);
        assert_eq!(next_sequence(500, Some(1000)), 1001);
        assert_eq!(next_sequence(1002, Some(1000)), 1002);
        assert_eq!(next_sequence(7, None), 7);
    }

    #[test]
    fn numbers_go_on_without_a_hole_after_a_restart() {
        let (mut p, ch) = packager();
        assert_eq!(p.push_fragment(0, fragment(2_000_000, 10)), None);
        assert_eq!(p.push_fragment(1, fragment(2_000_000, 10)), Some(1000));
        p.restart();
        // Twenty seconds later: the clock says 1010, the sequence goes on at 1001 in
        // every track, and the clock's steps still count from there. The audio waits
        // for the video's first segment of the run.
        assert_eq!(p.push_fragment(1, fragment(2_020_000, 10)), None);
        assert_eq!(p.push_fragment(0, fragment(2_020_000, 10)), Some(1001));
        assert!(ch.segment("audio", 1001).is_some());
        // Each segment waits for the other track's of the same moment.
        assert_eq!(p.push_fragment(0, fragment(2_022_000, 10)), None);
        assert!(ch.segment("720p", 1002).is_none());
        assert_eq!(p.push_fragment(1, fragment(2_022_000, 10)), Some(1002));
        assert!(ch.segment("720p", 1002).is_some());
        let pl = m3u8_rs::parse_media_playlist_res(&ch.media_playlist("720p").unwrap()).unwrap();
        let uris: Vec<&str> = pl.segments.iter().map(|s| s.uri.as_str()).collect();
        assert_eq!(uris, ["1000.m4s", "1001.m4s", "1002.m4s"]);
        assert_eq!(pl.media_sequence, 1000);
        let maps: Vec<Option<&str>> = pl
            .segments
            .iter()
            .map(|s| s.map.as_ref().map(|m| m.uri.as_str()))
            .collect();
        assert_eq!(maps, [Some("init-0.mp4"), Some("init-1.mp4"), None]);
    }

    #[test]
    fn a_restart_with_another_ladder_goes_on_numbering_in_old_and_new_tracks() {
        let (mut p, ch) = packager();
        p.push_init(0, Bytes::from_static(b"v"), video_media());
        assert_eq!(p.push_fragment(0, fragment(2_000_000, 10)), None);
        assert_eq!(p.push_fragment(1, fragment(2_000_000, 10)), Some(1000));
        // 720p goes, 480p comes, the audio stays; segments become 4 s long.
        p.restart_with(
            ["480p".to_owned(), "audio".to_owned()],
            Duration::from_secs(4),
            3,
        );
        assert_eq!(ch.target_duration(), Duration::from_secs(4));
        assert!(ch.init_segment("720p", None).is_none());
        assert!(ch.media_playlist("720p").is_none());
        assert_eq!(p.track_id("480p"), Some(0));
        assert_eq!(p.track_id("720p"), None);
        // Thirty seconds later, on the 4 s grid: the clock says 502, the numbers go
        // on at 1001 in both tracks, and the clock's steps count from there.
        let four = |ms: u64| Fragment {
            data: Bytes::from_static(b"f"),
            start: at_ms(ms),
            duration: Duration::from_secs(4),
        };
        assert_eq!(p.push_fragment(0, four(2_032_000)), None);
        assert_eq!(p.push_fragment(1, four(2_032_000)), Some(1001));
        assert_eq!(p.push_fragment(0, four(2_036_000)), None);
        assert_eq!(p.push_fragment(1, four(2_036_000)), Some(1002));
        let parsed = |track: &str| {
            m3u8_rs::parse_media_playlist_res(&ch.media_playlist(track).unwrap()).unwrap()
        };
        let audio = parsed("audio");
        let uris: Vec<&str> = audio.segments.iter().map(|s| s.uri.as_str()).collect();
        assert_eq!(uris, ["1000.m4s", "1001.m4s", "1002.m4s"]);
        assert_eq!(
            audio
                .segments
                .iter()
                .map(|s| s.discontinuity)
                .collect::<Vec<_>>(),
            [false, true, false]
        );
        assert_eq!(audio.target_duration, 4);
        // The new rendition starts at the same number, and its discontinuity
        // sequence is the one the audio has reached there.
        let video = parsed("480p");
        assert_eq!(video.media_sequence, 1001);
        assert_eq!(video.discontinuity_sequence, 1);
        assert!(video.segments.iter().all(|s| !s.discontinuity));
        let uris: Vec<&str> = video.segments.iter().map(|s| s.uri.as_str()).collect();
        assert_eq!(uris, ["1001.m4s", "1002.m4s"]);
    }

    #[test]
    fn a_restart_with_a_shorter_segment_duration_numbers_on_without_a_jump() {
        let (mut p, ch) = packager_of(&["720p"]);
        assert_eq!(p.push_fragment(0, fragment(2_000_000, 10)), Some(1000));
        p.restart_with(["720p".to_owned()], Duration::from_secs(1), 3);
        let one = |ms: u64| Fragment {
            data: Bytes::from_static(b"f"),
            start: at_ms(ms),
            duration: Duration::from_secs(1),
        };
        // On the 1 s grid the clock says 2005, then 2006: numbered 1001, 1002.
        assert_eq!(p.push_fragment(0, one(2_005_000)), Some(1001));
        assert_eq!(p.push_fragment(0, one(2_006_000)), Some(1002));
        assert!(ch.init_segment("720p", None).is_none());
    }

    #[test]
    fn fragments_are_joined_until_the_boundary() {
        let (mut p, ch) = packager_of(&["720p"]);
        // A partial first segment, then two 1 s fragments (a GOP each), then audio-like
        // straddling: a segment ending 20 ms early still closes at the boundary.
        let frag = |start_ms: u64, dur_ms: u64, byte: u8| Fragment {
            data: Bytes::from(vec![byte; 2]),
            start: at_ms(start_ms),
            duration: Duration::from_millis(dur_ms),
        };
        assert_eq!(p.push_fragment(0, frag(2_000_600, 1_420, 1)), Some(1000));
        assert_eq!(p.push_fragment(0, frag(2_002_020, 1_000, 2)), None);
        assert_eq!(p.push_fragment(0, frag(2_003_020, 960, 3)), Some(1001));
        assert_eq!(p.push_fragment(0, frag(2_003_980, 21, 4)), None);
        assert_eq!(p.push_fragment(0, frag(2_004_001, 1_979, 5)), Some(1002));
        assert_eq!(
            ch.segment("720p", 1001),
            Some(Bytes::from_static(&[2, 2, 3, 3]))
        );
        assert_eq!(
            ch.segment("720p", 1002),
            Some(Bytes::from_static(&[4, 4, 5, 5]))
        );
        let pl = m3u8_rs::parse_media_playlist_res(&ch.media_playlist("720p").unwrap()).unwrap();
        let durations: Vec<f32> = pl.segments.iter().map(|s| s.duration).collect();
        assert_eq!(durations, [1.42, 1.96, 2.0]);
    }

    #[test]
    fn a_segment_that_ends_early_keeps_its_number() {
        let (mut p, ch) = packager_of(&["720p"]);
        let frag = |start_ms: u64, dur_ms: u64, byte: u8| Fragment {
            data: Bytes::from(vec![byte; 2]),
            start: at_ms(start_ms),
            duration: Duration::from_millis(dur_ms),
        };
        assert_eq!(p.push_fragment(0, frag(2_000_000, 2_000, 1)), Some(1000));
        // The media stops 300 ms short of the boundary; the next fragment starts at it.
        assert_eq!(p.push_fragment(0, frag(2_002_000, 1_700, 2)), None);
        assert_eq!(p.push_fragment(0, frag(2_004_000, 1_000, 3)), Some(1001));
        assert_eq!(p.push_fragment(0, frag(2_005_000, 1_000, 4)), Some(1002));
        assert_eq!(ch.segment("720p", 1001), Some(Bytes::from_static(&[2, 2])));
        assert_eq!(
            ch.segment("720p", 1002),
            Some(Bytes::from_static(&[3, 3, 4, 4]))
        );
        let pl = m3u8_rs::parse_media_playlist_res(&ch.media_playlist("720p").unwrap()).unwrap();
        let durations: Vec<f32> = pl.segments.iter().map(|s| s.duration).collect();
        assert_eq!(durations, [2.0, 1.7, 2.0]);
    }

    /// A packager with a video track (0) and an audio track (1).
    fn packager() -> (Packager, Arc<LiveChannel>) {
        packager_of(&["720p", "audio"])
    }

    fn packager_of(tracks: &[&str]) -> (Packager, Arc<LiveChannel>) {
        let store = SegmentStore::new();
        let channel = store.channel_or_insert("news", Duration::from_secs(2));
        let p = Packager::new(
            channel.clone(),
            tracks.iter().map(|t| (*t).to_owned()),
            Duration::from_secs(2),
            3,
            crate::status::Registry::new().register("news", crate::status::ChannelState::Starting),
        );
        (p, channel)
    }

    fn fragment(ms: u64, len: usize) -> Fragment {
        Fragment {
            data: Bytes::from(vec![0u8; len]),
            start: at_ms(ms),
            duration: Duration::from_secs(2),
        }
    }

    fn video_media() -> TrackMedia {
        TrackMedia::Video {
            codecs: "avc1.64001f".into(),
            width: 1280,
            height: 720,
            frame_rate: 30.0,
        }
    }

    #[test]
    fn window_slides_and_old_segments_stay_a_little_longer() {
        let (mut p, ch) = packager_of(&["720p"]);
        p.push_init(0, Bytes::from_static(b"init"), video_media());
        for i in 0..8u64 {
            assert_eq!(
                p.push_fragment(0, fragment(2_000_000 + i * 2000, 10)),
                Some(1000 + i)
            );
        }
        let text = ch.media_playlist("720p").unwrap();
        let playlist = m3u8_rs::parse_media_playlist_res(&text).unwrap();
        assert_eq!(playlist.media_sequence, 1005);
        assert_eq!(playlist.segments.len(), 3);
        // Listed: 1005..=1007; retained beyond the window: 1001..=1004 (window + 1).
        assert!(ch.segment("720p", 1000).is_none());
        assert!(ch.segment("720p", 1001).is_some());
        assert!(ch.segment("720p", 1007).is_some());
        assert_eq!(
            ch.init_segment("720p", Some(0)),
            Some(Bytes::from_static(b"init"))
        );
    }

    #[test]
    fn restart_marks_one_discontinuity_then_counts_it_when_it_leaves() {
        let (mut p, ch) = packager_of(&["720p"]);
        p.push_fragment(0, fragment(2_000_000, 10));
        p.restart();
        p.push_fragment(0, fragment(2_010_000, 10));
        let parsed = |ch: &LiveChannel| {
            m3u8_rs::parse_media_playlist_res(&ch.media_playlist("720p").unwrap()).unwrap()
        };
        let pl = parsed(&ch);
        assert_eq!(
            pl.segments
                .iter()
                .map(|s| s.discontinuity)
                .collect::<Vec<_>>(),
            [false, true]
        );
        assert_eq!(pl.discontinuity_sequence, 0);
        for i in 1..=3u64 {
            p.push_fragment(0, fragment(2_010_000 + i * 2000, 10));
        }
        let pl = parsed(&ch);
        // 1000, then after the restart 1001 (not the clock's 1005), 1002, 1003, 1004.
        assert_eq!(pl.media_sequence, 1002);
        assert!(pl.segments.iter().all(|s| !s.discontinuity));
        assert_eq!(pl.discontinuity_sequence, 1);
    }

    #[test]
    fn what_one_track_made_past_the_others_when_a_run_failed_is_dropped() {
        let (mut p, ch) = packager();
        p.push_fragment(0, fragment(2_000_000, 10));
        p.push_fragment(1, fragment(2_000_000, 10));
        // The video closes 1001, then the run fails before the audio does.
        assert_eq!(p.push_fragment(0, fragment(2_002_000, 10)), None);
        p.restart();
        p.push_fragment(0, fragment(2_010_000, 10));
        assert_eq!(p.push_fragment(1, fragment(2_010_000, 10)), Some(1001));
        for track in ["720p", "audio"] {
            let text = ch.media_playlist(track).unwrap();
            let pl = m3u8_rs::parse_media_playlist_res(&text).unwrap();
            let uris: Vec<&str> = pl.segments.iter().map(|s| s.uri.as_str()).collect();
            assert_eq!(uris, ["1000.m4s", "1001.m4s"], "{track}");
            assert!(pl.segments[1].discontinuity, "{track}");
        }
    }

    #[test]
    fn every_track_starts_a_run_at_the_same_boundary() {
        let (mut p, ch) = packager();
        // The audio starts just before 2_002_000 and closes a 50 ms segment there; the
        // video's first frame is after it, so its first segment ends at 2_004_000.
        let short = Fragment {
            data: Bytes::from_static(b"a"),
            start: at_ms(2_001_900),
            duration: Duration::from_millis(100),
        };
        assert_eq!(p.push_fragment(1, short), None);
        assert_eq!(p.push_fragment(1, fragment(2_002_000, 10)), None);
        assert_eq!(p.push_fragment(0, fragment(2_002_000, 10)), Some(1001));
        // The audio's lone 50 ms is dropped: both tracks start at 1001.
        assert!(ch.segment("audio", 1000).is_none());
        assert!(ch.segment("audio", 1001).is_some());
        for track in ["720p", "audio"] {
            let text = ch.media_playlist(track).unwrap();
            let pl = m3u8_rs::parse_media_playlist_res(&text).unwrap();
            assert_eq!(pl.media_sequence, 1001, "{track}");
            assert_eq!(pl.segments.len(), 1, "{track}");
        }
    }

    #[test]
    fn master_waits_for_every_track_and_measures_bandwidth() {
        let (mut p, ch) = packager();
        p.push_init(0, Bytes::from_static(b"v"), video_media());
        p.push_init(
            1,
            Bytes::from_static(b"a"),
            TrackMedia::Audio {
                codecs: "mp4a.40.2".into(),
                channels: 2,
            },
        );
        p.push_fragment(0, fragment(2_000_000, 500_000));
        assert!(ch.master_playlist().is_none());
        p.push_fragment(1, fragment(2_000_000, 32_000));
        let master = m3u8_rs::parse_master_playlist_res(&ch.master_playlist().unwrap()).unwrap();
        assert_eq!(master.variants.len(), 1);
        // 500 kB in 2 s is 2 Mb/s of video, plus 32 kB in 2 s = 128 kb/s of audio.
        assert_eq!(master.variants[0].bandwidth, 2_128_000);
        assert_eq!(
            master.variants[0].codecs.as_deref(),
            Some("avc1.64001f,mp4a.40.2")
        );
    }
}
