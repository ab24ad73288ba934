//! Live DASH from the real binary: the MPD describes the very segments the HLS
//! playlists list (same numbers, same files, same wall-clock times), and ffmpeg plays
//! it.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{parse_media, program_date_time, segment_sequence, Headend, X264_ULTRAFAST};
use m3u8_rs::MediaPlaylist;

const SEGMENT_SECS: u64 = 2;
const WINDOW: u64 = 4;
const FPS: u32 = 25;
const TRACKS: [&str; 3] = ["360p", "180p", "audio"];
const STARTUP: Duration = Duration::from_secs(30);

fn catalog() -> String {
    format!(
        "{X264_ULTRAFAST}\
ladders:
  t:
    segment_duration: {SEGMENT_SECS}
    gop: 1
    window: {WINDOW}
    renditions:
      - {{ name: 360p, width: 640, height: 360, bitrate: 500, profile: main, max_framerate: {FPS} }}
      - {{ name: 180p, width: 320, height: 180, bitrate: 150, profile: baseline, max_framerate: {FPS} }}
    audio: {{ codec: aac, bitrate: 64, channels: 2, sample_rate: 48000 }}
channels:
  - {{ id: one, number: 1, name: One, group: Test, source: {{ uri: \"test://\" }}, ladder: t }}
"
    )
}

/// xs:duration as the MPD writes it (`PT2S`, `PT1.5S`, `PT1H2M3.5S`), in seconds.
fn xs_duration(text: &str) -> f64 {
    let rest = text
        .strip_prefix("PT")
        .unwrap_or_else(|| panic!("not an xs:duration: {text}"));
    let mut seconds = 0.0;
    let mut number = String::new();
    for c in rest.chars() {
        match c {
            'H' | 'M' | 'S' => {
                let value: f64 = number.parse().unwrap_or_else(|_| panic!("{text}"));
                seconds += value
                    * match c {
                        'H' => 3600.0,
                        'M' => 60.0,
                        _ => 1.0,
                    };
                number.clear();
            }
            _ => number.push(c),
        }
    }
    seconds
}

fn xs_date_time(text: &str) -> f64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("not an xs:dateTime {text}: {e}"))
        .timestamp_micros() as f64
        / 1e6
}

/// One Representation's segments in the MPD: number → (wall-clock start, seconds).
fn timeline(
    mpd: &roxmltree::Document,
    representation: &str,
) -> (String, BTreeMap<u64, (f64, f64)>) {
    let root = mpd.root_element();
    let availability_start = xs_date_time(root.attribute("availabilityStartTime").unwrap());
    let mut segments = BTreeMap::new();
    let mut init = String::new();
    for period in root.children().filter(|n| n.has_tag_name("Period")) {
        let period_start = xs_duration(period.attribute("start").expect("Period@start"));
        let Some(rep) = period.descendants().find(|n| {
            n.has_tag_name("Representation") && n.attribute("id") == Some(representation)
        }) else {
            continue;
        };
        // The template is on the Representation or on its AdaptationSet.
        let template = rep
            .children()
            .find(|n| n.has_tag_name("SegmentTemplate"))
            .or_else(|| {
                rep.parent()?
                    .children()
                    .find(|n| n.has_tag_name("SegmentTemplate"))
            })
            .expect("SegmentTemplate");
        assert_eq!(
            template.attribute("media"),
            Some("$RepresentationID$/$Number$.m4s")
        );
        init = template
            .attribute("initialization")
            .expect("initialization")
            .replace("$RepresentationID$", representation);
        let attr = |name: &str| -> u64 {
            template
                .attribute(name)
                .unwrap_or("0")
                .parse()
                .unwrap_or_else(|_| panic!("SegmentTemplate@{name}"))
        };
        let timescale = attr("timescale") as f64;
        let offset = attr("presentationTimeOffset") as f64;
        let mut number = attr("startNumber");
        let mut t: Option<f64> = None;
        let timeline = template
            .children()
            .find(|n| n.has_tag_name("SegmentTimeline"))
            .expect("SegmentTimeline");
        for s in timeline.children().filter(|n| n.has_tag_name("S")) {
            if let Some(start) = s.attribute("t") {
                t = Some(start.parse().expect("S@t"));
            }
            let d: f64 = s.attribute("d").expect("S@d").parse().expect("S@d");
            let repeat: u64 = s.attribute("r").map_or(0, |r| r.parse().expect("S@r"));
            for _ in 0..=repeat {
                let start = t.expect("the first S has a t");
                let wall = availability_start + period_start + (start - offset) / timescale;
                segments.insert(number, (wall, d / timescale));
                number += 1;
                t = Some(start + d);
            }
        }
    }
    (init, segments)
}

#[test]
fn the_mpd_describes_the_hls_segments() {
    let headend = Headend::start(&catalog());
    // Everything read until one reading agrees with itself: the MPD between two
    // identical readings of the playlists.
    let (playlists, mpd_text) = headend
        .wait_until(STARTUP, || {
            let read = || -> Option<Vec<MediaPlaylist>> {
                TRACKS
                    .iter()
                    .map(|t| {
                        let r = headend.get(&format!("/live/one/{t}/index.m3u8"));
                        (r.status == 200).then(|| parse_media(&r.body))
                    })
                    .collect()
            };
            let before = read()?;
            if before.iter().any(|p| p.segments.len() < 2) {
                return None;
            }
            let mpd = headend.get("/live/one/manifest.mpd");
            if mpd.status != 200 {
                return None;
            }
            assert_eq!(mpd.header("content-type"), Some("application/dash+xml"));
            (read()? == before).then(|| (before, mpd.text()))
        })
        .unwrap_or_else(|| headend.fail("no MPD with two segments in every track"));
    let mpd = roxmltree::Document::parse(&mpd_text)
        .unwrap_or_else(|e| panic!("the MPD is not XML: {e}\n{mpd_text}"));
    let root = mpd.root_element();
    assert_eq!(root.tag_name().name(), "MPD");
    assert_eq!(
        root.tag_name().namespace(),
        Some("urn:mpeg:dash:schema:mpd:2011")
    );
    assert_eq!(root.attribute("type"), Some("dynamic"));
    assert!(root
        .attribute("profiles")
        .is_some_and(|p| p.contains("urn:mpeg:dash:profile:isoff-live:2011")));
    assert_eq!(
        root.attribute("timeShiftBufferDepth").map(xs_duration),
        Some((SEGMENT_SECS * WINDOW) as f64)
    );
    for attribute in [
        "availabilityStartTime",
        "publishTime",
        "minimumUpdatePeriod",
        "suggestedPresentationDelay",
        "minBufferTime",
    ] {
        assert!(root.attribute(attribute).is_some(), "MPD@{attribute}");
    }
    let timing = root
        .children()
        .find(|n| n.has_tag_name("UTCTiming"))
        .expect("UTCTiming");
    let time_url = timing.attribute("value").expect("UTCTiming@value");
    let time = headend.get(time_url);
    assert_eq!(time.status, 200, "{time_url}");
    let served = xs_date_time(time.text().trim());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    assert!(
        (served - now).abs() < 5.0,
        "{time_url} says {served}, now is {now}"
    );

    for (track, playlist) in TRACKS.iter().zip(&playlists) {
        let (init, segments) = timeline(&mpd, track);
        assert_eq!(
            init,
            format!("{track}/init-0.mp4"),
            "{track}: initialization"
        );
        let init_bytes = headend.get_ok(&format!("/live/one/{init}"));
        assert_eq!(
            init_bytes,
            headend.get_ok(&format!("/live/one/{track}/init-0.mp4")),
            "{track}: the init segment"
        );
        // Every HLS segment is in the MPD under the same number, at the same
        // wall-clock time and with the same duration; and the MPD lists no other.
        let listed: Vec<u64> = playlist
            .segments
            .iter()
            .map(|s| segment_sequence(&s.uri))
            .collect();
        assert_eq!(
            segments.keys().copied().collect::<Vec<u64>>(),
            listed,
            "{track}: MPD numbers against HLS sequence numbers"
        );
        for segment in &playlist.segments {
            let number = segment_sequence(&segment.uri);
            let (wall, seconds) = segments[&number];
            let pdt = program_date_time(segment);
            assert!(
                (wall - pdt).abs() < 0.005,
                "{track} {number}: MPD time {wall:.3} against PROGRAM-DATE-TIME {pdt:.3}"
            );
            assert!(
                (seconds - f64::from(segment.duration)).abs() < 0.005,
                "{track} {number}: MPD duration {seconds} against EXTINF {}",
                segment.duration
            );
            // `$Number$` resolves to the HLS segment's file.
            let url = format!("/live/one/{track}/{number}.m4s");
            assert_eq!(
                headend.get_ok(&url),
                headend.get_ok(&format!("/live/one/{track}/{}", segment.uri))
            );
        }
    }
}

/// GStreamer's DASH client (dashdemux) plays the live MPD in real time: video and audio
/// decode with no error or warning, and the video's timestamps rise by one frame at a
/// time. (FFmpeg 5.1's DASH demuxer asks for segments before they exist at the live
/// edge and logs each 404; it reads the static VOD MPDs.)
#[test]
fn gstreamer_plays_the_live_mpd() {
    use gst::prelude::*;
    const FRAMES: usize = 6 * FPS as usize;

    let headend = Headend::start(&catalog());
    headend.wait_for("/live/one/manifest.mpd", STARTUP);
    gst::init().expect("GStreamer");
    let url = headend.url("/live/one/manifest.mpd");
    let pipeline = gst::parse::launch(&format!(
        "uridecodebin uri={url} name=d \
         d. ! queue ! videoconvert ! appsink name=video sync=true max-buffers=1000 \
         d. ! queue ! audioconvert ! fakesink sync=true"
    ))
    .expect("pipeline")
    .downcast::<gst::Pipeline>()
    .expect("a pipeline");
    let appsink = pipeline
        .by_name("video")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .expect("appsink");
    let bus = pipeline.bus().expect("bus");
    pipeline.set_state(gst::State::Playing).expect("PLAYING");
    let mut pts = Vec::new();
    let deadline = std::time::Instant::now() + STARTUP;
    let mut problems = Vec::new();
    while pts.len() < FRAMES && std::time::Instant::now() < deadline {
        if let Some(sample) = appsink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
            if let Some(t) = sample.buffer().and_then(|b| b.pts()) {
                pts.push(t.nseconds() as f64 / 1e9);
            }
        }
        while let Some(message) = bus.pop() {
            match message.view() {
                gst::MessageView::Error(e) => problems.push(format!("error: {}", e.error())),
                gst::MessageView::Warning(w) => problems.push(format!("warning: {}", w.error())),
                gst::MessageView::Eos(_) => problems.push("end of stream".to_owned()),
                _ => {}
            }
        }
        assert!(problems.is_empty(), "dashdemux: {problems:?}");
    }
    let _ = pipeline.set_state(gst::State::Null);
    assert_eq!(
        pts.len(),
        FRAMES,
        "video frames decoded before the deadline"
    );
    for pair in pts.windows(2) {
        let step = pair[1] - pair[0];
        assert!(
            (step - 1.0 / f64::from(FPS)).abs() < 0.002,
            "video timestamps step by {step} at {}",
            pair[0]
        );
    }
}
