//! DASH MPDs (ISO/IEC 23009-1, DASH-IF IOP) over the same CMAF segments the HLS
//! playlists list, written with `quick-xml`.
//!
//! Plain data in, XML text out, so the exact MPD is unit tested without a pipeline.
//! The MPD sits at `/live/{channel}/manifest.mpd` (or `/vod/{asset}/manifest.mpd`) and
//! every URL in it is relative to that: segment `{track}/{number}.m4s` and the init
//! segment `{track}/{init_name}` of the Period, where the track is the
//! Representation's id (`$RepresentationID$`).
//!
//! # Timing (ISO/IEC 23009-1 5.3.9.6)
//!
//! Each track's `SegmentTemplate` in a Period maps its media timeline (the `tfdt`
//! times of the fragments, in ticks of `timescale`) onto the presentation timeline:
//!
//! - The segments of a `SegmentTimeline` follow one another: an `<S>` entry is a run
//!   of `r + 1` segments of duration `d`, the first starting at `t`, or where the
//!   previous entry ended when `t` is left out.
//! - The k-th segment listed (from 0) has number `startNumber + k`: the `$Number$` in
//!   its URL, the same number the HLS playlist gives it.
//! - A segment starting at media time `t` is presented `(t − presentationTimeOffset) /
//!   timescale` seconds after its Period starts. The Period starts `Period@start`
//!   after the presentation does, which in a dynamic MPD is `availabilityStartTime`
//!   on the wall clock. So in a live MPD the segment's wall-clock time is
//!   `availabilityStartTime + Period@start + (t − presentationTimeOffset) / timescale`,
//!   and it is available from when it ends, `d / timescale` later.
//!
//! So `presentationTimeOffset` is the media time found at the Period's start. To put
//! each track's segments at their real wall-clock times, and so the tracks in step
//! with each other, [`presentation_time_offset`] works it out from one segment whose
//! media time and wall-clock start are both known.
//!
//! GStreamer 1.22's `dashdemux` and `dashdemux2` place a live Period's segments as if
//! `Period@start` were 0 (they ask for segment `startNumber + Period@start / d` too
//! early), while ffmpeg 5.1 reads only the first Period. An `availabilityStartTime` at
//! the first Period's start, so that its `Period@start` is 0, keeps both working
//! until a restart adds a second Period.

use std::io;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};
use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;

pub const MPD_NAMESPACE: &str = "urn:mpeg:dash:schema:mpd:2011";
/// ISO/IEC 23009-1 8.4 (live) and 8.12 (CMAF): segments are CMAF segments addressed by
/// a `SegmentTemplate`.
pub const PROFILES: &str = "urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019";
/// ISO/IEC 23009-1 5.8.5.7: the value is a URL answering with an ISO 8601 date-time
/// in UTC, such as `2023-11-14T22:13:20.000Z`.
pub const UTC_TIMING_HTTP_ISO: &str = "urn:mpeg:dash:utc:http-iso:2014";
/// ISO/IEC 23009-1 5.8.5.4: the value is the number of channels.
pub const AUDIO_CHANNEL_CONFIGURATION: &str =
    "urn:mpeg:dash:23003:3:audio_channel_configuration:2011";
pub const ROLE_SCHEME: &str = "urn:mpeg:dash:role:2011";
/// Segment URLs, the same files HLS lists.
pub const MEDIA_TEMPLATE: &str = "$RepresentationID$/$Number$.m4s";

/// `AdaptationSet@id`s stay the same in every Period, as DASH-IF IOP 4.3.3.3.2 asks
/// for a player to see the Periods as one stream. Subtitle sets follow the audio.
const VIDEO_SET_ID: usize = 0;
const AUDIO_SET_ID: usize = 1;
const FIRST_SUBTITLE_SET_ID: usize = 2;

/// `Representation@bandwidth` is required; a sidecar subtitle file has no meaningful
/// bit rate, so it states a nominal one.
const SUBTITLE_BANDWIDTH: u64 = 256;

/// A whole MPD.
#[derive(Debug, Clone, PartialEq)]
pub struct Mpd {
    pub kind: MpdKind,
    pub min_buffer_time: Duration,
    /// The longest segment of any track, which a player may assume for the next one.
    pub max_segment_duration: Duration,
    /// Every video rendition; one that has no timeline in a Period is left out of it.
    pub videos: Vec<MpdVideo>,
    pub audio: Option<MpdAudio>,
    /// WebVTT sidecar files, for VOD. They are listed in the first Period only, so
    /// their cue times count from the start of the presentation.
    pub subtitles: Vec<MpdSubtitle>,
    /// In order of `start`. A live MPD needs at least one (the schema says `Period+`).
    pub periods: Vec<MpdPeriod>,
}

/// Live (`dynamic`) or VOD (`static`).
#[derive(Debug, Clone, PartialEq)]
pub enum MpdKind {
    Dynamic {
        /// The wall-clock origin of the Periods' `start`; it must not change from one
        /// update of the MPD to the next. Stated to the millisecond, so it should be a
        /// whole millisecond (a whole second is safest).
        availability_start: SystemTime,
        publish_time: SystemTime,
        minimum_update_period: Duration,
        time_shift_buffer_depth: Duration,
        suggested_presentation_delay: Duration,
        /// Where a player reads the time (see [`UTC_TIMING_HTTP_ISO`]).
        utc_timing_url: String,
    },
    Static {
        duration: Duration,
    },
}

/// One video rendition: a Representation in the video AdaptationSet.
#[derive(Debug, Clone, PartialEq)]
pub struct MpdVideo {
    /// Track name: Representation id and segment folder.
    pub id: String,
    /// RFC 6381, e.g. `avc1.64001f`.
    pub codecs: String,
    pub width: u32,
    pub height: u32,
    pub frame_rate: f64,
    /// Peak bit rate, bits per second.
    pub bandwidth: u64,
}

/// The audio track: the one Representation of the audio AdaptationSet.
#[derive(Debug, Clone, PartialEq)]
pub struct MpdAudio {
    pub id: String,
    pub codecs: String,
    pub channels: u32,
    pub sampling_rate: u32,
    pub bandwidth: u64,
    /// RFC 5646 language tag, e.g. `en`.
    pub lang: Option<String>,
}

/// A WebVTT sidecar file: an AdaptationSet of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct MpdSubtitle {
    pub id: String,
    pub lang: Option<String>,
    /// Relative to the MPD.
    pub url: String,
}

/// One Period: from one start (a channel start, or a restart with a new init segment)
/// to the next.
#[derive(Debug, Clone, PartialEq)]
pub struct MpdPeriod {
    /// Unique in the MPD and the same in every update of it (DASH-IF IOP 4.4.3.3).
    pub id: String,
    /// `Period@start`: after `availabilityStartTime` (dynamic) or after the start of
    /// the presentation (static, so 0 for the first Period).
    pub start: Duration,
    /// One per Representation in this Period, matched by id.
    pub tracks: Vec<TrackTimeline>,
}

/// The segments of one track in one Period.
///
/// Segment numbers are `start_number`, `start_number + 1`, ...: a `SegmentTimeline`
/// with `$Number$` cannot skip a number, so consecutive numbers are what this type
/// holds. Where a track's numbers jump (segments lost), the caller lists only the run
/// after the jump, or starts a new Period. Gaps in media time are fine: the `<S>`
/// after a gap states its `t`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackTimeline {
    /// The Representation's id (the track name).
    pub id: String,
    /// The init segment's `mdhd` timescale.
    pub timescale: u32,
    /// The init segment's file name in the track's folder, e.g. `init.mp4`.
    pub init_name: String,
    /// Media time at the Period's start, in ticks of `timescale`
    /// (see [`presentation_time_offset`]).
    pub presentation_time_offset: u64,
    /// Number of the first segment in `segments`. The schema makes `startNumber` an
    /// `xs:unsignedInt`: numbers counted in 2 s segments since 1970 fit until 2242.
    pub start_number: u64,
    /// Oldest first. A track with none is left out of the Period.
    pub segments: Vec<TimelineSegment>,
}

/// One segment's place on the track's media timeline, in ticks of its timescale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineSegment {
    /// Earliest presentation time of its first fragment (`tfdt` plus the first
    /// composition offset: [`super::mp4::FragmentInfo::earliest_presentation_time`]).
    pub media_time: u64,
    /// Sum of the sample durations of its fragments; never 0.
    pub duration: u64,
}

/// `presentationTimeOffset` for a track in a Period that starts at `period_start` on
/// the wall clock (`availabilityStartTime + Period@start`), given one of its segments
/// whose media time is `media_time` and that starts at `segment_start` on the wall
/// clock:
///
/// `media_time − (segment_start − period_start) × timescale`, to the nearest tick.
///
/// A segment that starts before its Period gives an offset above its own media time.
/// The result saturates at 0 (a track whose media time began after the Period did).
pub fn presentation_time_offset(
    media_time: u64,
    segment_start: SystemTime,
    period_start: SystemTime,
    timescale: u32,
) -> u64 {
    const NANOS_PER_SECOND: i128 = 1_000_000_000;
    let since_period = match segment_start.duration_since(period_start) {
        Ok(after) => after.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    };
    let scaled = since_period * i128::from(timescale);
    let ticks = (scaled + NANOS_PER_SECOND / 2).div_euclid(NANOS_PER_SECOND);
    let offset = i128::from(media_time) - ticks;
    u64::try_from(offset.max(0)).unwrap_or(u64::MAX)
}

/// The MPD as XML text.
pub fn render(mpd: &Mpd) -> String {
    let mut writer = Writer::new_with_indent(Vec::with_capacity(4096), b' ', 2);
    // Writing into a Vec cannot fail.
    let _ = write_mpd(&mut writer, mpd);
    String::from_utf8_lossy(&writer.into_inner()).into_owned()
}

type XmlWriter = Writer<Vec<u8>>;

/// Attributes in the order written.
type Attributes = Vec<(&'static str, String)>;

fn attributes(list: &Attributes) -> impl Iterator<Item = (&str, &str)> {
    list.iter().map(|(name, value)| (*name, value.as_str()))
}

/// Child order follows the `MPDtype` schema: `Period+`, then `UTCTiming*` last.
fn write_mpd(w: &mut XmlWriter, mpd: &Mpd) -> io::Result<()> {
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let mut attrs: Attributes = vec![
        ("xmlns", MPD_NAMESPACE.to_owned()),
        ("profiles", PROFILES.to_owned()),
    ];
    match &mpd.kind {
        MpdKind::Dynamic {
            availability_start,
            publish_time,
            minimum_update_period,
            time_shift_buffer_depth,
            suggested_presentation_delay,
            utc_timing_url: _,
        } => attrs.extend([
            ("type", "dynamic".to_owned()),
            ("availabilityStartTime", xs_date_time(*availability_start)),
            ("publishTime", xs_date_time(*publish_time)),
            ("minimumUpdatePeriod", xs_duration(*minimum_update_period)),
            (
                "timeShiftBufferDepth",
                xs_duration(*time_shift_buffer_depth),
            ),
            (
                "suggestedPresentationDelay",
                xs_duration(*suggested_presentation_delay),
            ),
        ]),
        MpdKind::Static { duration } => attrs.extend([
            ("type", "static".to_owned()),
            ("mediaPresentationDuration", xs_duration(*duration)),
        ]),
    }
    attrs.extend([
        ("minBufferTime", xs_duration(mpd.min_buffer_time)),
        ("maxSegmentDuration", xs_duration(mpd.max_segment_duration)),
    ]);
    w.create_element("MPD")
        .with_attributes(attributes(&attrs))
        .write_inner_content(|w| {
            for (index, period) in mpd.periods.iter().enumerate() {
                write_period(w, mpd, period, index == 0)?;
            }
            if let MpdKind::Dynamic { utc_timing_url, .. } = &mpd.kind {
                w.create_element("UTCTiming")
                    .with_attributes([
                        ("schemeIdUri", UTC_TIMING_HTTP_ISO),
                        ("value", utc_timing_url.as_str()),
                    ])
                    .write_empty()?;
            }
            Ok(())
        })?;
    Ok(())
}

fn write_period(w: &mut XmlWriter, mpd: &Mpd, period: &MpdPeriod, first: bool) -> io::Result<()> {
    let timeline = |id: &str| {
        period
            .tracks
            .iter()
            .find(|t| t.id == id && !t.segments.is_empty())
    };
    let videos: Vec<(&MpdVideo, &TrackTimeline)> = mpd
        .videos
        .iter()
        .filter_map(|v| Some((v, timeline(&v.id)?)))
        .collect();
    let audio = mpd.audio.as_ref().and_then(|a| Some((a, timeline(&a.id)?)));
    let subtitles = if first { &mpd.subtitles[..] } else { &[] };

    w.create_element("Period")
        .with_attributes([
            ("id", period.id.as_str()),
            ("start", &xs_duration(period.start)),
        ])
        .write_inner_content(|w| {
            if !videos.is_empty() {
                write_video_set(w, &videos)?;
            }
            if let Some((audio, timeline)) = audio {
                write_audio_set(w, audio, timeline)?;
            }
            for (index, subtitle) in subtitles.iter().enumerate() {
                write_subtitle_set(w, FIRST_SUBTITLE_SET_ID + index, subtitle)?;
            }
            Ok(())
        })?;
    Ok(())
}

/// Children follow `AdaptationSetType`: descriptors such as `Role`, then
/// `Representation`s (each with its own `SegmentTemplate`: the tracks' timelines may
/// differ by a few ticks).
fn write_video_set(w: &mut XmlWriter, videos: &[(&MpdVideo, &TrackTimeline)]) -> io::Result<()> {
    let max_width = videos.iter().map(|(v, _)| v.width).max().unwrap_or(0);
    let max_height = videos.iter().map(|(v, _)| v.height).max().unwrap_or(0);
    let max_frame_rate = videos.iter().map(|(v, _)| v.frame_rate).fold(0.0, f64::max);
    let mut attrs: Attributes = vec![
        ("id", VIDEO_SET_ID.to_string()),
        ("contentType", "video".to_owned()),
        ("mimeType", "video/mp4".to_owned()),
        ("segmentAlignment", "true".to_owned()),
        ("startWithSAP", "1".to_owned()),
        ("maxWidth", max_width.to_string()),
        ("maxHeight", max_height.to_string()),
    ];
    attrs.extend(frame_rate(max_frame_rate).map(|rate| ("maxFrameRate", rate)));
    w.create_element("AdaptationSet")
        .with_attributes(attributes(&attrs))
        .write_inner_content(|w| {
            for (video, timeline) in videos {
                let mut attrs: Attributes = vec![
                    ("id", video.id.clone()),
                    ("bandwidth", bandwidth(video.bandwidth)),
                    ("codecs", video.codecs.clone()),
                    ("width", video.width.to_string()),
                    ("height", video.height.to_string()),
                ];
                attrs.extend(frame_rate(video.frame_rate).map(|rate| ("frameRate", rate)));
                attrs.push(("sar", "1:1".to_owned()));
                w.create_element("Representation")
                    .with_attributes(attributes(&attrs))
                    .write_inner_content(|w| write_segment_template(w, timeline))?;
            }
            Ok(())
        })?;
    Ok(())
}

/// `AudioChannelConfiguration` is one of the `RepresentationBaseType` descriptors, so
/// it comes before the `Representation`.
fn write_audio_set(
    w: &mut XmlWriter,
    audio: &MpdAudio,
    timeline: &TrackTimeline,
) -> io::Result<()> {
    let mut attrs: Attributes = vec![
        ("id", AUDIO_SET_ID.to_string()),
        ("contentType", "audio".to_owned()),
        ("mimeType", "audio/mp4".to_owned()),
        ("segmentAlignment", "true".to_owned()),
        ("startWithSAP", "1".to_owned()),
    ];
    attrs.extend(audio.lang.clone().map(|lang| ("lang", lang)));
    w.create_element("AdaptationSet")
        .with_attributes(attributes(&attrs))
        .write_inner_content(|w| {
            w.create_element("AudioChannelConfiguration")
                .with_attributes([
                    ("schemeIdUri", AUDIO_CHANNEL_CONFIGURATION),
                    ("value", &audio.channels.to_string()),
                ])
                .write_empty()?;
            w.create_element("Representation")
                .with_attributes([
                    ("id", audio.id.as_str()),
                    ("bandwidth", &bandwidth(audio.bandwidth)),
                    ("codecs", &audio.codecs),
                    ("audioSamplingRate", &audio.sampling_rate.to_string()),
                ])
                .write_inner_content(|w| write_segment_template(w, timeline))?;
            Ok(())
        })?;
    Ok(())
}

/// DASH-IF IOP 6.4.5: a sidecar WebVTT file is a Representation whose `BaseURL` is
/// the file, with the `subtitle` role.
fn write_subtitle_set(w: &mut XmlWriter, id: usize, subtitle: &MpdSubtitle) -> io::Result<()> {
    let mut attrs: Attributes = vec![
        ("id", id.to_string()),
        ("contentType", "text".to_owned()),
        ("mimeType", "text/vtt".to_owned()),
    ];
    attrs.extend(subtitle.lang.clone().map(|lang| ("lang", lang)));
    w.create_element("AdaptationSet")
        .with_attributes(attributes(&attrs))
        .write_inner_content(|w| {
            w.create_element("Role")
                .with_attributes([("schemeIdUri", ROLE_SCHEME), ("value", "subtitle")])
                .write_empty()?;
            w.create_element("Representation")
                .with_attributes([
                    ("id", subtitle.id.as_str()),
                    ("bandwidth", &SUBTITLE_BANDWIDTH.to_string()),
                ])
                .write_inner_content(|w| {
                    w.create_element("BaseURL")
                        .write_text_content(BytesText::new(&subtitle.url))?;
                    Ok(())
                })?;
            Ok(())
        })?;
    Ok(())
}

fn write_segment_template(w: &mut XmlWriter, track: &TrackTimeline) -> io::Result<()> {
    // ISO/IEC 23009-1 5.3.9.4.4: `$$` is a literal `$` in a template.
    let initialization = format!("$RepresentationID$/{}", track.init_name.replace('$', "$$"));
    w.create_element("SegmentTemplate")
        .with_attributes([
            ("timescale", track.timescale.to_string().as_str()),
            (
                "presentationTimeOffset",
                &track.presentation_time_offset.to_string(),
            ),
            ("startNumber", &track.start_number.to_string()),
            ("initialization", &initialization),
            ("media", MEDIA_TEMPLATE),
        ])
        .write_inner_content(|w| {
            w.create_element("SegmentTimeline")
                .write_inner_content(|w| {
                    for entry in timeline(&track.segments) {
                        let mut attrs: Attributes = Vec::with_capacity(3);
                        attrs.extend(entry.t.map(|t| ("t", t.to_string())));
                        attrs.push(("d", entry.d.to_string()));
                        if entry.r > 0 {
                            attrs.push(("r", entry.r.to_string()));
                        }
                        w.create_element("S")
                            .with_attributes(attributes(&attrs))
                            .write_empty()?;
                    }
                    Ok(())
                })?;
            Ok(())
        })?;
    Ok(())
}

/// One `<S>` element: `r + 1` segments of duration `d`, the first at `t` when stated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TimelineEntry {
    t: Option<u64>,
    d: u64,
    r: u64,
}

/// Run-length coding of a track's segments: consecutive segments of equal duration,
/// each starting where the previous one ended, are one entry. `t` is stated on the
/// first entry and wherever a segment does not start where the previous one ended
/// (a gap, or an overlap, which a player may handle less well).
fn timeline(segments: &[TimelineSegment]) -> Vec<TimelineEntry> {
    let mut entries: Vec<TimelineEntry> = Vec::new();
    let mut expected = None;
    for segment in segments {
        let follows = expected == Some(segment.media_time);
        match entries.last_mut() {
            Some(last) if follows && last.d == segment.duration => last.r += 1,
            _ => entries.push(TimelineEntry {
                t: (!follows).then_some(segment.media_time),
                d: segment.duration,
                r: 0,
            }),
        }
        expected = Some(segment.media_time.saturating_add(segment.duration));
    }
    entries
}

/// `Representation@bandwidth` is an `xs:unsignedInt`.
fn bandwidth(bits_per_second: u64) -> String {
    bits_per_second.min(u64::from(u32::MAX)).to_string()
}

/// `xs:duration` in seconds, at least to the millisecond: `PT2.000S`, `PT3600.000S`.
/// Finer parts are kept, so a Period start is exact.
fn xs_duration(duration: Duration) -> String {
    let nanos = duration.subsec_nanos();
    let fraction = if nanos % 1_000_000 == 0 {
        format!("{:03}", nanos / 1_000_000)
    } else {
        format!("{nanos:09}").trim_end_matches('0').to_owned()
    };
    format!("PT{}.{fraction}S", duration.as_secs())
}

/// `xs:dateTime` in UTC to the millisecond (truncated): `2023-11-14T22:13:20.000Z`.
fn xs_date_time(time: SystemTime) -> String {
    DateTime::<Utc>::from(time).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `FrameRateType` (ISO/IEC 23009-1 5.3.12.2): a whole number, or a fraction. The
/// NTSC rates are `N/1001` exactly (`30000/1001`, not `29.97`); other fractional
/// rates are reduced thousandths. `None` for a rate that is not positive.
fn frame_rate(fps: f64) -> Option<String> {
    /// Closer than this to a rate, and it is that rate.
    const TOLERANCE: f64 = 0.001;
    if !fps.is_finite() || fps <= 0.0 {
        return None;
    }
    let whole = fps.round();
    if (fps - whole).abs() < TOLERANCE {
        return Some(format!("{}", whole as u64));
    }
    let ntsc = (fps * 1.001).round();
    if (fps - ntsc * 1000.0 / 1001.0).abs() < TOLERANCE {
        return Some(format!("{}/1001", ntsc as u64 * 1000));
    }
    let thousandths = (fps * 1000.0).round() as u64;
    let divisor = gcd(thousandths, 1000);
    Some(format!("{}/{}", thousandths / divisor, 1000 / divisor))
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn segments(list: &[(u64, u64)]) -> Vec<TimelineSegment> {
        list.iter()
            .map(|&(media_time, duration)| TimelineSegment {
                media_time,
                duration,
            })
            .collect()
    }

    fn entry(t: Option<u64>, d: u64, r: u64) -> TimelineEntry {
        TimelineEntry { t, d, r }
    }

    #[test]
    fn timeline_runs_equal_durations_and_states_t_after_gaps() {
        assert_eq!(timeline(&[]), []);
        // Three 2 s segments, a 1.96 s one, then two more 2 s ones.
        let list = segments(&[
            (0, 180_000),
            (180_000, 180_000),
            (360_000, 180_000),
            (540_000, 176_400),
            (716_400, 180_000),
            (896_400, 180_000),
        ]);
        assert_eq!(
            timeline(&list),
            [
                entry(Some(0), 180_000, 2),
                entry(None, 176_400, 0),
                entry(None, 180_000, 1),
            ]
        );
        // A gap (a lost segment's time) and an overlap both state `t`, even with the
        // same duration.
        let list = segments(&[(1000, 10), (1010, 10), (1030, 10), (1035, 10)]);
        assert_eq!(
            timeline(&list),
            [
                entry(Some(1000), 10, 1),
                entry(Some(1030), 10, 0),
                entry(Some(1035), 10, 0),
            ]
        );
    }

    #[test]
    fn durations_and_dates() {
        assert_eq!(xs_duration(Duration::from_secs(2)), "PT2.000S");
        assert_eq!(xs_duration(Duration::ZERO), "PT0.000S");
        assert_eq!(xs_duration(Duration::from_millis(2040)), "PT2.040S");
        assert_eq!(xs_duration(Duration::from_secs(3600)), "PT3600.000S");
        assert_eq!(
            xs_duration(Duration::from_nanos(1_000_500_000)),
            "PT1.0005S"
        );
        assert_eq!(xs_duration(Duration::from_nanos(1)), "PT0.000000001S");
        assert_eq!(xs_date_time(at(1_700_000_000)), "2023-11-14T22:13:20.000Z");
        assert_eq!(
            xs_date_time(at(0) + Duration::from_nanos(1_999_999)),
            "1970-01-01T00:00:00.001Z"
        );
    }

    #[test]
    fn frame_rates_are_whole_or_fractions() {
        assert_eq!(frame_rate(25.0).as_deref(), Some("25"));
        assert_eq!(frame_rate(50.0).as_deref(), Some("50"));
        assert_eq!(frame_rate(30_000.0 / 1001.0).as_deref(), Some("30000/1001"));
        assert_eq!(frame_rate(29.97).as_deref(), Some("30000/1001"));
        assert_eq!(frame_rate(23.976).as_deref(), Some("24000/1001"));
        assert_eq!(frame_rate(59.94).as_deref(), Some("60000/1001"));
        assert_eq!(frame_rate(12.5).as_deref(), Some("25/2"));
        assert_eq!(frame_rate(0.0), None);
        assert_eq!(frame_rate(f64::NAN), None);
    }

    #[test]
    fn bandwidth_fits_an_unsigned_int() {
        assert_eq!(bandwidth(3_000_000), "3000000");
        assert_eq!(bandwidth(u64::MAX), "4294967295");
    }

    #[test]
    fn presentation_time_offset_is_the_media_time_at_the_period_start() {
        let period = at(1_700_000_000);
        // A segment exactly at the Period start: its own media time.
        assert_eq!(
            presentation_time_offset(900_000, period, period, 90_000),
            900_000
        );
        // A segment 2 s into the Period: 2 s of ticks earlier.
        assert_eq!(
            presentation_time_offset(900_000, at(1_700_000_002), period, 90_000),
            720_000
        );
        // An audio segment starting 10 ms before the Period: 480 ticks later.
        let early = period - Duration::from_millis(10);
        assert_eq!(
            presentation_time_offset(48_000, early, period, 48_000),
            48_480
        );
        // To the nearest tick: 1.6 ticks of 1/1000 s is 2.
        let late = period + Duration::from_micros(1_600);
        assert_eq!(presentation_time_offset(100, late, period, 1000), 98);
        // Media time that began after the Period: saturates.
        assert_eq!(
            presentation_time_offset(0, at(1_700_000_010), period, 1000),
            0
        );
    }

    fn video(id: &str, width: u32, height: u32, frame_rate: f64, bandwidth: u64) -> MpdVideo {
        MpdVideo {
            id: id.to_owned(),
            codecs: "avc1.64001f".to_owned(),
            width,
            height,
            frame_rate,
            bandwidth,
        }
    }

    fn audio() -> MpdAudio {
        MpdAudio {
            id: "audio".to_owned(),
            codecs: "mp4a.40.2".to_owned(),
            channels: 2,
            sampling_rate: 48_000,
            bandwidth: 130_000,
            lang: Some("en".to_owned()),
        }
    }

    fn track(id: &str, timescale: u32, start_number: u64, list: &[(u64, u64)]) -> TrackTimeline {
        TrackTimeline {
            id: id.to_owned(),
            timescale,
            init_name: "init.mp4".to_owned(),
            presentation_time_offset: list.first().map_or(0, |s| s.0),
            start_number,
            segments: segments(list),
        }
    }

    /// A live channel: two renditions and audio, 2 s segments numbered from the wall
    /// clock, availabilityStartTime at the UNIX epoch.
    fn live() -> Mpd {
        Mpd {
            kind: MpdKind::Dynamic {
                availability_start: SystemTime::UNIX_EPOCH,
                publish_time: at(1_700_000_006),
                minimum_update_period: Duration::from_secs(2),
                time_shift_buffer_depth: Duration::from_secs(30),
                suggested_presentation_delay: Duration::from_secs(6),
                utc_timing_url: "/time".to_owned(),
            },
            min_buffer_time: Duration::from_secs(2),
            max_segment_duration: Duration::from_secs(2),
            videos: vec![
                video("720p", 1280, 720, 25.0, 3_000_000),
                video("360p", 640, 360, 25.0, 800_000),
            ],
            audio: Some(audio()),
            subtitles: Vec::new(),
            periods: vec![MpdPeriod {
                id: "850000000".to_owned(),
                start: Duration::from_secs(1_700_000_000),
                tracks: vec![
                    track(
                        "720p",
                        90_000,
                        850_000_000,
                        &[(0, 180_000), (180_000, 180_000), (360_000, 180_000)],
                    ),
                    track(
                        "360p",
                        90_000,
                        850_000_000,
                        &[(0, 180_000), (180_000, 180_000), (360_000, 180_000)],
                    ),
                    track(
                        "audio",
                        48_000,
                        850_000_000,
                        &[(0, 96_256), (96_256, 95_232), (191_488, 96_256)],
                    ),
                ],
            }],
        }
    }

    #[test]
    fn live_mpd_exact_text() {
        let mut mpd = live();
        mpd.videos.pop();
        mpd.periods[0].tracks.remove(1);
        assert_eq!(
            render(&mpd),
            r#"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019" type="dynamic" availabilityStartTime="1970-01-01T00:00:00.000Z" publishTime="2023-11-14T22:13:26.000Z" minimumUpdatePeriod="PT2.000S" timeShiftBufferDepth="PT30.000S" suggestedPresentationDelay="PT6.000S" minBufferTime="PT2.000S" maxSegmentDuration="PT2.000S">
  <Period id="850000000" start="PT1700000000.000S">
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1" maxWidth="1280" maxHeight="720" maxFrameRate="25">
      <Representation id="720p" bandwidth="3000000" codecs="avc1.64001f" width="1280" height="720" frameRate="25" sar="1:1">
        <SegmentTemplate timescale="90000" presentationTimeOffset="0" startNumber="850000000" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/$Number$.m4s">
          <SegmentTimeline>
            <S t="0" d="180000" r="2"/>
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
    <AdaptationSet id="1" contentType="audio" mimeType="audio/mp4" segmentAlignment="true" startWithSAP="1" lang="en">
      <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="2"/>
      <Representation id="audio" bandwidth="130000" codecs="mp4a.40.2" audioSamplingRate="48000">
        <SegmentTemplate timescale="48000" presentationTimeOffset="0" startNumber="850000000" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/$Number$.m4s">
          <SegmentTimeline>
            <S t="0" d="96256"/>
            <S d="95232"/>
            <S d="96256"/>
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
  </Period>
  <UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="/time"/>
</MPD>"#
        );
    }

    /// Names of the element children of `node`.
    fn children<'a>(node: roxmltree::Node<'a, '_>) -> Vec<&'a str> {
        node.children()
            .filter(|n| n.is_element())
            .map(|n| n.tag_name().name())
            .collect()
    }

    fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> roxmltree::Node<'a, 'i> {
        node.children()
            .find(|n| n.has_tag_name(name))
            .unwrap_or_else(|| panic!("no {name} in {}", node.tag_name().name()))
    }

    #[test]
    fn live_mpd_structure() {
        let text = render(&live());
        let doc = roxmltree::Document::parse(&text).unwrap();
        let mpd = doc.root_element();
        assert_eq!(mpd.tag_name().namespace(), Some(MPD_NAMESPACE));
        assert_eq!(mpd.attribute("type"), Some("dynamic"));
        assert_eq!(mpd.attribute("profiles"), Some(PROFILES));
        assert_eq!(
            mpd.attribute("availabilityStartTime"),
            Some("1970-01-01T00:00:00.000Z")
        );
        assert_eq!(mpd.attribute("mediaPresentationDuration"), None);
        // MPDtype: Period+ then UTCTiming*.
        assert_eq!(children(mpd), ["Period", "UTCTiming"]);
        let utc = child(mpd, "UTCTiming");
        assert_eq!(utc.attribute("schemeIdUri"), Some(UTC_TIMING_HTTP_ISO));

        let period = child(mpd, "Period");
        assert_eq!(children(period), ["AdaptationSet", "AdaptationSet"]);
        let sets: Vec<_> = period.children().filter(|n| n.is_element()).collect();
        let video = sets[0];
        assert_eq!(video.attribute("contentType"), Some("video"));
        assert_eq!(video.attribute("maxWidth"), Some("1280"));
        assert_eq!(video.attribute("maxHeight"), Some("720"));
        assert_eq!(children(video), ["Representation", "Representation"]);
        let reps: Vec<_> = video.children().filter(|n| n.is_element()).collect();
        assert_eq!(reps[1].attribute("id"), Some("360p"));
        assert_eq!(reps[1].attribute("bandwidth"), Some("800000"));
        assert_eq!(reps[1].attribute("width"), Some("640"));
        let template = child(reps[1], "SegmentTemplate");
        assert_eq!(template.attribute("timescale"), Some("90000"));
        assert_eq!(template.attribute("startNumber"), Some("850000000"));
        assert_eq!(template.attribute("media"), Some(MEDIA_TEMPLATE));
        assert_eq!(
            template.attribute("initialization"),
            Some("$RepresentationID$/init.mp4")
        );

        let audio = sets[1];
        assert_eq!(audio.attribute("lang"), Some("en"));
        // RepresentationBaseType descriptors come before the Representation.
        assert_eq!(
            children(audio),
            ["AudioChannelConfiguration", "Representation"]
        );
        let rep = child(audio, "Representation");
        assert_eq!(rep.attribute("audioSamplingRate"), Some("48000"));
        let s: Vec<_> = child(child(rep, "SegmentTemplate"), "SegmentTimeline")
            .children()
            .filter(|n| n.is_element())
            .map(|n| (n.attribute("t"), n.attribute("d"), n.attribute("r")))
            .collect();
        assert_eq!(
            s,
            [
                (Some("0"), Some("96256"), None),
                (None, Some("95232"), None),
                (None, Some("96256"), None),
            ]
        );
    }

    #[test]
    fn a_restart_is_a_new_period_with_its_own_init_segment() {
        let mut mpd = live();
        let restart = MpdPeriod {
            id: "850000010".to_owned(),
            start: Duration::from_secs(1_700_000_020),
            tracks: vec![
                TrackTimeline {
                    init_name: "init-2.mp4".to_owned(),
                    ..track("720p", 90_000, 850_000_010, &[(0, 180_000)])
                },
                TrackTimeline {
                    init_name: "init-2.mp4".to_owned(),
                    presentation_time_offset: 47_520,
                    ..track("audio", 48_000, 850_000_010, &[(48_000, 96_256)])
                },
            ],
        };
        mpd.periods.push(restart);
        let text = render(&mpd);
        let doc = roxmltree::Document::parse(&text).unwrap();
        let mpd = doc.root_element();
        assert_eq!(children(mpd), ["Period", "Period", "UTCTiming"]);
        let second = mpd
            .children()
            .filter(|n| n.has_tag_name("Period"))
            .nth(1)
            .unwrap();
        assert_eq!(second.attribute("id"), Some("850000010"));
        assert_eq!(second.attribute("start"), Some("PT1700000020.000S"));
        // The 360p rendition has no segments in this Period and is left out; the sets
        // keep their ids.
        let video = child(second, "AdaptationSet");
        assert_eq!(video.attribute("id"), Some("0"));
        assert_eq!(children(video), ["Representation"]);
        let templates: Vec<_> = second
            .descendants()
            .filter(|n| n.has_tag_name("SegmentTemplate"))
            .map(|n| {
                (
                    n.attribute("initialization").unwrap(),
                    n.attribute("startNumber").unwrap(),
                    n.attribute("presentationTimeOffset").unwrap(),
                )
            })
            .collect();
        assert_eq!(
            templates,
            [
                ("$RepresentationID$/init-2.mp4", "850000010", "0"),
                ("$RepresentationID$/init-2.mp4", "850000010", "47520"),
            ]
        );
    }

    #[test]
    fn tracks_without_segments_leave_out_their_adaptation_set() {
        let mut mpd = live();
        mpd.periods[0].tracks.retain(|t| t.id == "audio");
        let text = render(&mpd);
        let doc = roxmltree::Document::parse(&text).unwrap();
        let period = child(doc.root_element(), "Period");
        assert_eq!(children(period), ["AdaptationSet"]);
        assert_eq!(
            child(period, "AdaptationSet").attribute("contentType"),
            Some("audio")
        );

        mpd.periods[0].tracks[0].segments.clear();
        let text = render(&mpd);
        let doc = roxmltree::Document::parse(&text).unwrap();
        assert!(children(child(doc.root_element(), "Period")).is_empty());
    }

    fn vod() -> Mpd {
        Mpd {
            kind: MpdKind::Static {
                duration: Duration::from_millis(5_960),
            },
            subtitles: vec![
                MpdSubtitle {
                    id: "sub-en".to_owned(),
                    lang: Some("en".to_owned()),
                    url: "subtitles/en.vtt".to_owned(),
                },
                MpdSubtitle {
                    id: "sub-fr".to_owned(),
                    lang: Some("fr".to_owned()),
                    url: "subtitles/fr.vtt".to_owned(),
                },
            ],
            periods: vec![MpdPeriod {
                id: "0".to_owned(),
                start: Duration::ZERO,
                ..live().periods.remove(0)
            }],
            ..live()
        }
    }

    #[test]
    fn vod_mpd_is_static_with_sidecar_subtitles() {
        let text = render(&vod());
        let doc = roxmltree::Document::parse(&text).unwrap();
        let mpd = doc.root_element();
        assert_eq!(mpd.attribute("type"), Some("static"));
        assert_eq!(mpd.attribute("mediaPresentationDuration"), Some("PT5.960S"));
        for live_only in [
            "availabilityStartTime",
            "publishTime",
            "minimumUpdatePeriod",
            "timeShiftBufferDepth",
            "suggestedPresentationDelay",
        ] {
            assert_eq!(mpd.attribute(live_only), None, "{live_only}");
        }
        assert_eq!(children(mpd), ["Period"]);
        let period = child(mpd, "Period");
        assert_eq!(period.attribute("start"), Some("PT0.000S"));
        let sets: Vec<_> = period.children().filter(|n| n.is_element()).collect();
        assert_eq!(sets.len(), 4);
        let french = sets[3];
        assert_eq!(french.attribute("id"), Some("3"));
        assert_eq!(french.attribute("contentType"), Some("text"));
        assert_eq!(french.attribute("mimeType"), Some("text/vtt"));
        assert_eq!(french.attribute("lang"), Some("fr"));
        assert_eq!(children(french), ["Role", "Representation"]);
        assert_eq!(child(french, "Role").attribute("value"), Some("subtitle"));
        let rep = child(french, "Representation");
        assert_eq!(rep.attribute("id"), Some("sub-fr"));
        assert!(rep.attribute("bandwidth").is_some());
        assert_eq!(child(rep, "BaseURL").text(), Some("subtitles/fr.vtt"));
    }

    #[test]
    fn subtitles_are_listed_in_the_first_period_only() {
        let mut mpd = vod();
        let mut second = mpd.periods[0].clone();
        second.id = "1".to_owned();
        second.start = Duration::from_secs(6);
        mpd.periods.push(second);
        let text = render(&mpd);
        let doc = roxmltree::Document::parse(&text).unwrap();
        let texts: Vec<usize> = doc
            .root_element()
            .children()
            .filter(|n| n.has_tag_name("Period"))
            .map(|p| {
                p.children()
                    .filter(|n| n.attribute("contentType") == Some("text"))
                    .count()
            })
            .collect();
        assert_eq!(texts, [2, 0]);
    }

    #[test]
    fn attribute_and_text_values_are_escaped() {
        let awkward = r#"a&b<c>"d'e"#;
        let mut mpd = vod();
        mpd.videos[0].id = awkward.to_owned();
        mpd.periods[0].tracks[0].id = awkward.to_owned();
        mpd.videos[0].codecs = awkward.to_owned();
        mpd.audio.as_mut().unwrap().lang = Some(awkward.to_owned());
        mpd.subtitles[0].url = awkward.to_owned();
        mpd.periods[0].id = awkward.to_owned();
        // A `$` in a file name is doubled: `$$` is a literal `$` in a template.
        mpd.periods[0].tracks[0].init_name = "init$1.mp4".to_owned();
        let text = render(&mpd);
        let doc = roxmltree::Document::parse(&text).unwrap();
        let period = child(doc.root_element(), "Period");
        assert_eq!(period.attribute("id"), Some(awkward));
        let rep = child(child(period, "AdaptationSet"), "Representation");
        assert_eq!(rep.attribute("id"), Some(awkward));
        assert_eq!(rep.attribute("codecs"), Some(awkward));
        assert_eq!(
            child(rep, "SegmentTemplate").attribute("initialization"),
            Some("$RepresentationID$/init$$1.mp4")
        );
        let lang = period
            .descendants()
            .find(|n| n.attribute("contentType") == Some("audio"))
            .and_then(|n| n.attribute("lang"));
        assert_eq!(lang, Some(awkward));
        let base_url = period.descendants().find(|n| n.has_tag_name("BaseURL"));
        assert_eq!(base_url.and_then(|n| n.text()), Some(awkward));
    }

    #[test]
    fn fractional_frame_rates_in_representation_and_set() {
        let mut mpd = live();
        mpd.videos[0].frame_rate = 30_000.0 / 1001.0;
        mpd.videos[1].frame_rate = 60_000.0 / 1001.0;
        let text = render(&mpd);
        let doc = roxmltree::Document::parse(&text).unwrap();
        let set = child(child(doc.root_element(), "Period"), "AdaptationSet");
        assert_eq!(set.attribute("maxFrameRate"), Some("60000/1001"));
        let rates: Vec<_> = set
            .children()
            .filter(|n| n.has_tag_name("Representation"))
            .map(|n| n.attribute("frameRate").unwrap())
            .collect();
        assert_eq!(rates, ["30000/1001", "60000/1001"]);
    }
}
