//! The VOD transcoder on real files: every track's fragments, read back with the MP4
//! box reader and decoded with ffprobe.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::{probe_video, run_with_timeout, TempDir, X264_ULTRAFAST};
use headend::catalog::Catalog;
use headend::packager::mp4;
use headend::packager::TrackMedia;
use headend::pipeline::transcode::{track_names, transcode, MediaSink};
use headend::pipeline::PipelineError;

const FPS: u32 = 25;
const CLIP_SECONDS: f64 = 5.0;
const GOP_SECONDS: f64 = 1.0;

#[derive(Default)]
struct Collected {
    inits: Vec<Option<(Bytes, TrackMedia)>>,
    fragments: Vec<Vec<(Bytes, Duration, Duration)>>,
}

impl MediaSink for Collected {
    fn init(&mut self, track: usize, init: Bytes, media: TrackMedia) {
        self.inits[track] = Some((init, media));
    }

    fn fragment(&mut self, track: usize, data: Bytes, start: Duration, duration: Duration) {
        self.fragments[track].push((data, start, duration));
    }
}

fn catalog(dir: &TempDir) -> Catalog {
    let yaml = format!(
        "{X264_ULTRAFAST}\
ladders:
  vod:
    segment_duration: 2
    gop: {GOP_SECONDS}
    window: 3
    renditions:
      - {{ name: 360p, width: 640, height: 360, bitrate: 600, profile: main, max_framerate: {FPS} }}
      - {{ name: 180p, width: 320, height: 180, bitrate: 200, profile: baseline, max_framerate: {FPS} }}
    audio: {{ codec: aac, bitrate: 64, channels: 2 }}
"
    );
    let path = dir.path().join("ladders.yaml");
    std::fs::write(&path, yaml).expect("write the catalog");
    Catalog::load(&[path]).expect("the test catalog loads")
}

fn make_clip(dir: &TempDir, name: &str, audio: bool) -> PathBuf {
    let path = dir.path().join(name);
    let mut ffmpeg = Command::new("ffmpeg");
    ffmpeg
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=480x270:rate={FPS}"));
    if audio {
        ffmpeg.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]);
    }
    ffmpeg
        .args(["-t", &CLIP_SECONDS.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac"])
        .arg(&path);
    let output = run_with_timeout(&mut ffmpeg, Duration::from_secs(60)).expect("ffmpeg timed out");
    assert!(
        output.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    path
}

fn run(catalog: &Catalog, file: &Path) -> Result<(Collected, Duration, bool), PipelineError> {
    headend::pipeline::init().expect("GStreamer");
    let ladder = &catalog.ladders["vod"];
    let encoder = catalog.encoder(ladder);
    let tracks = track_names(ladder).len();
    let sink = Collected {
        inits: vec![None; tracks],
        fragments: vec![Vec::new(); tracks],
    };
    let mut last = None;
    let (sink, report) = transcode(file, ladder, encoder, sink, |p| last = Some(p))?;
    assert!(last.is_some(), "no progress was reported");
    Ok((sink, report.media_duration, report.has_audio))
}

#[test]
fn a_file_becomes_aligned_gop_fragments_in_every_track() {
    let dir = TempDir::new("transcode");
    let catalog = catalog(&dir);
    let clip = make_clip(&dir, "clip.mp4", true);
    let (sink, duration, has_audio) = run(&catalog, &clip).expect("transcode");
    assert!(has_audio);
    assert!(
        (duration.as_secs_f64() - CLIP_SECONDS).abs() < 0.1,
        "duration {duration:?}"
    );
    let frame = 1.0 / f64::from(FPS);
    for (track, name) in ["360p", "180p", "audio"].iter().enumerate() {
        let (init, media) = sink.inits[track]
            .clone()
            .unwrap_or_else(|| panic!("{name}: no init segment"));
        let info = mp4::parse_init(&init).expect("init parses");
        let fragments = &sink.fragments[track];
        assert!(!fragments.is_empty(), "{name}: no fragments");
        // Fragments abut and cover the clip.
        let mut expected_start = 0.0;
        for (data, start, length) in fragments {
            let start = start.as_secs_f64();
            assert!(
                (start - expected_start).abs() < frame,
                "{name}: a fragment starts at {start}, the one before ended at {expected_start}"
            );
            expected_start = start + length.as_secs_f64();
            let parsed = mp4::parse_fragments(data).expect("fragment parses");
            let media_seconds: f64 =
                parsed.iter().map(|f| f.duration as f64).sum::<f64>() / f64::from(info.timescale);
            assert!(
                (media_seconds - length.as_secs_f64()).abs() < 0.05,
                "{name}: {media_seconds} s of samples in a {length:?} fragment"
            );
            if let TrackMedia::Video { .. } = media {
                // One GOP each, on a GOP multiple of file time, starting with a keyframe.
                let gops = start / GOP_SECONDS;
                assert!(
                    (gops - gops.round()).abs() * GOP_SECONDS < frame / 2.0,
                    "{name}: a fragment starts at {start}, off the GOP grid"
                );
                assert!(parsed[0].first_sample_is_sync, "{name}: at {start}");
            }
        }
        assert!(
            (expected_start - CLIP_SECONDS).abs() < 0.05,
            "{name}: fragments end at {expected_start}"
        );
        // Every segment boundary (2 s) is a fragment boundary in every track, to within
        // one AAC frame (23 ms at 44.1 kHz) for the audio.
        let ends: Vec<f64> = fragments
            .iter()
            .map(|(_, start, length)| (*start + *length).as_secs_f64())
            .collect();
        for boundary in [2.0, 4.0] {
            assert!(
                ends.iter().any(|end| (end - boundary).abs() < 0.024),
                "{name}: no fragment ends at {boundary} s: {ends:?}"
            );
        }
    }

    // The lower rendition decodes, at its size, with a keyframe every GOP.
    let (init, _) = sink.inits[1].clone().unwrap_or_else(|| panic!("no init"));
    let mut parts: Vec<&[u8]> = vec![&init];
    parts.extend(sink.fragments[1].iter().map(|(data, _, _)| data.as_ref()));
    let file = dir.write("180p.mp4", &parts);
    let probe = probe_video(&file);
    assert_eq!((probe.width, probe.height), (320, 180));
    assert_eq!(probe.frames.len() as f64, CLIP_SECONDS * f64::from(FPS));
    let keyframes: Vec<f64> = probe
        .frames
        .iter()
        .filter(|f| f.key_frame)
        .map(|f| f.pts)
        .collect();
    let expected: Vec<f64> = (0..CLIP_SECONDS as u32).map(f64::from).collect();
    assert_eq!(
        keyframes.len(),
        expected.len(),
        "keyframes at {keyframes:?}"
    );
    for (at, want) in keyframes.iter().zip(&expected) {
        assert!(
            (at - want).abs() < frame / 2.0,
            "keyframes at {keyframes:?}"
        );
    }
}

#[test]
fn a_file_without_audio_makes_no_audio_track() {
    let dir = TempDir::new("transcode-silent");
    let catalog = catalog(&dir);
    let clip = make_clip(&dir, "silent.mp4", false);
    let (sink, _, has_audio) = run(&catalog, &clip).expect("transcode");
    assert!(!has_audio);
    assert!(sink.fragments[2].is_empty() && sink.inits[2].is_none());
    assert!(!sink.fragments[0].is_empty());
}

#[test]
fn a_corrupt_or_missing_file_is_a_source_error() {
    let dir = TempDir::new("transcode-corrupt");
    let catalog = catalog(&dir);
    let corrupt = dir.path().join("corrupt.mp4");
    std::fs::write(&corrupt, b"this is not a video file at all").expect("write");
    for file in [corrupt, dir.path().join("missing.mp4")] {
        match run(&catalog, &file) {
            Err(PipelineError::Source(message)) => assert!(
                message.contains(&*file.to_string_lossy()),
                "the error does not name the file: {message}"
            ),
            Err(other) => panic!("{}: not a source error: {other}", file.display()),
            Ok(_) => panic!("{}: transcoded", file.display()),
        }
    }
}
