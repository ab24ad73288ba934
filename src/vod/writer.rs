//! The transcode's [`MediaSink`] for VOD: joins each track's GOP fragments into
//! segments on the ladder's segment grid and writes them to a staging directory as
//! they close, reading each segment's timing and keyframes back with the MP4 box
//! reader for the playlists and the MPD.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use tracing::debug;

use crate::packager::mp4::{self, InitInfo, Mp4Error, VIDEO_HANDLER};
use crate::packager::{TrackMedia, BOUNDARY_TOLERANCE};
use crate::pipeline::transcode::MediaSink;

/// Name of every track's init segment in its folder.
pub const INIT_NAME: &str = "init.mp4";

/// `{number}.m4s`: numbers count segments from the start of the file, from 0.
pub fn segment_name(number: u64) -> String {
    format!("{number}.m4s")
}

/// Why the writer stopped. The transcode cannot be told from inside a sink callback, so
/// the first failure is kept, later input is dropped, and [`AssetWriter::finish`]
/// returns it.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot write {}: {error}", .path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("track `{track}`: {reason}")]
    Media { track: String, reason: String },
    #[error("track `{track}`, segment {number}: {error}")]
    Mp4 {
        track: String,
        number: u64,
        error: Mp4Error,
    },
}

/// A keyframe inside a segment file: the bytes an I-frame playlist entry names (the
/// fragment's `moof`, the `mdat` header and the keyframe itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyframe {
    pub offset: u64,
    pub length: u64,
    /// Until the next keyframe (the fragment's duration: one GOP), in track ticks.
    pub duration: u64,
}

/// One finished segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRecord {
    pub number: u64,
    /// Where it starts in the file, as the transcode timed its first fragment.
    pub start: Duration,
    pub bytes: u64,
    /// Earliest presentation time of its first fragment, in track ticks.
    pub media_time: u64,
    /// Sum of its samples' durations, in track ticks.
    pub duration: u64,
    /// Video only: one per fragment that starts with a sync sample.
    pub keyframes: Vec<Keyframe>,
}

/// A track as written: what it carries and its segments in order.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackOutput {
    pub name: String,
    pub media: TrackMedia,
    /// Ticks per second of every time in `segments`.
    pub timescale: u32,
    pub is_video: bool,
    pub segments: Vec<SegmentRecord>,
}

impl TrackOutput {
    pub fn seconds(&self, ticks: u64) -> f64 {
        ticks as f64 / f64::from(self.timescale.max(1))
    }

    /// Total duration of the track's segments.
    pub fn duration(&self) -> Duration {
        let ticks: u64 = self.segments.iter().map(|s| s.duration).sum();
        Duration::from_secs_f64(self.seconds(ticks))
    }
}

struct OpenSegment {
    start: Duration,
    end: Duration,
    parts: Vec<Bytes>,
}

struct Track {
    name: String,
    init: Option<(InitInfo, TrackMedia)>,
    open: Option<OpenSegment>,
    segments: Vec<SegmentRecord>,
}

/// Writes `{dir}/{track}/init.mp4` and `{dir}/{track}/{n}.m4s` for every track.
pub struct AssetWriter {
    dir: PathBuf,
    segment_duration: Duration,
    tracks: Vec<Track>,
    error: Option<WriteError>,
}

impl AssetWriter {
    /// `tracks` are `transcode::track_names(ladder)`, in that order.
    pub fn new(dir: &Path, tracks: Vec<String>, segment_duration: Duration) -> Self {
        Self {
            dir: dir.to_owned(),
            segment_duration,
            tracks: tracks
                .into_iter()
                .map(|name| Track {
                    name,
                    init: None,
                    open: None,
                    segments: Vec::new(),
                })
                .collect(),
            error: None,
        }
    }

    /// Closes every open segment and returns the tracks that were given an init
    /// segment (a source without audio has no audio track), or the first failure.
    pub fn finish(mut self) -> Result<Vec<TrackOutput>, WriteError> {
        for index in 0..self.tracks.len() {
            if self.error.is_some() {
                break;
            }
            if let Some(open) = self.tracks[index].open.take() {
                self.close(index, open);
            }
        }
        if let Some(error) = self.error {
            return Err(error);
        }
        let mut outputs = Vec::new();
        for track in self.tracks {
            let Some((info, media)) = track.init else {
                continue;
            };
            if track.segments.is_empty() {
                return Err(WriteError::Media {
                    track: track.name,
                    reason: "the transcode produced no media".to_owned(),
                });
            }
            outputs.push(TrackOutput {
                name: track.name,
                is_video: info.handler == VIDEO_HANDLER,
                timescale: info.timescale,
                media,
                segments: track.segments,
            });
        }
        Ok(outputs)
    }

    fn track_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn fail(&mut self, error: WriteError) {
        debug!(error = %error, "VOD writer stops.");
        self.error.get_or_insert(error);
    }

    /// Closes `open` as the track's next segment. Segments are numbered from 0 in
    /// order. Every track's fragments abut and close on the same grid lines, so the
    /// same number is the same moment in every track; and a DASH `SegmentTimeline`
    /// with `$Number$` needs numbers without a hole, which counting guarantees.
    fn close(&mut self, index: usize, open: OpenSegment) {
        let track = &self.tracks[index];
        let number = track.segments.len() as u64;
        let Some((info, _)) = &track.init else {
            let error = WriteError::Media {
                track: track.name.clone(),
                reason: "a fragment came before the init segment".to_owned(),
            };
            return self.fail(error);
        };
        let data = concat(open.parts);
        let record = match describe(&data, info, number, open.start) {
            Ok(record) => record,
            Err(error) => {
                let error = WriteError::Mp4 {
                    track: track.name.clone(),
                    number,
                    error,
                };
                return self.fail(error);
            }
        };
        let path = self.track_dir(&track.name).join(segment_name(number));
        if let Err(error) = write_file(&path, &data) {
            return self.fail(error);
        }
        self.tracks[index].segments.push(record);
    }
}

impl MediaSink for AssetWriter {
    fn init(&mut self, track: usize, init: Bytes, media: TrackMedia) {
        if self.error.is_some() {
            return;
        }
        let Some(name) = self.tracks.get(track).map(|t| t.name.clone()) else {
            return;
        };
        let info = match mp4::parse_init(&init) {
            Ok(info) => info,
            Err(source) => {
                let reason = format!("unreadable init segment: {source}");
                return self.fail(WriteError::Media {
                    track: name,
                    reason,
                });
            }
        };
        let dir = self.track_dir(&name);
        if let Err(error) = fs::create_dir_all(&dir) {
            return self.fail(WriteError::Io { path: dir, error });
        }
        if let Err(error) = write_file(&dir.join(INIT_NAME), &init) {
            return self.fail(error);
        }
        self.tracks[track].init = Some((info, media));
    }

    fn fragment(&mut self, track: usize, data: Bytes, start: Duration, duration: Duration) {
        if self.error.is_some() || track >= self.tracks.len() {
            return;
        }
        let end = start.saturating_add(duration);
        let open = self.tracks[track].open.get_or_insert_with(|| OpenSegment {
            start,
            end,
            parts: Vec::new(),
        });
        open.parts.push(data);
        open.end = end;
        // As live (`packager::push_fragment`): a segment closes at the first grid line
        // after its start, within the tolerance a forced keyframe or an AAC frame
        // straddling the line needs.
        let boundary = next_boundary(open.start + BOUNDARY_TOLERANCE, self.segment_duration);
        if open.end + BOUNDARY_TOLERANCE < boundary {
            return;
        }
        if let Some(open) = self.tracks[track].open.take() {
            self.close(track, open);
        }
    }
}

/// The first multiple of `step` strictly after `time`.
fn next_boundary(time: Duration, step: Duration) -> Duration {
    let step_nanos = step.as_nanos().max(1);
    let next = (time.as_nanos() / step_nanos + 1) * step_nanos;
    Duration::from_nanos(u64::try_from(next).unwrap_or(u64::MAX))
}

/// A segment's timing and keyframes, read from its boxes.
fn describe(
    data: &[u8],
    init: &InitInfo,
    number: u64,
    start: Duration,
) -> Result<SegmentRecord, Mp4Error> {
    let fragments = mp4::parse_track_fragments(data, init)?;
    let media_time = fragments
        .first()
        .map_or(0, mp4::FragmentInfo::earliest_presentation_time);
    let keyframes = if init.handler == VIDEO_HANDLER {
        fragments
            .iter()
            .filter(|f| f.first_sample_is_sync)
            .map(|f| Keyframe {
                offset: f.moof_offset as u64,
                // mp4.rs places the first sample inside the mdat after its moof.
                length: (f.first_sample_offset + f.first_sample_size as usize)
                    .saturating_sub(f.moof_offset) as u64,
                duration: f.duration,
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(SegmentRecord {
        number,
        start,
        bytes: data.len() as u64,
        media_time,
        duration: fragments.iter().map(|f| f.duration).sum(),
        keyframes,
    })
}

fn concat(parts: Vec<Bytes>) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(Bytes::len).sum());
    for part in parts {
        out.extend_from_slice(&part);
    }
    out
}

/// Writes and syncs a file, so that once the staging directory is published every file
/// in it is on disk, whatever happens to the machine next.
pub(super) fn write_file(path: &Path, data: &[u8]) -> Result<(), WriteError> {
    let io = |error| WriteError::Io {
        path: path.to_owned(),
        error,
    };
    let mut file = fs::File::create(path).map_err(io)?;
    file.write_all(data).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A minimal CMAF init segment: `ftyp`, `moov/trak/{tkhd, mdia/{mdhd, hdlr}}` and
    /// `mvex/trex`, for track 1 with `timescale`.
    pub fn init_segment(handler: &[u8; 4], timescale: u32) -> Vec<u8> {
        let tkhd = full_box(
            b"tkhd",
            0,
            &[&[0; 8][..], &1u32.to_be_bytes(), &[0; 68]].concat(),
        );
        let mdhd = full_box(
            b"mdhd",
            0,
            &[&[0; 8][..], &timescale.to_be_bytes(), &[0; 8]].concat(),
        );
        let hdlr = full_box(b"hdlr", 0, &[&[0; 4][..], handler, &[0; 13]].concat());
        let mdia = mp4_box(b"mdia", &[mdhd, hdlr].concat());
        let trak = mp4_box(b"trak", &[tkhd, mdia].concat());
        let trex = full_box(
            b"trex",
            0,
            &[1u32, 1, 0, 0, 0]
                .iter()
                .flat_map(|v| v.to_be_bytes())
                .collect::<Vec<u8>>(),
        );
        let mvex = mp4_box(b"mvex", &trex);
        let moov = mp4_box(b"moov", &[trak, mvex].concat());
        [mp4_box(b"ftyp", b"cmfc\0\0\0\0cmfciso6"), moov].concat()
    }

    /// One fragment of `samples` samples of `sample_duration` ticks and 10 bytes each,
    /// starting at decode time `decode_time`; the first sample is a sync sample when
    /// `sync` (the rest never are).
    pub fn fragment(decode_time: u64, samples: u32, sample_duration: u32, sync: bool) -> Vec<u8> {
        const SAMPLE_BYTES: u32 = 10;
        let tfhd = full_box(b"tfhd", 0x02_0000, &1u32.to_be_bytes());
        let tfdt = full_box(b"tfdt", 1, &decode_time.to_be_bytes());
        // data offset, first sample flags, then duration and size per sample.
        let trun_flags = 0x000001 | 0x000004 | 0x000100 | 0x000200;
        let first_flags: u32 = if sync { 0x0200_0000 } else { 0x0101_0000 };
        let trun_len = 12 + 4 + 4 + 4 + samples as usize * 8;
        let traf_len = 8 + tfhd.len() + tfdt.len() + trun_len;
        let moof_len = 8 + traf_len;
        let data_offset = (moof_len + 8) as u32;
        let mut trun_body = Vec::new();
        trun_body.extend(samples.to_be_bytes());
        trun_body.extend(data_offset.to_be_bytes());
        trun_body.extend(first_flags.to_be_bytes());
        for _ in 0..samples {
            trun_body.extend(sample_duration.to_be_bytes());
            trun_body.extend(SAMPLE_BYTES.to_be_bytes());
        }
        let trun = full_box(b"trun", trun_flags, &trun_body);
        let traf = mp4_box(b"traf", &[tfhd, tfdt, trun].concat());
        let moof = mp4_box(b"moof", &traf);
        let mdat = mp4_box(b"mdat", &vec![0xab; (samples * SAMPLE_BYTES) as usize]);
        [moof, mdat].concat()
    }

    fn mp4_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let size = (8 + body.len()) as u32;
        [&size.to_be_bytes()[..], kind, body].concat()
    }

    /// `version` 1 when `flags` asks for a 64-bit field is the caller's business.
    fn full_box(kind: &[u8; 4], flags: u32, body: &[u8]) -> Vec<u8> {
        let version: u8 = if kind == b"tfdt" { 1 } else { 0 };
        let header = (u32::from(version) << 24) | flags;
        mp4_box(kind, &[&header.to_be_bytes()[..], body].concat())
    }

    pub fn video() -> TrackMedia {
        TrackMedia::Video {
            codecs: "avc1.64001f".into(),
            width: 1280,
            height: 720,
            frame_rate: 25.0,
        }
    }

    pub fn audio() -> TrackMedia {
        TrackMedia::Audio {
            codecs: "mp4a.40.2".into(),
            channels: 2,
        }
    }

    pub struct Staging(pub PathBuf);

    impl Staging {
        pub fn new(label: &str) -> Self {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let dir = std::env::temp_dir().join(format!(
                "headend-vod-{label}-{}-{nanos}",
                std::process::id()
            ));
            fs::create_dir_all(&dir).unwrap();
            Staging(dir)
        }
    }

    impl Drop for Staging {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const MS: Duration = Duration::from_millis(1);

    /// Feeds a video track of 1 s GOPs at 25 fps (timescale 12800, 512 ticks a frame)
    /// and an audio track of AAC frames at 48 kHz, `seconds` long, to a writer on a 2 s
    /// grid.
    pub fn write_synthetic(dir: &Path, seconds: u32) -> Vec<TrackOutput> {
        let mut writer = AssetWriter::new(
            dir,
            vec!["720p".into(), "audio".into()],
            Duration::from_secs(2),
        );
        writer.init(0, Bytes::from(init_segment(b"vide", 12_800)), video());
        writer.init(1, Bytes::from(init_segment(b"soun", 48_000)), audio());
        for gop in 0..seconds {
            let data = fragment(u64::from(gop) * 12_800, 25, 512, true);
            writer.fragment(0, Bytes::from(data), gop * 1000 * MS, 1000 * MS);
        }
        // AAC frames of 1024 samples, in fragments that end at the first frame at or
        // after each grid line, as cmafmux cuts audio.
        let total = u64::from(seconds) * 48_000;
        let mut at = 0u64;
        while at < total {
            let boundary = (at / 96_000 + 1) * 96_000;
            let frames = (boundary.min(total) - at).div_ceil(1024) as u32;
            let data = fragment(at, frames, 1024, true);
            let start = Duration::from_nanos(at * 1_000_000_000 / 48_000);
            let duration = Duration::from_nanos(u64::from(frames) * 1024 * 1_000_000_000 / 48_000);
            writer.fragment(1, Bytes::from(data), start, duration);
            at += u64::from(frames) * 1024;
        }
        writer.finish().expect("writes")
    }

    #[test]
    fn gops_join_into_segments_on_the_grid() {
        let staging = Staging::new("grid");
        let tracks = write_synthetic(&staging.0, 5);
        let video = &tracks[0];
        assert!(video.is_video);
        assert_eq!(video.timescale, 12_800);
        let numbers: Vec<(u64, u64, u64)> = video
            .segments
            .iter()
            .map(|s| (s.number, s.media_time, s.duration))
            .collect();
        // 5 s: two whole 2 s segments and a last one of 1 s.
        assert_eq!(
            numbers,
            [(0, 0, 25_600), (1, 25_600, 25_600), (2, 51_200, 12_800)]
        );
        // Two GOPs, two keyframes, in the first segment; the second fragment's moof
        // starts where the first fragment ends.
        let first = &video.segments[0];
        let fragment_len = fragment(0, 25, 512, true).len() as u64;
        assert_eq!(first.bytes, 2 * fragment_len);
        assert_eq!(first.keyframes.len(), 2);
        assert_eq!(first.keyframes[0].offset, 0);
        assert_eq!(first.keyframes[1].offset, fragment_len);
        assert_eq!(first.keyframes[0].duration, 12_800);
        // moof, mdat header and one 10-byte sample.
        let moof_len = fragment_len - 8 - 250;
        assert_eq!(first.keyframes[0].length, moof_len + 8 + 10);
        assert_eq!(video.duration(), Duration::from_secs(5));

        let audio = &tracks[1];
        assert!(!audio.is_video);
        let numbers: Vec<u64> = audio.segments.iter().map(|s| s.number).collect();
        assert_eq!(numbers, [0, 1, 2]);
        assert!(audio.segments.iter().all(|s| s.keyframes.is_empty()));
        for segment in &video.segments {
            let path = staging.0.join("720p").join(segment_name(segment.number));
            assert_eq!(fs::metadata(&path).unwrap().len(), segment.bytes);
        }
        assert_eq!(
            fs::read(staging.0.join("audio").join(INIT_NAME)).unwrap(),
            init_segment(b"soun", 48_000)
        );
    }

    #[test]
    fn a_fragment_before_its_init_segment_is_an_error() {
        let staging = Staging::new("no-init");
        let mut writer = AssetWriter::new(&staging.0, vec!["720p".into()], Duration::from_secs(2));
        writer.fragment(
            0,
            Bytes::from(fragment(0, 50, 512, true)),
            Duration::ZERO,
            Duration::from_secs(2),
        );
        let error = writer.finish().expect_err("no init");
        assert_eq!(
            error.to_string(),
            "track `720p`: a fragment came before the init segment"
        );
    }

    #[test]
    fn garbage_fragments_are_an_error_naming_the_segment() {
        let staging = Staging::new("garbage");
        let mut writer = AssetWriter::new(&staging.0, vec!["720p".into()], Duration::from_secs(2));
        writer.init(0, Bytes::from(init_segment(b"vide", 12_800)), video());
        writer.fragment(
            0,
            Bytes::from_static(b"\0\0\0\x08junk"),
            Duration::ZERO,
            Duration::from_secs(2),
        );
        let error = writer.finish().expect_err("garbage");
        assert!(
            error.to_string().starts_with("track `720p`, segment 0: "),
            "{error}"
        );
    }

    #[test]
    fn a_track_without_media_is_an_error_and_one_without_init_is_left_out() {
        let staging = Staging::new("empty");
        let mut writer = AssetWriter::new(
            &staging.0,
            vec!["720p".into(), "audio".into()],
            Duration::from_secs(2),
        );
        writer.init(0, Bytes::from(init_segment(b"vide", 12_800)), video());
        let error = writer.finish().expect_err("no media");
        assert_eq!(
            error.to_string(),
            "track `720p`: the transcode produced no media"
        );

        let mut writer = AssetWriter::new(
            &staging.0,
            vec!["720p".into(), "audio".into()],
            Duration::from_secs(2),
        );
        writer.init(0, Bytes::from(init_segment(b"vide", 12_800)), video());
        writer.fragment(
            0,
            Bytes::from(fragment(0, 25, 512, true)),
            Duration::ZERO,
            Duration::from_secs(1),
        );
        let tracks = writer.finish().expect("video only");
        assert_eq!(tracks.len(), 1);
        assert_eq!(tracks[0].name, "720p");
    }

    #[test]
    fn next_boundary_is_strictly_after() {
        let s = Duration::from_secs;
        assert_eq!(next_boundary(s(0), s(2)), s(2));
        assert_eq!(next_boundary(s(2), s(2)), s(4));
        assert_eq!(next_boundary(Duration::from_millis(3999), s(2)), s(4));
    }
}
