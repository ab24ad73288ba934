//! HLS playlists from the packager's window, written with `m3u8-rs`.
//!
//! Plain functions over plain data, so the exact text is unit tested without a pipeline.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, FixedOffset, Utc};
use m3u8_rs::{
    AlternativeMedia, AlternativeMediaType, Map, MasterPlaylist, MediaPlaylist, MediaSegment,
    Resolution, VariantStream,
};

/// fMP4 segments with `EXT-X-MAP` in a media playlist need protocol version 6
/// (RFC 8216 section 7); 7 is what Apple's authoring spec asks of CMAF.
pub const HLS_VERSION: usize = 7;

/// The one audio rendition group every variant refers to.
pub const AUDIO_GROUP: &str = "aac";

/// One finished segment as a media playlist lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentEntry {
    pub sequence: u64,
    pub duration: Duration,
    /// Wall-clock time of the segment's first sample.
    pub program_date_time: SystemTime,
    /// The first segment after a source restart.
    pub discontinuity: bool,
    pub bytes: usize,
    /// The init segment version that decodes it (`store::init_name`).
    pub init: u32,
}

/// A sliding-window media playlist over `segments` (oldest first).
pub fn media_playlist(
    segments: &[SegmentEntry],
    discontinuity_sequence: u64,
    configured_duration: Duration,
) -> MediaPlaylist {
    MediaPlaylist {
        version: Some(HLS_VERSION),
        target_duration: target_duration(segments, configured_duration),
        media_sequence: segments.first().map_or(0, |s| s.sequence),
        discontinuity_sequence,
        independent_segments: true,
        segments: segments
            .iter()
            .enumerate()
            .map(|(i, s)| MediaSegment {
                uri: format!("{}.m4s", s.sequence),
                duration: s.duration.as_secs_f32(),
                discontinuity: s.discontinuity && i > 0,
                // The map is stated once at the top and again wherever the init segment
                // changes: after a restart, a new pipeline writes a new version.
                map: (i == 0 || segments[i - 1].init != s.init).then(|| Map {
                    uri: crate::store::init_name(s.init),
                    ..Map::default()
                }),
                program_date_time: Some(to_chrono(s.program_date_time)),
                ..MediaSegment::default()
            })
            .collect(),
        ..MediaPlaylist::default()
    }
}

/// RFC 8216 4.3.3.1: every EXTINF, rounded to the nearest integer, must be at most
/// the target duration. It never goes below the configured segment duration, so it
/// does not shrink and grow as the window moves.
pub fn target_duration(segments: &[SegmentEntry], configured: Duration) -> u64 {
    let longest = segments
        .iter()
        .map(|s| s.duration.as_secs_f64().round() as u64)
        .max()
        .unwrap_or(0);
    longest.max(configured.as_secs_f64().ceil() as u64).max(1)
}

/// Measured bit rates of one track over its window, in bits per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bandwidth {
    pub peak: u64,
    pub average: u64,
}

impl Bandwidth {
    /// RFC 8216 4.3.4.2: BANDWIDTH is the peak segment bit rate, the largest bit rate
    /// of any run of consecutive segments lasting 0.5 to 1.5 target durations (so a
    /// short first segment, mostly one keyframe, is measured together with its
    /// neighbour). Before any run qualifies, the fastest single segment stands in.
    /// AVERAGE-BANDWIDTH is the total bits over the total duration.
    pub fn measure(segments: &[SegmentEntry], target_duration: Duration) -> Option<Self> {
        let rate = |bytes: usize, seconds: f64| (bytes as f64 * 8.0 / seconds).ceil() as u64;
        let (low, high) = (
            target_duration.as_secs_f64() * 0.5,
            target_duration.as_secs_f64() * 1.5,
        );
        let mut peak: Option<u64> = None;
        for start in 0..segments.len() {
            let (mut bytes, mut seconds) = (0usize, 0.0f64);
            for s in &segments[start..] {
                bytes += s.bytes;
                seconds += s.duration.as_secs_f64();
                if seconds > high {
                    break;
                }
                if seconds >= low {
                    peak = peak.max(Some(rate(bytes, seconds)));
                }
            }
        }
        let peak = peak.or_else(|| {
            segments
                .iter()
                .filter(|s| !s.duration.is_zero())
                .map(|s| rate(s.bytes, s.duration.as_secs_f64()))
                .max()
        })?;
        let bits: f64 = segments.iter().map(|s| s.bytes as f64 * 8.0).sum();
        let seconds: f64 = segments.iter().map(|s| s.duration.as_secs_f64()).sum();
        Some(Self {
            peak,
            average: (bits / seconds).ceil() as u64,
        })
    }

    fn plus(self, other: Self) -> Self {
        Self {
            peak: self.peak + other.peak,
            average: self.average + other.average,
        }
    }
}

/// What the multivariant playlist says of one video rendition.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantInfo {
    pub name: String,
    pub codecs: String,
    pub width: u32,
    pub height: u32,
    pub frame_rate: f64,
    pub bandwidth: Bandwidth,
}

/// What the multivariant playlist says of the shared audio rendition.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioInfo {
    pub codecs: String,
    pub channels: u32,
    pub bandwidth: Bandwidth,
}

/// The multivariant playlist: one variant per video rendition, each with the audio
/// group. A variant's bandwidth includes its audio (RFC 8216 4.3.4.2).
pub fn master_playlist(variants: &[VariantInfo], audio: &AudioInfo) -> MasterPlaylist {
    MasterPlaylist {
        version: Some(HLS_VERSION),
        independent_segments: true,
        alternatives: vec![AlternativeMedia {
            media_type: AlternativeMediaType::Audio,
            uri: Some(format!("{}/index.m3u8", crate::store::AUDIO_TRACK)),
            group_id: AUDIO_GROUP.to_owned(),
            name: "Audio".to_owned(),
            default: true,
            autoselect: true,
            channels: Some(audio.channels.to_string()),
            ..AlternativeMedia::default()
        }],
        variants: variants
            .iter()
            .map(|v| {
                let bandwidth = v.bandwidth.plus(audio.bandwidth);
                VariantStream {
                    uri: format!("{}/index.m3u8", v.name),
                    bandwidth: bandwidth.peak,
                    average_bandwidth: Some(bandwidth.average),
                    codecs: Some(format!("{},{}", v.codecs, audio.codecs)),
                    resolution: Some(Resolution {
                        width: u64::from(v.width),
                        height: u64::from(v.height),
                    }),
                    frame_rate: Some(v.frame_rate),
                    audio: Some(AUDIO_GROUP.to_owned()),
                    ..VariantStream::default()
                }
            })
            .collect(),
        ..MasterPlaylist::default()
    }
}

fn to_chrono(time: SystemTime) -> DateTime<FixedOffset> {
    DateTime::<Utc>::from(time).fixed_offset()
}

/// Renders any m3u8-rs playlist to bytes.
pub fn render(write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> bytes::Bytes {
    let mut out = Vec::with_capacity(1024);
    // Writing into a Vec cannot fail.
    let _ = write(&mut out);
    bytes::Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, millis: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    fn seg(sequence: u64, secs: u64, discontinuity: bool, bytes: usize) -> SegmentEntry {
        SegmentEntry {
            sequence,
            duration: Duration::from_secs(2),
            program_date_time: at(secs, 0),
            discontinuity,
            bytes,
            init: u32::from(discontinuity),
        }
    }

    #[test]
    fn media_playlist_exact_text() {
        let segments = [
            seg(100, 1_700_000_000, false, 1000),
            seg(101, 1_700_000_002, false, 1000),
            seg(102, 1_700_000_004, true, 1000),
        ];
        let text = render(|w| media_playlist(&segments, 3, Duration::from_secs(2)).write_to(w));
        assert_eq!(
            std::str::from_utf8(&text).unwrap(),
            "#EXTM3U\n\
             #EXT-X-VERSION:7\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-TARGETDURATION:2\n\
             #EXT-X-MEDIA-SEQUENCE:100\n\
             #EXT-X-DISCONTINUITY-SEQUENCE:3\n\
             #EXT-X-MAP:URI=\"init-0.mp4\"\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n\
             #EXTINF:2,\n\
             100.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z\n\
             #EXTINF:2,\n\
             101.m4s\n\
             #EXT-X-MAP:URI=\"init-1.mp4\"\n\
             #EXT-X-DISCONTINUITY\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.000Z\n\
             #EXTINF:2,\n\
             102.m4s\n"
        );
    }

    #[test]
    fn a_discontinuity_on_the_first_listed_segment_is_not_tagged() {
        // Once older segments leave the window the count moves to DISCONTINUITY-SEQUENCE.
        let segments = [seg(7, 10, true, 1)];
        let playlist = media_playlist(&segments, 1, Duration::from_secs(2));
        assert!(!playlist.segments[0].discontinuity);
    }

    #[test]
    fn target_duration_rounds_and_never_drops_below_configured() {
        let mut long = seg(1, 0, false, 1);
        long.duration = Duration::from_millis(2600);
        assert_eq!(target_duration(&[long.clone()], Duration::from_secs(2)), 3);
        long.duration = Duration::from_millis(2400);
        assert_eq!(target_duration(&[long], Duration::from_secs(2)), 2);
        assert_eq!(target_duration(&[], Duration::from_millis(1500)), 2);
    }

    #[test]
    fn bandwidth_is_peak_and_average_of_segments() {
        let mut a = seg(1, 0, false, 250_000); // 1 Mb/s over 2 s
        let b = seg(2, 2, false, 500_000); // 2 Mb/s
        a.duration = Duration::from_secs(2);
        let target = Duration::from_secs(2);
        let bw = Bandwidth::measure(&[a.clone(), b.clone()], target).unwrap();
        assert_eq!(bw.peak, 2_000_000);
        assert_eq!(bw.average, 1_500_000);
        assert_eq!(Bandwidth::measure(&[], target), None);
        // A 0.1 s first segment of 50 kB (4 Mb/s) does not set the peak alone.
        let mut short = seg(0, 0, false, 50_000);
        short.duration = Duration::from_millis(100);
        let bw = Bandwidth::measure(&[short.clone(), a.clone(), b.clone()], target).unwrap();
        assert_eq!(bw.peak, 2_000_000);
        // Unless nothing longer exists yet.
        assert_eq!(
            Bandwidth::measure(&[short], target).unwrap().peak,
            4_000_000
        );
        // A 0.6 s segment of 240 kB (3.2 Mb/s) with the next (1 Mb/s over 2 s) spans
        // 2.6 s at 1.51 Mb/s; runs count, single short segments do not.
        let mut keyframe = seg(0, 0, false, 240_000);
        keyframe.duration = Duration::from_millis(600);
        let bw = Bandwidth::measure(&[keyframe, a], target).unwrap();
        assert_eq!(bw.peak, 1_507_693);
        // Two 0.8 s segments, the second at 3 Mb/s: neither alone spans half a target
        // duration of 2 s, together they do, at 2 Mb/s.
        let mut c = seg(0, 0, false, 100_000);
        c.duration = Duration::from_millis(800);
        let mut d = seg(1, 0, false, 300_000);
        d.duration = Duration::from_millis(800);
        assert_eq!(Bandwidth::measure(&[c, d], target).unwrap().peak, 2_000_000);
    }

    #[test]
    fn master_playlist_exact_text() {
        let variants = [VariantInfo {
            name: "720p".into(),
            codecs: "avc1.64001f".into(),
            width: 1280,
            height: 720,
            frame_rate: 30.0,
            bandwidth: Bandwidth {
                peak: 3_000_000,
                average: 2_500_000,
            },
        }];
        let audio = AudioInfo {
            codecs: "mp4a.40.2".into(),
            channels: 2,
            bandwidth: Bandwidth {
                peak: 130_000,
                average: 128_000,
            },
        };
        let text = render(|w| master_playlist(&variants, &audio).write_to(w));
        assert_eq!(
            std::str::from_utf8(&text).unwrap(),
            "#EXTM3U\n\
             #EXT-X-VERSION:7\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MEDIA:TYPE=AUDIO,URI=\"audio/index.m3u8\",GROUP-ID=\"aac\",NAME=\"Audio\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH=3130000,AVERAGE-BANDWIDTH=2628000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=30,AUDIO=\"aac\"\n\
             720p/index.m3u8\n"
        );
    }
}
