//! Supervision end to end: a source that ends on its own is restarted with backoff, and
//! the break is marked in the playlists (EXT-X-DISCONTINUITY and a new init segment)
//! while the media sequence goes on without a hole.

mod common;

use std::time::Duration;

use common::{
    parse_media, probe_audio, probe_video, program_date_time, segment_sequence, Headend,
    X264_ULTRAFAST,
};
use m3u8_rs::MediaPlaylist;

/// The test source ends after this much content (`test://?duration=`).
const SOURCE_SECONDS: u32 = 3;
/// Long enough that the first run's segments are still listed after the restart.
const WINDOW: usize = 12;
const TRACKS: [&str; 2] = ["240p", "audio"];

fn catalog() -> String {
    format!(
        "{X264_ULTRAFAST}\
ladders:
  small:
    segment_duration: 1
    gop: 1
    window: {WINDOW}
    renditions:
      - {{ name: 240p, width: 320, height: 240, bitrate: 300, profile: main, max_framerate: 25 }}
    audio: {{ codec: aac, bitrate: 64, channels: 2 }}
channels:
  - {{ id: ends, number: 1, name: Ends, group: Test, source: {{ uri: \"test://?duration={SOURCE_SECONDS}\" }}, ladder: small }}
"
    )
}

/// Index of the first segment after the restart, once it and one more are listed.
fn restart_index(playlist: &MediaPlaylist) -> Option<usize> {
    let index = playlist.segments.iter().position(|s| s.discontinuity)?;
    (playlist.segments.len() > index + 1).then_some(index)
}

#[test]
fn a_source_that_ends_is_restarted_with_a_discontinuity() {
    let headend = Headend::start(&catalog());
    let fetch = |track: &str| {
        let response = headend.get(&format!("/live/ends/{track}/index.m3u8"));
        (response.status == 200).then(|| parse_media(&response.body))
    };
    // Both tracks past the restart, read until one reading of both agrees.
    let playlists: Vec<MediaPlaylist> = headend
        .wait_until(Duration::from_secs(60), || {
            let playlists: Vec<MediaPlaylist> =
                TRACKS.iter().map(|t| fetch(t)).collect::<Option<_>>()?;
            let at: Vec<u64> = playlists
                .iter()
                .map(|p| restart_index(p).map(|i| p.media_sequence + i as u64))
                .collect::<Option<_>>()?;
            (at.iter().all(|&s| s == at[0])).then_some(playlists)
        })
        .unwrap_or_else(|| headend.fail("no restart was marked in both playlists"));

    let mut restart_sequence = None;
    for (track, playlist) in TRACKS.iter().zip(&playlists) {
        // Sequence numbers are the numbers in the URLs, without a hole at the restart.
        for (i, segment) in playlist.segments.iter().enumerate() {
            assert_eq!(
                segment_sequence(&segment.uri),
                playlist.media_sequence + i as u64,
                "{track}: {} is not at its media sequence number",
                segment.uri
            );
        }
        let index = restart_index(playlist).unwrap_or_default();
        assert!(index > 0, "{track}: the first run made no segment");
        assert_eq!(
            playlist.discontinuity_sequence, 0,
            "{track}: DISCONTINUITY-SEQUENCE while the first run is listed"
        );
        let discontinuities = playlist.segments.iter().filter(|s| s.discontinuity).count();
        assert!(
            discontinuities >= 1,
            "{track}: {discontinuities} discontinuities"
        );
        restart_sequence.get_or_insert(playlist.media_sequence + index as u64);

        // Each run has its own init segment, named where it starts.
        let maps: Vec<(usize, &str)> = playlist
            .segments
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.map.as_ref().map(|m| (i, m.uri.as_str())))
            .collect();
        assert_eq!(maps[0], (0, "init-0.mp4"), "{track}: first EXT-X-MAP");
        assert_eq!(
            maps[1],
            (index, "init-1.mp4"),
            "{track}: EXT-X-MAP at the restart"
        );

        // Real time passed while the channel restarted: the wall clock moves on.
        let (before, after) = (&playlist.segments[index - 1], &playlist.segments[index]);
        let end_before = program_date_time(before) + f64::from(before.duration);
        assert!(
            program_date_time(after) > end_before,
            "{track}: PDT {} after the restart is not after the end of the run before it \
             ({end_before})",
            program_date_time(after)
        );

        // The last segment before the restart decodes with the first init, the first
        // after it with the second, each from a keyframe.
        for (init, segment) in [("init-0.mp4", before), ("init-1.mp4", after)] {
            let init_bytes = headend.get_ok(&format!("/live/ends/{track}/{init}"));
            let media = headend.get_ok(&format!("/live/ends/{track}/{}", segment.uri));
            let file = headend.dir().write(
                &format!("{track}-{init}-{}", segment.uri),
                &[&init_bytes, &media],
            );
            if *track == "audio" {
                let probe = probe_audio(&file);
                assert_eq!(probe.codec, "aac", "{track} {}", segment.uri);
                assert!(
                    !probe.frames.is_empty(),
                    "{track} {}: no audio",
                    segment.uri
                );
            } else {
                let probe = probe_video(&file);
                assert_eq!(
                    (probe.codec.as_str(), probe.width, probe.height),
                    ("h264", 320, 240),
                    "{track} {}",
                    segment.uri
                );
                assert!(
                    probe.frames.first().is_some_and(|f| f.key_frame),
                    "{track} {}: does not start with a keyframe",
                    segment.uri
                );
            }
        }
    }
    let restart_sequence = restart_sequence.unwrap_or_default();

    // DASH: the restart starts a new Period, with the new init segment, whose first
    // number is the HLS sequence number of the first segment after the restart.
    let mpd_text = headend.get_ok("/live/ends/manifest.mpd");
    let mpd_text = String::from_utf8_lossy(&mpd_text);
    let mpd = roxmltree::Document::parse(&mpd_text).expect("the MPD parses");
    let periods: Vec<roxmltree::Node> = mpd
        .root_element()
        .children()
        .filter(|n| n.has_tag_name("Period"))
        .collect();
    assert!(periods.len() >= 2, "{} Periods:\n{mpd_text}", periods.len());
    let restart_period = periods
        .iter()
        .find(|p| p.attribute("id") == Some("1"))
        .unwrap_or_else(|| panic!("no Period for the second run:\n{mpd_text}"));
    for template in restart_period
        .descendants()
        .filter(|n| n.has_tag_name("SegmentTemplate"))
    {
        assert_eq!(
            template.attribute("initialization"),
            Some("$RepresentationID$/init-1.mp4")
        );
        assert_eq!(
            template.attribute("startNumber"),
            Some(restart_sequence.to_string().as_str()),
            "{mpd_text}"
        );
    }
}
