//! VOD end to end: a clip made by ffmpeg is ingested by the real `headend vod ingest`
//! (and by `headend run` in the background), served by the real origin, and read back
//! with ffprobe and ffmpeg: every rendition decodes, the segments add up to the
//! source, every I-frame playlist entry is a keyframe at its byte range, the subtitles
//! are served and listed, the MPD plays in ffmpeg and its URLs resolve. A second
//! ingest of an unchanged source does nothing; a corrupt source fails cleanly.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::tls::TlsServer;
use common::{
    ffprobe, parse_master, parse_media, probe_audio, probe_video, run_with_timeout, Headend,
    TempDir, X264_ULTRAFAST,
};
use headend::catalog::{AssetSource, Catalog, CatalogError};

/// The test clip: 6.4 s at 25 fps (160 frames), so the last 2 s segment is short.
const CLIP_SECONDS: f64 = 6.4;
const FRAME: f64 = 1.0 / 25.0;
/// Two small renditions, 2 s segments of two 1 s GOPs.
const LADDER: &str = r#"ladders:
  small:
    segment_duration: 2
    gop: 1
    renditions:
      - { name: 360p, width: 640, height: 360, bitrate: 800, profile: main, max_framerate: 25 }
      - { name: 180p, width: 320, height: 180, bitrate: 300, profile: baseline, max_framerate: 25 }
    audio: { codec: aac, bitrate: 96, channels: 2 }
"#;
const SUBTITLES_EN: &str =
    "WEBVTT\n\n00:00.500 --> 00:02.000\nHello\n\n00:03.000 --> 00:05.000\nWorld\n";
const SUBTITLES_FR: &str = "\u{feff}WEBVTT\n\n00:00.500 --> 00:02.000\nBonjour\n";
/// How long an ingest of the test clip may take on a loaded 2-core machine; a bound
/// for a broken headend, not a measurement.
const INGEST_TIMEOUT: Duration = Duration::from_secs(180);
const RUN_READY_TIMEOUT: Duration = Duration::from_secs(180);

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

// ---------------------------------------------------------------- fixtures

/// A test card with a tone, made by ffmpeg (H.264 with keyframes every 2 s and AAC).
fn make_clip(path: &Path, seconds: f64) {
    let mut command = Command::new("ffmpeg");
    command.args(["-v", "error", "-y", "-f", "lavfi", "-i"]);
    command.arg("testsrc2=size=640x360:rate=25");
    command.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
    command.args(["-t", &seconds.to_string()]);
    command.args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "50"]);
    command.args([
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        "96k",
        "-shortest",
    ]);
    command.arg(path);
    let output = run_with_timeout(&mut command, Duration::from_secs(60)).expect("ffmpeg finished");
    assert!(
        output.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A poster: one frame of the test card as JPEG.
fn make_poster(path: &Path) {
    let mut command = Command::new("ffmpeg");
    command.args([
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x180",
    ]);
    command.args(["-frames:v", "1"]);
    command.arg(path);
    let output = run_with_timeout(&mut command, Duration::from_secs(30)).expect("ffmpeg finished");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A temp dir holding `clip.mp4`, its subtitles and poster, and `catalog.yaml` listing
/// `clip` (and `extra_assets`, YAML list items).
struct Fixture {
    dir: TempDir,
    catalog: PathBuf,
}

impl Fixture {
    fn new(label: &str, extra_assets: &str) -> Self {
        let dir = TempDir::new(label);
        make_clip(&dir.path().join("clip.mp4"), CLIP_SECONDS);
        make_poster(&dir.path().join("clip.jpg"));
        dir.write("clip.en.vtt", &[SUBTITLES_EN.as_bytes()]);
        dir.write("clip.fr.vtt", &[SUBTITLES_FR.as_bytes()]);
        let catalog = format!(
            "{X264_ULTRAFAST}{LADDER}assets:\n\
             {extra_assets}\
             \x20 - id: clip\n\
             \x20   title: Clip\n\
             \x20   source: clip.mp4\n\
             \x20   ladder: small\n\
             \x20   poster: clip.jpg\n\
             \x20   subtitles:\n\
             \x20     - {{ lang: en, file: clip.en.vtt, name: English }}\n\
             \x20     - {{ lang: fr, file: clip.fr.vtt }}\n"
        );
        let catalog = dir.write("catalog.yaml", &[catalog.as_bytes()]);
        Fixture { dir, catalog }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn vod(&self) -> PathBuf {
        self.data().join("vod")
    }

    /// `headend vod ingest --data DATA [args] CATALOG TARGET`, stdin and stdout not a
    /// terminal.
    fn ingest(&self, args: &[&str], target: &str) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_headend"));
        command
            .args(["vod", "ingest", "--data"])
            .arg(self.data())
            .args(args)
            .arg(&self.catalog)
            .arg(target)
            .env("NO_COLOR", "1");
        run_with_timeout(&mut command, INGEST_TIMEOUT).expect("the ingest finished in time")
    }

    /// As [`ingest`](Self::ingest), run through `launcher` (a program and its first
    /// arguments that execs the rest).
    fn ingest_launched(&self, launcher: &[String], target: &str) -> Output {
        let (program, first) = launcher.split_first().expect("a launcher");
        let mut command = Command::new(program);
        command
            .args(first)
            .arg(env!("CARGO_BIN_EXE_headend"))
            .args(["vod", "ingest", "--data"])
            .arg(self.data())
            .arg(&self.catalog)
            .arg(target)
            .env("NO_COLOR", "1");
        run_with_timeout(&mut command, INGEST_TIMEOUT).expect("the ingest finished in time")
    }

    /// Copies the fixture's clip to `path` (a web server's document root, say).
    fn copy_clip_to(&self, path: &Path) {
        fs::copy(self.dir.path().join("clip.mp4"), path).expect("copy the clip");
    }

    fn ingest_ok(&self, args: &[&str], target: &str) -> String {
        let output = self.ingest(args, target);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "ingest {target} failed ({}):\nstdout: {stdout}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// Every entry of `{data}/vod`, sorted.
    fn library_entries(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.vod())
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

/// Source video duration as ffprobe reads it.
fn video_duration(file: &Path) -> f64 {
    let sections = ffprobe(
        file,
        &["-select_streams", "v:0", "-show_entries", "stream=duration"],
    );
    sections
        .iter()
        .find(|s| s.kind == "stream")
        .expect("a video stream")
        .f64("duration")
}

// ---------------------------------------------------------------- catalog

#[test]
fn shipped_vod_catalog_loads() {
    let catalog = Catalog::load(&[repo("manifests/vod.yaml"), repo("pipelines/ladders.yaml")])
        .unwrap_or_else(|error| panic!("manifests/vod.yaml must load:\n{error}"));
    let ids: Vec<&str> = catalog.assets.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["demo-film"]);
    let film = &catalog.assets[0];
    assert_eq!(film.title, "Demo Film");
    assert_eq!(film.ladder, "demo");
    assert_eq!(
        film.source,
        AssetSource::File(repo("manifests/../var/media/vod-demo.mp4"))
    );
    let subtitles: Vec<(&str, &str)> = film
        .subtitles
        .iter()
        .map(|s| (s.lang.as_str(), s.name.as_str()))
        .collect();
    assert_eq!(subtitles, [("en", "English"), ("fr", "Français")]);
    assert_eq!(
        film.poster,
        Some(repo("manifests/../var/media/vod-demo.jpg"))
    );
}

fn fixture_problems(name: &str) -> Vec<String> {
    let file = repo(&format!("tests/fixtures/catalog/{name}.yaml"));
    match Catalog::load(&[file.clone(), repo("pipelines/ladders.yaml")]) {
        Ok(_) => panic!("{name} must not load"),
        Err(CatalogError::Invalid(problems)) => problems
            .iter()
            .map(|p| {
                assert_eq!(p.file, file);
                format!(
                    "{}:{}: {}",
                    p.line.unwrap_or(0),
                    p.column.unwrap_or(0),
                    p.message
                )
            })
            .collect(),
        Err(error) => panic!("{name}: expected problems, got {error}"),
    }
}

#[test]
fn broken_vod_assets_are_all_reported_with_their_places() {
    let file = repo("tests/fixtures/catalog/vod_problems.yaml");
    assert_eq!(
        fixture_problems("vod_problems"),
        [
            "3:9: asset id `Film` must match ^[a-z0-9][a-z0-9_-]*$ and be at most 64 characters".to_owned(),
            "5:13: unsupported VOD source scheme `ftp`: give a file path, a file:// URL or an http(s):// URL".to_owned(),
            "6:13: unknown ladder `uhd` (defined: bench, default, demo)".to_owned(),
            "8:17: subtitle lang `english` is not a language tag such as `en`, `fra` or `pt-BR`".to_owned(),
            "9:27: subtitle file `film.fr.srt` must be WebVTT (.vtt)".to_owned(),
            format!("14:9: asset id `film` is already used at {}:10:9", file.display()),
            "18:13: poster `poster.gif` must be an image named .jpg, .jpeg, .png, .webp".to_owned(),
        ]
    );
}

#[test]
fn an_unknown_asset_field_is_placed_at_the_field() {
    let problems = fixture_problems("vod_unknown_field");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("6:5: assets[0]: unknown field `subtitle`, expected one of"),
        "{problems:?}"
    );
}

// ---------------------------------------------------------------- ingest and serve

/// One I-frame playlist entry probed on its own: exactly one decoded frame, a
/// keyframe. The range ends with the keyframe, inside its `mdat`, so FFmpeg's mov
/// demuxer says the file is partial; anything else it says is an error.
fn assert_one_keyframe(file: &Path) {
    let mut command = Command::new("ffprobe");
    command
        .args(["-v", "error", "-of", "compact", "-show_entries"])
        .arg("frame=key_frame,pict_type")
        .arg(file);
    let output = run_with_timeout(&mut command, Duration::from_secs(30)).expect("ffprobe");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let unexpected: Vec<&str> = stderr
        .lines()
        .filter(|line| !line.ends_with("partial file"))
        .collect();
    assert!(
        output.status.success() && unexpected.is_empty(),
        "{}: {stderr}",
        file.display()
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let frames: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|l| l.starts_with("frame|"))
        .map(|l| l.split('|').collect())
        .collect();
    assert_eq!(frames.len(), 1, "{}: {stdout}", file.display());
    assert!(
        frames[0].contains(&"key_frame=1") && frames[0].contains(&"pict_type=I"),
        "{}: {stdout}",
        file.display()
    );
}

/// Fetches a track's init segment and every segment of its media playlist, checks
/// the segments' EXTINFs, and writes them joined into one file to probe.
fn fetch_track(headend: &Headend, track: &str, out: &Path) -> (f64, Vec<m3u8_rs::MediaSegment>) {
    let base = format!("/vod/clip/{track}");
    let playlist = parse_media(&headend.get_ok(&format!("{base}/index.m3u8")));
    assert!(playlist.end_list, "{track}: no EXT-X-ENDLIST");
    assert_eq!(
        playlist.playlist_type,
        Some(m3u8_rs::MediaPlaylistType::Vod),
        "{track}"
    );
    let map = playlist.segments[0].map.as_ref().expect("EXT-X-MAP");
    let mut bytes = headend.get_ok(&format!("{base}/{}", map.uri));
    let mut total = 0.0;
    for (i, segment) in playlist.segments.iter().enumerate() {
        assert_eq!(segment.uri, format!("{i}.m4s"), "{track}");
        let response = headend.get(&format!("{base}/{}", segment.uri));
        assert_eq!(response.status, 200, "{track}/{}", segment.uri);
        assert_eq!(response.header("content-type"), Some("video/iso.segment"));
        assert_eq!(
            response.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        bytes.extend(response.body);
        total += f64::from(segment.duration);
    }
    fs::write(out, bytes).expect("writing the track");
    (total, playlist.segments)
}

/// A `Range: bytes=A-B` GET.
fn get_range(url: &str, offset: u64, length: u64) -> Vec<u8> {
    let response = ureq::get(url)
        .set("Range", &format!("bytes={offset}-{}", offset + length - 1))
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(response.status(), 206, "{url}");
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut body).expect("body");
    assert_eq!(body.len() as u64, length, "{url}");
    body
}

#[test]
fn an_ingested_asset_plays_as_hls_and_dash() {
    let fixture = Fixture::new("vod-play", "");
    let stdout = fixture.ingest_ok(&[], "clip");
    assert!(stdout.starts_with("clip: ingested "), "{stdout}");
    assert_eq!(
        stdout.lines().count(),
        1,
        "one line when not on a terminal: {stdout}"
    );
    let source_duration = video_duration(&fixture.dir.path().join("clip.mp4"));

    let catalog = fixture.catalog.clone();
    let data = fixture.data();
    let data_arg = format!("--data={}", data.display());
    let headend = Headend::start_in(fixture.dir, &catalog, &[&data_arg]);
    let dir = headend.dir().path().to_owned();

    // The multivariant playlist: both renditions with audio and subtitles, an I-frame
    // stream each, the subtitle group.
    let master_response = headend.get("/vod/clip/master.m3u8");
    assert_eq!(master_response.status, 200);
    assert_eq!(
        master_response.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(
        master_response.header("cache-control"),
        Some("public, max-age=300")
    );
    let master = parse_master(&master_response.body);
    let (iframe_variants, variants): (Vec<_>, Vec<_>) =
        master.variants.iter().partition(|v| v.is_i_frame);
    let uris: Vec<&str> = variants.iter().map(|v| v.uri.as_str()).collect();
    assert_eq!(uris, ["360p/index.m3u8", "180p/index.m3u8"]);
    for variant in &variants {
        assert_eq!(
            variant.subtitles.as_deref(),
            Some("subs"),
            "{}",
            variant.uri
        );
        assert_eq!(variant.audio.as_deref(), Some("aac"), "{}", variant.uri);
    }
    let uris: Vec<&str> = iframe_variants.iter().map(|v| v.uri.as_str()).collect();
    assert_eq!(uris, ["360p/iframes.m3u8", "180p/iframes.m3u8"]);
    for variant in &iframe_variants {
        assert!(variant.bandwidth > 0);
        assert!(variant.resolution.is_some(), "{}", variant.uri);
        let codecs = variant.codecs.as_deref().unwrap_or_default();
        assert!(
            codecs.starts_with("avc1.") && !codecs.contains(','),
            "{codecs}"
        );
    }
    let subtitles: Vec<(&str, Option<&str>, Option<&str>)> = master
        .alternatives
        .iter()
        .filter(|a| a.media_type == m3u8_rs::AlternativeMediaType::Subtitles)
        .map(|a| (a.name.as_str(), a.language.as_deref(), a.uri.as_deref()))
        .collect();
    assert_eq!(
        subtitles,
        [
            ("English", Some("en"), Some("subs/en.m3u8")),
            ("fr", Some("fr"), Some("subs/fr.m3u8"))
        ]
    );

    // Every video rendition: segments add up to the source within one frame, and
    // init + segments decode to every frame of the source.
    for (track, width) in [("360p", 640), ("180p", 320)] {
        let joined = dir.join(format!("{track}.mp4"));
        let (total, _) = fetch_track(&headend, track, &joined);
        assert!(
            (total - source_duration).abs() <= FRAME,
            "{track}: segments add up to {total} s, the source is {source_duration} s"
        );
        let video = probe_video(&joined);
        assert_eq!(video.width, width, "{track}");
        assert_eq!(video.frames.len(), 160, "{track}: every frame decodes");
        assert!(video.frames[0].key_frame, "{track}");

        // Each I-frame entry, fetched by its byte range with the init segment before
        // it, is one keyframe.
        let list = parse_media(&headend.get_ok(&format!("/vod/clip/{track}/iframes.m3u8")));
        assert!(list.i_frames_only && list.end_list, "{track}");
        assert_eq!(list.segments.len(), 7, "{track}: one per 1 s GOP of 6.4 s");
        let init = headend.get_ok(&format!("/vod/clip/{track}/init.mp4"));
        let mut iframe_total = 0.0;
        for (i, entry) in list.segments.iter().enumerate() {
            let range = entry.byte_range.as_ref().expect("EXT-X-BYTERANGE");
            let offset = range.offset.expect("an offset on every range");
            let url = headend.url(&format!("/vod/clip/{track}/{}", entry.uri));
            let bytes = get_range(&url, offset, range.length);
            let file = dir.join(format!("{track}-iframe-{i}.mp4"));
            fs::write(&file, [init.as_slice(), &bytes].concat()).expect("write");
            assert_one_keyframe(&file);
            iframe_total += f64::from(entry.duration);
        }
        assert!(
            (iframe_total - source_duration).abs() <= FRAME,
            "{track}: I-frames span {iframe_total} s"
        );
    }

    let joined = dir.join("audio.mp4");
    let (total, _) = fetch_track(&headend, "audio", &joined);
    let audio = probe_audio(&joined);
    assert_eq!((audio.codec.as_str(), audio.channels), ("aac", 2));
    assert!(
        (audio.duration() - total).abs() < 0.05,
        "audio decodes to {} s, its playlist says {total} s",
        audio.duration()
    );

    // Subtitles: the files as given, as text/vtt, each in a playlist of its own.
    for (lang, content) in [("en", SUBTITLES_EN), ("fr", SUBTITLES_FR)] {
        let response = headend.get(&format!("/vod/clip/subs/{lang}.vtt"));
        assert_eq!(response.status, 200, "{lang}");
        assert_eq!(
            response.header("content-type"),
            Some("text/vtt; charset=utf-8")
        );
        assert_eq!(response.text(), content);
        let list = parse_media(&headend.get_ok(&format!("/vod/clip/subs/{lang}.m3u8")));
        let uris: Vec<&str> = list.segments.iter().map(|s| s.uri.as_str()).collect();
        assert_eq!(uris, [format!("{lang}.vtt")]);
        assert!(list.end_list);
    }
    let poster = headend.get("/vod/clip/poster.jpg");
    assert_eq!(poster.status, 200);
    assert_eq!(poster.header("content-type"), Some("image/jpeg"));
    assert!(poster.body.starts_with(&[0xff, 0xd8]), "a JPEG");

    // DASH: the MPD is XML, static, as long as the asset, and every URL it makes
    // resolves.
    let mpd_response = headend.get("/vod/clip/manifest.mpd");
    assert_eq!(mpd_response.status, 200);
    assert_eq!(
        mpd_response.header("content-type"),
        Some("application/dash+xml")
    );
    let text = mpd_response.text();
    let urls = mpd_urls(&text);
    assert_eq!(
        urls.iter().filter(|u| u.ends_with("init.mp4")).count(),
        3,
        "{urls:?}"
    );
    assert!(urls.contains(&"subs/en.vtt".to_owned()), "{urls:?}");
    for url in &urls {
        let response = headend.get(&format!("/vod/clip/{url}"));
        assert_eq!(response.status, 200, "{url} from the MPD");
    }
    // ffmpeg plays the whole MPD over HTTP, every video and audio Representation,
    // without an error (its DASH demuxer lists the WebVTT set as a stream it cannot
    // decode, so that one is left out).
    let mut command = Command::new("ffmpeg");
    command
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(headend.url("/vod/clip/manifest.mpd"))
        .args(["-map", "0:v", "-map", "0:a", "-f", "null", "-"]);
    let output = run_with_timeout(&mut command, Duration::from_secs(120)).expect("ffmpeg");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "ffmpeg on the MPD ({}):\n{stderr}",
        output.status
    );
}

/// Every URL an MPD makes, relative to it: each Representation's init segment and
/// its `$Number$` segments from the `SegmentTimeline`, and each `BaseURL`. Also
/// checks the MPD is static with a duration.
fn mpd_urls(text: &str) -> Vec<String> {
    let document = roxmltree::Document::parse(text)
        .unwrap_or_else(|e| panic!("the MPD is not XML ({e}):\n{text}"));
    let mpd = document.root_element();
    assert_eq!(mpd.tag_name().name(), "MPD");
    assert_eq!(mpd.attribute("type"), Some("static"), "{text}");
    let duration = mpd
        .attribute("mediaPresentationDuration")
        .and_then(|d| d.strip_prefix("PT")?.strip_suffix('S')?.parse::<f64>().ok())
        .expect("mediaPresentationDuration in seconds");
    assert!((duration - CLIP_SECONDS).abs() < 0.1, "{duration}");
    let mut urls = Vec::new();
    for representation in mpd
        .descendants()
        .filter(|n| n.has_tag_name("Representation"))
    {
        let id = representation.attribute("id").expect("Representation@id");
        if let Some(base) = representation
            .children()
            .find(|n| n.has_tag_name("BaseURL"))
        {
            urls.push(base.text().unwrap_or_default().to_owned());
            continue;
        }
        let template = representation
            .children()
            .find(|n| n.has_tag_name("SegmentTemplate"))
            .expect("a SegmentTemplate");
        let fill = |t: &str, number: u64| {
            t.replace("$RepresentationID$", id)
                .replace("$Number$", &number.to_string())
        };
        urls.push(fill(template.attribute("initialization").expect("init"), 0));
        let media = template.attribute("media").expect("media");
        let mut number: u64 = template
            .attribute("startNumber")
            .map_or(1, |n| n.parse().expect("startNumber"));
        let timeline = template
            .children()
            .find(|n| n.has_tag_name("SegmentTimeline"))
            .expect("a SegmentTimeline");
        for s in timeline.children().filter(|n| n.has_tag_name("S")) {
            let repeat: u64 = s.attribute("r").map_or(0, |r| r.parse().expect("S@r"));
            for _ in 0..=repeat {
                urls.push(fill(media, number));
                number += 1;
            }
        }
    }
    urls
}

#[test]
fn a_second_ingest_of_an_unchanged_source_does_no_work() {
    let fixture = Fixture::new("vod-again", "");
    let first = fixture.ingest_ok(&[], "clip");
    assert!(first.starts_with("clip: ingested "), "{first}");
    let link = fixture.vod().join("clip");
    let version = fs::read_link(&link).expect("the asset is a link to its version");
    let record = fixture.vod().join(&version).join("asset.json");
    let before = fs::metadata(&record).expect("asset.json");

    let second = fixture.ingest_ok(&[], "clip");
    assert!(
        second.starts_with("clip: up to date (fingerprint "),
        "{second}"
    );
    assert_eq!(fs::read_link(&link).expect("link"), version);
    let after = fs::metadata(&record).expect("asset.json");
    assert_eq!(
        (after.ino(), after.mtime(), after.mtime_nsec()),
        (before.ino(), before.mtime(), before.mtime_nsec()),
        "asset.json was not rewritten"
    );
    assert_eq!(
        fixture.library_entries(),
        ["clip".to_owned(), version.to_string_lossy().into_owned()]
    );

    // A changed subtitle file is a change: a new version is published.
    fs::write(
        fixture.dir.path().join("clip.fr.vtt"),
        "WEBVTT\n\n00:00.500 --> 00:02.000\nSalut\n",
    )
    .expect("write");
    let third = fixture.ingest_ok(&["--quiet"], "clip");
    assert_eq!(third, "", "--quiet prints nothing");
    let newer = fs::read_link(&link).expect("link");
    assert_ne!(newer, version);
    let vtt = fs::read_to_string(fixture.vod().join("clip/subs/fr.vtt")).expect("fr.vtt");
    assert!(vtt.contains("Salut"), "{vtt}");
}

#[test]
fn a_corrupt_or_missing_source_fails_and_leaves_nothing() {
    let extra = "  - { id: broken, title: Broken, source: broken.mp4, ladder: small }\n\
                 \x20 - { id: missing, title: Missing, source: missing.mp4, ladder: small }\n";
    let fixture = Fixture::new("vod-corrupt", extra);
    // The start of a real MP4 and then garbage: it probes as MP4 and fails to decode.
    let clip = fs::read(fixture.dir.path().join("clip.mp4")).expect("clip");
    let mut broken = clip[..64.min(clip.len())].to_vec();
    broken.extend((0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    fixture.dir.write("broken.mp4", &[&broken]);

    let output = fixture.ingest(&[], "broken");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "a corrupt source must fail:\n{stderr}"
    );
    let source = fixture.dir.path().join("broken.mp4");
    let error_line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"));
    assert!(
        error_line.contains("asset `broken`") && error_line.contains(&source.display().to_string()),
        "the error names the asset and the file: {error_line}"
    );
    assert_eq!(
        fixture.library_entries(),
        Vec::<String>::new(),
        "nothing left behind"
    );

    let output = fixture.ingest(&[], "missing");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    let missing = fixture.dir.path().join("missing.mp4");
    assert!(
        stderr.contains(&format!(
            "error: asset `missing`: cannot read source {}: No such file or directory",
            missing.display()
        )),
        "{stderr}"
    );
    assert_eq!(fixture.library_entries(), Vec::<String>::new());

    // `headend run` ingests in the background: the broken and missing assets fail,
    // are logged, and the good one after them is served.
    let catalog = fixture.catalog.clone();
    let data = fixture.data();
    let data_arg = format!("--data={}", data.display());
    let headend = Headend::start_in(fixture.dir, &catalog, &[&data_arg]);
    headend.wait_for("/vod/clip/master.m3u8", RUN_READY_TIMEOUT);
    assert_eq!(headend.get("/vod/broken/master.m3u8").status, 404);
    let log = headend.log_tail(200);
    assert!(
        log.contains("VOD ingest failed.") && log.contains("asset=broken"),
        "{log}"
    );
    assert!(
        log.contains("VOD asset ready.") && log.contains("asset=clip"),
        "{log}"
    );
    let mut entries: Vec<String> = fs::read_dir(data.join("vod"))
        .expect("the library")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    entries.sort();
    assert_eq!(
        entries.len(),
        2,
        "the clip's link and version only: {entries:?}"
    );
    assert_eq!(entries[0], "clip");
}

#[test]
fn a_file_given_by_path_is_ingested_under_its_name() {
    let fixture = Fixture::new("vod-path", "");
    let path = fixture.dir.path().join("My Clip.mp4");
    fixture.copy_clip_to(&path);
    let output = fixture.ingest_ok(&["--ladder", "small"], &path.display().to_string());
    assert!(output.starts_with("my-clip: ingested "), "{output}");
    let master = fs::read_to_string(fixture.vod().join("my-clip/master.m3u8")).expect("master");
    assert!(master.contains("360p/index.m3u8"), "{master}");
    assert!(!master.contains("SUBTITLES"), "{master}");

    let output = fixture.ingest(&[], "no-such-asset");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("`no-such-asset` is neither an asset of the catalog"),
        "{stderr}"
    );
}

/// An interlaced source (a 25i broadcast-style clip: 50 fields a second, top field
/// first, coded as interlaced H.264) comes out of the ladder progressive, one picture
/// per frame: no rendition is coded interlaced or carries interlaced frames.
#[test]
fn an_interlaced_source_is_ingested_progressive() {
    let fixture = Fixture::new("vod-interlaced", "");
    let source = fixture.dir.path().join("interlaced.mp4");
    let mut command = Command::new("ffmpeg");
    command.args(["-v", "error", "-y", "-f", "lavfi", "-i"]);
    command.arg("testsrc2=size=640x360:rate=50");
    command.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
    command.args(["-t", "4", "-vf", "tinterlace=interleave_top,setfield=tff"]);
    command.args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "25"]);
    command.args(["-flags", "+ilme+ildct", "-x264-params", "tff=1"]);
    command.args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"]);
    command.arg(&source);
    let output = run_with_timeout(&mut command, Duration::from_secs(60)).expect("ffmpeg finished");
    assert!(
        output.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let field_order = |file: &Path| {
        ffprobe(
            file,
            &[
                "-select_streams",
                "v",
                "-show_entries",
                "stream=field_order",
            ],
        )[0]
        .get("field_order")
        .to_owned()
    };
    // Without this the test would prove nothing.
    assert_eq!(field_order(&source), "tt", "the source is not interlaced");

    let output = fixture.ingest_ok(&["--ladder", "small"], &source.display().to_string());
    assert!(output.starts_with("interlaced: ingested "), "{output}");
    for track in ["360p", "180p"] {
        let dir = fixture.vod().join("interlaced").join(track);
        let mut whole = fs::read(dir.join("init.mp4")).expect("init segment");
        for n in 0.. {
            match fs::read(dir.join(format!("{n}.m4s"))) {
                Ok(bytes) => whole.extend(bytes),
                Err(_) => break,
            }
        }
        let joined = fixture.dir.path().join(format!("{track}.mp4"));
        fs::write(&joined, whole).expect("joined");
        assert_eq!(field_order(&joined), "progressive", "{track}");
        let frames = ffprobe(
            &joined,
            &[
                "-select_streams",
                "v",
                "-show_entries",
                "frame=interlaced_frame",
            ],
        );
        let interlaced = frames
            .iter()
            .filter(|f| f.u64("interlaced_frame") != 0)
            .count();
        assert_eq!(interlaced, 0, "{track}: {interlaced} interlaced frames");
        // 4 s at 25 pictures a second (the deinterlacer may hold back the first one).
        assert!(
            (98..=100).contains(&frames.len()),
            "{track}: {} frames",
            frames.len()
        );
    }
}

/// Python's `http.server` on loopback serving `dir`; it logs one line per request
/// (with its status) to `log`. Killed on drop.
struct FileServer {
    child: std::process::Child,
    port: u16,
    log: PathBuf,
}

impl FileServer {
    fn start(dir: &Path, log: PathBuf) -> FileServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let stderr = fs::File::create(&log).expect("server log");
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
            .arg(dir)
            .arg(port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("starting python3 -m http.server");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the file server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        FileServer { child, port, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// The status of every request for `path` so far, in order.
    fn statuses(&self, path: &str) -> Vec<String> {
        let needle = format!("\"GET /{path} HTTP/1.1\" ");
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.split_once(&needle))
            .filter_map(|(_, rest)| rest.split_whitespace().next().map(str::to_owned))
            .collect()
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A source given by URL is fetched, ingested and served; asked again, the server
/// answers 304 to the conditional request and nothing is fetched or transcoded; a new
/// file on the server is fetched and ingested again; a URL the server does not have
/// fails with its status and leaves nothing behind.
#[test]
fn a_source_given_by_url_is_fetched_once_and_again_only_when_changed() {
    let served = TempDir::new("vod-url-served");
    let server = FileServer::start(served.path(), served.path().join("server.log"));
    let extra = format!(
        "  - {{ id: remote, title: Remote, source: \"{}\", ladder: small }}\n\
         \x20 - {{ id: gone, title: Gone, source: \"{}\", ladder: small }}\n",
        server.url("film.mp4"),
        server.url("missing.mp4"),
    );
    let fixture = Fixture::new("vod-url", &extra);
    fixture.copy_clip_to(&served.path().join("film.mp4"));

    let first = fixture.ingest_ok(&[], "remote");
    assert!(first.starts_with("remote: ingested "), "{first}");
    assert_eq!(server.statuses("film.mp4"), ["200"]);
    let link = fixture.vod().join("remote");
    let version = fs::read_link(&link).expect("the asset is published");
    let duration = |dir: &Path| {
        let init = fs::read(dir.join("360p/init.mp4")).expect("init");
        let mut parts = vec![init];
        for n in 0.. {
            match fs::read(dir.join(format!("360p/{n}.m4s"))) {
                Ok(segment) => parts.push(segment),
                Err(_) => break,
            }
        }
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        video_duration(&fixture.dir.write("remote-360p.mp4", &refs))
    };
    assert!(
        (duration(&link) - CLIP_SECONDS).abs() <= FRAME,
        "the fetched clip lasts {CLIP_SECONDS} s"
    );

    let second = fixture.ingest_ok(&[], "remote");
    assert!(second.starts_with("remote: up to date"), "{second}");
    assert_eq!(server.statuses("film.mp4"), ["200", "304"]);
    assert_eq!(fs::read_link(&link).expect("link"), version);

    // Another film under the same URL, newer (Last-Modified counts whole seconds).
    let newer = served.path().join("film.mp4");
    make_clip(&newer, 3.0);
    let later = std::time::SystemTime::now() + Duration::from_secs(10);
    fs::File::options()
        .write(true)
        .open(&newer)
        .and_then(|f| f.set_modified(later))
        .expect("set the new file's time");
    let third = fixture.ingest_ok(&[], "remote");
    assert!(third.starts_with("remote: ingested "), "{third}");
    assert_eq!(server.statuses("film.mp4"), ["200", "304", "200"]);
    assert_ne!(fs::read_link(&link).expect("link"), version);
    assert!(
        (duration(&link) - 3.0).abs() <= FRAME,
        "the new film lasts 3 s"
    );

    let output = fixture.ingest(&[], "gone");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: asset `gone`: cannot fetch the source: GET {} answered 404 File not found",
            server.url("missing.mp4")
        )),
        "{stderr}"
    );
    assert!(
        !fixture
            .library_entries()
            .iter()
            .any(|e| e.starts_with("gone")),
        "{:?}",
        fixture.library_entries()
    );
}

/// A source over HTTPS is fetched with its server's certificate checked against the
/// system's trust store: refused where the test CA is not trusted, fetched where it is
/// (`common::tls`), and asked for again conditionally (nginx answers 304).
#[test]
fn a_source_over_https_is_fetched_only_from_a_trusted_server() {
    let served = TempDir::new("vod-https-served");
    let server = TlsServer::start(&format!(
        "location / {{ root {}; }}",
        served.path().display()
    ));
    let extra = format!(
        "  - {{ id: secure, title: Secure, source: \"{}\", ladder: small }}\n",
        server.url("/film.mp4")
    );
    let fixture = Fixture::new("vod-https", &extra);
    fixture.copy_clip_to(&served.path().join("film.mp4"));

    let refused = fixture.ingest(&[], "secure");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "an untrusted server was accepted"
    );
    assert!(
        stderr.contains("asset `secure`: cannot fetch the source")
            && stderr.contains("certificate"),
        "{stderr}"
    );

    let first = fixture.ingest_launched(&server.launcher(), "secure");
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success() && stdout.starts_with("secure: ingested "),
        "{stdout}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = fixture.ingest_launched(&server.launcher(), "secure");
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(stdout.starts_with("secure: up to date"), "{stdout}");
}
