//! Managed IPTV output: the multicast feeds a set-top box joins, and the same transport
//! stream over HTTP (`/ts/{channel}`) with an instant start. Every stream is read by
//! the independent checker in `common::ts` and decoded by ffprobe.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::ts::{self, TsReport, NULL_PID, STREAM_TYPE_H264};
use common::{
    in_network_namespace, probe_audio, probe_video, read_stream, run_with_timeout, Headend,
    TempDir, X264_ULTRAFAST,
};

/// AAC in ADTS (ISO/IEC 13818-1 Table 2-34).
const STREAM_TYPE_AAC_ADTS: u8 = 0x0F;
const CAPTURE_SECONDS: u64 = 6;
const READY_TIMEOUT: Duration = Duration::from_secs(40);
/// `mux_rate` of the UDP channel, kbit/s.
const UDP_MUX_KBPS: u64 = 1200;

fn ladder() -> String {
    format!(
        "{X264_ULTRAFAST}\
ladders:
  small:
    segment_duration: 1
    gop: 1
    window: 5
    renditions:
      - {{ name: 240p, width: 320, height: 240, bitrate: 400, profile: main, max_framerate: 25 }}
      - {{ name: 144p, width: 256, height: 144, bitrate: 150, profile: main, max_framerate: 25 }}
    audio: {{ codec: aac, bitrate: 64, channels: 2 }}
"
    )
}

/// Where the first packet of a PES with a keyframe starts, the PAT and PMT before it
/// put in front (as a receiver that joined earlier would hold them): what a decoder
/// can start from without an error.
fn from_first_keyframe(stream: &[u8], report: &TsReport) -> Vec<u8> {
    let pmt = report.pmt().expect("a PMT");
    let video = pmt
        .streams
        .iter()
        .find(|s| s.stream_type == STREAM_TYPE_H264)
        .expect("an H.264 stream")
        .pid;
    let mut tables: Vec<&[u8]> = Vec::new();
    let mut pat: Option<&[u8]> = None;
    let mut pmt_packet: Option<&[u8]> = None;
    for (index, packet) in stream.chunks_exact(ts::PACKET_SIZE).enumerate() {
        let pid = packet_pid(packet);
        let start = packet[1] & 0x40 != 0;
        if start && pid == 0 {
            pat = Some(packet);
        } else if start && pid == pmt.pid {
            pmt_packet = Some(packet);
        }
        let random_access = packet[3] & 0x20 != 0 && packet[4] > 0 && packet[5] & 0x40 != 0;
        if pid == video && start && random_access {
            if let (Some(pat), Some(pmt)) = (pat, pmt_packet) {
                tables.extend([pat, pmt]);
                let mut out: Vec<u8> = tables.concat();
                out.extend(&stream[index * ts::PACKET_SIZE..]);
                return out;
            }
        }
    }
    panic!("no keyframe after a PAT and a PMT in the capture");
}

/// The stream up to its last whole access units: a capture or a read that stops
/// mid-stream ends inside a video frame and an audio frame, which a decoder rightly
/// reports as broken. Cut before the last video PES, with the last audio PES before
/// that turned into null packets.
fn whole_access_units(stream: &[u8], report: &TsReport) -> Vec<u8> {
    let pmt = report.pmt().expect("a PMT");
    let pid_of = |stream_type| {
        pmt.streams
            .iter()
            .find(|s| s.stream_type == stream_type)
            .map(|s| s.pid)
    };
    let (video, audio) = (pid_of(STREAM_TYPE_H264), pid_of(STREAM_TYPE_AAC_ADTS));
    let packets: Vec<&[u8]> = stream.chunks_exact(ts::PACKET_SIZE).collect();
    let starts = |pid: Option<u16>, before: usize| {
        packets[..before]
            .iter()
            .rposition(|p| Some(packet_pid(p)) == pid && p[1] & 0x40 != 0)
    };
    let cut = starts(video, packets.len()).expect("a video PES");
    let audio_cut = starts(audio, cut).unwrap_or(cut);
    let mut out = Vec::with_capacity(cut * ts::PACKET_SIZE);
    for (index, packet) in packets[..cut].iter().enumerate() {
        if index >= audio_cut && Some(packet_pid(packet)) == audio {
            let mut null = [0xFFu8; ts::PACKET_SIZE];
            null[..4].copy_from_slice(&[ts::SYNC_BYTE, 0x1F, 0xFF, 0x10]);
            out.extend(null);
        } else {
            out.extend(*packet);
        }
    }
    out
}

fn packet_pid(packet: &[u8]) -> u16 {
    (u16::from(packet[1] & 0x1F) << 8) | u16::from(packet[2])
}

/// Runs the headend on `catalog` in a private network namespace and receives each of
/// `feeds` (`channel:group:port`) for `seconds` into `dir/{channel}.cap`
/// (`support/multicast_out.sh`); with `edit`, that file replaces the catalog so many
/// seconds into the capture. Returns the headend's log; fails the test with it if the
/// script fails.
fn capture_feeds(
    dir: &TempDir,
    catalog: &Path,
    seconds: u64,
    feeds: &[&str],
    edit: Option<(&Path, u64)>,
) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/multicast_out.sh");
    let mut command = in_network_namespace();
    if let Some((file, at)) = edit {
        command
            .env("EDIT_FROM", file)
            .env("EDIT_AT", at.to_string());
    }
    command
        .arg(&script)
        .arg(dir.path())
        .arg(env!("CARGO_BIN_EXE_headend"))
        .arg(catalog)
        .arg("127.0.0.1:8080")
        .arg(READY_TIMEOUT.as_secs().to_string())
        .arg(seconds.to_string())
        .args(feeds);
    let output = run_with_timeout(
        &mut command,
        READY_TIMEOUT + Duration::from_secs(seconds + 30),
    );
    let log = fs::read_to_string(dir.path().join("headend.log")).unwrap_or_default();
    match output {
        Some(out) if out.status.success() => log,
        other => panic!(
            "{} failed: {}\n--- headend log ---\n{log}",
            script.display(),
            other.map_or("timed out".to_owned(), |o| format!(
                "{}: {}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            )),
        ),
    }
}

/// The checks every transport stream of a channel passes, however it travelled.
fn check_stream(label: &str, report: &TsReport, program: u16, name: &str) {
    assert_eq!(report.sync_losses, 0, "{label}: sync lost\n{report}");
    assert_eq!(
        report.cc_errors(),
        0,
        "{label}: continuity errors\n{report}"
    );
    assert_eq!(report.crc_error_count(), 0, "{label}: CRC errors\n{report}");
    let pmt = report
        .pmt()
        .unwrap_or_else(|| panic!("{label}: no PMT\n{report}"));
    assert_eq!(pmt.program_number, program, "{label}: program number");
    let types: Vec<u8> = pmt.streams.iter().map(|s| s.stream_type).collect();
    assert!(
        types.contains(&STREAM_TYPE_H264) && types.contains(&STREAM_TYPE_AAC_ADTS),
        "{label}: PMT streams {types:?}"
    );
    let service = report
        .service(program)
        .unwrap_or_else(|| panic!("{label}: the SDT has no service {program}\n{report}"));
    assert_eq!(service.service_name, name, "{label}: SDT service name");
    assert_eq!(service.provider_name, "headend", "{label}: SDT provider");
}

/// Decodes a transport stream from a keyframe on, up to its last whole frames: every
/// frame without an error, audio too.
fn decode(dir: &TempDir, label: &str, stream: &[u8]) -> usize {
    let whole = whole_access_units(stream, &ts::analyze(stream));
    let file = dir.write(&format!("{label}.ts"), &[&whole]);
    let video = probe_video(&file);
    let audio = probe_audio(&file);
    assert!(
        video.frames.first().is_some_and(|f| f.key_frame),
        "{label}: starts on a keyframe"
    );
    assert!(
        audio.duration() > 1.0,
        "{label}: {} s of audio",
        audio.duration()
    );
    video.frames.len()
}

/// SIGTERM with a `/ts/` client connected: its stream ends, so the origin drains and
/// the process exits well before the drain timeout (10 s) would close it.
#[test]
fn sigterm_ends_ts_streams_and_the_headend_exits() {
    let headend = Headend::start(&http_catalog());
    wait_for_ts(&headend, "/ts/news");
    let addr = headend.addr();
    let reader = std::thread::spawn(move || {
        let started = Instant::now();
        let data = read_stream(addr, "/ts/news", Duration::from_secs(30));
        (data.len(), started.elapsed())
    });
    // The client is connected once the hub counts it.
    let connected = headend.wait_until(Duration::from_secs(10), || {
        let metrics = headend.get("/metrics").text();
        metrics
            .lines()
            .any(|l| l.starts_with("headend_ts_clients{channel=\"news\"} 1"))
            .then_some(())
    });
    if connected.is_none() {
        headend.fail("the /ts/ client never showed in the metrics");
    }
    let status = headend
        .stop(Duration::from_secs(8))
        .unwrap_or_else(|| headend.fail("still running 8 s after SIGTERM with a /ts/ client"));
    assert!(status.success(), "exit status {status}");
    let (bytes, lasted) = reader.join().expect("the reader");
    assert!(bytes > 0, "the client received nothing");
    assert!(
        lasted < Duration::from_secs(20),
        "the stream did not end: {lasted:?}"
    );
}

/// A catalog reload while two feeds are received: the removed channel's feed stops,
/// and the other channel, renamed (a live field), is not touched: its stream goes on
/// without a continuity-counter error on any PID, and its SDT takes the new name.
#[test]
fn a_reload_stops_a_removed_feed_and_leaves_the_other_counting_on() {
    const SECONDS: u64 = 12;
    const EDIT_AT: u64 = 5;
    let dir = TempDir::new("iptv-reload");
    let channel = |id: &str, number: u32, name: &str, group: &str| {
        format!(
            "  - {{ id: {id}, number: {number}, name: \"{name}\", group: Test, \
             source: {{ uri: \"test://\" }}, ladder: small, \
             multicast: {{ group: {group}, port: 5000, rendition: 240p, mux_rate: {UDP_MUX_KBPS} }} }}\n"
        )
    };
    let before = format!(
        "{}channels:\n{}{}",
        ladder(),
        channel("keep", 7, "Kept", "239.255.7.1"),
        channel("drop", 8, "Dropped", "239.255.7.2")
    );
    let after = format!(
        "{}channels:\n{}",
        ladder(),
        channel("keep", 7, "Kept Renamed", "239.255.7.1")
    );
    let catalog = dir.write("catalog.yaml", &[before.as_bytes()]);
    let edit = dir.write(".catalog.yaml.new", &[after.as_bytes()]);
    let log = capture_feeds(
        &dir,
        &catalog,
        SECONDS,
        &["keep:239.255.7.1:5000", "drop:239.255.7.2:5000"],
        Some((&edit, EDIT_AT)),
    );
    let edited: f64 = fs::read_to_string(dir.path().join("edited"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .expect("the moment of the edit");
    let edited = Duration::from_secs_f64(edited);
    // The watcher's debounce, the reload and the pipeline's stop.
    let settled = edited + Duration::from_secs(3);

    let kept = ts::read_capture(dir.path().join("keep.cap"));
    let (whole, _) = ts::analyze_datagrams(&kept, false);
    check_stream("kept, whole capture", &whole, 7, "Kept Renamed");
    let (early, _) = ts::analyze_datagrams(
        &kept
            .iter()
            .filter(|(at, _)| *at < edited)
            .cloned()
            .collect::<Vec<_>>(),
        false,
    );
    check_stream("kept, before the edit", &early, 7, "Kept");
    assert!(
        kept.iter().any(|(at, _)| *at > settled),
        "the kept feed stopped after the reload"
    );

    let dropped = ts::read_capture(dir.path().join("drop.cap"));
    let last = dropped
        .last()
        .map(|(at, _)| *at)
        .expect("the dropped feed was received");
    assert!(
        dropped.iter().filter(|(at, _)| *at < edited).count() > 100,
        "the dropped feed ran before the edit"
    );
    assert!(
        last < settled,
        "the removed channel's feed went on {:?} after the edit",
        last.saturating_sub(edited)
    );
    assert!(
        log.contains("Catalog reloaded."),
        "no reload applied:\n{log}"
    );
}

/// Two channels with multicast feeds, one plain UDP and one RTP, in a private network
/// namespace: a separate process joins each group, and the captures are checked
/// datagram by datagram and decoded.
#[test]
fn multicast_feeds_in_a_private_network_namespace() {
    let dir = TempDir::new("iptv-multicast");
    let catalog = format!(
        "{}channels:
  - {{ id: one, number: 7, name: \"Multicast One\", group: Test, source: {{ uri: \"test://\" }}, ladder: small,
       multicast: {{ group: 239.255.7.1, port: 5000, rendition: 240p, mux_rate: {UDP_MUX_KBPS} }} }}
  - {{ id: two, number: 8, name: \"RTP Two\", group: Test, source: {{ uri: \"test://?pattern=ball\" }}, ladder: small,
       multicast: {{ group: 239.255.7.2, port: 5002, protocol: rtp, rendition: 144p }} }}
",
        ladder()
    );
    let catalog = dir.write("catalog.yaml", &[catalog.as_bytes()]);
    let log = capture_feeds(
        &dir,
        &catalog,
        CAPTURE_SECONDS,
        &["one:239.255.7.1:5000", "two:239.255.7.2:5002"],
        None,
    );

    // Plain UDP at a constant 1200 kbit/s.
    let datagrams = ts::read_capture(dir.path().join("one.cap"));
    let (report, arrivals) = ts::analyze_datagrams(&datagrams, false);
    println!("udp feed: {arrivals}");
    assert!(
        arrivals.sizes.keys().all(|&size| size == ts::DATAGRAM_SIZE),
        "datagram sizes {:?}",
        arrivals.sizes
    );
    check_stream("udp", &report, 7, "Multicast One");
    check_broadcast_timing("udp", &report);
    let rate = report.pcr.bitrate.expect("a PCR bit rate");
    let wanted = (UDP_MUX_KBPS * 1000) as f64;
    assert!(
        (rate - wanted).abs() < wanted * 0.005,
        "udp: {rate:.0} bit/s on the PCR clock, not the mux rate {wanted}"
    );
    assert!(
        report.null_share() > 0.0,
        "a constant rate is stuffed with null packets"
    );
    check_pacing("udp", &arrivals, wanted);
    let payload: Vec<u8> = datagrams.iter().flat_map(|(_, d)| d.clone()).collect();
    let frames = decode(&dir, "udp", &from_first_keyframe(&payload, &report));
    assert!(
        frames >= 25 * (CAPTURE_SECONDS as usize - 2),
        "udp: {frames} frames"
    );
    let probe = probe_video(&dir.path().join("udp.ts"));
    assert_eq!(
        (probe.width, probe.height),
        (320, 240),
        "the catalog's rendition"
    );

    // RTP (RFC 2250) at the default mux rate, with the smaller rendition.
    let datagrams = ts::read_capture(dir.path().join("two.cap"));
    let (report, arrivals) = ts::analyze_datagrams(&datagrams, true);
    println!("rtp feed: {arrivals}");
    let rtp = arrivals.rtp.as_ref().expect("RTP headers read");
    assert!(
        arrivals
            .sizes
            .keys()
            .all(|&size| size == ts::RTP_DATAGRAM_SIZE),
        "datagram sizes {:?}",
        arrivals.sizes
    );
    assert_eq!(rtp.malformed, 0);
    assert_eq!(
        rtp.payload_types.iter().copied().collect::<Vec<_>>(),
        [ts::RTP_PAYLOAD_TYPE_MP2T]
    );
    assert_eq!(rtp.ssrcs.len(), 1, "one SSRC");
    assert_eq!(
        (
            rtp.sequence_gaps,
            rtp.reordered,
            rtp.duplicates,
            rtp.timestamp_regressions
        ),
        (0, 0, 0, 0),
        "continuous RTP sequence numbers and timestamps"
    );
    let clock = rtp.timestamp_rate.expect("an RTP clock rate");
    assert!(
        (clock - ts::RTP_CLOCK_HZ).abs() < ts::RTP_CLOCK_HZ * 0.05,
        "RTP timestamps tick at {clock:.0} Hz"
    );
    check_stream("rtp", &report, 8, "RTP Two");
    check_broadcast_timing("rtp", &report);
    // The default rate: (150 + 64) × 1.3 + 200 kbit/s, rounded up to 100 kbit/s.
    let rate = report.pcr.bitrate.expect("a PCR bit rate");
    assert!((rate - 500_000.0).abs() < 2_500.0, "rtp: {rate:.0} bit/s");
    check_pacing("rtp", &arrivals, 500_000.0);
    let payload: Vec<u8> = datagrams
        .iter()
        .flat_map(|(_, d)| d[ts::RTP_HEADER_SIZE..].to_vec())
        .collect();
    decode(&dir, "rtp", &from_first_keyframe(&payload, &report));
    let probe = probe_video(&dir.path().join("rtp.ts"));
    assert_eq!(
        (probe.width, probe.height),
        (256, 144),
        "the catalog's rendition"
    );

    assert!(!log.contains("ERROR"), "the headend logged errors:\n{log}");
}

/// PSI at most every 100 ms, PCR at most every 40 ms, the SDT at least as often as
/// TR 101 290 asks (every 2 s; the headend aims at every 80 ms, in null packets).
fn check_broadcast_timing(label: &str, report: &TsReport) {
    let max = |interval: Option<f64>, what: &str| {
        interval.unwrap_or_else(|| panic!("{label}: fewer than two {what}\n{report}"))
    };
    let pat = max(report.pat_repetition.max_interval, "PATs");
    assert!(pat <= 0.100, "{label}: PAT every {pat:.3} s");
    let pmt = report
        .pmt_repetition
        .values()
        .next()
        .and_then(|r| r.max_interval);
    let pmt = max(pmt, "PMTs");
    assert!(pmt <= 0.100, "{label}: PMT every {pmt:.3} s");
    let pcr = max(report.pcr.repetition.max_interval, "PCRs");
    assert!(pcr <= 0.040, "{label}: PCR every {pcr:.3} s");
    let sdt = max(report.sdt_repetition.max_interval, "SDTs");
    assert!(sdt <= 2.0, "{label}: SDT every {sdt:.3} s");
    let deviation = report.pcr.max_deviation.unwrap_or(f64::MAX);
    assert!(
        deviation < 0.000_5,
        "{label}: PCRs stray {deviation:.6} s from a constant rate"
    );
}

/// Datagrams evenly spaced at the mux rate: a median gap near one datagram's time on
/// the wire, and no bursts. Sent without pacing, the muxer's output arrives a video
/// frame at a time (a median gap near zero, bursts of ten and more).
fn check_pacing(label: &str, arrivals: &ts::DatagramReport, rate: f64) {
    let gaps = arrivals.inter_arrival.expect("arrival times");
    let nominal = (ts::DATAGRAM_SIZE * 8) as f64 / rate;
    let median = gaps.median.as_secs_f64();
    assert!(
        (median - nominal).abs() < nominal * 0.25,
        "{label}: median gap {:.3} ms, not {:.3} ms",
        median * 1e3,
        nominal * 1e3
    );
    assert!(
        gaps.max_burst <= 4,
        "{label}: {} datagrams within 1 ms",
        gaps.max_burst
    );
}

/// An HTTP/1.1 GET of a never-ending body, read raw: returns the stream after the
/// headers (de-chunked) as it arrives, through `on_data`, until it returns false.
struct RawClient {
    stream: TcpStream,
    buffer: Vec<u8>,
    /// The body ended with its last chunk (a zero-length one), not with the connection.
    ended_cleanly: bool,
}

/// Sends `METHOD path` over a new HTTP/1.1 connection that closes after the answer.
fn request(headend: &Headend, method: &str, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(headend.addr()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        headend.addr()
    )
    .expect("send the request");
    stream
}

impl RawClient {
    fn get(headend: &Headend, path: &str) -> (Self, String) {
        let stream = request(headend, "GET", path);
        let mut client = Self {
            stream,
            buffer: Vec::new(),
            ended_cleanly: false,
        };
        let head = loop {
            if let Some(end) = client.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&client.buffer[..end]).into_owned();
                client.buffer.drain(..end + 4);
                break head;
            }
            assert!(client.fill(), "the connection closed before the headers");
        };
        (client, head)
    }

    /// Reads more bytes; false at the end of the connection.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
            Err(err) => panic!("reading the stream: {err}"),
        }
    }

    /// Sets the socket's receive buffer (`SO_RCVBUF`; the kernel doubles it, within
    /// `net.core.rmem_max`).
    ///
    /// A client that stopped reading needs one well above the default when it reads
    /// again over loopback: there a TCP segment can be 64 KiB, and with the default
    /// buffer the window the client offers after draining can stay just under that,
    /// so the sender waits for its zero-window probe (backed off to tens of seconds)
    /// instead of sending. Players on real networks (1500-byte packets) never meet it.
    fn set_receive_buffer(&self, bytes: usize) {
        use std::os::fd::AsRawFd;
        let value = libc::c_int::try_from(bytes).expect("a buffer size that fits a c_int");
        // SAFETY: an open socket and a c_int option that outlives the call, its size
        // passed alongside.
        let result = unsafe {
            libc::setsockopt(
                self.stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                std::ptr::from_ref(&value).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(result, 0, "SO_RCVBUF: {}", std::io::Error::last_os_error());
    }

    /// The next chunk of a chunked body; `None` at its end or the connection's.
    fn next_chunk(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(line_end) = self.buffer.windows(2).position(|w| w == b"\r\n") {
                let size_text = String::from_utf8_lossy(&self.buffer[..line_end]).into_owned();
                let size = usize::from_str_radix(size_text.trim(), 16)
                    .unwrap_or_else(|_| panic!("bad chunk size {size_text:?}"));
                if size == 0 {
                    self.ended_cleanly = true;
                    return None;
                }
                let start = line_end + 2;
                if self.buffer.len() >= start + size + 2 {
                    let chunk = self.buffer[start..start + size].to_vec();
                    self.buffer.drain(..start + size + 2);
                    return Some(chunk);
                }
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// Reads the body for `duration`; returns the bytes and the longest wait for data.
    fn read_for(&mut self, duration: Duration) -> (Vec<u8>, Duration) {
        let mut body = Vec::new();
        let deadline = Instant::now() + duration;
        let mut last = Instant::now();
        let mut longest = Duration::ZERO;
        while Instant::now() < deadline {
            let Some(chunk) = self.next_chunk() else {
                break;
            };
            longest = longest.max(last.elapsed());
            last = Instant::now();
            body.extend(chunk);
        }
        (body, longest)
    }
}

/// The status line and headers of a HEAD request (a GET of `/ts/` never ends).
fn head(headend: &Headend, path: &str) -> String {
    let mut stream = request(headend, "HEAD", path);
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    answer.to_ascii_lowercase()
}

/// Waits until the channel's transport stream answers 200 (it has a keyframe).
fn wait_for_ts(headend: &Headend, path: &str) {
    headend.wait_for("/live/news/master.m3u8", READY_TIMEOUT);
    headend
        .wait_until(READY_TIMEOUT, || {
            head(headend, path)
                .starts_with("http/1.1 200")
                .then_some(())
        })
        .unwrap_or_else(|| headend.fail(&format!("HEAD {path} never answered 200")));
}

fn http_catalog() -> String {
    // No multicast block: nothing is sent outside a network namespace.
    format!(
        "{}channels:
  - {{ id: news, number: 3, name: \"News & Weather\", group: Test, source: {{ uri: \"test://\" }}, ladder: small }}
",
        ladder()
    )
}

/// Two clients at once each start with the tables and a keyframe (the GOP cache), and
/// decode without an error from their first byte.
#[test]
fn http_ts_starts_every_client_on_a_keyframe() {
    let headend = Headend::start(&http_catalog());
    wait_for_ts(&headend, "/ts/news");

    let answer = head(&headend, "/ts/news");
    assert!(
        answer.contains("\r\ncontent-type: video/mp2t\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains("\r\ncache-control: no-store\r\n"),
        "{answer}"
    );
    assert!(answer.ends_with("\r\n\r\n"), "HEAD has no body: {answer}");
    assert!(head(&headend, "/ts/nothing").starts_with("http/1.1 404"));

    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (client, head) = RawClient::get(&headend, "/ts/news");
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert!(
                head.to_ascii_lowercase()
                    .contains("content-type: video/mp2t"),
                "{head}"
            );
            client
        })
        .collect();
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut client| thread::spawn(move || client.read_for(Duration::from_secs(3)).0))
        .collect();
    for (i, reader) in readers.into_iter().enumerate() {
        let body = reader.join().expect("reader");
        let label = format!("client {i}");
        let report = ts::analyze(&body);
        assert_eq!(
            report.first_video_is_keyframe(),
            Some(true),
            "{label}: the first video access unit\n{report}"
        );
        let first_pids: Vec<u16> = body
            .chunks_exact(ts::PACKET_SIZE)
            .take(2)
            .map(packet_pid)
            .collect();
        let pmt_pid = report.pmt().map(|pmt| pmt.pid);
        assert_eq!(
            first_pids,
            [Some(0), pmt_pid].map(|pid| pid.unwrap_or(u16::MAX)),
            "{label}: starts with the PAT and PMT"
        );
        assert!(
            !report.pids.contains_key(&NULL_PID),
            "{label}: no null packets over HTTP"
        );
        check_stream(&label, &report, 3, "News & Weather");
        let frames = decode(headend.dir(), &label, &body);
        assert!(frames >= 50, "{label}: {frames} frames in 3 s");
    }
}

/// A client that stops reading is dropped once its queue fills, its connection cut
/// rather than ended as if the stream were over; another client of the same channel
/// receives on without a gap or a continuity error.
#[test]
fn a_client_that_stops_reading_is_dropped_and_the_others_go_on() {
    let headend = Headend::start(&http_catalog());
    wait_for_ts(&headend, "/ts/news");

    let (mut stalled, _) = RawClient::get(&headend, "/ts/news");
    stalled.set_receive_buffer(256 << 10);
    let (mut reader, _) = RawClient::get(&headend, "/ts/news");
    let done = Arc::new(AtomicBool::new(false));
    let reading = {
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let mut body = Vec::new();
            let mut longest = Duration::ZERO;
            while !done.load(Ordering::SeqCst) {
                let (part, wait) = reader.read_for(Duration::from_millis(500));
                assert!(!part.is_empty(), "the reading client stopped receiving");
                longest = longest.max(wait);
                body.extend(part);
            }
            (body, longest)
        })
    };
    let dropped = headend.wait_until(Duration::from_secs(90), || {
        headend
            .log_tail(200)
            .contains("A TS client is too slow; dropping it.")
            .then_some(())
    });
    done.store(true, Ordering::SeqCst);
    let (body, longest) = reading.join().expect("the reading client");
    if dropped.is_none() {
        headend.fail("the stalled client was never dropped");
    }
    // The stalled client's connection ends once it reads what was already sent, and
    // it ends cut: a clean end would tell the client the stream was over.
    let mut drained = 0usize;
    while let Some(chunk) = stalled.next_chunk() {
        drained += chunk.len();
        assert!(
            drained < 64 << 20,
            "the stalled client's stream never ended"
        );
    }
    // What it drains is what its own receive buffer and the headend's send buffer
    // held. The headend sizes the latter to about a second of the stream; left to the
    // kernel it grows to megabytes (`net.ipv4.tcp_wmem`), a minute of this stream.
    assert!(
        drained < 2 << 20,
        "the stalled client drained {drained} bytes: the send buffer was not sized to the stream"
    );
    assert!(
        !stalled.ended_cleanly,
        "the stalled client's response ended with its last chunk instead of being cut"
    );
    // The cut is the client's doing, logged by the hub, not a failure of the server.
    let log = headend.log_tail(200);
    assert!(
        !log.contains("Origin connection failed"),
        "the cut was logged as a server failure:\n{log}"
    );
    let report = ts::analyze(&body);
    assert_eq!(
        report.cc_errors(),
        0,
        "the reading client lost data\n{report}"
    );
    assert!(
        longest < Duration::from_secs(1),
        "the reading client waited {longest:?} for data"
    );
}
