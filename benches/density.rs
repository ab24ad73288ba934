//! `make bench`: how many channels of the demo ladder this machine runs in real time.
//!
//! Starts the headend on N copies of the demo channels (the demo catalog's sources in
//! turn: bars, ball, the looped clip, bars, …; each on the `demo` ladder with its own
//! multicast feed, TTL 0, as shipped) and watches every channel's top rendition for a
//! fixed window. A channel **falls behind** when, in that window:
//! - a segment first appears at the origin more than one segment duration after the
//!   wall-clock end of its content (`PROGRAM-DATE-TIME` + `EXTINF`): the live edge is
//!   slipping; or
//! - its playlist gains fewer segments than the window holds, less one: it is not
//!   advancing in real time.
//!
//! The first probe runs the demo catalog's channels once each and measures what a
//! channel costs; the next probe runs as many channels as that cost says fit, then
//! more or fewer until the largest N that keeps up and N + 1 that does not are both
//! measured. Each probe is a fresh
//! process. Runs in a private network namespace (`support/netns.rs`): the channels send
//! multicast. Results go to the `density` section of `docs/benchmarks.md`.

#[path = "support/headend.rs"]
mod headend;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/report.rs"]
#[allow(dead_code, reason = "shared by every bench; each uses a part")]
mod report;

use std::fmt::Write as _;
use std::fs::File;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use headend::{cpu_seconds, Headend};
use report::{mib, Scratch, Spread};

const DEMO: &str = "manifests/demo.yaml";
const LADDERS: &str = "pipelines/ladders.yaml";
/// Never probe more channels than this.
const MAX_CHANNELS: usize = 32;
/// How often every channel's playlist is read.
const POLL: Duration = Duration::from_millis(100);
/// The share of the machine's cores the first guess fills.
const GUESS_LOAD: f64 = 0.9;

struct Settings {
    /// After every channel is up: encoders' rate control and queues settle.
    warm_up: Duration,
    /// The window each probe is judged on.
    window: Duration,
    /// Probes after the first, at most.
    probes: usize,
}

impl Settings {
    fn new() -> Self {
        if report::quick() {
            Settings {
                warm_up: Duration::from_secs(2),
                window: Duration::from_secs(8),
                probes: 2,
            }
        } else {
            Settings {
                warm_up: Duration::from_secs(4),
                window: Duration::from_secs(20),
                probes: 5,
            }
        }
    }
}

fn main() {
    netns::enter();
    // `cargo bench` passes `--bench`; nothing else to parse.
    let settings = Settings::new();
    report::publish("density", run(&settings));
}

/// What one probe saw.
struct Probe {
    channels: usize,
    /// Channels that fell behind, and why (the first reason of each).
    behind: Vec<String>,
    /// Lateness of every segment seen in the window, in seconds.
    lateness: Vec<f64>,
    /// The fewest new segments any channel published in the window.
    fewest_segments: usize,
    expected_segments: usize,
    /// CPU-seconds per second of the whole process over the window.
    cpu: f64,
    /// Cores the whole machine kept busy over the window: the headend, the bench's
    /// polling, and any neighbour.
    machine: f64,
    peak_kib: u64,
    warnings: usize,
}

impl Probe {
    fn keeps_up(&self) -> bool {
        self.behind.is_empty()
    }
}

fn run(settings: &Settings) -> Result<String, String> {
    let demo = demo_channels()?;
    let segment = demo_segment_duration()?;
    let scratch = Scratch::new("density")?;
    let mut probes = Vec::new();

    // The demo catalog itself first: its cost per channel, over its mix of sources,
    // sets the first guess.
    let first = probe(demo.len(), &demo, segment, settings, &scratch)?;
    let per_channel = first.cpu / first.channels as f64;
    let guess = ((report::cores() as f64 * GUESS_LOAD / per_channel).floor() as usize)
        .clamp(1, MAX_CHANNELS);
    // The largest count seen keeping up, and the smallest seen falling behind.
    let mut good: Option<usize> = None;
    let mut bad: Option<usize> = None;
    let mut last = first;
    for step in 0..=settings.probes {
        if last.keeps_up() {
            good = good.max(Some(last.channels));
        } else {
            bad = Some(bad.map_or(last.channels, |b| b.min(last.channels)));
        }
        probes.push(last);
        let next = match (good, bad) {
            (Some(g), Some(b)) if b <= g + 1 => break,
            (Some(g), Some(b)) => g + (b - g) / 2,
            (None, Some(b)) if b <= 1 => break,
            (None, Some(b)) if step == 0 => guess.min(b - 1),
            (None, Some(b)) => b - 1,
            (Some(g), None) if g >= MAX_CHANNELS => break,
            (Some(g), None) if step == 0 => guess.max(g + 1),
            (Some(g), None) => g + 1,
            (None, None) => break,
        };
        if step == settings.probes {
            break;
        }
        last = probe(next, &demo, segment, settings, &scratch)?;
    }
    probes.sort_by_key(|p| p.channels);
    let mut section = String::new();
    write_section(&mut section, &probes, segment, settings).map_err(|e| e.to_string())?;
    Ok(section)
}

/// The demo catalog's channels, each a template for its copies.
fn demo_channels() -> Result<Vec<serde_yaml::Value>, String> {
    let text = std::fs::read_to_string(DEMO).map_err(|e| format!("{DEMO}: {e}"))?;
    let catalog: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| format!("{DEMO}: {e}"))?;
    let channels = catalog["channels"]
        .as_sequence()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| format!("{DEMO} has no channels"))?;
    Ok(channels.clone())
}

/// The `demo` ladder's segment duration.
fn demo_segment_duration() -> Result<Duration, String> {
    let text = std::fs::read_to_string(LADDERS).map_err(|e| format!("{LADDERS}: {e}"))?;
    let ladders: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| format!("{LADDERS}: {e}"))?;
    ladders["ladders"]["demo"]["segment_duration"]
        .as_f64()
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{LADDERS}: no `demo` ladder with a segment_duration"))
}

/// A catalog of `n` channels: the demo's in turn, each with its own id, number and
/// multicast group; sources' relative paths made absolute, no guide.
fn catalog(n: usize, demo: &[serde_yaml::Value]) -> Result<String, String> {
    let base = Path::new(DEMO)
        .parent()
        .and_then(|p| p.canonicalize().ok())
        .ok_or("cannot resolve the demo catalog's folder")?;
    let mut channels = Vec::new();
    for i in 0..n {
        let mut channel = demo[i % demo.len()].clone();
        let map = channel
            .as_mapping_mut()
            .ok_or_else(|| format!("{DEMO}: a channel is not a mapping"))?;
        let id = map
            .get("id")
            .and_then(|v| v.as_str())
            .ok_or_else(|| format!("{DEMO}: a channel without an id"))?
            .to_owned();
        map.insert("id".into(), format!("{id}-{}", i + 1).into());
        map.insert("number".into(), (i as u64 + 1).into());
        map.remove("epg");
        if let Some(uri) = map["source"]["uri"].as_str() {
            if let Some(path) = uri.strip_prefix("file://").filter(|p| !p.starts_with('/')) {
                let absolute = base.join(path);
                let absolute = absolute.canonicalize().map_err(|e| {
                    format!("{}: {e} (make media generates it)", absolute.display())
                })?;
                map["source"]["uri"] = format!("file://{}", absolute.display()).into();
            }
        }
        if map.contains_key("multicast") {
            map["multicast"]["group"] = format!("239.255.{}.{}", 10 + i / 250, 1 + i % 250).into();
            map["multicast"]["port"] = (5000 + i as u64).into();
        }
        channels.push(channel);
    }
    let mut top = serde_yaml::Mapping::new();
    top.insert("channels".into(), channels.into());
    serde_yaml::to_string(&top).map_err(|e| e.to_string())
}

/// Runs `n` channels and judges them.
fn probe(
    n: usize,
    demo: &[serde_yaml::Value],
    segment: Duration,
    settings: &Settings,
    scratch: &Scratch,
) -> Result<Probe, String> {
    eprintln!("density: {n} channels");
    let file = scratch.path.join(format!("density-{n}.yaml"));
    std::fs::write(&file, catalog(n, demo)?).map_err(|e| e.to_string())?;
    let log = scratch.path.join(format!("headend-{n}.log"));
    let headend = Headend::start(
        &[file.as_path(), Path::new(LADDERS)],
        Stdio::from(File::create(&log).map_err(|e| e.to_string())?),
    )?;
    let ids: Vec<String> = (0..n)
        .map(|i| {
            let id = demo[i % demo.len()]["id"].as_str().unwrap_or_default();
            format!("{id}-{}", i + 1)
        })
        .collect();
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(2))
        .build();
    let base = headend.base_url();
    // Starting takes longer the more channels start at once; a probe whose channels do
    // not all start in this time has fallen behind already.
    let ready_limit = Duration::from_secs(20) + segment * n as u32;
    let playlists = match wait_ready(&agent, &base, &ids, ready_limit) {
        Ok(playlists) => playlists,
        Err(not_ready) => {
            let peak_kib = report::memory_kib(headend.pid(), "VmHWM").unwrap_or(0);
            drop(headend);
            return Ok(Probe {
                channels: n,
                behind: not_ready
                    .into_iter()
                    .map(|id| format!("{id}: not started within {ready_limit:?}"))
                    .collect(),
                lateness: Vec::new(),
                fewest_segments: 0,
                expected_segments: 0,
                cpu: f64::NAN,
                machine: f64::NAN,
                peak_kib,
                warnings: warnings(&log),
            });
        }
    };
    std::thread::sleep(settings.warm_up);

    let cpu_start = cpu_seconds(headend.pid())?;
    let machine_start = report::machine_ticks()?;
    let started = Instant::now();
    let mut last: Vec<Option<u64>> = vec![None; n];
    let mut new_segments = vec![0usize; n];
    let mut worst = vec![0f64; n];
    let mut lateness = Vec::new();
    while started.elapsed() < settings.window {
        for (i, url) in playlists.iter().enumerate() {
            let Some(text) = fetch(&agent, url) else {
                continue;
            };
            let seen = SystemTime::now();
            let Ok(playlist) = m3u8_rs::parse_media_playlist_res(text.as_bytes()) else {
                continue;
            };
            let first = playlist.media_sequence;
            for (k, segment) in playlist.segments.iter().enumerate() {
                let sequence = first + k as u64;
                // The first read only sets where the window starts.
                let Some(previous) = last[i] else { continue };
                if sequence <= previous {
                    continue;
                }
                new_segments[i] += 1;
                if let Some(pdt) = segment.program_date_time {
                    let end = SystemTime::from(pdt)
                        + Duration::from_secs_f64(f64::from(segment.duration));
                    let late = seen
                        .duration_since(end)
                        .map(|d| d.as_secs_f64())
                        .unwrap_or_else(|e| -e.duration().as_secs_f64());
                    worst[i] = worst[i].max(late);
                    lateness.push(late);
                }
            }
            let newest = first + playlist.segments.len().saturating_sub(1) as u64;
            last[i] = Some(last[i].map_or(newest, |l| l.max(newest)));
        }
        std::thread::sleep(POLL);
    }
    let elapsed = started.elapsed();
    let cpu = (cpu_seconds(headend.pid())? - cpu_start) / elapsed.as_secs_f64();
    let machine = report::busy_cores(machine_start, report::machine_ticks()?);
    let peak_kib = report::memory_kib(headend.pid(), "VmHWM")?;
    drop(headend);

    let expected = (elapsed.as_secs_f64() / segment.as_secs_f64()).floor() as usize;
    let mut behind = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        if worst[i] > segment.as_secs_f64() {
            behind.push(format!(
                "{id}: a segment {:.2} s after its content ended",
                worst[i]
            ));
        } else if new_segments[i] + 1 < expected {
            behind.push(format!(
                "{id}: {} segments in {:.0} s, {expected} expected",
                new_segments[i],
                elapsed.as_secs_f64()
            ));
        }
    }
    Ok(Probe {
        channels: n,
        behind,
        lateness,
        fewest_segments: new_segments.iter().copied().min().unwrap_or(0),
        expected_segments: expected,
        cpu,
        machine,
        peak_kib,
        warnings: warnings(&log),
    })
}

/// Every channel's top-rendition playlist URL, once every channel has a multivariant
/// playlist; or the channels that did not start in time.
fn wait_ready(
    agent: &ureq::Agent,
    base: &str,
    ids: &[String],
    limit: Duration,
) -> Result<Vec<String>, Vec<String>> {
    let deadline = Instant::now() + limit;
    let mut playlists: Vec<Option<String>> = vec![None; ids.len()];
    loop {
        for (id, playlist) in ids.iter().zip(&mut playlists) {
            if playlist.is_some() {
                continue;
            }
            let url = format!("{base}/live/{id}/master.m3u8");
            let Some(text) = fetch(agent, &url) else {
                continue;
            };
            if let Ok(master) = m3u8_rs::parse_master_playlist_res(text.as_bytes()) {
                *playlist = master
                    .variants
                    .first()
                    .map(|v| format!("{base}/live/{id}/{}", v.uri));
            }
        }
        if playlists.iter().all(Option::is_some) {
            return Ok(playlists.into_iter().flatten().collect());
        }
        if Instant::now() > deadline {
            return Err(ids
                .iter()
                .zip(&playlists)
                .filter(|(_, p)| p.is_none())
                .map(|(id, _)| id.clone())
                .collect());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The body of a successful GET.
fn fetch(agent: &ureq::Agent, url: &str) -> Option<String> {
    agent.get(url).call().ok()?.into_string().ok()
}

/// Warnings and errors the headend logged (it logs at `warn`).
fn warnings(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .count()
}

// ---------------------------------------------------------------------------
// The report

fn write_section(
    out: &mut String,
    probes: &[Probe],
    segment: Duration,
    settings: &Settings,
) -> std::fmt::Result {
    let best = probes
        .iter()
        .filter(|p| p.keeps_up())
        .map(|p| p.channels)
        .max();
    let first_behind = probes
        .iter()
        .filter(|p| !p.keeps_up() && best.is_none_or(|b| p.channels > b))
        .map(|p| p.channels)
        .min();
    writeln!(out, "## Density: channels in real time\n")?;
    writeln!(
        out,
        "`cargo bench --bench density` ({machine}).\n",
        machine = report::machine()
    )?;
    let verdict = match (best, first_behind) {
        (Some(best), Some(behind)) => format!(
            "**{best} {channels}** of the demo ladder {keep} up on this machine; with {behind} \
             at least one falls behind.",
            channels = if best == 1 { "channel" } else { "channels" },
            keep = if best == 1 { "keeps" } else { "keep" },
        ),
        (Some(best), None) => format!(
            "**At least {best} channels** of the demo ladder keep up on this machine (no \
             larger count was tried)."
        ),
        (None, _) => {
            "**Not even one channel** of the demo ladder keeps up on this machine.".to_owned()
        }
    };
    // What the CPU alone allows, at the per-channel cost of the largest count that kept
    // up: a check on the verdict that a neighbour's load does not move much.
    let per_channel = probes
        .iter()
        .filter(|p| p.keeps_up() && Some(p.channels) == best)
        .map(|p| p.cpu / p.channels as f64)
        .next();
    let verdict = match per_channel {
        Some(per) if per > 0.0 => format!(
            "{verdict} A channel costs {per:.3} cores there, so the {cores} cores alone \
             would run {fit} ({cores} ÷ {per:.3}, rounded down).",
            cores = report::cores(),
            fit = (report::cores() as f64 / per).floor(),
        ),
        _ => verdict,
    };
    writeln!(out, "{verdict}\n")?;
    writeln!(
        out,
        "| channels | keeps up | new segments, fewest of any channel / expected | lateness median | lateness worst | headend CPU, cores | per channel | machine busy, cores | peak memory | warnings logged |\n\
         |---|---|---|---|---|---|---|---|---|---|"
    )?;
    for p in probes {
        let lateness = Spread::of(&p.lateness);
        let seconds = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.2} s"));
        writeln!(
            out,
            "| {n} | {ok} | {few} / {exp} | {med} | {max} | {cpu} | {per} | {machine} | {mem} | {warn} |",
            n = p.channels,
            ok = if p.keeps_up() { "yes" } else { "**no**" },
            few = p.fewest_segments,
            exp = p.expected_segments,
            med = seconds(lateness.map(|s| s.median)),
            max = seconds(lateness.map(|s| s.max)),
            cpu = if p.cpu.is_nan() {
                "–".to_owned()
            } else {
                format!("{:.2}", p.cpu)
            },
            per = if p.cpu.is_nan() {
                "–".to_owned()
            } else {
                format!("{:.3}", p.cpu / p.channels as f64)
            },
            machine = if p.machine.is_nan() {
                "–".to_owned()
            } else {
                format!("{:.2} of {}", p.machine, report::cores())
            },
            mem = mib(p.peak_kib),
            warn = p.warnings,
        )?;
    }
    writeln!(out)?;
    for p in probes.iter().filter(|p| !p.keeps_up()) {
        let shown: Vec<&str> = p.behind.iter().take(3).map(String::as_str).collect();
        writeln!(
            out,
            "- {} channels: {}{}",
            p.channels,
            shown.join("; "),
            if p.behind.len() > 3 {
                format!(" (and {} more)", p.behind.len() - 3)
            } else {
                String::new()
            }
        )?;
    }
    if probes.iter().any(|p| !p.keeps_up()) {
        writeln!(out)?;
    }
    writeln!(
        out,
        "Each probe is a fresh headend with N channels: the demo catalog's sources in\n\
         turn (bars, ball, the looped clip, bars, …), each on the `demo` ladder (480p,\n\
         360p and 240p at 25 fps, x264, plus AAC) with its own multicast feed (TTL 0, in a\n\
         private network namespace), as `make run` starts them. After every channel is up\n\
         and {warm} s more, every channel's top rendition playlist is read every\n\
         {poll} ms for {window} s. A channel falls behind if a segment first appears more\n\
         than one segment duration ({seg} s) after the wall-clock end of its content\n\
         (`PROGRAM-DATE-TIME` + `EXTINF`; a segment is published only when every track\n\
         has it, so one rendition speaks for the channel), or if its playlist gains fewer\n\
         segments than the window holds, less one. The first probe runs the demo\n\
         catalog's channels once each; their CPU cost per channel sets the second\n\
         probe's count ({load:.0} % of the cores); then more or fewer (halving the gap)\n\
         until the boundary is measured on both sides. The headend's CPU is its utime +\n\
         stime over the window; *machine busy* is every core's busy time from /proc/stat\n\
         over the same window, so what it shows beyond the headend's (and the bench's\n\
         light polling) is a neighbour's: on a shared machine a busy neighbour lowers the\n\
         count, and this column says when that happened.\n",
        warm = settings.warm_up.as_secs(),
        poll = POLL.as_millis(),
        window = settings.window.as_secs(),
        seg = segment.as_secs_f64(),
        load = GUESS_LOAD * 100.0,
    )?;
    Ok(())
}
