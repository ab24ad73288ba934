//! `make bench`: the headend's origin against nginx, on the same bytes, in the same run.
//!
//! The headend runs one live channel on the demo ladder (a `snow` test pattern, so its
//! top rendition's segments are as large as its bit rate says, about 250 kB per 2 s);
//! nginx (`support/nginx.rs`) serves a copy of that channel's playlist and segments,
//! fetched from the running headend, from a folder. wrk (`support/wrk.rs`) then loads
//! each with the same requests on loopback:
//! - one segment, over and over, at 64, 256 and 1024 connections;
//! - the media playlist, the same;
//! - live viewers: the playlist, then the newest segment it lists, in turn.
//!
//! Each row runs on both servers back to back, the order alternating between
//! repetitions, and every ratio is the median of those paired runs, so slow drift of
//! the shared machine falls on both. The headend keeps encoding its channel throughout,
//! during nginx's runs too, so both compete with the same background load. Besides
//! throughput and latency, the CPU time each server spent per request (the headend's
//! runtime threads only, every nginx process) is read from /proc.
//!
//! Runs in a private network namespace (`support/netns.rs`) like every bench that starts
//! the headend. Results go to the `origin` section of `docs/benchmarks.md`.

#[path = "support/headend.rs"]
#[allow(dead_code, reason = "shared by every bench; each uses a part")]
mod headend;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/nginx.rs"]
mod nginx;
#[path = "support/report.rs"]
#[allow(dead_code, reason = "shared by every bench; each uses a part")]
mod report;
#[path = "support/wrk.rs"]
mod wrk;

use std::fmt::Write as _;
use std::fs::File;
use std::io::Read as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use headend::Headend;
use nginx::Nginx;
use report::{mib, ms, Scratch, Spread};
use wrk::Load;

const LADDERS: &str = "pipelines/ladders.yaml";
/// The channel both servers serve. `snow` does not compress, so the encoder spends the
/// whole bit rate: segments are the size a real channel's would be.
const CHANNEL: &str = "origin";
const CATALOG: &str = "channels:
  - id: origin
    number: 1
    name: \"Origin benchmark\"
    group: \"Benchmark\"
    source:
      uri: \"test://?pattern=snow&freq=440\"
    ladder: demo
";
const READY_LIMIT: Duration = Duration::from_secs(60);
/// Lets each server settle its caches and connection pools before the measured runs.
const WARM_UP: Duration = Duration::from_secs(1);
/// Between two runs, for the last run's connections to close.
const PAUSE: Duration = Duration::from_millis(500);
/// More than the largest run's connections on both ends, plus the headend's own files.
const OPEN_FILES: u64 = 65_536;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Work {
    Segment,
    Playlist,
    Viewers,
}

struct Row {
    work: Work,
    connections: u32,
}

const ROWS: [Row; 8] = [
    Row {
        work: Work::Segment,
        connections: 64,
    },
    Row {
        work: Work::Segment,
        connections: 256,
    },
    Row {
        work: Work::Segment,
        connections: 1024,
    },
    Row {
        work: Work::Playlist,
        connections: 64,
    },
    Row {
        work: Work::Playlist,
        connections: 256,
    },
    Row {
        work: Work::Playlist,
        connections: 1024,
    },
    Row {
        work: Work::Viewers,
        connections: 256,
    },
    Row {
        work: Work::Viewers,
        connections: 1024,
    },
];

/// Run length and repetitions: full, or quick (`HEADEND_BENCH_QUICK=1`).
struct Settings {
    run: Duration,
    repetitions: usize,
}

impl Settings {
    fn new() -> Self {
        if report::quick() {
            Settings {
                run: Duration::from_secs(2),
                repetitions: 1,
            }
        } else {
            Settings {
                run: Duration::from_secs(4),
                repetitions: 3,
            }
        }
    }
}

fn main() {
    netns::enter();
    // `cargo bench` passes `--bench`; nothing else to parse.
    report::publish("origin", run(&Settings::new()));
}

/// One server's runs of one row.
#[derive(Default)]
struct Runs {
    loads: Vec<Load>,
    /// CPU-seconds the server spent in each run.
    cpu: Vec<f64>,
}

impl Runs {
    /// Microseconds of CPU per request answered, run by run.
    fn cpu_per_request(&self) -> impl Iterator<Item = f64> + '_ {
        self.loads
            .iter()
            .zip(&self.cpu)
            .map(|(load, cpu)| cpu / load.requests as f64 * 1e6)
    }
}

struct Results {
    /// Per row: the headend's runs and nginx's.
    rows: Vec<(Runs, Runs)>,
    segment_bytes: usize,
    playlist_bytes: usize,
    headend_rss_before: u64,
    headend_peak: u64,
    nginx_rss_before: u64,
    nginx_peak: u64,
    nginx_errors: String,
    headend_warnings: Vec<String>,
}

fn run(settings: &Settings) -> Result<String, String> {
    let open_files = wrk::raise_open_files(OPEN_FILES)?;
    let scratch = Scratch::new("origin")?;
    let catalog = scratch.path.join("origin.yaml");
    std::fs::write(&catalog, CATALOG).map_err(|e| e.to_string())?;
    let log = scratch.path.join("headend.log");
    let headend = Headend::start(
        &[catalog.as_path(), Path::new(LADDERS)],
        Stdio::from(File::create(&log).map_err(|e| e.to_string())?),
    )?;
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    let base = headend.base_url();
    // nginx's copy of the playlist must be as long as the headend's will be.
    let window = demo_window()?;
    let rendition = wait_ready(&agent, &base, window)?;
    let dir = format!("/live/{CHANNEL}/{rendition}");
    let playlist = format!("{dir}/index.m3u8");

    // nginx's copy: the playlist as it is now, every segment and init segment it names.
    let docroot = scratch.path.join("www");
    let copy = docroot.join(dir.trim_start_matches('/'));
    std::fs::create_dir_all(&copy).map_err(|e| e.to_string())?;
    let listed = fetch(&agent, &format!("{base}{playlist}"))?;
    std::fs::write(copy.join("index.m3u8"), &listed).map_err(|e| e.to_string())?;
    for uri in uris(&listed) {
        copy_file(&agent, &format!("{base}{dir}/{uri}"), &copy.join(&uri))?;
    }
    let nginx = Nginx::start(&docroot, &scratch.path.join("nginx"), report::cores())?;

    let plain = wrk::script(&scratch.path, "plain", "")?;
    let viewers = wrk::script(&scratch.path, "viewers", &viewers_script(&dir))?;
    let threads = report::cores();
    let servers = [base.clone(), nginx.base_url()];
    let cpu = |server: usize| -> Result<f64, String> {
        match server {
            0 => thread_cpu(headend.pid(), "origin-worker"),
            _ => nginx.pids().into_iter().map(process_cpu).sum(),
        }
    };

    for url in &servers {
        wrk::run(&format!("{url}{playlist}"), 64, threads, WARM_UP, &plain)?;
    }
    let headend_rss_before = report::memory_kib(headend.pid(), "VmRSS")?;
    let nginx_rss_before = nginx
        .pids()
        .into_iter()
        .map(|pid| report::memory_kib(pid, "VmRSS"))
        .sum::<Result<u64, String>>()?;

    let mut rows: Vec<(Runs, Runs)> = ROWS.iter().map(|_| Default::default()).collect();
    let mut segment_bytes = 0;
    for repetition in 0..settings.repetitions {
        for (row, runs) in ROWS.iter().zip(&mut rows) {
            let path = match row.work {
                Work::Segment => {
                    // The newest segment: it stays in the headend's window (and past it,
                    // RFC 8216 6.2.2) for far longer than both runs take.
                    let listed = fetch(&agent, &format!("{base}{playlist}"))?;
                    let newest = uris(&listed).pop().ok_or("the playlist lists nothing")?;
                    let file = copy.join(&newest);
                    if !file.exists() {
                        copy_file(&agent, &format!("{base}{dir}/{newest}"), &file)?;
                    }
                    segment_bytes = std::fs::metadata(&file).map_or(0, |m| m.len() as usize);
                    format!("{dir}/{newest}")
                }
                Work::Playlist | Work::Viewers => playlist.clone(),
            };
            let script = if row.work == Work::Viewers {
                &viewers
            } else {
                &plain
            };
            // Alternate which server goes first.
            let order = if repetition % 2 == 0 { [0, 1] } else { [1, 0] };
            for server in order {
                std::thread::sleep(PAUSE);
                let before = cpu(server)?;
                let load = wrk::run(
                    &format!("{}{path}", servers[server]),
                    row.connections,
                    threads,
                    settings.run,
                    script,
                )?;
                let spent = cpu(server)? - before;
                let runs = if server == 0 {
                    &mut runs.0
                } else {
                    &mut runs.1
                };
                runs.loads.push(load);
                runs.cpu.push(spent);
            }
        }
    }

    let headend_peak = report::memory_kib(headend.pid(), "VmHWM")?;
    let nginx_peak = nginx
        .pids()
        .into_iter()
        .map(|pid| report::memory_kib(pid, "VmHWM"))
        .sum::<Result<u64, String>>()?;
    let nginx_errors = nginx.errors();
    drop(nginx);
    drop(headend);
    let results = Results {
        rows,
        segment_bytes,
        playlist_bytes: listed.len(),
        headend_rss_before,
        headend_peak,
        nginx_rss_before,
        nginx_peak,
        nginx_errors,
        headend_warnings: std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .map(str::to_owned)
            .collect(),
    };
    let mut section = String::new();
    write_section(&mut section, &results, settings, open_files).map_err(|e| e.to_string())?;
    Ok(section)
}

/// The `demo` ladder's playlist window, in segments.
fn demo_window() -> Result<usize, String> {
    let text = std::fs::read_to_string(LADDERS).map_err(|e| format!("{LADDERS}: {e}"))?;
    let ladders: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| format!("{LADDERS}: {e}"))?;
    let demo = &ladders["ladders"]["demo"];
    if demo.is_null() {
        return Err(format!("{LADDERS} has no `demo` ladder"));
    }
    // The catalog's default window.
    Ok(demo["window"].as_u64().unwrap_or(6) as usize)
}

/// Waits for the channel's top rendition to list a whole window of segments; returns
/// the rendition's name.
fn wait_ready(agent: &ureq::Agent, base: &str, window: usize) -> Result<String, String> {
    let deadline = Instant::now() + READY_LIMIT;
    loop {
        if let Ok(master) = fetch(agent, &format!("{base}/live/{CHANNEL}/master.m3u8")) {
            let master = m3u8_rs::parse_master_playlist_res(master.as_bytes())
                .map_err(|e| format!("bad master playlist: {e}"))?;
            let uri = master
                .variants
                .first()
                .map(|v| v.uri.clone())
                .ok_or("the master playlist has no variant")?;
            let rendition = uri
                .split_once('/')
                .map(|(name, _)| name.to_owned())
                .ok_or_else(|| format!("unexpected variant URI {uri}"))?;
            let media = fetch(agent, &format!("{base}/live/{CHANNEL}/{uri}"))?;
            // The init segment and the window.
            if uris(&media).len() > window {
                return Ok(rendition);
            }
        }
        if Instant::now() > deadline {
            return Err(format!("the channel did not start within {READY_LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn fetch(agent: &ureq::Agent, url: &str) -> Result<String, String> {
    agent
        .get(url)
        .call()
        .map_err(|e| format!("{url}: {e}"))?
        .into_string()
        .map_err(|e| format!("{url}: {e}"))
}

/// Writes what `url` answers to `file`, byte for byte.
fn copy_file(agent: &ureq::Agent, url: &str, file: &Path) -> Result<(), String> {
    let mut body = Vec::new();
    agent
        .get(url)
        .call()
        .map_err(|e| format!("{url}: {e}"))?
        .into_reader()
        .read_to_end(&mut body)
        .map_err(|e| format!("{url}: {e}"))?;
    std::fs::write(file, body).map_err(|e| format!("{}: {e}", file.display()))
}

/// The URIs a media playlist names, in order: its init segments and segments.
fn uris(playlist: &str) -> Vec<String> {
    let mut uris = Vec::new();
    for line in playlist.lines() {
        if let Some(map) = line.strip_prefix("#EXT-X-MAP:") {
            if let Some(uri) = map.split('"').nth(1) {
                uris.insert(0, uri.to_owned());
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            uris.push(line.trim().to_owned());
        }
    }
    uris
}

/// Live viewers as wrk can play them. wrk's Lua state is per thread, not per
/// connection, so each thread alternates: the playlist, then the newest segment of the
/// last playlist any of its connections received.
fn viewers_script(dir: &str) -> String {
    format!(
        r##"
local dir = "{dir}/"
local playlist = dir .. "index.m3u8"
local newest = nil
local segment_next = false
request = function()
  if segment_next and newest then
    segment_next = false
    return wrk.format("GET", dir .. newest)
  end
  segment_next = true
  return wrk.format("GET", playlist)
end
response = function(status, headers, body)
  if status == 200 and body:sub(1, 7) == "#EXTM3U" then
    local last = nil
    for line in body:gmatch("[^\r\n]+") do
      if line:sub(1, 1) ~= "#" then last = line end
    end
    if last then newest = last end
  end
end
"##
    )
}

/// utime + stime of the threads of `pid` whose name starts with `prefix`.
fn thread_cpu(pid: u32, prefix: &str) -> Result<f64, String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).map_err(|e| e.to_string())?;
    let mut seconds = 0.0;
    for task in tasks.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.starts_with(prefix) {
            seconds += stat_cpu(&path.join("stat")).unwrap_or(0.0);
        }
    }
    Ok(seconds)
}

fn process_cpu(pid: u32) -> Result<f64, String> {
    stat_cpu(Path::new(&format!("/proc/{pid}/stat")))
}

/// utime + stime from a `stat` file (fields 14 and 15), in seconds.
fn stat_cpu(path: &Path) -> Result<f64, String> {
    let stat = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    // The command name is in parentheses and may contain spaces: split after it.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: f64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<f64>().ok())
        .sum();
    Ok(ticks / clock_ticks())
}

/// `sysconf(_SC_CLK_TCK)`; 100 on every Linux this runs on, asked once all the same.
fn clock_ticks() -> f64 {
    static HZ: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

// ---------------------------------------------------------------------------
// The report

fn work_name(row: &Row) -> &'static str {
    match row.work {
        Work::Segment => "segment",
        Work::Playlist => "playlist",
        Work::Viewers => "live viewers",
    }
}

fn spread(values: impl Iterator<Item = f64>) -> Spread {
    let values: Vec<f64> = values.collect();
    Spread::of(&values).unwrap_or(Spread {
        min: f64::NAN,
        median: f64::NAN,
        max: f64::NAN,
    })
}

/// The ratio of each repetition's pair of runs, headend over nginx.
fn paired(runs: &(Runs, Runs), value: impl Fn(&Load) -> f64) -> Spread {
    spread(
        runs.0
            .loads
            .iter()
            .zip(&runs.1.loads)
            .map(|(h, n)| value(h) / value(n)),
    )
}

fn duration_spread(loads: &[Load], value: impl Fn(&Load) -> Duration) -> String {
    let s = spread(loads.iter().map(|l| value(l).as_secs_f64()));
    ms(Duration::from_secs_f64(s.median.max(0.0)))
}

/// Microseconds of CPU per request over the runs.
fn cpu_per_request(runs: &Runs) -> Spread {
    spread(runs.cpu_per_request())
}

fn write_section(
    out: &mut String,
    r: &Results,
    settings: &Settings,
    open_files: u64,
) -> std::fmt::Result {
    writeln!(out, "## Origin: the headend against nginx\n")?;
    writeln!(
        out,
        "`cargo bench --bench origin` ({machine}). {reps} repetitions of {secs} s per row\n\
         and server; each figure is the median, with the range over the repetitions\n\
         where there are several. Every ratio compares the two runs of one repetition\n\
         (back to back, the order alternating), then takes the median of those, and is\n\
         written so that **at least 1.0 means the headend is at least as good as\n\
         nginx**: requests per second headend ÷ nginx; p99 latency and CPU per request\n\
         nginx ÷ headend.\n",
        machine = report::machine(),
        reps = settings.repetitions,
        secs = settings.run.as_secs(),
    )?;
    writeln!(
        out,
        "| requests | connections | headend req/s | nginx req/s | **ratio** | headend MB/s | nginx MB/s |\n\
         |---|---|---|---|---|---|---|"
    )?;
    for (row, runs) in ROWS.iter().zip(&r.rows) {
        let (h, n) = (&runs.0.loads, &runs.1.loads);
        let rate = |loads: &[Load]| spread(loads.iter().map(Load::requests_per_second));
        let megabytes = |loads: &[Load]| spread(loads.iter().map(Load::megabytes_per_second));
        writeln!(
            out,
            "| {work} | {conns} | {hr} | {nr} | **{ratio}** | {hm} | {nm} |",
            work = work_name(row),
            conns = row.connections,
            hr = rate(h).show(0),
            nr = rate(n).show(0),
            ratio = paired(runs, Load::requests_per_second).show(2),
            hm = megabytes(h).show(0),
            nm = megabytes(n).show(0),
        )?;
    }
    writeln!(
        out,
        "\n| requests | connections | p50 headend / nginx | p99 headend / nginx | p99 ratio | CPU µs per request, headend / nginx | CPU ratio |\n\
         |---|---|---|---|---|---|---|"
    )?;
    for (row, runs) in ROWS.iter().zip(&r.rows) {
        let (h, n) = (&runs.0.loads, &runs.1.loads);
        let (hc, nc) = (cpu_per_request(&runs.0), cpu_per_request(&runs.1));
        let cpu_ratio = spread(
            runs.0
                .cpu_per_request()
                .zip(runs.1.cpu_per_request())
                .map(|(h, n)| n / h),
        );
        writeln!(
            out,
            "| {work} | {conns} | {h50} / {n50} | {h99} / {n99} | {p99_ratio} | {hc} / {nc} | {cpu_ratio} |",
            work = work_name(row),
            conns = row.connections,
            h50 = duration_spread(h, |l| l.p50),
            n50 = duration_spread(n, |l| l.p50),
            h99 = duration_spread(h, |l| l.p99),
            n99 = duration_spread(n, |l| l.p99),
            p99_ratio = paired(runs, |l| 1.0 / l.p99.as_secs_f64().max(1e-6)).show(2),
            hc = hc.show(1),
            nc = nc.show(1),
            cpu_ratio = cpu_ratio.show(2),
        )?;
    }
    let failures: Vec<String> = ROWS
        .iter()
        .zip(&r.rows)
        .flat_map(|(row, runs)| {
            [("headend", &runs.0), ("nginx", &runs.1)]
                .into_iter()
                .filter_map(move |(name, runs)| {
                    let socket: u64 = runs.loads.iter().map(|l| l.socket_errors).sum();
                    let status: u64 = runs.loads.iter().map(|l| l.bad_status).sum();
                    (socket + status > 0).then(|| {
                        format!(
                            "{name}, {} at {}: {socket} socket errors, {status} answers not 2xx/3xx",
                            work_name(row),
                            row.connections
                        )
                    })
                })
        })
        .collect();
    writeln!(out)?;
    if failures.is_empty() {
        writeln!(
            out,
            "Every request of every run was answered 200, with no socket error.\n"
        )?;
    } else {
        for failure in &failures {
            writeln!(out, "- **failed:** {failure}")?;
        }
        writeln!(out)?;
    }

    writeln!(
        out,
        "| memory | headend (whole process, with its channel's encoders) | nginx (master and workers) |\n\
         |---|---|---|\n\
         | resident before the load | {hb} | {nb} |\n\
         | peak resident (VmHWM) after every run | {hp} | {np} |\n",
        hb = mib(r.headend_rss_before),
        nb = mib(r.nginx_rss_before),
        hp = mib(r.headend_peak),
        np = mib(r.nginx_peak),
    )?;

    writeln!(
        out,
        "The headend runs one channel on the `demo` ladder (a `snow` test pattern at\n\
         480p, 1 Mbit/s); both servers serve its top rendition: a {seg} kB segment and\n\
         its {pl}-byte media playlist. nginx serves a copy of the same bytes, fetched from\n\
         the headend, with `sendfile`, `open_file_cache`, long keep-alive, no access log,\n\
         and the response headers an HLS origin for browsers needs, as the headend sends\n\
         them (CORS, and `Cache-Control` immutable for segments, one second for playlists),\n\
         and as many worker processes as the headend has origin worker threads ({cores}); both\n\
         listen with a backlog of 1024. The segment rows fetch the newest segment when\n\
         the row starts; the headend's playlist moves on during a run and nginx's copy\n\
         stays as it was fetched. *Live viewers* alternates, per wrk thread (wrk's Lua\n\
         state is per thread, not per connection), the playlist and the newest segment\n\
         named by the last playlist received. wrk runs {cores} threads, HTTP/1.1\n\
         keep-alive, on the same {cores} cores, so client and server share the machine\n\
         (open files: {open_files}); the headend's channel keeps encoding during every\n\
         run, nginx's included, so both see the same background load. CPU per request\n\
         is the utime + stime of the headend's `origin-worker` threads (the origin;\n\
         not its encoders) or of every nginx process over the run, over the requests\n\
         answered; it includes the kernel's work for the socket.\n",
        seg = r.segment_bytes / 1000,
        pl = r.playlist_bytes,
        cores = report::cores(),
    )?;
    if !r.nginx_errors.trim().is_empty() {
        writeln!(out, "nginx logged:\n")?;
        for line in r.nginx_errors.lines().take(3) {
            writeln!(out, "    {line}")?;
        }
        writeln!(out)?;
    }
    if !r.headend_warnings.is_empty() {
        writeln!(
            out,
            "The headend logged {} warnings; the first:\n",
            r.headend_warnings.len()
        )?;
        for line in r.headend_warnings.iter().take(3) {
            writeln!(out, "    {line}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}
