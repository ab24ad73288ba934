//! Operating the headend, end to end against the real binary: the API's bearer token
//! (403 with none configured, 401 without or with a wrong one, `--public-api` opening
//! only the reads), `/api/v1/channels` following real channels from starting to live
//! (and a broken one into error and restarts), `/readyz` going from 503 to 200,
//! `/metrics` read by a strict parser of the Prometheus text format, and JSON logs
//! read line by line with serde_json.
//!
//! No catalog here has a multicast block: nothing is sent outside the machine.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{http_request, parse_media, Headend, HttpResponse, TempDir, X264_ULTRAFAST};
use serde_json::Value;

const TOKEN: &str = "admin-test-token-0123456789";
/// The test ladder's segment duration, in seconds.
const SEGMENT: f64 = 1.0;
/// A channel's first segments; a broken channel's first restart.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

fn ladders() -> String {
    format!(
        "{X264_ULTRAFAST}\
ladders:
  small:
    segment_duration: {SEGMENT}
    gop: 1
    window: 6
    renditions:
      - {{ name: 240p, width: 320, height: 240, bitrate: 300, profile: main, max_framerate: 25 }}
    audio: {{ codec: aac, bitrate: 64, channels: 2 }}
"
    )
}

/// A catalog of these `(id, source URI)` channels on the small ladder.
fn catalog(channels: &[(&str, &str)]) -> String {
    let mut text = ladders();
    text.push_str("channels:");
    if channels.is_empty() {
        text.push_str(" []");
    }
    text.push('\n');
    for (number, (id, uri)) in channels.iter().enumerate() {
        text.push_str(&format!(
            "  - {{ id: {id}, number: {}, name: \"{id}\", group: Test, source: {{ uri: \"{uri}\" }}, ladder: small }}\n",
            number + 1
        ));
    }
    text
}

/// Starts a headend on `catalog` with these options and environment.
fn start(catalog: &str, args: &[&str], env: &[(&str, &str)]) -> Headend {
    let dir = TempDir::new("admin");
    let file = dir.write("catalog.yaml", &[catalog.as_bytes()]);
    Headend::start_with_env(dir, &file, args, env)
}

/// Starts a headend whose token is in a file (`--api-token-file`).
fn start_with_token_file(catalog: &str, more: &[&str]) -> Headend {
    let dir = TempDir::new("admin");
    let file = dir.write("catalog.yaml", &[catalog.as_bytes()]);
    let token = dir.write("token", &[TOKEN.as_bytes(), b"\n"]);
    let token = token.to_string_lossy().into_owned();
    let mut args = vec!["--api-token-file", token.as_str()];
    args.extend_from_slice(more);
    Headend::start_in(dir, &file, &args)
}

/// One call with an `Authorization` header (or none).
fn call(headend: &Headend, method: &str, path: &str, auth: Option<&str>) -> HttpResponse {
    let headers: Vec<(&str, &str)> = auth.map(|a| vec![("Authorization", a)]).unwrap_or_default();
    http_request(method, &headend.url(path), &headers).unwrap_or_else(|e| headend.fail(&e))
}

fn json(headend: &Headend, response: &HttpResponse) -> Value {
    assert_eq!(
        response.header("content-type"),
        Some("application/json"),
        "{}",
        response.text()
    );
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| headend.fail(&format!("not JSON ({e}): {}", response.text())))
}

/// `GET path` with the token, which must answer 200 with JSON.
fn get_json(headend: &Headend, path: &str) -> Value {
    let response = call(headend, "GET", path, Some(&format!("Bearer {TOKEN}")));
    if response.status != 200 {
        headend.fail(&format!(
            "GET {path}: {} {}",
            response.status,
            response.text()
        ));
    }
    json(headend, &response)
}

#[test]
fn without_a_token_configured_the_api_is_forbidden_but_health_and_metrics_answer() {
    // JSON logs asked for by the environment rather than the flag.
    let headend = start(&catalog(&[]), &[], &[("HEADEND_LOG_FORMAT", "json")]);
    for (method, path) in [
        ("GET", "/api/v1/channels"),
        ("GET", "/api/v1/vod"),
        ("GET", "/api/v1/catalog"),
        ("POST", "/api/v1/reload"),
    ] {
        let response = call(&headend, method, path, Some(&format!("Bearer {TOKEN}")));
        assert_eq!(response.status, 403, "{method} {path}: {}", response.text());
        let error = json(&headend, &response)["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(error.contains("HEADEND_API_TOKEN"), "{error}");
    }
    // Operations endpoints outside the API need no token.
    assert_eq!(headend.get_ok("/healthz"), b"ok");
    let ready = headend.get("/readyz");
    assert_eq!(
        ready.status,
        200,
        "no channel to wait for: {}",
        ready.text()
    );
    assert_eq!(
        json(&headend, &ready),
        serde_json::json!({ "ready": true, "catalog_loaded": true, "waiting": [] })
    );
    let metrics = headend.get("/metrics");
    assert_eq!(metrics.status, 200);
    parse_exposition(&metrics.text()).unwrap_or_else(|e| headend.fail(&e));
    headend.stop(common::SHUTDOWN_TIMEOUT);
    let lines = json_log_lines(&headend);
    assert!(
        lines.iter().any(|l| l["message"] == "Headend serving."),
        "{lines:#?}"
    );
}

#[test]
fn a_wrong_or_missing_token_is_unauthorized_and_the_right_one_reads() {
    let headend = start_with_token_file(&catalog(&[]), &[]);
    for auth in [
        None,
        Some("Bearer not-the-token-0123456789"),
        Some("Basic eDp5"),
    ] {
        for (method, path) in [
            ("GET", "/api/v1/channels"),
            ("GET", "/api/v1/channels/none"),
            ("GET", "/api/v1/vod"),
            ("POST", "/api/v1/reload"),
        ] {
            let response = call(&headend, method, path, auth);
            assert_eq!(response.status, 401, "{method} {path} with {auth:?}");
            assert!(
                response
                    .header("www-authenticate")
                    .is_some_and(|c| c.starts_with("Bearer")),
                "{:?}",
                response.headers
            );
        }
    }
    assert_eq!(
        get_json(&headend, "/api/v1/channels"),
        serde_json::json!({ "channels": [] })
    );
    assert_eq!(
        get_json(&headend, "/api/v1/vod"),
        serde_json::json!({ "assets": [] })
    );
    let unknown = call(
        &headend,
        "GET",
        "/api/v1/channels/none",
        Some(&format!("Bearer {TOKEN}")),
    );
    assert_eq!(unknown.status, 404);
    assert!(json(&headend, &unknown)["error"].is_string());
}

#[test]
fn a_public_api_opens_the_reads_and_reloading_still_needs_the_token() {
    let headend = start(
        &catalog(&[]),
        &["--public-api"],
        &[("HEADEND_API_TOKEN", TOKEN)],
    );
    for path in ["/api/v1/channels", "/api/v1/vod", "/api/v1/catalog"] {
        let response = call(&headend, "GET", path, None);
        assert_eq!(response.status, 200, "GET {path}: {}", response.text());
        json(&headend, &response);
    }
    let response = call(&headend, "POST", "/api/v1/reload", None);
    assert_eq!(response.status, 401, "{}", response.text());
    let response = call(
        &headend,
        "POST",
        "/api/v1/reload",
        Some(&format!("Bearer {TOKEN}")),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(json(&headend, &response)["result"], "unchanged");
}

/// A channel of `channels` by id.
fn channel<'a>(channels: &'a Value, id: &str) -> &'a Value {
    channels["channels"]
        .as_array()
        .and_then(|list| list.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("no channel {id} in {channels}"))
}

#[test]
fn channels_go_live_a_broken_one_restarts_and_readiness_follows() {
    let headend = start_with_token_file(
        &catalog(&[
            ("live", "test://"),
            ("broken", "file:///nonexistent/headend-admin-test.mp4"),
        ]),
        &[],
    );
    // Before any segment: not ready, and the live channel is starting.
    let ready = headend.get("/readyz");
    assert_eq!(ready.status, 503, "{}", ready.text());
    let ready = json(&headend, &ready);
    assert_eq!(ready["ready"], false);
    assert!(
        ready["waiting"]
            .as_array()
            .is_some_and(|w| w.iter().any(|c| c["channel"] == "live")),
        "{ready}"
    );
    let first = get_json(&headend, "/api/v1/channels/live");
    assert_eq!(first["state"], "starting", "{first}");
    assert_eq!(first["uptime_seconds"], Value::Null);
    assert_eq!(first["live_edge_age_seconds"], Value::Null);

    // Live: three segments published in every track.
    let live = headend
        .wait_until(READY_TIMEOUT, || {
            let live = get_json(&headend, "/api/v1/channels/live");
            let tracks = live["tracks"].as_array()?;
            let enough =
                tracks.len() == 2 && tracks.iter().all(|t| t["segments"].as_u64() >= Some(3));
            enough.then_some(live)
        })
        .unwrap_or_else(|| headend.fail("the live channel never made three segments"));
    assert_eq!(live["state"], "live", "{live}");
    assert_eq!(live["input"], "test://");
    assert_eq!(live["restarts"], 0);
    assert_eq!(live["failovers"], 0);
    assert_eq!(live["last_error"], Value::Null);
    assert_eq!(live["segment_duration_seconds"], SEGMENT);
    let names: Vec<&str> = live["tracks"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["240p", "audio"]);
    let age = live["live_edge_age_seconds"].as_f64().unwrap_or(f64::MAX);
    assert!(
        (0.0..3.0 * SEGMENT).contains(&age),
        "live edge {age} s old: {live}"
    );
    let uptime = live["uptime_seconds"].as_f64().unwrap_or(-1.0);
    assert!(
        uptime >= 2.0 * SEGMENT,
        "uptime {uptime} with 3 segments: {live}"
    );
    // Raw 320x240 I420 at 25 fps alone is 23 Mbit/s.
    let bitrate = live["input_bitrate"].as_f64().unwrap_or(0.0);
    assert!(bitrate > 20e6, "input bitrate {bitrate}: {live}");
    for track in live["tracks"].as_array().into_iter().flatten() {
        let speed = track["encode_speed"].as_f64().unwrap_or(0.0);
        assert!((0.5..2.0).contains(&speed), "encode speed {speed}: {track}");
    }
    // The playlist agrees with the count: at least as many segments listed.
    let playlist = parse_media(&headend.get_ok("/live/live/240p/index.m3u8"));
    assert!(playlist.segments.len() >= 3, "{playlist:?}");

    // The broken channel fails, is restarted, and says why.
    let broken = headend
        .wait_until(READY_TIMEOUT, || {
            let channels = get_json(&headend, "/api/v1/channels");
            let broken = channel(&channels, "broken").clone();
            (broken["restarts"].as_u64() >= Some(1)).then_some(broken)
        })
        .unwrap_or_else(|| headend.fail("the broken channel was never restarted"));
    assert!(
        broken["state"] == "error" || broken["state"] == "starting",
        "{broken}"
    );
    assert_eq!(
        broken["input"],
        "file:///nonexistent/headend-admin-test.mp4"
    );
    let message = broken["last_error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("not a readable file"), "{broken}");
    assert_eq!(broken["live_edge_age_seconds"], Value::Null);

    // Ready: the live channel published, the broken one failed.
    let ready = headend.wait_for("/readyz", READY_TIMEOUT);
    let ready: Value = serde_json::from_slice(&ready).unwrap_or_default();
    assert_eq!(ready["ready"], true, "{ready}");

    // Viewers: a player's ten segment requests in a 10 s window of 1 s segments, and
    // a /ts/ client.
    let newest = playlist
        .segments
        .last()
        .map(|s| s.uri.clone())
        .unwrap_or_default();
    for _ in 0..10 {
        headend.get_ok(&format!("/live/live/240p/{newest}"));
    }
    let mut ts = TsClient::open(&headend, "/ts/live");
    std::thread::sleep(Duration::from_millis(1100));
    ts.read_some();
    let live = get_json(&headend, "/api/v1/channels/live");
    assert_eq!(live["ts_clients"], 1, "{live}");
    assert_eq!(live["viewers"], 2, "{live}");
    drop(ts);

    // A reload that removes the broken channel stops it: it stays listed, stopped,
    // and readiness does not wait for it.
    let file = headend.dir().path().join("catalog.yaml");
    common::replace_file(&file, &catalog(&[("live", "test://")]));
    let reload = call(
        &headend,
        "POST",
        "/api/v1/reload",
        Some(&format!("Bearer {TOKEN}")),
    );
    // The file watch may have applied it first.
    assert_eq!(reload.status, 200, "{}", reload.text());
    let broken = get_json(&headend, "/api/v1/channels/broken");
    assert_eq!(broken["state"], "stopped", "{broken}");
    assert_eq!(broken["input_bitrate"], Value::Null);
    assert_eq!(broken["live_edge_age_seconds"], Value::Null);
    assert!(broken["restarts"].as_u64() >= Some(1), "{broken}");
    let live = get_json(&headend, "/api/v1/channels/live");
    assert_eq!(live["state"], "live", "untouched by the reload: {live}");
    assert_eq!(headend.get("/readyz").status, 200);
}

#[test]
fn metrics_are_strict_prometheus_text_and_json_logs_parse() {
    // No file watch: the only reload is the test's.
    let headend = start_with_token_file(
        &catalog(&[("news", "test://")]),
        &["--log-format", "json", "--no-watch"],
    );
    headend.wait_for("/live/news/master.m3u8", READY_TIMEOUT);
    // A rejected reload shows as a metric.
    let dir = headend.dir().path().to_owned();
    common::replace_file(&dir.join("catalog.yaml"), "channels: [ {\n");
    let reload = call(
        &headend,
        "POST",
        "/api/v1/reload",
        Some(&format!("Bearer {TOKEN}")),
    );
    assert_eq!(reload.status, 422, "{}", reload.text());

    let scrape = |headend: &Headend| {
        let response = headend.get("/metrics");
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        parse_exposition(&response.text()).unwrap_or_else(|e| headend.fail(&e))
    };
    let first = scrape(&headend);
    let segments = |samples: &[Sample], track: &str| {
        value(
            samples,
            "headend_segments_total",
            &[("channel", "news"), ("track", track)],
        )
    };
    let before = segments(&first, "240p").unwrap_or_else(|| headend.fail("no segment count"));
    assert!(before >= 1.0, "{before}");
    let second = headend
        .wait_until(READY_TIMEOUT, || {
            let samples = scrape(&headend);
            (segments(&samples, "240p") > Some(before)).then_some(samples)
        })
        .unwrap_or_else(|| headend.fail("headend_segments_total did not grow"));
    assert!(segments(&second, "audio").is_some_and(|n| n >= 1.0));

    let news = |name: &str| value(&second, name, &[("channel", "news")]);
    assert_eq!(
        value(
            &second,
            "headend_channel_state",
            &[("channel", "news"), ("state", "live")]
        ),
        Some(1.0)
    );
    let states: f64 = second
        .iter()
        .filter(|s| s.name == "headend_channel_state")
        .map(|s| s.value)
        .sum();
    assert_eq!(states, 1.0, "one state at a time");
    assert_eq!(news("headend_channel_restarts_total"), Some(0.0));
    assert_eq!(news("headend_channel_failovers_total"), Some(0.0));
    assert_eq!(news("headend_ts_clients"), Some(0.0));
    assert!(news("headend_channel_input_bytes_total").is_some_and(|b| b > 0.0));
    let delay = news("headend_live_edge_delay_seconds").unwrap_or(f64::MAX);
    assert!((0.0..3.0 * SEGMENT).contains(&delay), "{delay}");
    let speed = value(
        &second,
        "headend_encode_speed",
        &[("channel", "news"), ("rendition", "240p")],
    );
    assert!(speed.is_some_and(|s| s > 0.0), "{speed:?}");
    assert_eq!(
        value(&second, "headend_catalog_reload_failures_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        value(&second, "headend_catalog_last_reload_success", &[]),
        Some(0.0)
    );
    // Requests are labelled by route kind, never by path.
    let routes: BTreeSet<&str> = second
        .iter()
        .filter(|s| s.name == "headend_http_requests_total")
        .filter_map(|s| s.labels.get("route").map(String::as_str))
        .collect();
    assert!(
        routes.contains("master") && routes.contains("metrics"),
        "{routes:?}"
    );
    assert!(routes.iter().all(|r| !r.contains('/')), "{routes:?}");
    assert!(
        value(
            &second,
            "headend_http_requests_total",
            &[("route", "api"), ("status", "422")]
        ) == Some(1.0)
    );
    assert!(
        value(
            &second,
            "headend_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ) == Some(1.0)
    );

    headend.stop(common::SHUTDOWN_TIMEOUT);
    let lines = json_log_lines(&headend);
    let started = lines
        .iter()
        .find(|l| l["message"] == "Channel started.")
        .unwrap_or_else(|| panic!("no `Channel started.` in {lines:#?}"));
    assert_eq!(started["channel"], "news");
    assert_eq!(started["level"], "INFO");
    assert_eq!(started["target"], "headend::supervisor");
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "WARN" && l["message"] == "Catalog problem."),
        "the rejected edit is logged"
    );
}

/// ffmpeg's arguments for two minutes of small video with a tone, before the output
/// file: long enough for an ingest to be seen part way.
const CLIP_ARGS: &str = "-v error -y -f lavfi -i testsrc2=size=320x240:rate=25 \
    -f lavfi -i sine=frequency=440:sample_rate=48000 -t 120 -c:v libx264 -preset ultrafast \
    -g 50 -pix_fmt yuv420p -c:a aac -b:a 64k -shortest";

#[test]
fn vod_assets_report_their_ingest_and_its_progress() {
    let dir = TempDir::new("admin-vod");
    let clip = dir.path().join("long.mp4");
    let made = common::run_with_timeout(
        std::process::Command::new("ffmpeg")
            .args(CLIP_ARGS.split_whitespace())
            .arg(&clip),
        Duration::from_secs(120),
    )
    .expect("ffmpeg in time");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let catalog = format!(
        "{}channels: []\nassets:\n  \
         - {{ id: missing, title: \"Missing\", source: missing.mp4, ladder: small }}\n  \
         - {{ id: long, title: \"A Long Clip\", source: long.mp4, ladder: small }}\n",
        ladders()
    );
    let file = dir.write("catalog.yaml", &[catalog.as_bytes()]);
    let data = format!("--data={}", dir.path().join("data").display());
    let headend = Headend::start_with_env(dir, &file, &[&data], &[("HEADEND_API_TOKEN", TOKEN)]);

    // Every answer until both are done, polled as fast as the API answers.
    let mut seen: Vec<Value> = Vec::new();
    let done = headend.wait_until(READY_TIMEOUT, || {
        for _ in 0..50 {
            let assets = get_json(&headend, "/api/v1/vod");
            seen.push(assets.clone());
            let states: Vec<&str> = assets["assets"]
                .as_array()
                .map(|a| a.iter().filter_map(|a| a["status"].as_str()).collect())
                .unwrap_or_default();
            if states == ["failed", "published"] {
                return Some(assets);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    });
    let done = done.unwrap_or_else(|| headend.fail(&format!("never done: {:?}", seen.last())));
    assert_eq!(
        done["assets"][1],
        serde_json::json!({
            "id": "long",
            "title": "A Long Clip",
            "status": "published",
            "progress": 1.0,
            "available": true,
            "last_error": null,
        })
    );
    let missing = &done["assets"][0];
    assert_eq!(missing["available"], false);
    assert_eq!(missing["progress"], Value::Null);
    let message = missing["last_error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("cannot read source"), "{missing}");
    headend.get_ok("/vod/long/master.m3u8");

    // On the way: the long clip was ingesting, its progress between 0 and 1 and never
    // going back.
    let progress: Vec<f64> = seen
        .iter()
        .map(|answer| &answer["assets"][1])
        .filter(|long| long["status"] == "ingesting")
        .filter_map(|long| long["progress"].as_f64())
        .collect();
    assert!(
        progress.iter().any(|p| *p > 0.0 && *p < 1.0),
        "never seen part way: {progress:?}"
    );
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1])
            && progress.iter().all(|p| (0.0..=1.0).contains(p)),
        "{progress:?}"
    );
}

/// Every line of the headend's log, each a JSON object with a timestamp, a level and
/// a message.
fn json_log_lines(headend: &Headend) -> Vec<Value> {
    let log = headend.log();
    assert!(!log.is_empty(), "nothing logged");
    log.lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
            for key in ["timestamp", "level", "message", "target"] {
                assert!(value[key].is_string(), "no {key} in {line}");
            }
            value
        })
        .collect()
}

// ---------------------------------------------------------------- /ts/ client

/// A `/ts/` client over HTTP/1.0, connected while the test looks at the counts.
struct TsClient(TcpStream);

impl TsClient {
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
        let mut client = TsClient(stream);
        assert!(client.read_some() > 0, "{path} sent nothing");
        client
    }

    fn read_some(&mut self) -> usize {
        let mut buffer = [0u8; 64 * 1024];
        self.0.read(&mut buffer).unwrap_or(0)
    }
}

// ---------------------------------------------------------------- the text format

/// One sample of a scrape.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The value of the series `name{labels}` (exactly those labels).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == labels)
        .map(|s| s.value)
}

/// Parses the Prometheus text format 0.0.4 strictly: every line is `# HELP name
/// text`, `# TYPE name type` (a known type, once per family, before its samples) or
/// `name{label="value",...} value`; names and label names are well formed; label
/// values use only the three escapes; no series appears twice; counters are finite
/// and never negative; the text ends with a newline.
fn parse_exposition(text: &str) -> Result<Vec<Sample>, String> {
    const TYPES: [&str; 5] = ["counter", "gauge", "histogram", "summary", "untyped"];
    if !text.ends_with('\n') {
        return Err("the exposition does not end with a newline".to_owned());
    }
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helped: BTreeSet<String> = BTreeSet::new();
    let mut sampled: BTreeSet<String> = BTreeSet::new();
    let mut series: BTreeSet<(String, BTreeMap<String, String>)> = BTreeSet::new();
    let mut samples = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let fail = |why: &str| format!("line {}: {why}: {line:?}", number + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest
                .split_once(' ')
                .ok_or_else(|| fail("HELP without text"))?;
            if !is_metric_name(name) || help.is_empty() || !helped.insert(name.to_owned()) {
                return Err(fail("bad or repeated HELP"));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| fail("TYPE without a type"))?;
            if !is_metric_name(name) || !TYPES.contains(&kind) {
                return Err(fail("unknown TYPE"));
            }
            if sampled.contains(name) || types.insert(name.to_owned(), kind.to_owned()).is_some() {
                return Err(fail("TYPE repeated or after its samples"));
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            return Err(fail("neither HELP, TYPE nor a sample"));
        }
        let sample = parse_sample(line).map_err(|why| fail(&why))?;
        let kind = types
            .get(&sample.name)
            .ok_or_else(|| fail("a sample without a TYPE"))?;
        if kind == "counter" && !(sample.value.is_finite() && sample.value >= 0.0) {
            return Err(fail("a counter that is negative or not finite"));
        }
        if kind == "counter" && !sample.name.ends_with("_total") {
            return Err(fail("a counter whose name does not end in _total"));
        }
        if !series.insert((sample.name.clone(), sample.labels.clone())) {
            return Err(fail("a series twice"));
        }
        sampled.insert(sample.name.clone());
        samples.push(sample);
    }
    Ok(samples)
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    is_metric_name(name) && !name.contains(':') && !name.starts_with("__")
}

/// `name{a="x",b="y"} value` (no timestamp: the headend writes none).
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or_else(|| "no value".to_owned())?;
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        loop {
            // label name up to `=`
            let start = chars.peek().map(|(i, _)| *i).ok_or("unterminated labels")?;
            let eq = after[start..].find('=').ok_or("a label without =")? + start;
            let label = &after[start..eq];
            if !is_label_name(label) {
                return Err(format!("bad label name {label:?}"));
            }
            while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                chars.next();
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err("a label value without quotes".to_owned());
            }
            let mut value = String::new();
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => return Err(format!("bad escape {other:?}")),
                    },
                    Some('"') => break,
                    Some('\n') | None => return Err("unterminated label value".to_owned()),
                    Some(c) => value.push(c),
                }
            }
            if labels.insert(label.to_owned(), value).is_some() {
                return Err(format!("label {label} twice"));
            }
            match chars.next() {
                Some((_, ',')) => continue,
                Some((i, '}')) => {
                    rest = &after[i + 1..];
                    break;
                }
                other => return Err(format!("after a label: {other:?}")),
            }
        }
    }
    let value = rest
        .strip_prefix(' ')
        .ok_or_else(|| "no space before the value".to_owned())?;
    if value.contains(' ') {
        return Err("more than a value (a timestamp?)".to_owned());
    }
    let value = match value {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        text => text
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("bad value {text:?}"))?,
    };
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

#[test]
fn the_strict_parser_refuses_what_prometheus_would() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\\\"\\n\\\\\"} 3\n# TYPE b gauge\nb -2.5\nb{y=\"\"} NaN\n";
    let samples = parse_exposition(good).expect("valid");
    assert_eq!(samples[0].labels["x"], "1\"\n\\");
    assert_eq!(value(&samples, "b", &[]), Some(-2.5));
    for bad in [
        "a 1\n",                                        // no TYPE
        "# TYPE a counter\na -1\n",                     // negative counter, no _total
        "# TYPE a_total counter\na_total -1\n",         // negative counter
        "# TYPE a gauge\na 1",                          // no final newline
        "# TYPE a gauge\na{x=\"1\"} 1\na{x=\"1\"} 2\n", // a series twice
        "# TYPE a gauge\na{x=1} 1\n",                   // unquoted value
        "# TYPE a gauge\na{x=\"\\t\"} 1\n",             // unknown escape
        "# TYPE a gauge\na 1 1700000000\n",             // timestamp
        "# TYPE a gauge\na one\n",                      // not a number
        "# TYPE a blob\na 1\n",                         // unknown type
        "# TYPE a gauge\na 1\n# TYPE a gauge\n",        // TYPE after samples
        "# comment\n",                                  // a stray comment
        "# TYPE a gauge\n\na 1\n",                      // an empty line
        "# TYPE 1a gauge\n1a 1\n",                      // bad name
        "# TYPE a gauge\na{__x=\"1\"} 1\n",             // reserved label name
    ] {
        assert!(parse_exposition(bad).is_err(), "accepted {bad:?}");
    }
}
