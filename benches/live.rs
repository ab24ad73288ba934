//! `make bench`: live packaging latency and the cost of the demo ladder.
//!
//! Runs the real binary on the demo catalog, then for a fixed window:
//! - polls every channel's media playlists and records, for each new segment, the time
//!   between the wall-clock end of its content (`PROGRAM-DATE-TIME` + `EXTINF`) and the
//!   moment it first appears at the origin (goal: under 0.5 s);
//! - reads the process's CPU time and resident memory from /proc.
//!
//! The demo catalog sends multicast, so all of it runs in a private network namespace
//! (`support/netns.rs`). Results go to stdout and the `live` section of
//! `docs/benchmarks.md`.

#[path = "support/headend.rs"]
mod headend;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/report.rs"]
#[allow(dead_code, reason = "shared by every bench; each uses a part")]
mod report;

use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use headend::{cpu_seconds, Headend};
use report::memory_kib;

const CATALOG: [&str; 2] = ["manifests/demo.yaml", "pipelines/ladders.yaml"];
const WARM_UP_LIMIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);

/// The measured window: 40 s, or 10 s in a quick run (`HEADEND_BENCH_QUICK=1`).
fn measure() -> Duration {
    Duration::from_secs(if report::quick() { 10 } else { 40 })
}

fn main() {
    netns::enter();
    // `cargo bench` passes `--bench`; nothing else to parse.
    let channels = demo_channels();
    let result = Headend::start(&CATALOG, Stdio::null()).and_then(|headend| {
        let result = run(&headend.base_url(), &channels, headend.pid());
        drop(headend);
        result
    });
    report::publish("live", result);
}

struct Tracked {
    url: String,
    last: Option<u64>,
}

fn run(base: &str, channels: &[String], pid: u32) -> Result<String, String> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(2))
        .build();
    // Wait for every channel's multivariant playlist (readiness, not a measurement).
    let deadline = Instant::now() + WARM_UP_LIMIT;
    let mut renditions = Vec::new();
    for channel in channels {
        let master = loop {
            if let Ok(resp) = agent
                .get(&format!("{base}/live/{channel}/master.m3u8"))
                .call()
            {
                break resp.into_string().map_err(|e| e.to_string())?;
            }
            if Instant::now() > deadline {
                return Err(format!("channel {channel} did not start"));
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let master = m3u8_rs::parse_master_playlist_res(master.as_bytes())
            .map_err(|e| format!("{channel}: bad master playlist: {e}"))?;
        for variant in master.variants {
            renditions.push(format!("{base}/live/{channel}/{}", variant.uri));
        }
        renditions.push(format!("{base}/live/{channel}/audio/index.m3u8"));
    }
    let mut tracked: Vec<Tracked> = renditions
        .into_iter()
        .map(|url| Tracked { url, last: None })
        .collect();

    let cpu_start = cpu_seconds(pid)?;
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut peak_rss_kib = 0u64;
    let mut first_pass = true;
    while started.elapsed() < measure() {
        for track in &mut tracked {
            let Ok(resp) = agent.get(&track.url).call() else {
                continue;
            };
            let seen_at = SystemTime::now();
            let Ok(text) = resp.into_string() else {
                continue;
            };
            let Ok(playlist) = m3u8_rs::parse_media_playlist_res(text.as_bytes()) else {
                continue;
            };
            let Some(newest) = playlist.segments.last() else {
                continue;
            };
            let sequence = playlist.media_sequence + playlist.segments.len() as u64 - 1;
            if track.last.is_some_and(|last| sequence > last) && !first_pass {
                if let Some(pdt) = newest.program_date_time {
                    let end =
                        SystemTime::from(pdt) + Duration::from_secs_f64(f64::from(newest.duration));
                    let latency = seen_at
                        .duration_since(end)
                        .map(|d| d.as_secs_f64())
                        .unwrap_or_else(|e| -e.duration().as_secs_f64());
                    latencies.push(latency);
                }
            }
            track.last = Some(sequence);
        }
        first_pass = false;
        peak_rss_kib = peak_rss_kib.max(memory_kib(pid, "VmRSS")?);
        std::thread::sleep(POLL);
    }
    let cpu = cpu_seconds(pid)? - cpu_start;
    let content_seconds = started.elapsed().as_secs_f64();
    if latencies.is_empty() {
        return Err("no segment appeared during the measurement".into());
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    let n = channels.len() as f64;
    Ok(format!(
        "## Live: packaging latency and the cost of the demo catalog\n\n\
         `cargo bench --bench live` ({machine}): the demo catalog, {n} channels on the\n\
         ladder `demo` (480p/360p/240p at 25 fps + AAC).\n\n\
         | measure | value | goal |\n|---|---|---|\n\
         | segment availability after its content ends, median | {p50:.3} s | < 0.5 s |\n\
         | segment availability, p90 | {p90:.3} s | |\n\
         | segment availability, max | {max:.3} s | |\n\
         | segments observed | {count} | |\n\
         | CPU-seconds per content-second, whole process | {cpu_total:.3} | |\n\
         | CPU-seconds per content-second, per channel | {cpu_per:.3} | |\n\
         | peak resident memory, whole process | {rss_total:.0} MiB | |\n\
         | peak resident memory, per channel | {rss_per:.0} MiB | |\n\n\
         Latency is measured by polling every media playlist every {poll} ms for {secs} s, so it\n\
         includes up to one poll interval. It is the time from `PROGRAM-DATE-TIME` + `EXTINF`\n\
         (the wall-clock end of the segment's content, as captured) to the first playlist\n\
         that lists the segment. The whole run is in a private network namespace, on its\n\
         loopback (the demo catalog sends multicast).\n\n\
         `/ts/` channel start, the cost of the multicast output and its pacing:\n\
         [benchmarks-iptv.md](benchmarks-iptv.md).\n",
        machine = report::machine(),
        n = channels.len(),
        p50 = pct(0.5),
        p90 = pct(0.9),
        max = pct(1.0),
        count = latencies.len(),
        cpu_total = cpu / content_seconds,
        cpu_per = cpu / content_seconds / n,
        rss_total = peak_rss_kib as f64 / 1024.0,
        rss_per = peak_rss_kib as f64 / 1024.0 / n,
        poll = POLL.as_millis(),
        secs = measure().as_secs(),
    ))
}

fn demo_channels() -> Vec<String> {
    let text = std::fs::read_to_string(CATALOG[0]).expect("read the demo catalog");
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("- id:"))
        .map(|id| id.trim().to_owned())
        .collect()
}
