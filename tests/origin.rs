//! The origin over real sockets: a real server on 127.0.0.1:0 serving a `SegmentStore`
//! filled with synthetic bytes, asked by ureq (HTTP/1.1), by hand-written bytes over a
//! raw `TcpStream` (requests no well-behaved client would send), and by curl (HTTP/2).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use headend::origin::{Origin, OriginConfig, OriginError};
use headend::store::{SegmentStore, StoredSegment, AUDIO_TRACK};

const MASTER: &[u8] = b"#EXTM3U\n#EXT-X-VERSION:7\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",NAME=\"main\",URI=\"audio/index.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1280x720,AUDIO=\"aac\"\n720p/index.m3u8\n";
const INIT_720P: &[u8] = b"ftypcmfc-moov-720p";
const INIT_AUDIO: &[u8] = b"ftypcmfc-moov-audio";
const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const ALLOW: &str = "GET, HEAD, OPTIONS";
const SEGMENT_LEN: usize = 1000;
/// Segments 10..=14 are published with a window that keeps 12..=14.
const FIRST_IN_WINDOW: u64 = 12;
const LAST_IN_WINDOW: u64 = 14;

/// Deterministic, position-dependent bytes, so a wrong slice cannot pass.
fn segment_bytes(seq: u64) -> Vec<u8> {
    (0..SEGMENT_LEN)
        .map(|i| ((i as u64 * 7 + seq * 13) % 251) as u8)
        .collect()
}

fn stored(sequence: u64) -> StoredSegment {
    StoredSegment {
        sequence,
        init: 0,
        data: Bytes::from(segment_bytes(sequence)),
    }
}

fn media_playlist(last: u64) -> Vec<u8> {
    let mut text = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:6\n\
         #EXT-X-MEDIA-SEQUENCE:{FIRST_IN_WINDOW}\n#EXT-X-MAP:URI=\"init-0.mp4\"\n"
    );
    for seq in FIRST_IN_WINDOW..=last {
        text.push_str(&format!("#EXTINF:6.000,\n{seq}.m4s\n"));
    }
    text.into_bytes()
}

/// `news`: target 6 s, fully published. `fast`: target 1 s. `starting`: registered,
/// nothing published yet.
fn fixture() -> Arc<SegmentStore> {
    let store = SegmentStore::new();
    let news = store.channel_or_insert("news", Duration::from_secs(6));
    news.publish_init("720p", 0, Bytes::from_static(INIT_720P));
    news.publish_init(AUDIO_TRACK, 0, Bytes::from_static(INIT_AUDIO));
    for seq in 10..=LAST_IN_WINDOW {
        for track in ["720p", AUDIO_TRACK] {
            news.publish_segment(
                track,
                stored(seq),
                Bytes::from(media_playlist(seq)),
                FIRST_IN_WINDOW,
            );
        }
    }
    news.publish_master(Bytes::from_static(MASTER));

    let fast = store.channel_or_insert("fast", Duration::from_secs(1));
    fast.publish_master(Bytes::from_static(MASTER));
    let three = store.channel_or_insert("three", Duration::from_secs(3));
    three.publish_master(Bytes::from_static(MASTER));
    store.channel_or_insert("starting", Duration::from_secs(2));
    store
}

// ---------------------------------------------------------------- server harness

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), OriginError>>>,
}

impl Server {
    fn start(store: Arc<SegmentStore>) -> Server {
        Server::start_with(test_config(), store)
    }

    fn start_with(config: OriginConfig, store: Arc<SegmentStore>) -> Server {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async move {
                let origin = Origin::bind(config, store).await?;
                addr_tx
                    .send(origin.local_addr())
                    .expect("test thread waits for the address");
                origin
                    .serve(async move {
                        let _ = stopped.await;
                    })
                    .await
            })
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("origin bound");
        Server {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Fires the shutdown future and returns how long `serve` took to return.
    fn shutdown(mut self) -> (Duration, Result<(), OriginError>) {
        let started = Instant::now();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let thread = self.thread.take().expect("server thread");
        let result = thread.join().expect("server thread did not panic");
        (started.elapsed(), result)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn test_config() -> OriginConfig {
    OriginConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..OriginConfig::default()
    }
}

// ---------------------------------------------------------------- clients

struct Reply {
    status: u16,
    version: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        let mut values = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        let first = values.next().map(|(_, v)| v.as_str());
        assert!(values.next().is_none(), "header {name} sent twice");
        first
    }

    /// Headers but `Date`, which may tick between two requests.
    fn headers_but_date(&self) -> Vec<(String, String)> {
        let mut headers: Vec<_> = self
            .headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("date"))
            .cloned()
            .collect();
        headers.sort();
        headers
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build()
}

fn request(server: &Server, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    request_with(&agent(), server, method, path, headers)
}

fn request_with(
    agent: &ureq::Agent,
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = agent.request(method, &server.url(path));
    for (name, value) in headers {
        req = req.set(name, value);
    }
    let response = match req.call() {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let status = response.status();
    let version = response.http_version().to_owned();
    let headers = response
        .headers_names()
        .into_iter()
        .flat_map(|name| {
            response
                .all(&name)
                .into_iter()
                .map(|v| (name.clone(), v.to_owned()))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut body = Vec::new();
    response
        .into_reader()
        .read_to_end(&mut body)
        .expect("response body");
    Reply {
        status,
        version,
        headers,
        body,
    }
}

fn get(server: &Server, path: &str) -> Reply {
    request(server, "GET", path, &[])
}

/// Sends `bytes` as they are and reads until the server closes (or 5 s pass). Returns
/// what was read; a reset after some bytes keeps those bytes.
fn raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    // The server may close before taking everything (an oversized head); that is fine.
    let _ = stream.write_all(bytes);
    read_until_closed(&mut stream)
}

fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return received,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("server kept the connection open; read so far: {received:?}")
            }
            // Reset or aborted: the server closed with our bytes unread.
            Err(_) => return received,
        }
    }
}

/// The status line of a raw HTTP/1.1 answer, e.g. `HTTP/1.1 400 Bad Request`.
fn status_line(response: &[u8]) -> String {
    let text = String::from_utf8_lossy(response);
    text.lines().next().unwrap_or("").to_owned()
}

fn raw_get(addr: SocketAddr, target: &str) -> String {
    let request = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    status_line(&raw(addr, request.as_bytes()))
}

fn assert_serving(server: &Server) {
    let reply = get(server, "/healthz");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, b"ok");
}

fn curl_available() -> bool {
    std::process::Command::new("curl")
        .arg("--version")
        .output()
        .map(|out| out.status.success() && String::from_utf8_lossy(&out.stdout).contains("HTTP2"))
        .unwrap_or(false)
}

/// `curl --http2-prior-knowledge`; returns (body, "<http_version> <status>").
fn curl_h2(url: &str, extra: &[&str]) -> (Vec<u8>, String) {
    assert!(
        curl_available(),
        "this test needs curl built with HTTP/2 (apt-get install curl)"
    );
    let out = std::process::Command::new("curl")
        .args(["--http2-prior-knowledge", "-s", "--max-time", "10"])
        .args(extra)
        .args(["-o", "-", "-w", "\n%{http_version} %{response_code}", url])
        .output()
        .expect("run curl");
    assert!(out.status.success(), "curl failed: {out:?}");
    let split = out
        .stdout
        .iter()
        .rposition(|b| *b == b'\n')
        .expect("curl write-out line");
    let body = out.stdout[..split].to_vec();
    let meta = String::from_utf8_lossy(&out.stdout[split + 1..]).into_owned();
    (body, meta)
}

// ---------------------------------------------------------------- content and caching

#[test]
fn master_playlist_has_type_cache_lifetime_and_common_headers() {
    let server = Server::start(fixture());
    let reply = get(&server, "/live/news/master.m3u8");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.version, "HTTP/1.1");
    assert_eq!(reply.body, MASTER);
    assert_eq!(reply.header("content-type"), Some(PLAYLIST_TYPE));
    // Target duration 6 s: cached for at most 3 s.
    assert_eq!(reply.header("cache-control"), Some("max-age=3"));
    assert_eq!(
        reply.header("content-length"),
        Some(MASTER.len().to_string().as_str())
    );
    assert_eq!(reply.header("accept-ranges"), Some("bytes"));
    assert_eq!(reply.header("server"), Some("headend"));
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        reply.header("access-control-expose-headers"),
        Some("Content-Length, Content-Range, ETag")
    );
    let date = reply.header("date").expect("Date header");
    assert!(date.ends_with(" GMT"), "{date}");
    let etag = reply.header("etag").expect("ETag header");
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong tag: {etag}"
    );
}

#[test]
fn media_playlists_init_and_segments_have_their_types() {
    let server = Server::start(fixture());

    let playlist = get(&server, "/live/news/720p/index.m3u8");
    assert_eq!(playlist.status, 200);
    assert_eq!(playlist.body, media_playlist(LAST_IN_WINDOW));
    assert_eq!(playlist.header("content-type"), Some(PLAYLIST_TYPE));
    assert_eq!(playlist.header("cache-control"), Some("max-age=3"));

    let audio_playlist = get(&server, "/live/news/audio/index.m3u8");
    assert_eq!(audio_playlist.status, 200);
    assert_eq!(audio_playlist.header("content-type"), Some(PLAYLIST_TYPE));

    // The version a playlist names never changes; `init.mp4`, the newest version,
    // changes when the channel restarts and is cached like a playlist.
    let init = get(&server, "/live/news/720p/init-0.mp4");
    assert_eq!(init.status, 200);
    assert_eq!(init.body, INIT_720P);
    assert_eq!(init.header("content-type"), Some("video/mp4"));
    assert_eq!(init.header("cache-control"), Some(IMMUTABLE));
    let newest = get(&server, "/live/news/720p/init.mp4");
    assert_eq!(newest.body, INIT_720P);
    assert_eq!(newest.header("cache-control"), Some("max-age=3"));

    let audio_init = get(&server, "/live/news/audio/init-0.mp4");
    assert_eq!(audio_init.status, 200);
    assert_eq!(audio_init.body, INIT_AUDIO);
    assert_eq!(audio_init.header("content-type"), Some("audio/mp4"));
    assert_eq!(audio_init.header("cache-control"), Some(IMMUTABLE));

    for seq in FIRST_IN_WINDOW..=LAST_IN_WINDOW {
        for track in ["720p", "audio"] {
            let segment = get(&server, &format!("/live/news/{track}/{seq}.m4s"));
            assert_eq!(segment.status, 200, "{track}/{seq}");
            assert_eq!(segment.body, segment_bytes(seq), "{track}/{seq}");
            assert_eq!(segment.header("content-type"), Some("video/iso.segment"));
            assert_eq!(segment.header("cache-control"), Some(IMMUTABLE));
            assert_eq!(segment.header("content-length"), Some("1000"));
        }
    }
}

#[test]
fn playlist_cache_lifetime_follows_the_target_duration() {
    let server = Server::start(fixture());
    // 1 s target: half is below a second, so only revalidation.
    let fast = get(&server, "/live/fast/master.m3u8");
    assert_eq!(fast.header("cache-control"), Some("no-cache"));
    // 3 s target: half is 1.5 s, rounded down.
    let three = get(&server, "/live/three/master.m3u8");
    assert_eq!(three.header("cache-control"), Some("max-age=1"));
}

#[test]
fn healthz_answers_ok() {
    let server = Server::start(SegmentStore::new());
    let reply = get(&server, "/healthz");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, b"ok");
    assert_eq!(reply.header("cache-control"), Some("no-store"));
}

// ---------------------------------------------------------------- CORS and HEAD

#[test]
fn cors_preflight_allows_range_requests() {
    let server = Server::start(fixture());
    let reply = request(
        &server,
        "OPTIONS",
        "/live/news/720p/12.m4s",
        &[
            ("Origin", "https://player.example"),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "range"),
        ],
    );
    assert_eq!(reply.status, 204);
    assert_eq!(reply.body, b"");
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    assert_eq!(reply.header("access-control-allow-methods"), Some(ALLOW));
    assert_eq!(
        reply.header("access-control-allow-headers"),
        Some("Range, If-None-Match, If-Range")
    );
    assert_eq!(reply.header("access-control-max-age"), Some("86400"));
    assert_eq!(reply.header("allow"), Some(ALLOW));
}

#[test]
fn head_has_the_get_headers_and_no_body() {
    let server = Server::start(fixture());
    for path in [
        "/live/news/master.m3u8",
        "/live/news/720p/index.m3u8",
        "/live/news/720p/init.mp4",
        "/live/news/audio/init.mp4",
        "/live/news/720p/13.m4s",
        "/live/news/720p/99.m4s",
        "/live/starting/master.m3u8",
        "/healthz",
    ] {
        let get_reply = get(&server, path);
        let head_reply = request(&server, "HEAD", path, &[]);
        assert_eq!(head_reply.status, get_reply.status, "{path}");
        assert_eq!(
            head_reply.headers_but_date(),
            get_reply.headers_but_date(),
            "{path}"
        );
        assert_eq!(
            head_reply.header("content-length"),
            Some(get_reply.body.len().to_string().as_str()),
            "{path}"
        );

        // On the wire: the answer ends with the blank line after the headers.
        let raw_reply = raw(
            server.addr,
            format!("HEAD {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert!(raw_reply.ends_with(b"\r\n\r\n"), "{path}: {raw_reply:?}");
        let head_end = raw_reply
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("end of head");
        assert_eq!(
            head_end + 4,
            raw_reply.len(),
            "{path}: body bytes after HEAD"
        );
    }
}

// ---------------------------------------------------------------- ranges

#[test]
fn single_ranges_get_206_with_the_exact_bytes() {
    let server = Server::start(fixture());
    let full = segment_bytes(13);
    let path = "/live/news/720p/13.m4s";
    for (range, start, end) in [
        ("bytes=0-99", 0usize, 99usize),
        ("bytes=500-500", 500, 500),
        ("bytes=990-", 990, 999),
        ("bytes=-10", 990, 999),
        ("bytes=995-5000", 995, 999),
        ("bytes=-5000", 0, 999),
        ("bytes=0-", 0, 999),
    ] {
        let reply = request(&server, "GET", path, &[("Range", range)]);
        assert_eq!(reply.status, 206, "{range}");
        assert_eq!(
            reply.header("content-range"),
            Some(format!("bytes {start}-{end}/1000").as_str()),
            "{range}"
        );
        assert_eq!(
            reply.header("content-length"),
            Some((end - start + 1).to_string().as_str()),
            "{range}"
        );
        assert_eq!(reply.body, &full[start..=end], "{range}");
        assert_eq!(reply.header("content-type"), Some("video/iso.segment"));
        assert_eq!(reply.header("cache-control"), Some(IMMUTABLE));
    }
    // Playlists are ranges too.
    let reply = request(
        &server,
        "GET",
        "/live/news/master.m3u8",
        &[("Range", "bytes=0-6")],
    );
    assert_eq!(reply.status, 206);
    assert_eq!(reply.body, b"#EXTM3U");
}

#[test]
fn unsatisfiable_ranges_get_416_with_the_length() {
    let server = Server::start(fixture());
    for range in ["bytes=1000-", "bytes=1000-1001", "bytes=-0"] {
        let reply = request(
            &server,
            "GET",
            "/live/news/720p/13.m4s",
            &[("Range", range)],
        );
        assert_eq!(reply.status, 416, "{range}");
        assert_eq!(
            reply.header("content-range"),
            Some("bytes */1000"),
            "{range}"
        );
        assert_eq!(reply.body, b"", "{range}");
    }
}

#[test]
fn multiple_or_invalid_ranges_get_the_whole_segment() {
    let server = Server::start(fixture());
    for range in ["bytes=0-1,5-6", "bytes=9-3", "pages=1-2", "bytes=x-"] {
        let reply = request(
            &server,
            "GET",
            "/live/news/720p/13.m4s",
            &[("Range", range)],
        );
        assert_eq!(reply.status, 200, "{range}");
        assert_eq!(reply.header("content-range"), None, "{range}");
        assert_eq!(reply.body, segment_bytes(13), "{range}");
    }
}

// ---------------------------------------------------------------- entity tags

#[test]
fn if_none_match_gets_304_for_the_current_tag() {
    let server = Server::start(fixture());
    for path in [
        "/live/news/master.m3u8",
        "/live/news/720p/index.m3u8",
        "/live/news/720p/init.mp4",
        "/live/news/720p/12.m4s",
    ] {
        let first = get(&server, path);
        let etag = first.header("etag").expect("ETag").to_owned();
        let weak = format!("W/{etag}");
        let listed = format!("\"other\", {etag}");
        for value in [etag.as_str(), weak.as_str(), listed.as_str(), "*"] {
            let reply = request(&server, "GET", path, &[("If-None-Match", value)]);
            assert_eq!(reply.status, 304, "{path} If-None-Match: {value}");
            assert_eq!(reply.body, b"", "{path}");
            assert_eq!(reply.header("etag"), Some(etag.as_str()), "{path}");
            assert_eq!(reply.header("cache-control"), first.header("cache-control"));
        }
        let reply = request(&server, "GET", path, &[("If-None-Match", "\"other\"")]);
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.body, first.body, "{path}");
        let reply = request(&server, "HEAD", path, &[("If-None-Match", etag.as_str())]);
        assert_eq!(reply.status, 304, "HEAD {path}");
    }
}

#[test]
fn tags_tell_segments_apart_and_follow_playlist_updates() {
    let store = fixture();
    let server = Server::start(Arc::clone(&store));
    let tag = |path: &str| get(&server, path).header("etag").map(str::to_owned);
    let seg12 = tag("/live/news/720p/12.m4s");
    assert_eq!(seg12, tag("/live/news/720p/12.m4s"));
    assert_ne!(seg12, tag("/live/news/720p/13.m4s"));
    assert_ne!(seg12, tag("/live/news/audio/12.m4s"));
    assert_ne!(
        tag("/live/news/720p/init.mp4"),
        tag("/live/news/audio/init.mp4")
    );

    let before = tag("/live/news/720p/index.m3u8").expect("ETag");
    let news = store.channel("news").expect("news");
    news.publish_segment("720p", stored(15), Bytes::from(media_playlist(15)), 13);
    let reply = request(
        &server,
        "GET",
        "/live/news/720p/index.m3u8",
        &[("If-None-Match", before.as_str())],
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, media_playlist(15));
    assert_ne!(reply.header("etag"), Some(before.as_str()));
}

// ---------------------------------------------------------------- not found, not yet, not allowed

#[test]
fn unknown_channels_tracks_and_old_segments_are_404() {
    let server = Server::start(fixture());
    for path in [
        "/live/nope/master.m3u8",
        "/live/nope/720p/index.m3u8",
        "/live/nope/720p/init.mp4",
        "/live/nope/720p/12.m4s",
        "/live/news/1080p/index.m3u8",
        "/live/news/1080p/init.mp4",
        "/live/news/1080p/12.m4s",
        // Left the window.
        "/live/news/720p/10.m4s",
        "/live/news/720p/11.m4s",
        // Not made yet.
        "/live/news/720p/15.m4s",
        "/live/news/720p/012.m4s",
        "/live/news/manifest.mpd",
        "/live/news/720p/12.1.m4s",
        "/",
        "/index.html",
        "/live/news/",
    ] {
        let reply = get(&server, path);
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{path}");
        assert_eq!(
            reply.header("access-control-allow-origin"),
            Some("*"),
            "{path}"
        );
    }
    // The store owns the window: a removed channel is gone at once.
    let store = fixture();
    let server = Server::start(Arc::clone(&store));
    assert_eq!(get(&server, "/live/news/master.m3u8").status, 200);
    store.remove("news");
    assert_eq!(get(&server, "/live/news/master.m3u8").status, 404);
}

#[test]
fn a_starting_channel_answers_503_with_retry_after() {
    let store = fixture();
    let server = Server::start(Arc::clone(&store));
    for path in [
        "/live/starting/master.m3u8",
        "/live/starting/720p/index.m3u8",
        "/live/starting/720p/init.mp4",
    ] {
        let reply = get(&server, path);
        assert_eq!(reply.status, 503, "{path}");
        assert_eq!(reply.header("retry-after"), Some("1"), "{path}");
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{path}");
    }
    let starting = store.channel("starting").expect("starting");
    starting.publish_master(Bytes::from_static(MASTER));
    assert_eq!(get(&server, "/live/starting/master.m3u8").status, 200);
}

#[test]
fn other_methods_get_405_with_allow() {
    let server = Server::start(fixture());
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        for path in [
            "/live/news/master.m3u8",
            "/live/news/720p/12.m4s",
            "/healthz",
        ] {
            let reply = request(&server, method, path, &[]);
            assert_eq!(reply.status, 405, "{method} {path}");
            assert_eq!(reply.header("allow"), Some(ALLOW), "{method} {path}");
        }
    }
    // The segment is untouched.
    assert_eq!(
        get(&server, "/live/news/720p/12.m4s").body,
        segment_bytes(12)
    );
}

// ---------------------------------------------------------------- hostile requests

#[test]
fn traversal_attempts_are_bad_requests() {
    let server = Server::start(fixture());
    for target in [
        "/live/../etc/passwd",
        "/live/%2e%2e/x",
        "/live/%2E%2E/%2E%2E/etc/passwd",
        "/live/news/%2F..%2F/index.m3u8",
        "/live/news/..%2f..%2fetc%2fpasswd",
        "/live/news/..%5c..%5cwindows/index.m3u8",
        "/live/news%00/master.m3u8",
        "/live/news/720p/..",
        "/live/./news/master.m3u8",
        "/live/news/%zz/index.m3u8",
    ] {
        assert_eq!(
            raw_get(server.addr, target),
            "HTTP/1.1 400 Bad Request",
            "{target}"
        );
    }
    // The same channel by its plain name is fine: the 400s are the encoding's fault.
    assert_eq!(
        raw_get(server.addr, "/live/news/master.m3u8"),
        "HTTP/1.1 200 OK"
    );
}

#[test]
fn request_targets_must_be_origin_form() {
    let server = Server::start(fixture());
    let absolute = format!("http://{}/healthz", server.addr);
    assert_eq!(raw_get(server.addr, &absolute), "HTTP/1.1 400 Bad Request");
    let asterisk = raw(
        server.addr,
        b"OPTIONS * HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_line(&asterisk), "HTTP/1.1 400 Bad Request");
    assert_serving(&server);
}

#[test]
fn garbage_gets_400_and_the_server_keeps_serving() {
    let server = Server::start(fixture());
    for garbage in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n"[..],
        b"GET /healthz HTTP/9.9\r\n\r\n",
        b"GET /hea lthz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\r\n\r\n\r\n\r\n\x00\x00\x00\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nBad Header Line\r\n\r\n",
    ] {
        let reply = raw(server.addr, garbage);
        assert_eq!(
            status_line(&reply),
            "HTTP/1.1 400 Bad Request",
            "{garbage:?}"
        );
        assert_serving(&server);
    }
}

#[test]
fn an_oversized_head_gets_431_and_the_server_keeps_serving() {
    let config = OriginConfig {
        max_header_bytes: 8 * 1024,
        ..test_config()
    };
    let server = Server::start_with(config, fixture());
    let request = |header_len: usize| {
        format!(
            "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(header_len)
        )
    };
    // Under the limit: served.
    let fits = raw(server.addr, request(4 * 1024).as_bytes());
    assert_eq!(status_line(&fits), "HTTP/1.1 200 OK");
    // Over it: 431. hyper closes with the rest of our bytes unread, and the kernel's
    // reset may then discard the 431 before we read it, so a bare close also passes.
    let too_big = raw(server.addr, request(64 * 1024).as_bytes());
    let line = status_line(&too_big);
    assert!(
        too_big.is_empty() || line == "HTTP/1.1 431 Request Header Fields Too Large",
        "{line:?}"
    );
    assert_serving(&server);
}

// ---------------------------------------------------------------- timeouts

#[test]
fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let config = OriginConfig {
        idle_timeout: Duration::from_millis(300),
        header_read_timeout: Duration::from_secs(30),
        ..test_config()
    };
    let server = Server::start_with(config, fixture());
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let started = Instant::now();
    let received = read_until_closed(&mut stream);
    let waited = started.elapsed();
    assert_eq!(received, b"");
    assert!(
        waited >= Duration::from_millis(250),
        "closed after {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "closed after {waited:?}");
    assert_serving(&server);
}

#[test]
fn a_slow_request_head_is_cut_off_by_the_header_read_timeout() {
    let config = OriginConfig {
        idle_timeout: Duration::from_secs(30),
        header_read_timeout: Duration::from_millis(300),
        ..test_config()
    };
    let server = Server::start_with(config, fixture());
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        .expect("write part of a head");
    let started = Instant::now();
    let received = read_until_closed(&mut stream);
    let waited = started.elapsed();
    // hyper closes without an answer (it sends none for a header timeout).
    assert_eq!(String::from_utf8_lossy(&received), "");
    assert!(
        waited >= Duration::from_millis(250),
        "closed after {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "closed after {waited:?}");
    assert_serving(&server);
}

// ---------------------------------------------------------------- HTTP/2

#[test]
fn http2_prior_knowledge_is_served() {
    let server = Server::start(fixture());
    let (body, meta) = curl_h2(&server.url("/healthz"), &[]);
    assert_eq!(meta, "2 200");
    assert_eq!(body, b"ok");

    let (body, meta) = curl_h2(&server.url("/live/news/720p/14.m4s"), &["-r", "100-199"]);
    assert_eq!(meta, "2 206");
    assert_eq!(body, &segment_bytes(14)[100..200]);

    let (body, meta) = curl_h2(&server.url("/live/news/master.m3u8"), &[]);
    assert_eq!(meta, "2 200");
    assert_eq!(body, MASTER);

    let (_, meta) = curl_h2(
        &server.url("/live/news/%2e%2e/master.m3u8"),
        &["--path-as-is"],
    );
    assert_eq!(meta, "2 400");
}

// ---------------------------------------------------------------- shutdown

#[test]
fn shutdown_stops_accepting_and_drains_idle_connections() {
    let server = Server::start(fixture());
    let addr = server.addr;
    // A keep-alive HTTP/1.1 connection between requests, and one that never spoke.
    let agent = agent();
    assert_eq!(
        request_with(&agent, &server, "GET", "/healthz", &[]).status,
        200
    );
    let mut silent = TcpStream::connect(addr).expect("connect");
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let mut keep_alive = TcpStream::connect(addr).expect("connect");
    keep_alive
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    keep_alive
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("write");
    let mut first = [0u8; 12];
    keep_alive.read_exact(&mut first).expect("first answer");
    assert_eq!(&first, b"HTTP/1.1 200");

    let (took, result) = server.shutdown();
    assert!(result.is_ok(), "{result:?}");
    // Idle connections close at once; nothing waits for the 10 s drain cap.
    assert!(
        took < Duration::from_secs(5),
        "serve returned after {took:?}"
    );
    assert!(
        !String::from_utf8_lossy(&read_until_closed(&mut keep_alive)).contains("HTTP/1.1"),
        "no second answer on the drained connection"
    );
    assert_eq!(read_until_closed(&mut silent), b"");
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "listener closed after shutdown"
    );
}

#[test]
fn bind_reports_an_address_in_use() {
    let server = Server::start(fixture());
    let config = OriginConfig {
        listen: server.addr,
        ..OriginConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = runtime.block_on(Origin::bind(config, SegmentStore::new()));
    assert!(
        matches!(result, Err(OriginError::Bind { addr, .. }) if addr == server.addr),
        "{result:?}"
    );
}
