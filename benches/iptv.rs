//! `make bench`, after `live`: the IPTV outputs of the demo catalog.
//!
//! Inside a private network namespace (`support/netns.rs`), runs the real binary on the
//! demo catalog and measures:
//! - channel start over `GET /ts/{channel}`: from sending the request to holding the
//!   first picture a decoder can show (PAT, PMT, a whole H.264 access unit with SPS,
//!   PPS and an IDR slice), many times per channel at random points of the GOP (goal:
//!   a median under 100 ms); and, beside it, a multicast join of the same channel to
//!   the same point, which has to wait for the next keyframe on the wire, as any
//!   receiver without a GOP cache does;
//! - what the multicast output costs: the process's CPU time over a fixed window with
//!   the catalog as shipped and with a copy whose `multicast:` blocks are removed (the
//!   TS mux still runs, for HTTP);
//! - how evenly every feed's multicast datagrams arrive, timed by the kernel
//!   (tests/support/mcast_capture.py, SO_TIMESTAMPNS), with the continuity counters
//!   and the random-access points that are not keyframes.
//!
//! Results go to stdout and `docs/benchmarks-iptv.md` (a file of its own, so this
//! bench and `live` never rewrite each other's results).

#[path = "support/headend.rs"]
mod headend;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/report.rs"]
#[allow(dead_code, reason = "shared by every bench; each uses a part")]
mod report;
#[path = "support/ts.rs"]
mod ts;

use std::fmt::Write as _;
use std::fs::File;
use std::io::Read;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use headend::{cpu_seconds, threads_cpu_seconds, Headend};
use report::Scratch;

const DEMO: &str = "manifests/demo.yaml";
const LADDERS: &str = "pipelines/ladders.yaml";
/// In `docs/`, or `var/bench/` in a quick run (`support/report.rs`).
const REPORT: &str = "benchmarks-iptv.md";
const CAPTURE_TOOL: &str = "tests/support/mcast_capture.py";

/// Every channel's HLS and `/ts/` ready, from the start of the process.
const READY_LIMIT: Duration = Duration::from_secs(60);
/// After ready: the first segments and the encoders' rate control settle.
const WARM_UP: Duration = Duration::from_secs(5);
/// Each CPU window, read in sub-windows to show how much a reading varies.
fn cpu_span() -> Duration {
    Duration::from_secs(if report::quick() { 6 } else { 30 })
}
const CPU_SUB_WINDOWS: u32 = 3;
/// How long the pacing of every feed is recorded: longer than the 20 s demo clip, so
/// its loop point is in it (not in a quick run).
fn pacing_span() -> Duration {
    Duration::from_secs(if report::quick() { 6 } else { 25 })
}
/// Arrivals closer than this count as one burst.
const BURST_WINDOW: Duration = Duration::from_millis(1);

/// HTTP starts per channel, each after a random pause of up to `HTTP_SPACING`: they
/// drift over the whole GOP.
fn http_tries() -> usize {
    if report::quick() {
        10
    } else {
        50
    }
}
const HTTP_SPACING: Duration = Duration::from_secs(1);
/// Multicast joins per channel. A join ends just after a keyframe, so the pause before
/// the next is random over a whole GOP to start it anywhere in one.
fn join_tries() -> usize {
    if report::quick() {
        5
    } else {
        30
    }
}
/// One start gives up after this long.
const TRY_LIMIT: Duration = Duration::from_secs(5);
/// The ladder's GOP, for spacing the joins until the pacing capture has measured it.
const DEFAULT_GOP: Duration = Duration::from_secs(2);

fn main() {
    netns::enter();
    // `cargo bench` passes `--bench`; nothing else to parse.
    let report = match run() {
        Ok(report) => report,
        Err(err) => {
            eprintln!("benchmark failed: {err}");
            std::process::exit(1);
        }
    };
    print!("{report}");
    let path = report::results_path(REPORT);
    if let Err(err) = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&path, &report))
    {
        eprintln!("cannot write {}: {err}", path.display());
        std::process::exit(1);
    }
}

/// A channel of the demo catalog and its multicast feed, if it has one.
struct Channel {
    id: String,
    feed: Option<Feed>,
}

#[derive(Clone, Copy)]
struct Feed {
    group: Ipv4Addr,
    port: u16,
}

fn run() -> Result<String, String> {
    let catalog = read_catalog()?;
    let channels = channels(&catalog)?;
    let scratch = Scratch::new("iptv")?;

    // The catalog as shipped: every channel has a multicast feed.
    let log = scratch.path.join("headend-multicast.log");
    let headend = Headend::start(&[DEMO, LADDERS], log_file(&log)?)?;
    wait_ready(&headend, &channels)?;
    std::thread::sleep(WARM_UP);
    let cpu_with = cpu_window(&headend)?;
    let feeds: Vec<(&Channel, Feed)> = channels
        .iter()
        .filter_map(|c| c.feed.map(|feed| (c, feed)))
        .collect();
    if feeds.is_empty() {
        return Err("no demo channel has a multicast feed".into());
    }
    let pacing = pacing(&feeds, &scratch.path)?;
    let gop = pacing
        .iter()
        .find_map(|p| p.keyframe_interval)
        .unwrap_or(DEFAULT_GOP);
    let starts = channel_starts(&headend, &channels, gop);
    drop(headend);
    let warnings_with = warnings(&log);

    // The same channels without `multicast:`.
    let plain = catalog_without_multicast(&scratch, &catalog)?;
    let log = scratch.path.join("headend-plain.log");
    let headend = Headend::start(&[plain.as_path(), Path::new(LADDERS)], log_file(&log)?)?;
    wait_ready(&headend, &channels)?;
    if first_datagram(feeds[0].1, Duration::from_secs(1)).is_some() {
        return Err("the catalog without `multicast:` still sends multicast".into());
    }
    std::thread::sleep(WARM_UP);
    let cpu_without = cpu_window(&headend)?;
    drop(headend);
    let warnings_without = warnings(&log);

    let mut report = String::new();
    write_report(
        &mut report,
        &Results {
            channels: &channels,
            starts: &starts,
            cpu_with: &cpu_with,
            cpu_without: &cpu_without,
            paced: &feeds.iter().map(|(c, _)| c.id.as_str()).collect::<Vec<_>>(),
            pacing: &pacing,
            warnings: &[
                ("with multicast", warnings_with),
                ("without", warnings_without),
            ],
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(report)
}

// ---------------------------------------------------------------------------
// The catalog

fn read_catalog() -> Result<serde_yaml::Value, String> {
    let text = std::fs::read_to_string(DEMO).map_err(|e| format!("{DEMO}: {e}"))?;
    serde_yaml::from_str(&text).map_err(|e| format!("{DEMO}: {e}"))
}

fn channels(catalog: &serde_yaml::Value) -> Result<Vec<Channel>, String> {
    let list = catalog["channels"]
        .as_sequence()
        .ok_or_else(|| format!("{DEMO} has no `channels:` list"))?;
    list.iter()
        .map(|channel| {
            let id = channel["id"]
                .as_str()
                .ok_or_else(|| format!("{DEMO}: a channel without an id"))?
                .to_owned();
            let multicast = &channel["multicast"];
            let feed = if multicast.is_null() {
                None
            } else {
                let group = multicast["group"]
                    .as_str()
                    .and_then(|g| g.parse().ok())
                    .ok_or_else(|| format!("{DEMO}: channel {id}: no multicast group"))?;
                let port = multicast["port"]
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or_else(|| format!("{DEMO}: channel {id}: no multicast port"))?;
                Some(Feed { group, port })
            };
            Ok(Channel { id, feed })
        })
        .collect()
}

/// The demo catalog without its `multicast:` blocks, at `SCRATCH/manifests/demo.yaml`.
/// The catalog's relative paths (`epg: epg/bars.yaml`, `file://../var/media/…`)
/// resolve from its folder, so the copy's folder and its parent mirror the
/// repository's with symbolic links.
fn catalog_without_multicast(
    scratch: &Scratch,
    catalog: &serde_yaml::Value,
) -> Result<PathBuf, String> {
    let mut catalog = catalog.clone();
    let mut removed = 0;
    for channel in catalog["channels"].as_sequence_mut().into_iter().flatten() {
        if let Some(map) = channel.as_mapping_mut() {
            removed += usize::from(map.remove("multicast").is_some());
        }
    }
    if removed == 0 {
        return Err(format!("{DEMO} has no `multicast:` block to remove"));
    }
    let root = scratch.path.join("repo");
    let manifests = root.join("manifests");
    std::fs::create_dir_all(&manifests).map_err(|e| e.to_string())?;
    mirror(Path::new("."), &root, "manifests")?;
    mirror(Path::new("manifests"), &manifests, "demo.yaml")?;
    let path = manifests.join("demo.yaml");
    let text = serde_yaml::to_string(&catalog).map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Links every entry of `from` but `except` into `to`.
fn mirror(from: &Path, to: &Path, except: &str) -> Result<(), String> {
    let from = from.canonicalize().map_err(|e| e.to_string())?;
    for entry in std::fs::read_dir(&from).map_err(|e| e.to_string())? {
        let name = entry.map_err(|e| e.to_string())?.file_name();
        if name != except {
            std::os::unix::fs::symlink(from.join(&name), to.join(&name))
                .map_err(|e| format!("link {}: {e}", to.join(&name).display()))?;
        }
    }
    Ok(())
}

fn log_file(path: &Path) -> Result<Stdio, String> {
    File::create(path)
        .map(Stdio::from)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The headend's warnings and errors (it logs at `warn`).
fn warnings(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------
// The headend

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(2))
        .timeout_read(TRY_LIMIT)
        .build()
}

/// Every channel's multivariant playlist and transport stream answer (readiness, not
/// a measurement).
fn wait_ready(headend: &Headend, channels: &[Channel]) -> Result<(), String> {
    let agent = agent();
    let base = headend.base_url();
    let deadline = Instant::now() + READY_LIMIT;
    for channel in channels {
        for url in [
            format!("{base}/live/{}/master.m3u8", channel.id),
            format!("{base}/ts/{}", channel.id),
        ] {
            while agent.head(&url).call().is_err() {
                if Instant::now() > deadline {
                    return Err(format!("{url} did not answer within {READY_LIMIT:?}"));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    Ok(())
}

/// Threads of the TS branch (`ts-mux:src`, its queues, the multicast sender): see
/// `src/pipeline/ts_output.rs`.
const TS_THREADS: &str = "ts-";

/// CPU-seconds per second over one sub-window: of the whole process, and of the TS
/// branch's own threads.
#[derive(Debug, Clone, Copy)]
struct CpuShare {
    process: f64,
    ts: f64,
}

/// CPU-seconds per second, per sub-window.
fn cpu_window(headend: &Headend) -> Result<Vec<CpuShare>, String> {
    let sub = cpu_span() / CPU_SUB_WINDOWS;
    let pid = headend.pid();
    let mut shares = Vec::new();
    for _ in 0..CPU_SUB_WINDOWS {
        let (cpu, ts) = (cpu_seconds(pid)?, threads_cpu_seconds(pid, TS_THREADS)?);
        let started = Instant::now();
        std::thread::sleep(sub);
        let seconds = started.elapsed().as_secs_f64();
        shares.push(CpuShare {
            process: (cpu_seconds(pid)? - cpu) / seconds,
            ts: (threads_cpu_seconds(pid, TS_THREADS)? - ts) / seconds,
        });
    }
    Ok(shares)
}

// ---------------------------------------------------------------------------
// Channel start

#[derive(Default)]
struct Starts {
    http: Vec<Vec<HttpStart>>,
    joins: Vec<Vec<Duration>>,
    failures: Vec<String>,
}

struct HttpStart {
    /// Until the first picture.
    picture: Duration,
    /// Until the response headers.
    headers: Duration,
    /// The stream began with PAT, PMT and SDT, in any order.
    tables_first: bool,
    /// The first access unit after the PMT was the keyframe.
    first_is_keyframe: bool,
    continuity_errors: usize,
}

/// Per channel, HTTP starts and multicast joins side by side in two threads.
fn channel_starts(headend: &Headend, channels: &[Channel], gop: Duration) -> Starts {
    let base = headend.base_url();
    std::thread::scope(|scope| {
        let tasks: Vec<_> = channels
            .iter()
            .enumerate()
            .map(|(i, channel)| {
                let url = format!("{base}/ts/{}", channel.id);
                let http = scope.spawn(move || {
                    let agent = agent();
                    let mut random = Random::new(2 * i as u64);
                    (0..http_tries())
                        .map(|_| {
                            std::thread::sleep(HTTP_SPACING.mul_f64(random.unit()));
                            http_start(&agent, &url)
                        })
                        .collect::<Vec<_>>()
                });
                let feed = channel.feed;
                let joins = scope.spawn(move || {
                    let mut random = Random::new(2 * i as u64 + 1);
                    let Some(feed) = feed else {
                        return Vec::new();
                    };
                    (0..join_tries())
                        .map(|_| {
                            std::thread::sleep(gop.mul_f64(random.unit()));
                            multicast_join(feed)
                        })
                        .collect::<Vec<_>>()
                });
                (channel.id.as_str(), http, joins)
            })
            .collect();
        let mut starts = Starts::default();
        for (id, http, joins) in tasks {
            let (http, http_failures) = split(http.join(), &format!("{id} over HTTP"));
            let (joins, join_failures) = split(joins.join(), &format!("{id} by multicast"));
            starts.http.push(http);
            starts.joins.push(joins);
            starts
                .failures
                .extend(http_failures.into_iter().chain(join_failures));
        }
        starts
    })
}

/// A worker's results as what worked and what failed, each failure named by `what`.
fn split<T>(
    results: std::thread::Result<Vec<Result<T, String>>>,
    what: &str,
) -> (Vec<T>, Vec<String>) {
    let Ok(results) = results else {
        return (Vec::new(), vec![format!("{what}: the thread panicked")]);
    };
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for result in results {
        match result {
            Ok(value) => ok.push(value),
            Err(err) => failed.push(format!("{what}: {err}")),
        }
    }
    (ok, failed)
}

fn http_start(agent: &ureq::Agent, url: &str) -> Result<HttpStart, String> {
    let started = Instant::now();
    let response = agent.get(url).call().map_err(|e| e.to_string())?;
    let headers = started.elapsed();
    if response.content_type() != "video/mp2t" {
        return Err(format!("content type {}", response.content_type()));
    }
    let mut body = response.into_reader();
    let mut reader = ts::Reader::default();
    let mut buffer = vec![0; 64 * 1024];
    let mut first_is_keyframe = None;
    while started.elapsed() < TRY_LIMIT {
        let n = body.read(&mut buffer).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the stream ended before a picture".into());
        }
        for unit in reader.feed(&buffer[..n]) {
            first_is_keyframe.get_or_insert(unit.keyframe);
            if unit.keyframe {
                return Ok(HttpStart {
                    picture: started.elapsed(),
                    headers,
                    tables_first: reader.pmt_pid.is_some_and(|pmt| {
                        let mut first = reader.first_pids.clone();
                        first.sort();
                        let mut tables = vec![ts::PAT_PID, pmt, ts::SDT_PID];
                        tables.sort();
                        first == tables
                    }),
                    first_is_keyframe: first_is_keyframe == Some(true),
                    continuity_errors: reader.continuity_errors,
                });
            }
        }
    }
    Err(format!("no picture within {TRY_LIMIT:?}"))
}

/// Joins the group and waits for the first picture.
fn multicast_join(feed: Feed) -> Result<Duration, String> {
    let started = Instant::now();
    let socket = join(feed).map_err(|e| e.to_string())?;
    let mut reader = ts::Reader::default();
    let mut buffer = [0; 2048];
    while started.elapsed() < TRY_LIMIT {
        let n = socket.recv(&mut buffer).map_err(|e| e.to_string())?;
        if reader
            .feed(ts::datagram_payload(&buffer[..n]))
            .iter()
            .any(|unit| unit.keyframe)
        {
            return Ok(started.elapsed());
        }
    }
    Err(format!("no picture within {TRY_LIMIT:?}"))
}

/// A socket that receives `feed` on loopback. Bound to the group's address, it gets
/// that group's datagrams only; dropping it leaves the group.
fn join(feed: Feed) -> std::io::Result<UdpSocket> {
    let socket = UdpSocket::bind((feed.group, feed.port))?;
    socket.join_multicast_v4(&feed.group, &Ipv4Addr::LOCALHOST)?;
    socket.set_read_timeout(Some(TRY_LIMIT))?;
    Ok(socket)
}

fn first_datagram(feed: Feed, wait: Duration) -> Option<usize> {
    let socket = join(feed).ok()?;
    socket.set_read_timeout(Some(wait)).ok()?;
    socket.recv(&mut [0; 2048]).ok()
}

/// xorshift64*: spacing only, no need for a crate.
struct Random(u64);

impl Random {
    fn new(stream: u64) -> Self {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self((now ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

// ---------------------------------------------------------------------------
// Multicast pacing

struct Pacing {
    datagrams: usize,
    /// Datagrams that are not 7 whole TS packets.
    odd_sizes: usize,
    seconds: f64,
    bits_per_second: f64,
    /// Sorted.
    gaps: Vec<Duration>,
    largest_burst: usize,
    continuity_errors: usize,
    sync_losses: usize,
    null_share: f64,
    keyframe_interval: Option<Duration>,
    keyframes: usize,
    /// Access units whose first packet sets `random_access_indicator` but that are no
    /// keyframe (no IDR slice, or no SPS or PPS).
    false_random_access: usize,
}

/// Records every feed at once with kernel receive times, and reads the captures.
fn pacing(feeds: &[(&Channel, Feed)], scratch: &Path) -> Result<Vec<Pacing>, String> {
    let mut captures = Vec::new();
    for (channel, feed) in feeds {
        let file = scratch.join(format!("{}.cap", channel.id));
        let child = Command::new("python3")
            .arg(CAPTURE_TOOL)
            .args(["--group", &feed.group.to_string()])
            .args(["--port", &feed.port.to_string()])
            .args(["--iface-addr", "127.0.0.1"])
            .args(["--duration", &pacing_span().as_secs_f64().to_string()])
            .arg("--output")
            .arg(&file)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("python3 {CAPTURE_TOOL}: {e}"))?;
        captures.push((child, file));
    }
    let mut results = Vec::new();
    for (child, file) in captures {
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "{CAPTURE_TOOL}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        results.push(read_capture(&file)?);
    }
    Ok(results)
}

fn read_capture(capture: &Path) -> Result<Pacing, String> {
    let data = std::fs::read(capture).map_err(|e| e.to_string())?;
    // Records: arrival (u64 ns, monotonic, big-endian), length (u32), datagram.
    let mut records = Vec::new();
    let mut rest = data.as_slice();
    while let (Some(arrival), Some(length)) = (rest.get(..8), rest.get(8..12)) {
        let arrival = u64::from_be_bytes(arrival.try_into().unwrap_or_default());
        let length = u32::from_be_bytes(length.try_into().unwrap_or_default()) as usize;
        let datagram = rest.get(12..12 + length).ok_or("truncated capture")?;
        records.push((Duration::from_nanos(arrival), datagram));
        rest = &rest[12 + length..];
    }
    let (first, last) = match (records.first(), records.last()) {
        (Some(first), Some(last)) if records.len() > 2 => (first.0, last.0),
        _ => return Err("too few datagrams captured".into()),
    };
    let mut reader = ts::Reader::default();
    let mut keyframes = Vec::new();
    let mut false_random_access = 0;
    let mut bytes = 0;
    let mut odd_sizes = 0;
    for (arrival, datagram) in &records {
        let payload = ts::datagram_payload(datagram);
        bytes += payload.len();
        odd_sizes += usize::from(payload.len() != 7 * ts::PACKET);
        for unit in reader.feed(payload) {
            if unit.keyframe {
                keyframes.push(*arrival);
            } else if unit.random_access {
                false_random_access += 1;
            }
        }
    }
    // Arrival times are the kernel's, moved onto the monotonic clock by the capture tool;
    // that move can put two close arrivals a few microseconds out of order, which
    // counts as no gap rather than a panic.
    let mut gaps: Vec<Duration> = records
        .windows(2)
        .map(|w| w[1].0.saturating_sub(w[0].0))
        .collect();
    gaps.sort();
    let mut intervals: Vec<Duration> = keyframes
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .collect();
    intervals.sort();
    // The most arrivals within any BURST_WINDOW.
    let mut largest_burst = 0;
    let mut from = 0;
    for to in 0..records.len() {
        while records[to].0.saturating_sub(records[from].0) >= BURST_WINDOW {
            from += 1;
        }
        largest_burst = largest_burst.max(to - from + 1);
    }
    let seconds = last.saturating_sub(first).as_secs_f64();
    // The first datagram's bytes arrived before the window opened.
    let counted = bytes - ts::datagram_payload(records[0].1).len();
    Ok(Pacing {
        datagrams: records.len(),
        odd_sizes,
        seconds,
        bits_per_second: counted as f64 * 8.0 / seconds,
        gaps,
        largest_burst,
        continuity_errors: reader.continuity_errors,
        sync_losses: reader.sync_losses,
        null_share: reader.null_packets as f64 / reader.packets.max(1) as f64,
        keyframe_interval: intervals.get(intervals.len() / 2).copied(),
        keyframes: keyframes.len(),
        false_random_access,
    })
}

// ---------------------------------------------------------------------------
// The report

struct Results<'a> {
    channels: &'a [Channel],
    starts: &'a Starts,
    cpu_with: &'a [CpuShare],
    cpu_without: &'a [CpuShare],
    paced: &'a [&'a str],
    pacing: &'a [Pacing],
    warnings: &'a [(&'a str, Vec<String>)],
}

/// Nearest-rank percentile of sorted values.
fn pct<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    Some(sorted[((sorted.len() - 1) as f64 * p).round() as usize])
}

fn ms(value: Option<Duration>) -> String {
    value.map_or("–".into(), |d| format!("{:.0} ms", d.as_secs_f64() * 1e3))
}

fn ms_fine(value: Option<Duration>) -> String {
    value.map_or("–".into(), |d| format!("{:.2} ms", d.as_secs_f64() * 1e3))
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

fn write_report(out: &mut String, r: &Results) -> std::fmt::Result {
    let n = r.channels.len();
    writeln!(out, "# Benchmarks: IPTV\n")?;
    writeln!(
        out,
        "Regenerated by `make bench` (`cargo bench --bench iptv`; {machine}).\n\
         The headend runs the demo catalog ({n} channels, ladder `demo`; each channel's TS\n\
         carries one rendition, the ladder's highest unless the catalog names another, and\n\
         the AAC) inside a private network namespace: every client is on its loopback.\n",
        machine = report::machine(),
    )?;

    // Channel start.
    writeln!(out, "## Channel start\n")?;
    writeln!(
        out,
        "| channel | `/ts/` median | p90 | worst | multicast join median | p90 | worst |\n\
         |---|---|---|---|---|---|---|"
    )?;
    let mut all_http = Vec::new();
    let mut all_joins = Vec::new();
    for (i, channel) in r.channels.iter().enumerate() {
        let mut http: Vec<Duration> = r.starts.http[i].iter().map(|s| s.picture).collect();
        http.sort();
        let mut joins = r.starts.joins[i].clone();
        joins.sort();
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            channel.id,
            ms_fine(pct(&http, 0.5)),
            ms_fine(pct(&http, 0.9)),
            ms_fine(pct(&http, 1.0)),
            ms(pct(&joins, 0.5)),
            ms(pct(&joins, 0.9)),
            ms(pct(&joins, 1.0)),
        )?;
        all_http.extend(http);
        all_joins.extend(joins);
    }
    all_http.sort();
    all_joins.sort();
    writeln!(
        out,
        "| **all** | **{}** | {} | {} | **{}** | {} | {} |\n",
        ms_fine(pct(&all_http, 0.5)),
        ms_fine(pct(&all_http, 0.9)),
        ms_fine(pct(&all_http, 1.0)),
        ms(pct(&all_joins, 0.5)),
        ms(pct(&all_joins, 0.9)),
        ms(pct(&all_joins, 1.0)),
    )?;
    let http: Vec<&HttpStart> = r.starts.http.iter().flatten().collect();
    let mut headers: Vec<Duration> = http.iter().map(|s| s.headers).collect();
    headers.sort();
    writeln!(
        out,
        "| `/ts/` start | value | goal |\n|---|---|---|\n\
         | first picture, median | {p50} | < 100 ms |\n\
         | response headers, median | {headers} | |\n\
         | starts that begin with PAT, PMT and SDT | {tables} of {count} | all |\n\
         | starts whose first access unit was not the keyframe | {not_key} of {count} | 0 |\n\
         | starts with continuity errors | {cc} | 0 |\n\
         | failed starts (HTTP and multicast) | {failed} | 0 |\n",
        p50 = ms_fine(pct(&all_http, 0.5)),
        headers = ms_fine(pct(&headers, 0.5)),
        tables = http.iter().filter(|s| s.tables_first).count(),
        not_key = http.iter().filter(|s| !s.first_is_keyframe).count(),
        count = http.len(),
        cc = http.iter().filter(|s| s.continuity_errors > 0).count(),
        failed = r.starts.failures.len(),
    )?;
    for failure in r.starts.failures.iter().take(5) {
        writeln!(out, "- failed: {failure}")?;
    }
    if !r.starts.failures.is_empty() {
        writeln!(out)?;
    }
    writeln!(
        out,
        "A start is timed from sending the request (HTTP) or joining the group (a socket\n\
         bound, `IP_ADD_MEMBERSHIP`) to holding the first picture a decoder can show: PAT\n\
         and PMT (CRCs checked), then a whole H.264 access unit on the PMT's video PID\n\
         (from its PES start to the next) with SPS, PPS and an IDR slice. `/ts/` starts a\n\
         client from the GOP cache; a multicast receiver waits for the next keyframe on the\n\
         wire, as it would behind any HTTP TS server without a cache. {http_tries} HTTP starts\n\
         per channel, each after a random pause of 0–{spacing:.0} s, and {join_tries} joins per\n\
         channel, each after a random pause of 0–1 GOP, run side by side, so both land all\n\
         over the GOP. A join here costs no IGMP round trip (the group is on loopback); on a\n\
         network the router or snooping switch adds its join latency to the multicast column.\n\
         A `/ts/` start whose first access unit is not a keyframe (the cache began at an\n\
         access unit marked for random access that is none; see the pacing table's last\n\
         row) waits for the next IDR on the wire, and is among the worst.\n",
        spacing = HTTP_SPACING.as_secs_f64(),
        http_tries = http_tries(),
        join_tries = join_tries(),
    )?;

    // CPU.
    let per_channel = |shares: &[CpuShare], part: fn(&CpuShare) -> f64| {
        let values: Vec<f64> = shares.iter().map(part).collect();
        let scale = 100.0 / n as f64;
        let (lo, hi) = values
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
        (
            mean(&values) * scale,
            format!("{:.2}–{:.2} %", lo * scale, hi * scale),
        )
    };
    let process = |s: &CpuShare| s.process;
    let ts = |s: &CpuShare| s.ts;
    let (with, range_with) = per_channel(r.cpu_with, process);
    let (without, range_without) = per_channel(r.cpu_without, process);
    let (ts_with, ts_range_with) = per_channel(r.cpu_with, ts);
    let (ts_without, ts_range_without) = per_channel(r.cpu_without, ts);
    writeln!(out, "## Cost of the multicast output\n")?;
    writeln!(
        out,
        "| CPU per channel (one core = 100 %) | mean over {secs} s | {sub} s windows |\n|---|---|---|\n\
         | TS branch's threads, demo catalog as shipped (constant-rate mux, SDT, multicast sending, `/ts/` hub) | {ts_with:.2} % | {ts_range_with} |\n\
         | TS branch's threads, without `multicast:` (variable-rate mux, `/ts/` hub) | {ts_without:.2} % | {ts_range_without} |\n\
         | **the multicast output** (difference) | **{ts_diff:+.2} %** | |\n\
         | whole process, as shipped | {with:.1} % | {range_with} |\n\
         | whole process, without `multicast:` | {without:.1} % | {range_without} |\n",
        secs = cpu_span().as_secs(),
        sub = (cpu_span() / CPU_SUB_WINDOWS).as_secs(),
        ts_diff = ts_with - ts_without,
    )?;
    writeln!(
        out,
        "utime + stime (/proc) over {secs} s after a {warm} s warm-up, no client connected,\n\
         divided by {n} channels; each run is a fresh process. The catalog without multicast\n\
         is a copy of `manifests/demo.yaml` with the `multicast:` blocks removed: the TS mux\n\
         still runs (variable-rate, for `/ts/`), so the difference is the constant-rate\n\
         muxing with its null-packet stuffing, the SDT in it, and the paced UDP sending, with\n\
         no second encode. It is measured on the TS branch's own streaming threads (named\n\
         `ts-…` by the pipeline: the muxer's, its input queues', the `/ts/` hub's and the\n\
         multicast sender's), which the encoders' much larger and noisier time does not\n\
         reach; the whole process's time is shown for scale, and a difference between its\n\
         two rows is mostly the encoders' run-to-run noise.\n",
        secs = cpu_span().as_secs(),
        warm = WARM_UP.as_secs(),
    )?;

    // Pacing.
    writeln!(out, "## Multicast pacing\n")?;
    let row = |out: &mut String, name: &str, cell: &dyn Fn(&Pacing) -> String| {
        let cells: Vec<String> = r.pacing.iter().map(cell).collect();
        writeln!(out, "| {name} | {} |", cells.join(" | "))
    };
    writeln!(
        out,
        "| measure | {} |\n|---|{}",
        r.paced.join(" | "),
        "---|".repeat(r.paced.len())
    )?;
    row(out, "datagrams", &|p| {
        format!(
            "{} in {:.1} s ({} not 7 TS packets)",
            p.datagrams, p.seconds, p.odd_sizes
        )
    })?;
    row(out, "transport-stream rate", &|p| {
        format!("{:.3} Mbit/s", p.bits_per_second / 1e6)
    })?;
    row(out, "inter-arrival, mean", &|p| {
        ms_fine(Some(Duration::from_secs_f64(
            p.seconds / (p.datagrams - 1) as f64,
        )))
    })?;
    row(out, "inter-arrival, median", &|p| {
        ms_fine(pct(&p.gaps, 0.5))
    })?;
    row(out, "inter-arrival, p99", &|p| ms_fine(pct(&p.gaps, 0.99)))?;
    row(out, "inter-arrival, max", &|p| ms_fine(pct(&p.gaps, 1.0)))?;
    row(
        out,
        &format!("largest burst within {} ms", BURST_WINDOW.as_millis()),
        &|p| format!("{} datagrams", p.largest_burst),
    )?;
    row(out, "continuity errors / sync losses", &|p| {
        format!("{} / {}", p.continuity_errors, p.sync_losses)
    })?;
    row(out, "null-packet stuffing", &|p| {
        format!("{:.0} % of packets", p.null_share * 100.0)
    })?;
    row(out, "keyframes / interval, median", &|p| {
        format!("{} / {}", p.keyframes, ms(p.keyframe_interval))
    })?;
    row(out, "random access marked on a non-keyframe", &|p| {
        p.false_random_access.to_string()
    })?;
    writeln!(
        out,
        "\nEvery feed received at once for {secs} s on loopback by `{CAPTURE_TOOL}`, which\n\
         stamps each datagram with the kernel's receive time (SO_TIMESTAMPNS), so the\n\
         receiver's own scheduling does not show as bursts; on loopback that is when the\n\
         headend sent it. The last row counts video access units whose first TS packet\n\
         sets `random_access_indicator` without being a keyframe (SPS, PPS and an IDR\n\
         slice): a receiver that starts there shows a broken picture until the next IDR.\n",
        secs = pacing_span().as_secs(),
    )?;

    // Anything the headend complained about.
    for (run, lines) in r.warnings {
        if lines.is_empty() {
            writeln!(out, "The headend logged no warnings {run}.\n")?;
        } else {
            writeln!(
                out,
                "The headend logged {} warnings {run}; the first:\n",
                lines.len()
            )?;
            for line in lines.iter().take(3) {
                writeln!(out, "    {line}")?;
            }
            writeln!(out)?;
        }
    }
    Ok(())
}
