//! A `file://` source plays as a live channel: the file loops, and timestamps stay
//! continuous across each loop (no discontinuity, no gap, no jump back).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{
    parse_media, probe_audio, probe_video, program_date_time, run_with_timeout, segment_sequence,
    Headend, TempDir, X264_ULTRAFAST,
};

/// Short, so the test crosses two loop points quickly.
const CLIP_SECONDS: u32 = 4;
const FPS: f64 = 25.0;
/// Segments listed at once: 10 s of a 4 s clip spans two loop points.
const WINDOW: usize = 10;

fn make_clip(dir: &TempDir) -> std::path::PathBuf {
    let path = dir.path().join("clip.mp4");
    let mut ffmpeg = Command::new("ffmpeg");
    ffmpeg
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=320x240:rate={FPS}"))
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .arg("-t")
        .arg(CLIP_SECONDS.to_string())
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
        ])
        .arg(&path);
    let output = run_with_timeout(&mut ffmpeg, Duration::from_secs(60)).expect("ffmpeg timed out");
    assert!(
        output.status.success(),
        "ffmpeg could not make the clip: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    path
}

#[test]
fn looped_file_has_continuous_timestamps() {
    let media = TempDir::new("clip");
    let clip = make_clip(&media);
    let catalog = format!(
        "{X264_ULTRAFAST}\
ladders:
  small:
    segment_duration: 1
    gop: 1
    window: {WINDOW}
    renditions:
      - {{ name: 240p, width: 320, height: 240, bitrate: 400, profile: main, max_framerate: 25 }}
    audio: {{ codec: aac, bitrate: 64, channels: 2 }}
channels:
  - {{ id: clip, number: 1, name: Clip, group: Test, source: {{ uri: \"file://{}\" }}, ladder: small }}
",
        clip.display()
    );
    let headend = Headend::start(&catalog);

    // Wait until the window is full: 10 s of content from a 4 s file.
    let playlist = headend
        .wait_until(Duration::from_secs(40), || {
            let response = headend.get("/live/clip/240p/index.m3u8");
            if response.status != 200 {
                return None;
            }
            let playlist = parse_media(&response.body);
            (playlist.segments.len() == WINDOW).then_some(playlist)
        })
        .unwrap_or_else(|| headend.fail("the window never filled"));

    let sequences: Vec<u64> = playlist
        .segments
        .iter()
        .map(|s| segment_sequence(&s.uri))
        .collect();
    let listed_seconds: f64 = playlist
        .segments
        .iter()
        .map(|s| f64::from(s.duration))
        .sum();
    for pair in playlist.segments.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(
            !b.discontinuity,
            "a loop must not be a discontinuity: {}",
            b.uri
        );
        assert_eq!(segment_sequence(&b.uri), segment_sequence(&a.uri) + 1);
        let gap = program_date_time(b) - (program_date_time(a) + f64::from(a.duration));
        assert!(
            gap.abs() < 0.05,
            "PDT jumps by {gap:.3} s between {} and {}",
            a.uri,
            b.uri
        );
    }
    let span = program_date_time(playlist.segments.last().unwrap())
        - program_date_time(&playlist.segments[0]);
    assert!(
        span > 2.0 * f64::from(CLIP_SECONDS),
        "the window spans only {span:.1} s"
    );

    // Decode init + every listed segment as one stream: timestamps must rise by one
    // frame at a time across both loop points, and every segment starts on a keyframe.
    let init = headend.get_ok("/live/clip/240p/init.mp4");
    let audio_init = headend.get_ok("/live/clip/audio/init.mp4");
    let mut video = vec![init.clone()];
    let mut audio = vec![audio_init];
    for sequence in &sequences {
        let segment = headend.get_ok(&format!("/live/clip/240p/{sequence}.m4s"));
        let single = media.write(&format!("v{sequence}.mp4"), &[&init, &segment]);
        let probe = probe_video(&single);
        assert!(
            probe.frames.first().is_some_and(|f| f.key_frame),
            "segment {sequence} does not start with a keyframe"
        );
        video.push(segment);
        audio.push(headend.get_ok(&format!("/live/clip/audio/{sequence}.m4s")));
    }
    let video_file = media.write(
        "all.mp4",
        &video.iter().map(Vec::as_slice).collect::<Vec<_>>(),
    );
    let probe = probe_video(&video_file);
    assert_eq!((probe.width, probe.height), (320, 240));
    let frame = 1.0 / FPS;
    // One frame of slack per loop point: the overlap there is a frame shorter.
    let expected = listed_seconds * FPS;
    assert!(
        (probe.frames.len() as f64 - expected).abs() <= 3.0,
        "decoded {} frames from segments listed as {listed_seconds:.3} s",
        probe.frames.len(),
    );
    // Strictly rising, never more than 1.5 frames apart: no gap and no jump back at a
    // loop point. (At each loop the next frame comes ~11 ms early: qtdemux's
    // accumulated segment base leaves out the AAC priming of the clip.)
    for pair in probe.frames.windows(2) {
        let step = pair[1].pts - pair[0].pts;
        assert!(
            step > 0.0 && step < 1.5 * frame,
            "video timestamps step by {step:.4} s at {:.3} s",
            pair[0].pts
        );
    }
    let audio_file = media.write(
        "all-audio.mp4",
        &audio.iter().map(Vec::as_slice).collect::<Vec<_>>(),
    );
    let probe = probe_audio(&audio_file);
    assert_eq!(probe.codec, "aac");
    for pair in probe.frames.windows(2) {
        let step = pair[1].pts - pair[0].pts;
        let expected = pair[0].samples as f64 / probe.sample_rate as f64;
        assert!(
            step > 0.0 && step < 1.5 * expected,
            "audio timestamps step by {step:.4} s at {:.3} s",
            pair[0].pts
        );
    }
}
