//! One test per source scheme: a real sender on loopback, `headend run` on a channel
//! that takes it, and the channel's HLS output decoded by ffprobe.
//!
//! Every sender sends a picture and a sample rate the ladder does not use, so a
//! segment at the ladder's size and rate shows the source was decoded and
//! normalised, not passed through. Multicast runs only inside a private network
//! namespace (`tests/support/udp_multicast.sh`), so nothing reaches a real network;
//! HTTPS is checked against a certificate the pulling headend trusts through its own
//! mount namespace (`tests/support/with_trust.sh`).

mod common;

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::tls::TlsServer;
use common::{
    http_get, in_network_namespace, parse_master, parse_media, probe_audio, probe_video,
    run_with_timeout, Headend, TempDir, X264_ULTRAFAST,
};
use m3u8_rs::AlternativeMediaType;

// ---------------------------------------------------------------- the test ladder

const CHANNEL: &str = "src";
const RENDITION: &str = "240p";
const WIDTH: u64 = 320;
const HEIGHT: u64 = 240;
const FPS: u64 = 15;
const SEGMENT_SECS: u64 = 1;
const SAMPLE_RATE: u64 = 48_000;
const AUDIO_CHANNELS: u64 = 2;
const AUDIO_TRACK: &str = "audio";
/// AAC-LC frames are 1024 samples; a segment starts within one of its boundary.
const AAC_FRAME_SECS: f64 = 1024.0 / SAMPLE_RATE as f64;

/// Sender start-up plus the headend's first two segments: bounds a wait, it is not a
/// measurement.
const READY_TIMEOUT: Duration = Duration::from_secs(40);
/// How long a server (nginx, the RTSP server) may take to accept connections.
const SERVER_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Lines of a sender's log quoted in a failure message.
const LOG_TAIL_LINES: usize = 20;

/// What the senders send: neither the ladder's size, nor its frame rate, nor its
/// audio format (audiotestsrc gives mono at 44.1 kHz).
const SENDER_VIDEO: &str = "videotestsrc is-live=true pattern=ball \
    ! video/x-raw,width=352,height=288,framerate=25/1 \
    ! x264enc speed-preset=ultrafast tune=zerolatency key-int-max=25 bitrate=500 \
    ! h264parse";
const SENDER_AUDIO: &str = "audiotestsrc is-live=true freq=440 \
    ! audio/x-raw,rate=44100,channels=1 ! audioconvert ! avenc_aac ! aacparse";

/// A catalog with one channel on `uri`; `options` is a YAML flow mapping or empty.
fn catalog(id: &str, uri: &str, options: &str, width: u64, height: u64) -> String {
    let options = if options.is_empty() {
        String::new()
    } else {
        format!(", options: {options}")
    };
    format!(
        "{X264_ULTRAFAST}ladders:\n  t:\n    encoder: x264\n    segment_duration: {SEGMENT_SECS}\n    \
         gop: {SEGMENT_SECS}\n    window: 3\n    renditions:\n      \
         - {{ name: {RENDITION}, width: {width}, height: {height}, bitrate: 300, profile: baseline, max_framerate: {FPS} }}\n    \
         audio: {{ codec: aac, bitrate: 64, channels: {AUDIO_CHANNELS}, sample_rate: {SAMPLE_RATE} }}\n\
         channels:\n  - {{ id: {id}, number: 1, name: Source, group: Test, \
         source: {{ uri: \"{uri}\"{options} }}, ladder: t }}\n"
    )
}

fn channel_catalog(uri: &str, options: &str) -> String {
    catalog(CHANNEL, uri, options, WIDTH, HEIGHT)
}

/// `gst-launch-1.0 -q` with an MPEG-TS of the sender's video and audio into `sink`.
fn gst_ts_sender(sink: &str) -> Command {
    gst_launch(&format!(
        "{SENDER_VIDEO} ! mpegtsmux name=mux alignment=7 ! {sink} {SENDER_AUDIO} ! mux."
    ))
}

fn gst_launch(pipeline: &str) -> Command {
    let mut command = Command::new("gst-launch-1.0");
    command.arg("-q").args(pipeline.split_whitespace());
    command
}

// ---------------------------------------------------------------- senders

/// A sender or server process, in its own process group so that a wrapper shell and
/// its children stop together. Dropping it kills the group.
struct Sender {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Sender {
    fn spawn(name: &'static str, dir: &TempDir, command: &mut Command) -> Self {
        let log = dir.path().join(format!("{name}.log"));
        let file =
            fs::File::create(&log).unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let err = file
            .try_clone()
            .unwrap_or_else(|e| panic!("cloning {}: {e}", log.display()));
        let child = command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting the {name} ({command:?}): {e}"));
        Self { name, child, log }
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// `Err` with the log if the process has exited.
    fn check_running(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "the {} exited with {status}; its log:\n{}",
                self.name,
                self.log_tail()
            )),
            Err(e) => Err(format!("waiting for the {}: {e}", self.name)),
        }
    }

    /// Polls until `ready` holds, failing with the log if the process exits first or
    /// `timeout` passes.
    fn wait_ready(&mut self, what: &str, timeout: Duration, mut ready: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + timeout;
        while !ready(self) {
            if let Err(why) = self.check_running() {
                panic!("waiting for {what}: {why}");
            }
            assert!(
                Instant::now() < deadline,
                "the {} did not get to {what} within {timeout:?}; its log:\n{}",
                self.name,
                self.log_tail()
            );
            thread::sleep(POLL_INTERVAL);
        }
    }

    fn wait_tcp_listening(&mut self, addr: SocketAddr) {
        self.wait_ready(&format!("listening on {addr}"), SERVER_TIMEOUT, |_| {
            TcpStream::connect_timeout(&addr, POLL_INTERVAL).is_ok()
        });
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        // SIGKILL to the group: a sender's shutdown is not under test. The `--` is
        // needed: procps kill reads a bare negative id as an option.
        let _ = Command::new("kill")
            .args(["-KILL", "--"])
            .arg(format!("-{}", self.child.id()))
            .status();
        let _ = self.child.wait();
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|s| s.local_addr())
        .unwrap_or_else(|e| panic!("binding a UDP port on 127.0.0.1: {e}"))
        .port()
}

fn free_tcp_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|s| s.local_addr())
        .unwrap_or_else(|e| panic!("binding a TCP port on 127.0.0.1: {e}"))
        .port()
}

// ---------------------------------------------------------------- the checks

/// Files of one channel's output, fetched once two segments of every track were
/// listed: the newest segment, which is a full one.
struct Output {
    master: Vec<u8>,
    video: PathBuf,
    audio: PathBuf,
}

/// Waits for the channel's playlists and fetches the newest video and audio
/// segment, each with its init segment, into the headend's temp dir. Fails with the
/// headend's and the senders' logs if the channel does not get there in time.
fn fetch_output(headend: &Headend, senders: &mut [&mut Sender]) -> Output {
    let base = format!("/live/{CHANNEL}");
    let mut last = String::from("no answer yet");
    let newest = |track: &str, last: &mut String| -> Option<String> {
        let response = match http_get(&headend.url(&format!("{base}/{track}/index.m3u8"))) {
            Ok(r) if r.status == 200 => r,
            Ok(r) => {
                *last = format!("{track}: {} {}", r.status, r.text());
                return None;
            }
            Err(e) => {
                *last = e;
                return None;
            }
        };
        let playlist = parse_media(&response.body);
        *last = format!("{track}: {} segments listed", playlist.segments.len());
        // The first segment of a stream may be short; the second is a full one.
        (playlist.segments.len() >= 2).then(|| playlist.segments.last().map(|s| s.uri.clone()))?
    };
    let mut sender_failure = None;
    let segments = headend.wait_until(READY_TIMEOUT, || {
        for sender in senders.iter_mut() {
            if let Err(why) = sender.check_running() {
                sender_failure = Some(why);
                return Some(None);
            }
        }
        let video = newest(RENDITION, &mut last)?;
        let audio = newest(AUDIO_TRACK, &mut last)?;
        Some(Some((video, audio)))
    });
    let (video, audio) = match segments {
        Some(Some(pair)) => pair,
        Some(None) => fail(headend, senders, &sender_failure.unwrap_or_default()),
        None => fail(
            headend,
            senders,
            &format!(
                "the channel did not list two segments in every track within {READY_TIMEOUT:?}; \
             last answer: {last}"
            ),
        ),
    };
    let master = headend.get_ok(&format!("{base}/master.m3u8"));
    let fetch = |track: &str, segment: &str| {
        let init = headend.get_ok(&format!("{base}/{track}/init.mp4"));
        let media = headend.get_ok(&format!("{base}/{track}/{segment}"));
        headend
            .dir()
            .write(&format!("{track}.mp4"), &[&init, &media])
    };
    Output {
        video: fetch(RENDITION, &video),
        audio: fetch(AUDIO_TRACK, &audio),
        master,
    }
}

/// Fails the test with `why`, the headend's log and the senders' logs.
fn fail(headend: &Headend, senders: &[&mut Sender], why: &str) -> ! {
    let logs: String = senders
        .iter()
        .map(|s| format!("\n--- {} log ---\n{}", s.name, s.log_tail()))
        .collect();
    headend.fail(&format!("{why}{logs}"))
}

/// The whole proof that a channel works: the multivariant playlist names the ladder,
/// the video decodes as H.264 at the ladder's size from a keyframe, the audio as AAC
/// at the ladder's format.
fn check_output(output: &Output) {
    let master = parse_master(&output.master);
    let [variant] = master.variants.as_slice() else {
        panic!("expected one variant: {master:?}");
    };
    assert_eq!(variant.uri, format!("{RENDITION}/index.m3u8"));
    let resolution = variant.resolution.expect("RESOLUTION on the variant");
    assert_eq!((resolution.width, resolution.height), (WIDTH, HEIGHT));
    let codecs = variant.codecs.as_deref().unwrap_or_default();
    assert!(
        codecs.starts_with("avc1.") && codecs.contains(",mp4a.40.2"),
        "CODECS={codecs}"
    );
    let [audio] = master.alternatives.as_slice() else {
        panic!("expected one audio rendition: {master:?}");
    };
    assert_eq!(audio.media_type, AlternativeMediaType::Audio);
    assert_eq!(
        audio.uri.as_deref(),
        Some(format!("{AUDIO_TRACK}/index.m3u8").as_str())
    );

    check_video(&output.video);
    check_audio(&output.audio);
}

fn check_video(file: &Path) {
    let video = probe_video(file);
    assert_eq!(video.codec, "h264", "{}", file.display());
    assert_eq!((video.width, video.height), (WIDTH, HEIGHT));
    let first = video
        .frames
        .first()
        .unwrap_or_else(|| panic!("{}: no video frames", file.display()));
    assert!(
        first.key_frame && first.pict_type == "I",
        "{}: the segment starts with {first:?}, not a keyframe",
        file.display()
    );
    // The frames span the segment: from a 25 fps source capped at 15 fps, frames are
    // 1/15 s apart on videorate's own grid. The keyframe is the first of them at or
    // after the source frame at the boundary, so each segment starts up to one 15 fps
    // interval late and may end one late too (a span of the full segment); allow three
    // intervals short for a loaded machine.
    let last = video.frames.last().unwrap_or(first);
    let span = last.pts - first.pts;
    assert!(
        span <= SEGMENT_SECS as f64 + 0.001 && span >= SEGMENT_SECS as f64 - 3.0 / FPS as f64,
        "{}: the frames span {span} s of a {SEGMENT_SECS} s segment",
        file.display()
    );
}

fn check_audio(file: &Path) {
    let audio = probe_audio(file);
    assert_eq!(audio.codec, "aac", "{}", file.display());
    assert_eq!(audio.profile, "LC", "{}", file.display());
    assert_eq!(
        (audio.channels, audio.sample_rate),
        (AUDIO_CHANNELS, SAMPLE_RATE),
        "{}",
        file.display()
    );
    let duration = audio.duration();
    assert!(
        (duration - SEGMENT_SECS as f64).abs() <= AAC_FRAME_SECS + 1e-6,
        "{}: {duration} s of audio in a {SEGMENT_SECS} s segment",
        file.display()
    );
}

/// Runs the headend on `catalog` with the senders already started and checks it.
fn run_and_check(catalog: &str, senders: &mut [&mut Sender]) {
    let headend = Headend::start(catalog);
    let output = fetch_output(&headend, senders);
    check_output(&output);
}

// ---------------------------------------------------------------- the tests

#[test]
fn udp_unicast_mpegts() {
    let dir = TempDir::new("src-udp");
    let port = free_udp_port();
    let mut sender = Sender::spawn(
        "sender",
        &dir,
        &mut gst_ts_sender(&format!("udpsink host=127.0.0.1 port={port}")),
    );
    run_and_check(
        &channel_catalog(&format!("udp://127.0.0.1:{port}"), ""),
        &mut [&mut sender],
    );
}

/// `udp://@GROUP:PORT` joins the group. Sender, headend and HTTP client run inside
/// one private network namespace with the group routed over its loopback and a
/// multicast TTL of 0.
#[test]
fn udp_multicast_mpegts_in_a_private_network_namespace() {
    run_multicast("udp", "239.255.0.1", "", "", "ttl-mc=0");
}

/// RTP multicast on a second link: the sender sends on `mc0` of a veth pair
/// (`support/udp_multicast.sh`), so only a receiver that joins on `mc1`, as the
/// channel's `interface` option says, gets it; one that joined where the group's route
/// points (`lo`) would get nothing.
#[test]
fn rtp_multicast_mpegts_on_the_interface_the_channel_names() {
    run_multicast(
        "rtp",
        "239.255.0.2",
        "{ interface: mc1 }",
        "rtpmp2tpay pt=33 !",
        // TTL 0 would keep the datagrams off mc0; the veth pair is inside the
        // namespace, so TTL 1 still reaches nothing outside it.
        "multicast-iface=mc0 ttl-mc=1",
    );
}

/// Sends the sender's TS (through `payloader`, if any, and a `udpsink` with `sink`
/// properties) to `group` inside a private network namespace, where the headend joins
/// it with `scheme://@group:port` and the channel's `options`, and checks what the
/// headend made of it.
fn run_multicast(scheme: &str, group: &str, options: &str, payloader: &str, sink: &str) {
    // A fresh namespace: nothing else can hold these.
    const PORT: u16 = 5000;
    const ADDR: &str = "127.0.0.1:8080";
    let dir = TempDir::new(&format!("src-{scheme}-multicast"));
    let catalog = dir.write(
        "catalog.yaml",
        &[channel_catalog(&format!("{scheme}://@{group}:{PORT}"), options).as_bytes()],
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/udp_multicast.sh");
    let sender = format!(
        "{SENDER_VIDEO} ! mpegtsmux name=mux alignment=7 ! {payloader} \
         udpsink host={group} port={PORT} auto-multicast=true {sink} {SENDER_AUDIO} ! mux."
    );
    let mut command = in_network_namespace();
    command
        .arg(&script)
        .arg(dir.path())
        .arg(env!("CARGO_BIN_EXE_headend"))
        .arg(&catalog)
        .args([ADDR, CHANNEL, RENDITION])
        .arg(READY_TIMEOUT.as_secs().to_string())
        .args(["gst-launch-1.0", "-q"])
        .args(sender.split_whitespace());
    let output = run_with_timeout(&mut command, READY_TIMEOUT + Duration::from_secs(20));
    let log = |name: &str| fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    match output {
        Some(out) if out.status.success() => {}
        other => panic!(
            "{} failed: {}\n--- headend log ---\n{}\n--- sender log ---\n{}",
            script.display(),
            other.map_or("timed out".to_owned(), |o| format!(
                "{}: {}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            )),
            log("headend.log"),
            log("sender.log"),
        ),
    }
    let mp4 = |track: &str| {
        let init = fs::read(dir.path().join(format!("{track}-init.mp4"))).expect("init segment");
        let media = fs::read(dir.path().join(format!("{track}-segment.m4s"))).expect("segment");
        dir.write(&format!("{track}.mp4"), &[&init, &media])
    };
    check_output(&Output {
        master: fs::read(dir.path().join("master.m3u8")).expect("master playlist"),
        video: mp4(RENDITION),
        audio: mp4(AUDIO_TRACK),
    });
}

/// RFC 2250: MPEG-TS in RTP, payload type 33.
#[test]
fn rtp_mpegts() {
    let dir = TempDir::new("src-rtp");
    let port = free_udp_port();
    let mut sender = Sender::spawn(
        "sender",
        &dir,
        &mut gst_ts_sender(&format!(
            "rtpmp2tpay pt=33 ! udpsink host=127.0.0.1 port={port}"
        )),
    );
    run_and_check(
        &channel_catalog(&format!("rtp://127.0.0.1:{port}"), ""),
        &mut [&mut sender],
    );
}

/// The headend calls a listening sender; the mode and latency come from the
/// channel's options, as in manifests/channels.yaml.
#[test]
fn srt_caller_to_a_listening_sender() {
    let dir = TempDir::new("src-srt-caller");
    let port = free_udp_port();
    let mut sender = Sender::spawn(
        "sender",
        &dir,
        &mut gst_ts_sender(&format!(
            "srtsink uri=srt://127.0.0.1:{port}?mode=listener wait-for-connection=false"
        )),
    );
    run_and_check(
        &channel_catalog(
            &format!("srt://127.0.0.1:{port}"),
            "{ mode: caller, latency: 200 }",
        ),
        &mut [&mut sender],
    );
}

/// The headend listens (mode in the URI's query) and the sender calls it.
#[test]
fn srt_listener_called_by_a_sender() {
    let dir = TempDir::new("src-srt-listener");
    let port = free_udp_port();
    let headend = Headend::start(&channel_catalog(
        &format!("srt://0.0.0.0:{port}?mode=listener"),
        "",
    ));
    // A caller gives up when nobody listens yet: call again until the headend's
    // listener is up.
    let sender = gst_ts_sender(&format!("srtsink uri=srt://127.0.0.1:{port}?mode=caller"));
    // Each word single-quoted: the URI's `?` is a glob character to the shell.
    let words: Vec<String> = std::iter::once(sender.get_program())
        .chain(sender.get_args())
        .map(|word| format!("'{}'", word.to_string_lossy()))
        .collect();
    let mut retry = Command::new("sh");
    retry
        .arg("-c")
        .arg(format!("until {}; do sleep 0.5; done", words.join(" ")));
    let mut sender = Sender::spawn("sender", &dir, &mut retry);
    let output = fetch_output(&headend, &mut [&mut sender]);
    check_output(&output);
}

/// The headend pulls from an RTMP server that a sender publishes to. GStreamer 1.22
/// has no RTMP server element and ffmpeg's `-listen 1` sends its media on message
/// stream 0, which rtmp2src ignores; nginx's RTMP module (Debian
/// libnginx-mod-rtmp) is a real server.
#[test]
fn rtmp_pull_from_a_server() {
    const MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
    let dir = TempDir::new("src-rtmp");
    let port = free_tcp_port();
    let config = dir.write(
        "nginx.conf",
        &[format!(
            "load_module {MODULE};\n\
             daemon off;\n\
             master_process off;\n\
             error_log stderr warn;\n\
             pid nginx.pid;\n\
             events {{ worker_connections 64; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}\n"
        )
        .as_bytes()],
    );
    let mut nginx = Command::new("nginx");
    // `-e` before the config is read, or nginx opens /var/log/nginx/error.log.
    nginx
        .args(["-e", "stderr", "-p"])
        .arg(dir.path())
        .arg("-c")
        .arg(&config);
    let mut server = Sender::spawn("nginx", &dir, &mut nginx);
    server.wait_tcp_listening(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    let url = format!("rtmp://127.0.0.1:{port}/live/s");
    let mut sender = Sender::spawn(
        "sender",
        &dir,
        &mut gst_launch(&format!(
            "{SENDER_VIDEO} ! flvmux name=mux streamable=true ! rtmp2sink location={url} \
             {SENDER_AUDIO} ! mux."
        )),
    );
    run_and_check(&channel_catalog(&url, ""), &mut [&mut server, &mut sender]);
}

/// The headend pulls H.264 and AAC in RTP, interleaved in the RTSP connection as in
/// manifests/channels.yaml, from GStreamer's RTSP server.
#[test]
fn rtsp_pull_from_a_server() {
    let dir = TempDir::new("src-rtsp");
    let port = free_tcp_port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/rtsp_server.py");
    // Debian's python3-gi is for the system Python, not a pyenv or venv one.
    let mut command = Command::new("/usr/bin/python3");
    command
        .arg(&script)
        .arg(port.to_string())
        .arg("s")
        .arg(format!(
        "{SENDER_VIDEO} ! rtph264pay name=pay0 pt=96 {SENDER_AUDIO} ! rtpmp4gpay name=pay1 pt=97"
    ));
    let mut server = Sender::spawn("rtsp-server", &dir, &mut command);
    server.wait_tcp_listening(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    run_and_check(
        &channel_catalog(
            &format!("rtsp://127.0.0.1:{port}/s"),
            "{ protocols: tcp, latency: 200 }",
        ),
        &mut [&mut server],
    );
}

/// The headend pulls fMP4 HLS from a second headend whose test:// channel, at another
/// size, is the origin.
/// The same over HTTPS with the certificate checked: nginx terminates TLS in front of
/// the origin headend with a certificate for 127.0.0.1 from a test CA, which the pulling
/// headend trusts only because its system CA bundle is that CA, in a private mount
/// namespace (`common::tls`); the host's trust store is not touched.
#[test]
fn hls_pull_over_https_from_another_headend() {
    const ORIGIN_CHANNEL: &str = "origin";
    let origin = Headend::start(&catalog(ORIGIN_CHANNEL, "test://", "", 352, 288));
    let server = TlsServer::start(&format!(
        "location / {{ proxy_pass http://{}; }}",
        origin.addr()
    ));
    let master = format!("/live/{ORIGIN_CHANNEL}/master.m3u8");
    origin.wait_for(&master, READY_TIMEOUT);

    let dir = TempDir::new("src-https-pull");
    let file = dir.write(
        "catalog.yaml",
        &[channel_catalog(&server.url(&master), "").as_bytes()],
    );
    let launcher = server.launcher();
    let launcher: Vec<&str> = launcher.iter().map(String::as_str).collect();
    let headend = Headend::start_launched(dir, &file, &[], &[], &launcher);
    let output = fetch_output(&headend, &mut []);
    origin.assert_running();
    check_output(&output);
}

#[test]
fn hls_pull_from_another_headend() {
    const ORIGIN_CHANNEL: &str = "origin";
    let origin = Headend::start(&catalog(ORIGIN_CHANNEL, "test://", "", 352, 288));
    let master = format!("/live/{ORIGIN_CHANNEL}/master.m3u8");
    // Wait for the origin so the pull does not start on a 503 and back off.
    origin.wait_for(&master, READY_TIMEOUT);
    let headend = Headend::start(&channel_catalog(&origin.url(&master), ""));
    let output = fetch_output(&headend, &mut []);
    origin.assert_running();
    check_output(&output);
}
