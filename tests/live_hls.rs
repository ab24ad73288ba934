//! Live HLS from the real binary: `headend run` on a test-pattern channel, read by
//! ureq, m3u8-rs, ffprobe and ffmpeg.
//!
//! Each test starts its own headend on its own port, so any one of them runs alone
//! and none waits for another's client.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use common::{
    parse_master, parse_media, probe_audio, probe_video, program_date_time, run_with_timeout,
    segment_sequence, sleep_until_phase, Headend, TempDir, SHUTDOWN_TIMEOUT, X264_ULTRAFAST,
};
use m3u8_rs::{AlternativeMediaType, MasterPlaylist, MediaPlaylist};

// ---------------------------------------------------------------- the test ladder

const CHANNEL: &str = "one";
const SEGMENT_SECS: u64 = 2;
const GOP_SECS: u64 = 1;
/// Three segments: the smallest window RFC 8216 6.2.2 allows (three target
/// durations), so the window fills and starts to slide soon after start.
const WINDOW: usize = 3;
const FPS: u32 = 25;
const AUDIO_KBPS: u64 = 96;
const AUDIO_CHANNELS: u64 = 2;
const SAMPLE_RATE: u64 = 48_000;
/// AAC-LC frames are 1024 samples.
const AAC_FRAME_SECS: f64 = 1024.0 / SAMPLE_RATE as f64;
const FRAME_SECS: f64 = 1.0 / FPS as f64;
/// The packager's `BOUNDARY_TOLERANCE`: a video segment starts with the first frame at
/// or after a boundary (within one frame), an audio segment within one AAC frame of it.
const BOUNDARY_SECS: f64 = 0.050;
/// PROGRAM-DATE-TIME is written with millisecond precision.
const PDT_PRECISION_SECS: f64 = 0.002;
/// How long after its end a segment may appear in the playlist: the encoders' and the
/// muxer's delay, with room for a loaded two-core test machine (observed: 0.2 s).
const PUBLISH_DELAY_SECS: f64 = 1.5;
const AUDIO_TRACK: &str = "audio";
const AUDIO_GROUP_URI: &str = "audio/index.m3u8";
const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";

struct Rung {
    name: &'static str,
    width: u64,
    height: u64,
    kbps: u64,
    profile: &'static str,
}

const LADDER: [Rung; 2] = [
    Rung {
        name: "480p",
        width: 854,
        height: 480,
        kbps: 1000,
        profile: "main",
    },
    Rung {
        name: "240p",
        width: 426,
        height: 240,
        kbps: 300,
        profile: "baseline",
    },
];

/// Process start to the first multivariant playlist: GStreamer start-up, then one
/// segment in every track. Bounds a wait; it is not a measurement.
const STARTUP: Duration = Duration::from_secs(30);

fn catalog() -> String {
    format!("{X264_ULTRAFAST}{}", ladder_and_channel("x264"))
}

/// The test ladder on the encoder profile `encoder`, and its one channel.
fn ladder_and_channel(encoder: &str) -> String {
    let mut yaml = String::new();
    yaml.push_str(&format!(
        "ladders:\n  t:\n    encoder: {encoder}\n    segment_duration: {SEGMENT_SECS}\n    \
         gop: {GOP_SECS}\n    window: {WINDOW}\n    renditions:\n"
    ));
    for r in &LADDER {
        yaml.push_str(&format!(
            "      - {{ name: {}, width: {}, height: {}, bitrate: {}, profile: {}, max_framerate: {FPS} }}\n",
            r.name, r.width, r.height, r.kbps, r.profile
        ));
    }
    yaml.push_str(&format!(
        "    audio: {{ codec: aac, bitrate: {AUDIO_KBPS}, channels: {AUDIO_CHANNELS}, sample_rate: {SAMPLE_RATE} }}\n\
         channels:\n  - {{ id: {CHANNEL}, number: 1, name: One, group: Test, source: {{ uri: \"test://\" }}, ladder: t }}\n"
    ));
    yaml
}

/// Every track of the channel: the renditions in ladder order, then the audio.
fn tracks() -> Vec<&'static str> {
    LADDER.iter().map(|r| r.name).chain([AUDIO_TRACK]).collect()
}

fn path(rest: &str) -> String {
    format!("/live/{CHANNEL}/{rest}")
}

fn start() -> Headend {
    let headend = Headend::start(&catalog());
    headend.wait_for(&path("master.m3u8"), STARTUP);
    headend
}

fn fetch_media(headend: &Headend, track: &str) -> MediaPlaylist {
    parse_media(&headend.get_ok(&path(&format!("{track}/index.m3u8"))))
}

fn assert_near(what: &str, actual: f64, expected: f64, tolerance: f64) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: {actual} is not within {tolerance} of {expected}"
    );
}

/// What every live media playlist of this ladder must say, whenever it is read.
fn check_media_playlist(track: &str, playlist: &MediaPlaylist) {
    // fMP4 with EXT-X-MAP needs protocol version 6 (RFC 8216 section 7).
    assert!(
        playlist.version.is_some_and(|v| v >= 6),
        "{track}: EXT-X-VERSION {:?}",
        playlist.version
    );
    assert_eq!(
        playlist.target_duration, SEGMENT_SECS,
        "{track}: TARGETDURATION"
    );
    assert!(
        playlist.independent_segments,
        "{track}: no EXT-X-INDEPENDENT-SEGMENTS"
    );
    assert!(
        !playlist.end_list,
        "{track}: a live playlist has no EXT-X-ENDLIST"
    );
    assert_eq!(playlist.playlist_type, None, "{track}: PLAYLIST-TYPE");
    assert!(
        (1..=WINDOW).contains(&playlist.segments.len()),
        "{track}: {} segments listed, window {WINDOW}",
        playlist.segments.len()
    );
    let map = playlist.segments[0].map.as_ref();
    assert_eq!(
        map.map(|m| m.uri.as_str()),
        Some("init-0.mp4"),
        "{track}: EXT-X-MAP before the first segment (the first pipeline start's init)"
    );
    for (i, segment) in playlist.segments.iter().enumerate() {
        let sequence = playlist.media_sequence + i as u64;
        assert_eq!(
            segment.uri,
            format!("{sequence}.m4s"),
            "{track}: segment URI"
        );
        // Nothing restarted while the test ran.
        assert!(
            !segment.discontinuity,
            "{track}: EXT-X-DISCONTINUITY before {}",
            segment.uri
        );
        assert!(
            segment.program_date_time.is_some(),
            "{track}: {} has no EXT-X-PROGRAM-DATE-TIME",
            segment.uri
        );
        // RFC 8216 4.3.3.1: EXTINF rounded to the nearest integer <= TARGETDURATION.
        assert!(
            (f64::from(segment.duration).round() as u64) <= playlist.target_duration,
            "{track}: {} EXTINF {} exceeds the target duration",
            segment.uri,
            segment.duration
        );
        // The stream's first segment may be short (it starts whenever the pipeline
        // did); every later one spans one boundary-to-boundary interval of the wall
        // clock, and its number is that interval's index.
        if i > 0 {
            assert_near(
                &format!("{track} {} EXTINF", segment.uri),
                f64::from(segment.duration),
                SEGMENT_SECS as f64,
                BOUNDARY_SECS,
            );
            assert_near(
                &format!(
                    "{track} {} PROGRAM-DATE-TIME against its number",
                    segment.uri
                ),
                program_date_time(segment),
                (sequence * SEGMENT_SECS) as f64,
                BOUNDARY_SECS,
            );
        }
    }
}

/// The newest sequence number listed in every playlist, other than a playlist's first
/// entry (which may be the stream's short first segment).
fn newest_common_full_segment(playlists: &[MediaPlaylist]) -> Option<u64> {
    let listed = |p: &MediaPlaylist| -> Vec<u64> {
        p.segments
            .iter()
            .skip(1)
            .map(|s| segment_sequence(&s.uri))
            .collect()
    };
    let first = listed(playlists.first()?);
    first
        .into_iter()
        .rev()
        .find(|seq| playlists.iter().all(|p| listed(p).contains(seq)))
}

/// One track as read at one moment: its playlist and every segment it lists.
struct TrackSnapshot {
    name: &'static str,
    playlist: MediaPlaylist,
    init: Vec<u8>,
    segments: BTreeMap<u64, Vec<u8>>,
}

impl TrackSnapshot {
    /// The listed segment with this number, and its bytes.
    fn segment(&self, sequence: u64) -> (&m3u8_rs::MediaSegment, &[u8]) {
        let uri = format!("{sequence}.m4s");
        let listed = self
            .playlist
            .segments
            .iter()
            .find(|s| s.uri == uri)
            .unwrap_or_else(|| panic!("{}: {uri} is not listed", self.name));
        (listed, &self.segments[&sequence])
    }

    /// (bytes, EXTINF seconds) of every listed segment, oldest first.
    fn sizes(&self) -> Vec<(usize, f64)> {
        self.playlist
            .segments
            .iter()
            .map(|s| {
                let bytes = self.segments[&segment_sequence(&s.uri)].len();
                (bytes, f64::from(s.duration))
            })
            .collect()
    }
}

/// Every track's playlist and segments with the multivariant playlist, all describing
/// the same window: read again until nothing was published while they were read.
/// Waits until `ready` accepts the playlists.
fn consistent_snapshot(
    headend: &Headend,
    ready: impl Fn(&[MediaPlaylist]) -> bool,
) -> (Vec<TrackSnapshot>, MasterPlaylist) {
    let tracks = tracks();
    let read_playlists = || -> Vec<Vec<u8>> {
        tracks
            .iter()
            .map(|t| headend.get_ok(&path(&format!("{t}/index.m3u8"))))
            .collect()
    };
    let snapshot = headend.wait_until(STARTUP, || {
        let before = read_playlists();
        let playlists: Vec<MediaPlaylist> = before.iter().map(|b| parse_media(b)).collect();
        if !ready(&playlists) {
            return None;
        }
        let master_before = headend.get_ok(&path("master.m3u8"));
        let snapshots: Vec<TrackSnapshot> = tracks
            .iter()
            .zip(playlists)
            .map(|(&name, playlist)| {
                let segments = playlist
                    .segments
                    .iter()
                    .map(|s| {
                        let body = headend.get_ok(&path(&format!("{name}/{}", s.uri)));
                        (segment_sequence(&s.uri), body)
                    })
                    .collect();
                TrackSnapshot {
                    name,
                    init: headend.get_ok(&path(&format!("{name}/init-0.mp4"))),
                    playlist,
                    segments,
                }
            })
            .collect();
        let unchanged =
            read_playlists() == before && headend.get_ok(&path("master.m3u8")) == master_before;
        unchanged.then(|| (snapshots, parse_master(&master_before)))
    });
    snapshot.unwrap_or_else(|| headend.fail("the playlists never reached the state waited for"))
}

/// RFC 8216 4.3.4.2: the peak segment bit rate is the largest bit rate of any
/// contiguous set of segments whose total duration is between 0.5 and 1.5 times the
/// target duration. `None` when no set qualifies.
fn peak_segment_bit_rate(sizes: &[(usize, f64)], target_duration: f64) -> Option<f64> {
    let mut peak: Option<f64> = None;
    for start in 0..sizes.len() {
        let (mut bytes, mut seconds) = (0usize, 0.0f64);
        for &(b, d) in &sizes[start..] {
            bytes += b;
            seconds += d;
            if seconds > 1.5 * target_duration {
                break;
            }
            if seconds >= 0.5 * target_duration {
                let rate = bytes as f64 * 8.0 / seconds;
                peak = Some(peak.map_or(rate, |p| p.max(rate)));
            }
        }
    }
    peak
}

/// Total bits over total duration.
fn average_bit_rate(sizes: &[(usize, f64)]) -> f64 {
    let bits: f64 = sizes.iter().map(|&(b, _)| b as f64 * 8.0).sum();
    let seconds: f64 = sizes.iter().map(|&(_, d)| d).sum();
    bits / seconds
}

/// BANDWIDTH and AVERAGE-BANDWIDTH of a variant against its video and the audio
/// segments listed at the same moment. RFC 8216 4.3.4.2: BANDWIDTH is at least the
/// sum of the peak segment bit rates; Apple's HLS authoring specification (live
/// content): the measured peak is within 10% of BANDWIDTH.
fn check_variant_bandwidth(
    variant: &m3u8_rs::VariantStream,
    video: &TrackSnapshot,
    audio: &TrackSnapshot,
) {
    let name = video.name;
    let peak = |track: &TrackSnapshot| {
        let target = track.playlist.target_duration as f64;
        peak_segment_bit_rate(&track.sizes(), target).unwrap_or_else(|| {
            panic!(
                "{}: no set of listed segments spans half to one and a half target durations",
                track.name
            )
        })
    };
    let measured_peak = peak(video) + peak(audio);
    let bandwidth = variant.bandwidth as f64;
    // 0.1% for EXTINF rounded in the playlist text.
    assert!(
        bandwidth * 1.001 >= measured_peak,
        "{name}: BANDWIDTH {bandwidth} is below the peak segment bit rate {measured_peak:.0}"
    );
    assert!(
        bandwidth <= measured_peak * 1.1,
        "{name}: BANDWIDTH {bandwidth} overstates the peak segment bit rate {measured_peak:.0} \
         by more than 10%"
    );
    let average = variant
        .average_bandwidth
        .unwrap_or_else(|| panic!("{name}: no AVERAGE-BANDWIDTH")) as f64;
    let measured_average = average_bit_rate(&video.sizes()) + average_bit_rate(&audio.sizes());
    assert_near(
        &format!("{name}: AVERAGE-BANDWIDTH against the listed segments"),
        average,
        measured_average,
        measured_average * 0.001,
    );
}

/// Asserts that consecutive presentation times are exactly `step` apart (1 ms): no
/// gap, overlap or reordering where one segment joins the next.
fn assert_contiguous(what: &str, pts: &[f64], step: f64) {
    assert!(pts.len() > 1, "{what}: {} frames", pts.len());
    for (i, pair) in pts.windows(2).enumerate() {
        assert!(
            (pair[1] - pair[0] - step).abs() <= 0.001,
            "{what}: frame {} at {} follows {} (expected a step of {step})",
            i + 1,
            pair[1],
            pair[0]
        );
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `profile_idc` of an H.264 profile as ffprobe names it (ITU-T H.264 annex A).
fn profile_idc(name: &str) -> u8 {
    match name {
        "Baseline" | "Constrained Baseline" => 66,
        "Main" => 77,
        "Extended" => 88,
        "High" => 100,
        other => panic!("unexpected H.264 profile {other}"),
    }
}

// ---------------------------------------------------------------- tests

#[test]
fn live_ladder_decodes_and_is_aligned() {
    // Started just after a segment boundary, so the stream's first segment is nearly
    // whole; a short one is `a_short_first_segment_does_not_inflate_bandwidth`.
    sleep_until_phase(Duration::from_secs(SEGMENT_SECS), Duration::from_millis(50));
    let headend = start();

    // A segment every track has finished, past the stream's first: the newest such.
    // A stream's first segment shorter than half a target duration inflates BANDWIDTH
    // (see that test); should a slow start make one, wait until it leaves the window.
    let (tracks, master) = consistent_snapshot(&headend, |playlists| {
        let long_enough = playlists
            .iter()
            .flat_map(|p| &p.segments)
            .all(|s| f64::from(s.duration) >= 0.5 * SEGMENT_SECS as f64);
        long_enough && newest_common_full_segment(playlists).is_some()
    });
    let playlists: Vec<MediaPlaylist> = tracks.iter().map(|t| t.playlist.clone()).collect();
    let sequence = newest_common_full_segment(&playlists).unwrap_or_default();
    for track in &tracks {
        check_media_playlist(track.name, &track.playlist);
    }
    let audio = &tracks[LADDER.len()];

    assert!(
        master.version.is_some_and(|v| v >= 6),
        "master EXT-X-VERSION"
    );
    assert!(
        master.independent_segments,
        "master EXT-X-INDEPENDENT-SEGMENTS"
    );

    // The audio rendition group.
    let [audio_media] = master.alternatives.as_slice() else {
        panic!("expected one EXT-X-MEDIA, got {:#?}", master.alternatives);
    };
    assert_eq!(audio_media.media_type, AlternativeMediaType::Audio);
    assert_eq!(audio_media.uri.as_deref(), Some(AUDIO_GROUP_URI));
    assert_eq!(audio_media.channels, Some(AUDIO_CHANNELS.to_string()));
    assert!(
        audio_media.default && audio_media.autoselect,
        "audio DEFAULT/AUTOSELECT"
    );

    // One variant per rung, in ladder order.
    let uris: Vec<&str> = master.variants.iter().map(|v| v.uri.as_str()).collect();
    let expected: Vec<String> = LADDER
        .iter()
        .map(|r| format!("{}/index.m3u8", r.name))
        .collect();
    assert_eq!(uris, expected, "variant URIs");

    // (PDT - media time) of segment `sequence`, per track: one clock for all.
    let mut clock_offsets: Vec<(&str, f64)> = Vec::new();
    // First PTS and PDT of `sequence` in the first rendition.
    let mut reference: Option<(f64, f64)> = None;
    for ((rung, variant), video) in LADDER.iter().zip(&master.variants).zip(&tracks) {
        let name = rung.name;
        assert!(!variant.is_i_frame, "{name}: I-frame stream");
        let resolution = variant
            .resolution
            .unwrap_or_else(|| panic!("{name}: no RESOLUTION"));
        assert_eq!(
            (resolution.width, resolution.height),
            (rung.width, rung.height),
            "{name}: RESOLUTION"
        );
        assert_eq!(
            variant.frame_rate,
            Some(f64::from(FPS)),
            "{name}: FRAME-RATE"
        );
        assert_eq!(
            variant.audio.as_deref(),
            Some(audio_media.group_id.as_str()),
            "{name}: AUDIO"
        );
        let codecs = variant
            .codecs
            .as_deref()
            .unwrap_or_else(|| panic!("{name}: no CODECS"));
        let [avc1, mp4a] = codecs.split(',').collect::<Vec<_>>()[..] else {
            panic!("{name}: CODECS {codecs:?} is not video,audio");
        };
        assert_eq!(mp4a, "mp4a.40.2", "{name}: audio codec");
        let avc = avc1
            .strip_prefix("avc1.")
            .filter(|hex| hex.len() == 6)
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .unwrap_or_else(|| panic!("{name}: {avc1} is not avc1.PPCCLL"));

        let average = variant.average_bandwidth.unwrap_or(0);
        assert!(
            variant.bandwidth >= average && average > 0,
            "{name}: BANDWIDTH {} AVERAGE-BANDWIDTH {average}",
            variant.bandwidth
        );
        // Measured, so only roughly the configured rate: x264's rate control at
        // ultrafast on a test pattern stays well within a factor of two on average.
        let nominal = ((rung.kbps + AUDIO_KBPS) * 1000) as f64;
        assert!(
            (nominal / 2.0..=nominal * 2.0).contains(&(average as f64)),
            "{name}: AVERAGE-BANDWIDTH {average} against a ladder of {nominal} b/s"
        );
        check_variant_bandwidth(variant, video, audio);

        // Init + segment through a real decoder.
        let (segment, media) = video.segment(sequence);
        let extinf = f64::from(segment.duration);
        let file = headend
            .dir()
            .write(&format!("{name}-{sequence}.mp4"), &[&video.init, media]);
        let probe = probe_video(&file);
        assert_eq!(probe.codec, "h264", "{name}: codec");
        assert_eq!(
            (probe.width, probe.height),
            (rung.width, rung.height),
            "{name}: decoded size"
        );
        assert_eq!(
            (avc >> 16) as u8,
            profile_idc(&probe.profile),
            "{name}: CODECS {avc1} against the stream's {} profile",
            probe.profile
        );
        assert_eq!(
            u64::from(avc & 0xff),
            probe.level,
            "{name}: CODECS {avc1} against the stream's level"
        );
        let first = probe
            .frames
            .first()
            .unwrap_or_else(|| panic!("{name}: segment {sequence} decodes to no frames"));
        assert!(
            first.key_frame && first.pict_type == "I",
            "{name}: segment {sequence} starts with {first:?}"
        );
        assert_near(
            &format!(
                "{name}: {} frames at {FPS} fps against EXTINF",
                probe.frames.len()
            ),
            probe.frames.len() as f64 * FRAME_SECS,
            extinf,
            FRAME_SECS,
        );
        let decoded: f64 = probe.frames.iter().map(|f| f.duration).sum();
        assert_near(
            &format!("{name}: decoded duration against EXTINF"),
            decoded,
            extinf,
            FRAME_SECS,
        );

        // The previous segment joins this one without a gap, frame for frame.
        let (_, previous) = video.segment(sequence - 1);
        let pair = headend.dir().write(
            &format!("{name}-{}-{sequence}.mp4", sequence - 1),
            &[&video.init, previous, media],
        );
        let pts: Vec<f64> = probe_video(&pair).frames.iter().map(|f| f.pts).collect();
        assert_contiguous(
            &format!("{name}: segments {} and {sequence}", sequence - 1),
            &pts,
            FRAME_SECS,
        );

        // Aligned renditions: the same first picture time and the same PDT.
        let pdt = program_date_time(segment);
        match reference {
            None => reference = Some((first.pts, pdt)),
            Some((pts0, pdt0)) => {
                assert_near(
                    &format!("{name}: first PTS of {sequence} against {}", LADDER[0].name),
                    first.pts,
                    pts0,
                    0.001,
                );
                assert_near(
                    &format!(
                        "{name}: PROGRAM-DATE-TIME of {sequence} against {}",
                        LADDER[0].name
                    ),
                    pdt,
                    pdt0,
                    0.001,
                );
            }
        }
        clock_offsets.push((name, pdt - first.pts));
    }

    // Audio: AAC-LC as the ladder says, as long as its EXTINF.
    let (segment, media) = audio.segment(sequence);
    let extinf = f64::from(segment.duration);
    let file = headend
        .dir()
        .write(&format!("audio-{sequence}.mp4"), &[&audio.init, media]);
    let probe = probe_audio(&file);
    assert_eq!(probe.codec, "aac");
    assert_eq!(probe.profile, "LC", "audio profile (CODECS says mp4a.40.2)");
    assert_eq!(probe.channels, AUDIO_CHANNELS, "audio channels");
    assert_eq!(probe.sample_rate, SAMPLE_RATE, "audio sample rate");
    assert_near(
        "audio decoded duration against EXTINF",
        probe.duration(),
        extinf,
        AAC_FRAME_SECS,
    );
    let (_, previous) = audio.segment(sequence - 1);
    let pair = headend.dir().write(
        &format!("audio-{}-{sequence}.mp4", sequence - 1),
        &[&audio.init, previous, media],
    );
    let pts: Vec<f64> = probe_audio(&pair).frames.iter().map(|f| f.pts).collect();
    assert_contiguous(
        &format!("audio: segments {} and {sequence}", sequence - 1),
        &pts,
        AAC_FRAME_SECS,
    );
    let first_pts = probe.frames.first().map_or(f64::NAN, |f| f.pts);
    clock_offsets.push((AUDIO_TRACK, program_date_time(segment) - first_pts));

    // PROGRAM-DATE-TIME maps media time to the wall clock the same way in every
    // track, so a player syncing audio and video (or renditions) by PDT lines them up.
    let (_, reference) = clock_offsets[0];
    for (track, offset) in &clock_offsets {
        assert_near(
            &format!("{track}: PROGRAM-DATE-TIME minus media time"),
            *offset,
            reference,
            PDT_PRECISION_SECS,
        );
    }

    check_every_segment(&headend, &tracks[..LADDER.len()]);
}

/// Every segment of every rendition in the window, through a real decoder: it starts
/// with an IDR, has keyframes at each multiple of the GOP and nowhere else (no
/// scene-cut keyframe breaks the shared schedule), holds as many frames as its EXTINF
/// says, and starts at the same picture time as the same segment of the other
/// renditions.
fn check_every_segment(headend: &Headend, renditions: &[TrackSnapshot]) {
    let mut first_pts: BTreeMap<u64, (&str, f64)> = BTreeMap::new();
    for track in renditions {
        let name = track.name;
        for listed in &track.playlist.segments {
            let sequence = segment_sequence(&listed.uri);
            let (_, media) = track.segment(sequence);
            let file = headend
                .dir()
                .write(&format!("{name}-all-{sequence}.mp4"), &[&track.init, media]);
            let frames = probe_video(&file).frames;
            let first = frames
                .first()
                .unwrap_or_else(|| panic!("{name}: segment {sequence} decodes to no frames"));
            assert!(
                first.key_frame && first.pict_type == "I",
                "{name}: segment {sequence} starts with {first:?}"
            );
            let extinf = f64::from(listed.duration);
            assert_near(
                &format!("{name}: frames of segment {sequence} against EXTINF"),
                frames.len() as f64 * FRAME_SECS,
                extinf,
                FRAME_SECS,
            );
            let keyframes: Vec<f64> = frames
                .iter()
                .filter(|f| f.key_frame)
                .map(|f| f.pts - first.pts)
                .collect();
            // On the wall clock (PROGRAM-DATE-TIME): the segment's first frame, then
            // the first frame at or after every multiple of the GOP up to the
            // segment's end, which is the next segment's first frame. A stream's first
            // segment starts between two multiples.
            let start = program_date_time(listed);
            let gop = GOP_SECS as f64;
            let first_multiple = ((start + FRAME_SECS / 2.0) / gop).ceil() as u64;
            let expected: Vec<f64> = std::iter::once(0.0)
                .chain(
                    (first_multiple..)
                        .map(|k| k as f64 * gop - start)
                        .take_while(|at| *at < extinf - FRAME_SECS),
                )
                .collect();
            assert!(
                keyframes.len() == expected.len()
                    && keyframes
                        .iter()
                        .zip(&expected)
                        .all(|(at, want)| (-FRAME_SECS / 2.0..FRAME_SECS).contains(&(at - want))),
                "{name}: segment {sequence} has keyframes at {keyframes:?} s from its \
                 start, not at its start and each multiple of the GOP {expected:?}"
            );
            match first_pts.get(&sequence) {
                None => {
                    first_pts.insert(sequence, (name, first.pts));
                }
                Some(&(other, pts)) => assert_near(
                    &format!("{name}: first PTS of segment {sequence} against {other}"),
                    first.pts,
                    pts,
                    0.001,
                ),
            }
        }
    }
}

/// The shipped `openh264` encoder profile (pipelines/ladders.yaml, loaded as it is)
/// in place of x264: a ladder changes its encoder by YAML alone and keeps the shared
/// schedule, every segment decodable with keyframes only where the GOP puts them.
#[test]
fn the_shipped_openh264_profile_keeps_the_schedule() {
    let ladders = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/ladders.yaml");
    let dir = TempDir::new("live-openh264");
    let file = dir.write("catalog.yaml", &[ladder_and_channel("openh264").as_bytes()]);
    let headend = Headend::start_in(dir, &file, &[ladders.to_str().expect("a UTF-8 path")]);
    headend.wait_for(&path("master.m3u8"), STARTUP);
    let (tracks, _) = consistent_snapshot(&headend, |playlists| {
        newest_common_full_segment(playlists).is_some()
    });
    for track in &tracks {
        check_media_playlist(track.name, &track.playlist);
    }
    check_every_segment(&headend, &tracks[..LADDER.len()]);
}

/// A channel that starts late in a segment interval makes a short first segment,
/// which holds a keyframe and little else. RFC 8216 4.3.4.2 measures the peak over
/// sets of segments spanning at least half a target duration, so that segment alone
/// must not set BANDWIDTH.
#[test]
fn a_short_first_segment_does_not_inflate_bandwidth() {
    // The first frame about 0.6 s before a boundary: a first segment of about 0.6 s.
    let segment = Duration::from_secs(SEGMENT_SECS);
    sleep_until_phase(segment, segment - Duration::from_millis(700));
    let headend = start();
    let (tracks, master) = consistent_snapshot(&headend, |playlists| {
        playlists.iter().all(|p| p.segments.len() >= 2)
    });
    let first = f64::from(tracks[0].playlist.segments[0].duration);
    assert!(
        first < 0.5 * SEGMENT_SECS as f64,
        "inconclusive: the first segment is {first} s long; this test needs it shorter \
         than half the target duration"
    );
    let audio = &tracks[LADDER.len()];
    for (variant, video) in master.variants.iter().zip(&tracks) {
        check_variant_bandwidth(variant, video, audio);
    }
}

#[test]
fn playlists_advance_monotonically() {
    let headend = start();
    let tracks = tracks();
    let segment = Duration::from_secs(SEGMENT_SECS);

    // The media sequence moves only once the window is full.
    let full = headend.wait_until(STARTUP + segment * WINDOW as u32, || {
        let playlists: Vec<MediaPlaylist> =
            tracks.iter().map(|t| fetch_media(&headend, t)).collect();
        playlists
            .iter()
            .all(|p| p.segments.len() == WINDOW)
            .then_some(playlists)
    });
    let full = full.unwrap_or_else(|| headend.fail("the window never filled"));
    let start_sequence: Vec<u64> = full.iter().map(|p| p.media_sequence).collect();

    // Every segment seen in any reload: (PDT, EXTINF), which must never change.
    let mut seen: Vec<BTreeMap<u64, (f64, f32)>> = vec![BTreeMap::new(); tracks.len()];
    let mut last = full;
    // Three more segments take three segment durations; one more bounds the wait.
    let deadline = Instant::now() + segment * 4;
    loop {
        let playlists: Vec<MediaPlaylist> =
            tracks.iter().map(|t| fetch_media(&headend, t)).collect();
        let now = unix_now();
        for (i, (track, playlist)) in tracks.iter().zip(&playlists).enumerate() {
            check_media_playlist(track, playlist);
            // The live edge: the newest segment has ended (PDT is the wall clock) and
            // the next one follows within a segment duration and a publishing delay.
            let newest = &playlist.segments[playlist.segments.len() - 1];
            let age = now - (program_date_time(newest) + f64::from(newest.duration));
            assert!(
                (-BOUNDARY_SECS..=SEGMENT_SECS as f64 + PUBLISH_DELAY_SECS).contains(&age),
                "{track}: the newest segment {} ended {age:.3} s before the playlist was read",
                newest.uri
            );
            assert!(
                playlist.media_sequence >= last[i].media_sequence,
                "{track}: MEDIA-SEQUENCE went from {} to {}",
                last[i].media_sequence,
                playlist.media_sequence
            );
            for segment in &playlist.segments {
                let entry = (program_date_time(segment), segment.duration);
                let known = *seen[i]
                    .entry(segment_sequence(&segment.uri))
                    .or_insert(entry);
                assert_eq!(
                    known, entry,
                    "{track}: {} changed between reloads",
                    segment.uri
                );
            }
        }
        let advanced = playlists
            .iter()
            .zip(&start_sequence)
            .all(|(p, start)| p.media_sequence >= start + 3);
        last = playlists;
        if advanced {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "MEDIA-SEQUENCE did not advance by 3 within 4 segment durations: {start_sequence:?} -> {:?}",
            last.iter().map(|p| p.media_sequence).collect::<Vec<_>>()
        );
        headend.assert_running();
        std::thread::sleep(Duration::from_millis(250));
    }

    // Across all reloads: consecutive numbers, each starting where the last ended.
    for (track, segments) in tracks.iter().zip(&seen) {
        let numbers: Vec<u64> = segments.keys().copied().collect();
        let expected: Vec<u64> = (numbers[0]..numbers[0] + numbers.len() as u64).collect();
        assert_eq!(numbers, expected, "{track}: segment numbers seen");
        assert!(numbers.len() >= WINDOW + 3, "{track}: saw {numbers:?}");
        for ((seq, (pdt, extinf)), (_, (next_pdt, _))) in
            segments.iter().zip(segments.iter().skip(1))
        {
            assert_near(
                &format!("{track}: PDT after {seq}.m4s"),
                *next_pdt,
                pdt + f64::from(*extinf),
                0.050,
            );
        }
    }
}

/// RFC 8216 6.2.2: a segment removed from the playlist MUST remain available for its
/// own duration plus that of the longest playlist that listed it: here WINDOW + 1
/// segment durations, so the WINDOW + 1 segments that left the playlist last are all
/// still served.
#[test]
fn segments_stay_available_after_leaving_the_playlist() {
    let headend = start();
    let segment = Duration::from_secs(SEGMENT_SECS);
    let beyond = WINDOW as u64 + 1;
    for track in tracks() {
        // The first number once the window is full is the stream's first segment (or
        // later); wait until `beyond` segments have left after it.
        let first = headend
            .wait_until(STARTUP + segment * WINDOW as u32, || {
                let playlist = fetch_media(&headend, track);
                (playlist.segments.len() == WINDOW).then_some(playlist.media_sequence)
            })
            .unwrap_or_else(|| headend.fail(&format!("{track}: the window never filled")));
        // Retried if the window moves while the segments are asked for.
        let answers = headend.wait_until(segment * (beyond as u32 + 2), || {
            let oldest = fetch_media(&headend, track).media_sequence;
            if oldest < first + beyond {
                return None;
            }
            let statuses: Vec<(u64, u16)> = (oldest - beyond..oldest)
                .map(|seq| {
                    let response = headend.get(&path(&format!("{track}/{seq}.m4s")));
                    (seq, response.status)
                })
                .collect();
            (fetch_media(&headend, track).media_sequence == oldest).then_some((oldest, statuses))
        });
        let (oldest, statuses) =
            answers.unwrap_or_else(|| headend.fail(&format!("{track}: the window did not slide")));
        let expected: Vec<(u64, u16)> = (oldest - beyond..oldest).map(|seq| (seq, 200)).collect();
        assert_eq!(
            statuses, expected,
            "{track}: the {beyond} segments before MEDIA-SEQUENCE {oldest}"
        );
    }
}

#[test]
fn ffmpeg_reads_the_live_stream() {
    let headend = start();
    let url = headend.url(&path("master.m3u8"));
    let output = run_with_timeout(
        Command::new("ffmpeg").args([
            "-nostdin",
            "-v",
            "repeat+warning",
            "-nostats",
            "-progress",
            "pipe:1",
            "-i",
            &url,
            // Every rendition and the audio, not only the one ffmpeg would pick.
            "-map",
            "0",
            "-t",
            "6",
            "-f",
            "null",
            "-",
        ]),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|| headend.fail("ffmpeg did not finish within 60 s"));
    // FFmpeg 5.1's HLS demuxer opens every fMP4 segment behind the init segment and
    // warns about the repeated moov each time; anything else is a finding. (`repeat`
    // keeps ffmpeg from folding repeats into "Last message repeated n times".)
    let stderr: Vec<String> = String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("Found duplicated MOOV Atom"))
        .map(str::to_owned)
        .collect();
    let stderr = stderr.join("\n");
    assert!(
        output.status.success() && stderr.is_empty(),
        "ffmpeg {}:\n{stderr}",
        output.status
    );
    // The last `-progress` block: what ffmpeg decoded and wrote.
    let progress = String::from_utf8_lossy(&output.stdout);
    let last = |key: &str| -> f64 {
        progress
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in ffmpeg's progress:\n{progress}"))
    };
    assert_near(
        "ffmpeg output seconds",
        last("out_time_us") / 1e6,
        6.0,
        2.0 * FRAME_SECS,
    );
    assert_near(
        "ffmpeg video frames",
        last("frame"),
        6.0 * f64::from(FPS),
        2.0,
    );
}

#[test]
fn unknown_and_expired_urls_are_404() {
    let headend = start();
    let master = headend.get(&path("master.m3u8"));
    assert_eq!(master.status, 200);
    assert_eq!(
        master.header("content-type"),
        Some(PLAYLIST_TYPE),
        "master Content-Type"
    );

    let track = LADDER[0].name;
    let playlist_response = headend.get(&path(&format!("{track}/index.m3u8")));
    assert_eq!(playlist_response.status, 200);
    assert_eq!(
        playlist_response.header("content-type"),
        Some(PLAYLIST_TYPE)
    );
    let playlist = parse_media(&playlist_response.body);
    // A live playlist cached longer than half a target duration makes players behind
    // the cache fall behind the live edge.
    let cache_control = playlist_response.header("cache-control").unwrap_or("");
    let max_age: u64 = cache_control
        .strip_prefix("max-age=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("playlist Cache-Control {cache_control:?}"));
    assert!(
        max_age * 2 <= playlist.target_duration,
        "playlist max-age {max_age} with TARGETDURATION {}",
        playlist.target_duration
    );

    let newest = playlist.media_sequence + playlist.segments.len() as u64 - 1;
    for (url, content_type) in [
        (path(&format!("{track}/{newest}.m4s")), "video/iso.segment"),
        (path(&format!("{track}/init-0.mp4")), "video/mp4"),
        (path("audio/init-0.mp4"), "audio/mp4"),
    ] {
        let response = headend.get(&url);
        assert_eq!(response.status, 200, "{url}");
        assert_eq!(response.header("content-type"), Some(content_type), "{url}");
        let cache_control = response.header("cache-control").unwrap_or("");
        assert!(
            cache_control.contains("immutable"),
            "{url}: Cache-Control {cache_control:?}"
        );
    }

    let far_below = playlist.media_sequence - 1000;
    let ahead = newest + 1000;
    for url in [
        "/live/nope/master.m3u8".to_owned(),
        format!("/live/nope/{track}/index.m3u8"),
        format!("/live/nope/{track}/{newest}.m4s"),
        path("1080p/index.m3u8"),
        path("1080p/init.mp4"),
        path(&format!("1080p/{newest}.m4s")),
        path(&format!("{track}/{far_below}.m4s")),
        path(&format!("audio/{far_below}.m4s")),
        path(&format!("{track}/{ahead}.m4s")),
    ] {
        let response = headend.get(&url);
        assert_eq!(response.status, 404, "{url}: {}", response.text());
        // A cached 404 for a segment just ahead of the live edge would hide it once
        // it exists.
        assert_eq!(response.header("cache-control"), Some("no-store"), "{url}");
    }
}

/// SIGTERM (a service manager) and SIGINT (Ctrl-C) both stop the channels and end
/// the process with success.
#[test]
fn sigterm_and_sigint_stop_a_running_headend_cleanly() {
    for signal in ["TERM", "INT"] {
        let headend = start();
        let status = headend
            .stop_with(signal, SHUTDOWN_TIMEOUT)
            .unwrap_or_else(|| headend.fail(&format!("still running after SIG{signal}; killed")));
        assert!(
            status.success(),
            "exit status {status} after SIG{signal}\n{}",
            headend.log_tail(20)
        );
        assert!(
            headend.log_tail(20).contains("Channel stopped."),
            "no channel stopped after SIG{signal}:\n{}",
            headend.log_tail(20)
        );
    }
}

/// `max_framerate` caps a rendition below the source's rate: a 25 fps source gives a
/// 15 fps rendition, with evenly spaced frames and a keyframe first in each segment.
#[test]
fn max_framerate_caps_a_rendition() {
    const CAPPED: u32 = 15;
    let catalog = format!(
        "{X264_ULTRAFAST}\
ladders:
  capped:
    segment_duration: {SEGMENT_SECS}
    gop: {GOP_SECS}
    window: {WINDOW}
    renditions:
      - {{ name: full, width: 320, height: 180, bitrate: 300, profile: main, max_framerate: {FPS} }}
      - {{ name: low, width: 160, height: 90, bitrate: 100, profile: main, max_framerate: {CAPPED} }}
    audio: {{ codec: aac, bitrate: 64, channels: 2 }}
channels:
  - {{ id: {CHANNEL}, number: 1, name: One, group: Test, source: {{ uri: \"test://\" }}, ladder: capped }}
"
    );
    let headend = Headend::start(&catalog);
    // Two segments in the low rendition: the second is whole.
    let playlist = headend
        .wait_until(STARTUP, || {
            let response = headend.get(&path("low/index.m3u8"));
            let playlist = (response.status == 200).then(|| parse_media(&response.body))?;
            (playlist.segments.len() >= 2).then_some(playlist)
        })
        .unwrap_or_else(|| headend.fail("the capped rendition made no two segments"));
    let master = parse_master(&headend.get_ok(&path("master.m3u8")));
    let rates: Vec<(String, Option<f64>)> = master
        .variants
        .iter()
        .map(|v| (v.uri.clone(), v.frame_rate))
        .collect();
    assert_eq!(
        rates,
        [
            ("full/index.m3u8".to_owned(), Some(f64::from(FPS))),
            ("low/index.m3u8".to_owned(), Some(f64::from(CAPPED)))
        ],
        "FRAME-RATE"
    );

    let segment = &playlist.segments[1];
    let init = headend.get_ok(&path("low/init-0.mp4"));
    let media = headend.get_ok(&path(&format!("low/{}", segment.uri)));
    let file = headend.dir().write("low.mp4", &[&init, &media]);
    let probe = probe_video(&file);
    let extinf = f64::from(segment.duration);
    assert!(
        (probe.frames.len() as f64 - extinf * f64::from(CAPPED)).abs() <= 1.0,
        "{} frames in {extinf} s at {CAPPED} fps",
        probe.frames.len()
    );
    assert!(
        probe.frames.first().is_some_and(|f| f.key_frame),
        "the segment does not start with a keyframe"
    );
    let pts: Vec<f64> = probe.frames.iter().map(|f| f.pts).collect();
    assert_contiguous("low", &pts, 1.0 / f64::from(CAPPED));
}
