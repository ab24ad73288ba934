//! Catalog hot reload end to end: the real binary, real pipelines, the catalog file
//! replaced while it runs (a temporary file renamed over it, as deploy tools do), and a
//! reload asked for by `POST /api/v1/reload`, SIGHUP or the file watch. Playlists are
//! read with m3u8-rs, the MPD with roxmltree, segments with ffprobe, the transport
//! stream with the tests' own MPEG-TS checker.
//!
//! No catalog here has a multicast block: nothing is sent outside the machine.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{
    http_request, parse_master, parse_media, probe_video, read_stream, replace_file,
    segment_sequence, Headend, TempDir, X264_ULTRAFAST,
};
use m3u8_rs::MediaPlaylist;
use serde_json::Value;

const TOKEN: &str = "reload-test-token-0123456789";
/// A channel's first segments, a restart's, a reload's effect.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Long enough that segments from before a restart are still listed after it.
const WINDOW: usize = 15;

fn ladders() -> String {
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
  smaller:
    segment_duration: 1
    gop: 1
    window: {WINDOW}
    renditions:
      - {{ name: 180p, width: 320, height: 180, bitrate: 200, profile: main, max_framerate: 25 }}
    audio: {{ codec: aac, bitrate: 64, channels: 2 }}
"
    )
}

/// One channel line of a catalog.
fn channel(id: &str, number: u32, name: &str, more: &str) -> String {
    format!(
        "  - {{ id: {id}, number: {number}, name: \"{name}\", group: Test, source: {{ uri: \"test://\" }}, ladder: small{more} }}\n"
    )
}

fn catalog(channels: &[String]) -> String {
    format!("{}channels:\n{}", ladders(), channels.concat())
}

/// A headend serving `text` from `catalog.yaml`, with the API token, and the file
/// watch off unless `watch` (so only the test's own reloads happen).
struct Reloading {
    headend: Headend,
    file: PathBuf,
}

impl Reloading {
    fn start(text: &str, watch: bool, public_api: bool) -> Reloading {
        let dir = TempDir::new("reload");
        let file = dir.write("catalog.yaml", &[text.as_bytes()]);
        let token = dir.write("token", &[TOKEN.as_bytes(), b"\n"]);
        let token = token.to_string_lossy().into_owned();
        let mut args = vec!["--api-token-file", token.as_str()];
        if !watch {
            args.push("--no-watch");
        }
        if public_api {
            args.push("--public-api");
        }
        let headend = Headend::start_in(dir, &file.clone(), &args);
        Reloading { headend, file }
    }

    fn replace(&self, text: &str) {
        replace_file(&self.file, text);
    }

    /// `POST /api/v1/reload` with the token: the status and the outcome.
    fn post_reload(&self) -> (u16, Value) {
        self.api("POST", "/api/v1/reload", Some(TOKEN))
    }

    /// `GET /api/v1/catalog` with the token.
    fn status(&self) -> Value {
        let (status, body) = self.api("GET", "/api/v1/catalog", Some(TOKEN));
        assert_eq!(status, 200, "{body}");
        body
    }

    fn api(&self, method: &str, path: &str, token: Option<&str>) -> (u16, Value) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        let response = http_request(method, &self.headend.url(path), &headers)
            .unwrap_or_else(|e| self.headend.fail(&e));
        assert_eq!(
            response.header("content-type"),
            Some("application/json"),
            "{method} {path}: {}",
            response.text()
        );
        let body = serde_json::from_slice(&response.body)
            .unwrap_or_else(|e| self.headend.fail(&format!("{method} {path}: {e}")));
        (response.status, body)
    }

    fn playlist(&self, channel: &str, track: &str) -> Option<MediaPlaylist> {
        let response = self
            .headend
            .get(&format!("/live/{channel}/{track}/index.m3u8"));
        (response.status == 200).then(|| parse_media(&response.body))
    }

    /// Waits for a playlist that satisfies `check`.
    fn wait_playlist(
        &self,
        channel: &str,
        track: &str,
        what: &str,
        check: impl Fn(&MediaPlaylist) -> bool,
    ) -> MediaPlaylist {
        self.headend
            .wait_until(READY_TIMEOUT, || {
                self.playlist(channel, track).filter(|p| check(p))
            })
            .unwrap_or_else(|| {
                self.headend
                    .fail(&format!("{channel}/{track}: no playlist with {what}"))
            })
    }

    /// Waits until a channel lists at least `segments` segments.
    fn wait_segments(&self, channel: &str, segments: usize) -> MediaPlaylist {
        self.wait_playlist(channel, "240p", &format!("{segments} segments"), |p| {
            p.segments.len() >= segments
        })
    }

    fn m3u(&self) -> String {
        String::from_utf8_lossy(&self.headend.get_ok("/playlist.m3u")).into_owned()
    }
}

/// A client of a channel's transport stream over HTTP/1.0 (no chunking: the stream
/// ends when the connection does).
struct TsClient(TcpStream);

impl TsClient {
    /// Connects once the stream answers 200, and reads the start of it.
    fn open(headend: &Headend, path: &str) -> TsClient {
        headend
            .wait_until(READY_TIMEOUT, || {
                let head = http_request("HEAD", &headend.url(path), &[]);
                head.is_ok_and(|r| r.status == 200).then_some(())
            })
            .unwrap_or_else(|| headend.fail(&format!("{path} never started")));
        let mut stream = TcpStream::connect(headend.addr()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        write!(stream, "GET {path} HTTP/1.0\r\n\r\n").expect("send");
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).expect("the answer");
        assert!(
            head.ends_with(b" 200"),
            "{path}: {}",
            String::from_utf8_lossy(&head)
        );
        let mut client = TsClient(stream);
        assert!(client.read_some() > 0, "{path} sent nothing");
        client
    }

    fn read_some(&mut self) -> usize {
        let mut buffer = [0u8; 64 * 1024];
        self.0.read(&mut buffer).unwrap_or(0)
    }

    /// Whether the stream ends (the server closes it) within `timeout`.
    fn ends_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut buffer = [0u8; 64 * 1024];
        while Instant::now() < deadline {
            match self.0.read(&mut buffer) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
        false
    }
}

/// The last sequence number a playlist lists.
fn last_sequence(playlist: &MediaPlaylist) -> u64 {
    playlist.media_sequence + playlist.segments.len() as u64 - 1
}

/// Every segment is at its media sequence number: no hole, no repeat.
fn assert_numbered_without_a_hole(label: &str, playlist: &MediaPlaylist) {
    for (i, segment) in playlist.segments.iter().enumerate() {
        assert_eq!(
            segment_sequence(&segment.uri),
            playlist.media_sequence + i as u64,
            "{label}: {} is not at its media sequence number",
            segment.uri
        );
    }
}

/// A channel that was not restarted: no discontinuity, and every segment decodes with
/// the first run's init segment.
fn assert_untouched(label: &str, playlist: &MediaPlaylist) {
    assert_numbered_without_a_hole(label, playlist);
    assert!(
        playlist.segments.iter().all(|s| !s.discontinuity),
        "{label}: a discontinuity"
    );
    assert_eq!(playlist.discontinuity_sequence, 0, "{label}");
    let maps: Vec<&str> = playlist
        .segments
        .iter()
        .filter_map(|s| s.map.as_ref().map(|m| m.uri.as_str()))
        .collect();
    assert!(
        maps.iter().all(|m| *m == "init-0.mp4"),
        "{label}: init versions {maps:?}"
    );
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The outcome's lists, in the order added, removed, restarted, updated.
fn changes(outcome: &Value) -> [Vec<&str>; 4] {
    ["added", "removed", "restarted", "updated"].map(|key| strings(&outcome[key]))
}

#[test]
fn adding_a_channel_starts_it_and_touches_no_other() {
    let reloading = Reloading::start(&catalog(&[channel("one", 1, "One", "")]), false, false);
    reloading.wait_segments("one", 2);

    reloading.replace(&catalog(&[
        channel("one", 1, "One", ""),
        channel("two", 2, "Two", ""),
    ]));
    let (status, outcome) = reloading.post_reload();
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["result"], "applied", "{outcome}");
    assert_eq!(outcome["trigger"], "api");
    assert_eq!(
        changes(&outcome),
        [vec!["two"], vec![], vec![], vec![]],
        "{outcome}"
    );

    let master = reloading
        .headend
        .wait_for("/live/two/master.m3u8", READY_TIMEOUT);
    assert_eq!(parse_master(&master).variants.len(), 1);
    let two = reloading.wait_segments("two", 2);
    assert_numbered_without_a_hole("two", &two);
    assert!(reloading.m3u().contains(&format!(
        "{}\n",
        reloading.headend.url("/live/two/master.m3u8")
    )));
    assert_eq!(strings(&reloading.status()["channels"]), ["one", "two"]);
    assert_untouched("one", &reloading.wait_segments("one", 4));
}

#[test]
fn removing_a_channel_stops_it_and_its_urls_answer_404() {
    let reloading = Reloading::start(
        &catalog(&[channel("one", 1, "One", ""), channel("two", 2, "Two", "")]),
        false,
        false,
    );
    let two = reloading.wait_segments("two", 2);
    reloading.wait_segments("one", 2);
    let segment = format!("/live/two/240p/{}", two.segments[0].uri);
    reloading.headend.get_ok(&segment);
    let one_before = last_sequence(&reloading.wait_segments("one", 2));
    // A set-top box watching `two` over HTTP when it goes.
    let mut watcher = TsClient::open(&reloading.headend, "/ts/two");

    reloading.replace(&catalog(&[channel("one", 1, "One", "")]));
    let (status, outcome) = reloading.post_reload();
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(
        changes(&outcome),
        [vec![], vec!["two"], vec![], vec![]],
        "{outcome}"
    );
    // Withdrawn by the time the reload answers.
    for path in [
        "/live/two/master.m3u8",
        "/live/two/240p/index.m3u8",
        "/live/two/audio/index.m3u8",
        "/live/two/manifest.mpd",
        "/live/two/240p/init-0.mp4",
        segment.as_str(),
        "/ts/two",
    ] {
        assert_eq!(reloading.headend.get(path).status, 404, "{path}");
    }
    assert!(!reloading.m3u().contains("/live/two/"));
    // Its transport stream ends: the pipeline is gone.
    assert!(
        watcher.ends_within(Duration::from_secs(10)),
        "/ts/two still sends after the channel was removed"
    );
    // The other channel goes on as if nothing happened.
    let one = reloading.wait_playlist("one", "240p", "new segments", |p| {
        last_sequence(p) >= one_before + 3
    });
    assert_untouched("one", &one);
}

#[test]
fn changing_a_channel_restarts_only_it_with_a_discontinuity() {
    let reloading = Reloading::start(
        &catalog(&[channel("one", 1, "One", ""), channel("two", 2, "Two", "")]),
        false,
        false,
    );
    reloading.wait_segments("one", 3);
    let two_before = reloading.wait_segments("two", 3);

    // Another test pattern: the source changed, so `one` restarts.
    reloading.replace(&catalog(&[
        channel("one", 1, "One", "").replace("uri: \"test://\"", "uri: \"test://?pattern=ball\""),
        channel("two", 2, "Two", ""),
    ]));
    let (status, outcome) = reloading.post_reload();
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(
        changes(&outcome),
        [vec![], vec![], vec!["one"], vec![]],
        "{outcome}"
    );

    let restart_index = |p: &MediaPlaylist| p.segments.iter().position(|s| s.discontinuity);
    let one = reloading.wait_playlist("one", "240p", "a restart and a segment after it", |p| {
        restart_index(p).is_some_and(|i| i > 0 && p.segments.len() > i + 1)
    });
    // The media sequence goes on through the restart without a hole.
    assert_numbered_without_a_hole("one", &one);
    let index = restart_index(&one).unwrap_or_default();
    assert_eq!(one.discontinuity_sequence, 0);
    assert_eq!(
        one.segments.iter().filter(|s| s.discontinuity).count(),
        1,
        "one restart"
    );
    assert_eq!(
        one.segments[index].map.as_ref().map(|m| m.uri.as_str()),
        Some("init-1.mp4"),
        "the new run's init segment"
    );
    // The first segment after the restart decodes from a keyframe with its init.
    let init = reloading.headend.get_ok("/live/one/240p/init-1.mp4");
    let media = reloading
        .headend
        .get_ok(&format!("/live/one/240p/{}", one.segments[index].uri));
    let file = reloading
        .headend
        .dir()
        .write("one-after-restart.mp4", &[&init, &media]);
    let probe = probe_video(&file);
    assert_eq!((probe.width, probe.height), (320, 240));
    assert!(probe.frames.first().is_some_and(|f| f.key_frame));
    // DASH: a new Period for the new run.
    let mpd =
        String::from_utf8_lossy(&reloading.headend.get_ok("/live/one/manifest.mpd")).into_owned();
    let document = roxmltree::Document::parse(&mpd).expect("the MPD parses");
    let periods: Vec<Option<&str>> = document
        .root_element()
        .children()
        .filter(|n| n.has_tag_name("Period"))
        .map(|p| p.attribute("id"))
        .collect();
    assert_eq!(periods, [Some("0"), Some("1")], "{mpd}");

    // The other channel was not touched: same run, same init, numbers going on.
    let two = reloading.wait_playlist("two", "240p", "new segments", |p| {
        last_sequence(p) > last_sequence(&two_before) + 2
    });
    assert_untouched("two", &two);
    assert!(two.media_sequence <= last_sequence(&two_before));
}

#[test]
fn a_new_ladder_changes_the_renditions_and_the_numbers_go_on() {
    let reloading = Reloading::start(&catalog(&[channel("one", 1, "One", "")]), false, false);
    let before = reloading.wait_segments("one", 3);

    reloading.replace(&catalog(&[
        channel("one", 1, "One", "").replace("ladder: small", "ladder: smaller")
    ]));
    let (status, outcome) = reloading.post_reload();
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(
        changes(&outcome),
        [vec![], vec![], vec!["one"], vec![]],
        "{outcome}"
    );
    // The old rendition is gone at once (503 while the channel is starting again, as
    // any track of a starting channel, then 404); the new one starts where the numbers
    // were.
    let old = reloading.headend.get("/live/one/240p/index.m3u8").status;
    assert!(old == 503 || old == 404, "{old}");
    assert_eq!(
        reloading.headend.get("/live/one/240p/init-0.mp4").status,
        404
    );
    let master = reloading
        .headend
        .wait_for("/live/one/master.m3u8", READY_TIMEOUT);
    let master = parse_master(&master);
    let uris: Vec<&str> = master.variants.iter().map(|v| v.uri.as_str()).collect();
    assert_eq!(uris, ["180p/index.m3u8"]);
    assert_eq!(
        reloading.headend.get("/live/one/240p/index.m3u8").status,
        404
    );
    let video = reloading.wait_playlist("one", "180p", "two segments", |p| p.segments.len() >= 2);
    assert_numbered_without_a_hole("180p", &video);
    assert!(video.segments.iter().all(|s| !s.discontinuity));
    let audio = reloading.wait_playlist("one", "audio", "the restart", |p| {
        p.segments.iter().any(|s| s.discontinuity)
    });
    assert_numbered_without_a_hole("audio", &audio);
    let restart = audio
        .segments
        .iter()
        .position(|s| s.discontinuity)
        .unwrap_or_default();
    let first_new = audio.media_sequence + restart as u64;
    assert!(first_new > last_sequence(&before));
    // Both tracks number the new run alike, and line up in discontinuity sequence.
    assert_eq!(video.media_sequence, first_new);
    assert_eq!(video.discontinuity_sequence, 1);
    let init = reloading.headend.get_ok("/live/one/180p/init-1.mp4");
    let media = reloading
        .headend
        .get_ok(&format!("/live/one/180p/{}", video.segments[0].uri));
    let file = reloading
        .headend
        .dir()
        .write("one-180p.mp4", &[&init, &media]);
    let probe = probe_video(&file);
    assert_eq!((probe.width, probe.height), (320, 180));
}

#[test]
fn a_live_field_changes_without_restarting_anything() {
    let reloading = Reloading::start(
        &catalog(&[channel("one", 1, "One", ""), channel("two", 2, "Two", "")]),
        false,
        false,
    );
    let one_before = reloading.wait_segments("one", 2);
    reloading.wait_segments("two", 2);
    reloading
        .headend
        .wait_until(READY_TIMEOUT, || {
            let head = http_request("HEAD", &reloading.headend.url("/ts/one"), &[]);
            head.is_ok_and(|r| r.status == 200).then_some(())
        })
        .unwrap_or_else(|| reloading.headend.fail("/ts/one never started"));

    // New name and number for `one`, a group and a logo for `two`.
    reloading.replace(&catalog(&[
        channel("one", 7, "One Renamed", ""),
        channel("two", 2, "Two", ", logo: \"https://example.com/two.png\"")
            .replace("group: Test", "group: Other"),
    ]));
    let (status, outcome) = reloading.post_reload();
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(
        changes(&outcome),
        [vec![], vec![], vec![], vec!["one", "two"]],
        "{outcome}"
    );
    let m3u = reloading.m3u();
    assert!(
        m3u.contains("tvg-chno=\"7\"") && m3u.contains(",One Renamed\n"),
        "{m3u}"
    );
    assert!(m3u.contains("group-title=\"Other\""), "{m3u}");
    assert!(
        m3u.contains("tvg-logo=\"https://example.com/two.png\""),
        "{m3u}"
    );
    let guide = String::from_utf8_lossy(&reloading.headend.get_ok("/epg.xml")).into_owned();
    assert!(guide.contains("One Renamed"), "{guide}");

    // The transport stream's SDT says the new name at once, under a new version, with
    // continuity counters going on; the program number follows at the next restart.
    let stream = read_stream(reloading.headend.addr(), "/ts/one", Duration::from_secs(2));
    let report = common::ts::analyze(&stream);
    assert_eq!(report.cc_errors(), 0, "{report}");
    let service = report
        .service(1)
        .unwrap_or_else(|| panic!("no SDT entry for program 1:\n{report}"));
    assert_eq!(service.service_name, "One Renamed", "{report}");
    assert_eq!(report.sdt.as_ref().map(|s| s.version), Some(1), "{report}");

    // Nothing restarted: both channels go on in their first run.
    let one = reloading.wait_playlist("one", "240p", "new segments", |p| {
        last_sequence(p) >= last_sequence(&one_before) + 4
    });
    assert_untouched("one", &one);
    assert_untouched("two", &reloading.wait_segments("two", 2));
}

/// `path:line:column: message` with this file and line.
fn assert_placed(text: &str, file: &Path, line: usize) {
    let prefix = format!("{}:{line}:", file.display());
    let column = text
        .strip_prefix(&prefix)
        .and_then(|rest| rest.split_once(": "))
        .map(|(column, _)| column);
    assert!(
        column.is_some_and(|c| c.parse::<usize>().is_ok()),
        "{text:?} is not at {prefix}COLUMN"
    );
}

#[test]
fn an_invalid_edit_changes_nothing_and_says_where() {
    let reloading = Reloading::start(&catalog(&[channel("one", 1, "One", "")]), false, false);
    let before = reloading.wait_segments("one", 2);
    let m3u_before = reloading.m3u();

    // A second channel and a type error: neither applies.
    let text = catalog(&[
        channel("one", 1, "One", ""),
        channel("two", 2, "Two", "").replace("number: 2", "number: two"),
    ]);
    let line = text
        .lines()
        .position(|l| l.contains("id: two"))
        .unwrap_or_default()
        + 1;
    reloading.replace(&text);
    let (status, outcome) = reloading.post_reload();
    let problem = rejected(status, &outcome);
    let text = problem["text"].as_str().unwrap_or_default();
    assert_placed(text, &reloading.file, line);
    assert_eq!(problem["line"], line);
    assert!(problem["column"].is_u64(), "{problem}");
    assert_eq!(
        problem["file"].as_str(),
        Some(reloading.file.to_string_lossy().as_ref())
    );

    // Kept for GET /api/v1/catalog and written to the log.
    let status = reloading.status();
    assert_eq!(status["last_reload"], outcome);
    assert_eq!(strings(&status["channels"]), ["one"]);
    let log = reloading.headend.log();
    assert!(
        log.contains("Catalog reload rejected") && log.contains(text),
        "the log does not say {text:?}:\n{log}"
    );

    // Nothing changed: no new channel, the old one untouched.
    assert_eq!(reloading.headend.get("/live/two/master.m3u8").status, 404);
    assert_eq!(reloading.m3u(), m3u_before);
    let one = reloading.wait_playlist("one", "240p", "new segments", |p| {
        last_sequence(p) >= last_sequence(&before) + 3
    });
    assert_untouched("one", &one);

    // Not YAML at all (a flow mapping left open): rejected whole as well, at its place.
    let text = format!(
        "{}  - {{ id: three, number: 3\n",
        catalog(&[channel("one", 1, "One", "")])
    );
    reloading.replace(&text);
    let (status, outcome) = reloading.post_reload();
    let problem = rejected(status, &outcome);
    assert!(
        problem["line"].as_u64().is_some_and(|l| l >= 1) && problem["column"].is_u64(),
        "a syntax error is placed: {problem}"
    );
    assert_eq!(reloading.headend.get("/live/three/master.m3u8").status, 404);
    assert_eq!(reloading.m3u(), m3u_before);
    let again = reloading.wait_playlist("one", "240p", "new segments", |p| {
        last_sequence(p) >= last_sequence(&one) + 2
    });
    assert_untouched("one", &again);
}

/// A reload rejected whole (422, `rejected`, nothing added, removed, restarted or
/// updated); its first problem.
fn rejected(status: u16, outcome: &Value) -> &Value {
    assert_eq!(status, 422, "{outcome}");
    assert_eq!(outcome["result"], "rejected");
    assert_eq!(changes(outcome), <[Vec<&str>; 4]>::default());
    &outcome["problems"][0]
}

#[test]
fn two_reloads_in_quick_succession_end_with_the_second_file() {
    let reloading = Reloading::start(&catalog(&[channel("one", 1, "One", "")]), false, false);
    reloading.wait_segments("one", 2);

    // A SIGHUP for the first edit, then at once a second edit and an API reload: the
    // reloads run one after the other, and the last one reads the second file.
    reloading.replace(&catalog(&[
        channel("one", 1, "One", ""),
        channel("two", 2, "Two", ""),
    ]));
    reloading.headend.signal("HUP");
    reloading.replace(&catalog(&[
        channel("one", 1, "One", ""),
        channel("three", 3, "Three", ""),
    ]));
    let (status, outcome) = reloading.post_reload();
    assert_eq!(status, 200, "{outcome}");
    let status = reloading
        .headend
        .wait_until(READY_TIMEOUT, || {
            let status = reloading.status();
            // The SIGHUP's reload has run, before or after the API's.
            reloading
                .headend
                .log()
                .contains("SIGHUP received")
                .then_some(status)
                .filter(|s| s["last_reload"].is_object())
        })
        .unwrap_or_else(|| reloading.headend.fail("the SIGHUP was not handled"));
    assert_eq!(strings(&status["channels"]), ["one", "three"], "{status}");
    reloading.wait_segments("three", 2);
    assert_eq!(reloading.headend.get("/live/two/master.m3u8").status, 404);
    let m3u = reloading.m3u();
    assert!(
        m3u.contains("/live/three/") && !m3u.contains("/live/two/"),
        "{m3u}"
    );
}

/// Waits for a reload with this trigger and returns its outcome.
fn wait_reload(reloading: &Reloading, trigger: &str) -> Value {
    reloading
        .headend
        .wait_until(READY_TIMEOUT, || {
            // The catalog is public here: no token needed to read it.
            let (status, body) = reloading.api("GET", "/api/v1/catalog", None);
            assert_eq!(status, 200, "{body}");
            let last = &body["last_reload"];
            (last["trigger"] == trigger).then(|| last.clone())
        })
        .unwrap_or_else(|| {
            reloading
                .headend
                .fail(&format!("no reload triggered by {trigger}"))
        })
}

#[test]
fn sighup_reloads_the_catalog() {
    let reloading = Reloading::start(&catalog(&[channel("one", 1, "One", "")]), false, true);
    reloading.wait_segments("one", 1);
    reloading.replace(&catalog(&[
        channel("one", 1, "One", ""),
        channel("two", 2, "Two", ""),
    ]));
    reloading.headend.signal("HUP");
    let outcome = wait_reload(&reloading, "signal");
    assert_eq!(outcome["result"], "applied", "{outcome}");
    assert_eq!(changes(&outcome), [vec!["two"], vec![], vec![], vec![]]);
    reloading.wait_segments("two", 1);
    reloading.headend.assert_running();
}

#[test]
fn a_file_renamed_over_the_catalog_reloads_it() {
    let reloading = Reloading::start(&catalog(&[channel("one", 1, "One", "")]), true, true);
    reloading.wait_segments("one", 1);
    reloading.replace(&catalog(&[
        channel("one", 1, "One", ""),
        channel("two", 2, "Two", ""),
    ]));
    let outcome = wait_reload(&reloading, "file");
    assert_eq!(outcome["result"], "applied", "{outcome}");
    assert_eq!(changes(&outcome), [vec!["two"], vec![], vec![], vec![]]);
    reloading.wait_segments("two", 1);
}

#[test]
fn the_reload_api_answers_the_outcome_to_its_token_only() {
    // No channel: this is about the API, not pipelines.
    let reloading = Reloading::start(&catalog(&[]), false, false);
    let (status, body) = reloading.api("POST", "/api/v1/reload", None);
    assert_eq!(status, 401, "{body}");
    let (status, body) = reloading.api("GET", "/api/v1/catalog", Some("wrong-token-0123456789"));
    assert_eq!(status, 401, "{body}");
    let response = http_request("POST", &reloading.headend.url("/api/v1/reload"), &[])
        .unwrap_or_else(|e| reloading.headend.fail(&e));
    assert_eq!(
        response.header("www-authenticate"),
        Some("Bearer realm=\"headend\"")
    );

    let (status, outcome) = reloading.post_reload();
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["result"], "unchanged");
    assert_eq!(outcome["trigger"], "api");
    let status = reloading.status();
    assert_eq!(status["last_reload"], outcome);
    assert_eq!(
        strings(&status["files"]),
        [reloading.file.to_string_lossy().as_ref()]
    );
}

#[test]
fn without_a_token_the_api_is_forbidden() {
    let dir = TempDir::new("reload-no-token");
    let file = dir.write("catalog.yaml", &[catalog(&[]).as_bytes()]);
    let headend = Headend::start_in(dir, &file, &["--no-watch"]);
    let response = http_request(
        "POST",
        &headend.url("/api/v1/reload"),
        &[("Authorization", &format!("Bearer {TOKEN}"))],
    )
    .unwrap_or_else(|e| headend.fail(&e));
    assert_eq!(response.status, 403);
    let body: Value = serde_json::from_slice(&response.body).expect("JSON");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("HEADEND_API_TOKEN") && error.contains("--api-token-file"),
        "{error}"
    );
}
