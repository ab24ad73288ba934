//! `make bench`: a VOD transcode by the headend against ffmpeg doing the same work.
//!
//! One generated 1080p30 clip (cached under `var/bench/`) to one ladder: 1280×720 at
//! 3 Mbit/s, 854×480 at 1.4 Mbit/s, 640×360 at 0.8 Mbit/s, x264 with a 2 s GOP and no
//! scene-cut keyframes, AAC at 128 kbit/s, cut into 2 s fMP4 segments:
//! - by `headend vod ingest`, with a ladder file written for the bench that takes the
//!   `x264` encoder profile from `pipelines/ladders.yaml` as it is;
//! - by ffmpeg as an expert runs it: one decode, a `split` filter, three scalers and
//!   three libx264 encoders with the same x264 settings (the profile's preset, tune and
//!   options, the same rate control and VBV), one AAC encoder, to HLS/fMP4.
//!
//! Each runs under GNU time (`/usr/bin/time`, Debian package `time`), which reports
//! the child's own CPU time and peak memory from `wait4`; runs alternate between the
//! two. Results go to the `transcode` section of `docs/benchmarks.md`. No multicast, no
//! server: no network namespace is needed.

#[path = "support/report.rs"]
#[allow(dead_code, reason = "shared by every bench; each uses a part")]
mod report;

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use report::{mib, Scratch, Spread};

const LADDERS: &str = "pipelines/ladders.yaml";
/// The encoder profile of `pipelines/ladders.yaml` the bench ladder uses.
const PROFILE: &str = "x264";
const CLIP: &str = "var/bench/clip-1080p30-20s.mp4";
const CLIP_SECONDS: f64 = 20.0;
const FRAME_RATE: u32 = 30;
const GOP_SECONDS: u32 = 2;
const AUDIO_KBPS: u32 = 128;
/// GStreamer's x264enc default `vbv-buf-capacity`: the VBV buffer, in milliseconds of
/// the bit rate. ffmpeg is given the same (`-bufsize`), and `-maxrate` = the bit rate,
/// as x264enc's default constant-bit-rate pass sets.
const VBV_MS: u32 = 600;
const TIME: &str = "/usr/bin/time";
/// The ladder of `pipelines/ladders.yaml` whose ingest speed is reported on its own.
const SHIPPED_LADDER: &str = "default";

struct Rendition {
    name: &'static str,
    width: u32,
    height: u32,
    kbps: u32,
    profile: &'static str,
}

const RENDITIONS: [Rendition; 3] = [
    Rendition {
        name: "720p",
        width: 1280,
        height: 720,
        kbps: 3000,
        profile: "high",
    },
    Rendition {
        name: "480p",
        width: 854,
        height: 480,
        kbps: 1400,
        profile: "main",
    },
    Rendition {
        name: "360p",
        width: 640,
        height: 360,
        kbps: 800,
        profile: "main",
    },
];

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse. Five pairs: the ratio is
    // within a few per cent of 1, and one pair on a shared machine moves 10 %.
    let repetitions = if report::quick() { 1 } else { 5 };
    report::publish("transcode", run(repetitions));
}

/// What GNU time says about one run.
#[derive(Debug, Clone, Copy)]
struct Usage {
    wall: f64,
    cpu: f64,
    peak_kib: u64,
}

#[derive(Default)]
struct Runs {
    usage: Vec<Usage>,
    /// kbit/s of each rendition and the audio, from the last run's files.
    output_kbps: Vec<f64>,
    /// PSNR of each rendition against the reference, from the last run's files.
    psnr: Vec<f64>,
}

fn run(repetitions: usize) -> Result<String, String> {
    make_clip()?;
    let scratch = Scratch::new("transcode")?;
    let profile = x264_profile()?;
    let x264 = ffmpeg_x264_options(&profile)?;
    let ladder = scratch.path.join("ladder.yaml");
    std::fs::write(&ladder, ladder_file(&profile)?).map_err(|e| e.to_string())?;

    let mut headend = Runs::default();
    let mut ffmpeg = Runs::default();
    // The shipped `default` ladder as it is, for the VOD ingest speed the README quotes.
    let mut shipped = Runs::default();
    for repetition in 0..repetitions.min(3) {
        let out = scratch.path.join(format!("out-{repetition}-default"));
        std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
        let command = headend_command(Path::new(LADDERS), SHIPPED_LADDER, &out);
        shipped.usage.push(timed(&command, &scratch.path)?);
        let _ = std::fs::remove_dir_all(&out);
    }
    for repetition in 0..repetitions {
        let order = if repetition % 2 == 0 { [0, 1] } else { [1, 0] };
        for tool in order {
            let out = scratch.path.join(format!("out-{repetition}-{tool}"));
            std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
            if tool == 0 {
                let usage = timed(&headend_command(&ladder, "transcode", &out), &scratch.path)?;
                let asset = out.join("vod/clip-1080p30-20s");
                let mut tracks: Vec<String> = RENDITIONS.iter().map(|r| r.name.into()).collect();
                tracks.push("audio".into());
                headend.output_kbps = rates(&asset, &tracks)?;
                headend.psnr = RENDITIONS
                    .iter()
                    .map(|r| psnr(&asset.join(r.name), "init.mp4", r, &scratch.path))
                    .collect::<Result<_, _>>()?;
                headend.usage.push(usage);
            } else {
                let usage = timed(&ffmpeg_command(&x264, &out), &scratch.path)?;
                let tracks: Vec<String> = (0..=RENDITIONS.len()).map(|i| i.to_string()).collect();
                ffmpeg.output_kbps = rates(&out, &tracks)?;
                ffmpeg.psnr = (0..RENDITIONS.len())
                    .map(|i| {
                        let init = format!("init_{i}.mp4");
                        psnr(
                            &out.join(i.to_string()),
                            &init,
                            &RENDITIONS[i],
                            &scratch.path,
                        )
                    })
                    .collect::<Result<_, _>>()?;
                ffmpeg.usage.push(usage);
            }
            let _ = std::fs::remove_dir_all(&out);
        }
    }
    let mut section = String::new();
    write_section(&mut section, &headend, &ffmpeg, &x264, repetitions)
        .and_then(|()| write_shipped(&mut section, &shipped))
        .map_err(|e| e.to_string())?;
    Ok(section)
}

/// Generates the clip once: 20 s of `testsrc2` at 1920×1080, 30 fps, and a tone,
/// encoded well enough (x264 CRF 18) that decoding it is real work.
fn make_clip() -> Result<(), String> {
    if Path::new(CLIP).is_file() {
        return Ok(());
    }
    let dir = Path::new(CLIP).parent().ok_or("no clip folder")?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let partial = format!("{CLIP}.partial.mp4");
    eprintln!("generating {CLIP} (once)");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(["-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=1920x1080:rate={FRAME_RATE}"))
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &CLIP_SECONDS.to_string()])
        .args(["-c:v", "libx264", "-preset", "veryfast", "-crf", "18"])
        .args(["-g", &(FRAME_RATE * GOP_SECONDS).to_string()])
        .args([
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "192k",
            "-shortest",
        ])
        .arg(&partial)
        .status()
        .map_err(|e| format!("cannot run ffmpeg: {e}"))?;
    if !status.success() {
        return Err(format!("ffmpeg could not generate {CLIP}: {status}"));
    }
    std::fs::rename(&partial, CLIP).map_err(|e| e.to_string())
}

/// The `x264` encoder profile as `pipelines/ladders.yaml` declares it.
fn x264_profile() -> Result<serde_yaml::Value, String> {
    let text = std::fs::read_to_string(LADDERS).map_err(|e| format!("{LADDERS}: {e}"))?;
    let ladders: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| format!("{LADDERS}: {e}"))?;
    let profile = ladders["encoders"][PROFILE].clone();
    if profile["element"].as_str() != Some("x264enc") {
        return Err(format!("{LADDERS}: no `{PROFILE}` profile on x264enc"));
    }
    Ok(profile)
}

/// The profile's x264enc properties as libx264 options for ffmpeg. A property this
/// does not know how to give ffmpeg stops the bench rather than compare different work.
fn ffmpeg_x264_options(profile: &serde_yaml::Value) -> Result<Vec<String>, String> {
    let mut options = Vec::new();
    let Some(properties) = profile["properties"].as_mapping() else {
        return Ok(options);
    };
    for (name, value) in properties {
        let name = name.as_str().unwrap_or_default();
        let value = match value {
            serde_yaml::Value::String(s) => s.clone(),
            other => serde_yaml::to_string(other)
                .map_err(|e| e.to_string())?
                .trim()
                .to_owned(),
        };
        let flag = match name {
            "speed-preset" => "-preset",
            "tune" => "-tune",
            "option-string" => "-x264-params",
            _ => {
                return Err(format!(
                    "the `{PROFILE}` profile sets `{name}`, which this bench cannot give ffmpeg"
                ))
            }
        };
        options.extend([flag.to_owned(), value]);
    }
    Ok(options)
}

/// A catalog file with the profile and the bench's ladder.
fn ladder_file(profile: &serde_yaml::Value) -> Result<String, String> {
    let mut file = format!(
        "ladders:\n  transcode:\n    encoder: {PROFILE}\n    segment_duration: {GOP_SECONDS}\n    \
         gop: {GOP_SECONDS}\n    renditions:\n"
    );
    for r in &RENDITIONS {
        let _ = writeln!(
            file,
            "      - {{ name: {}, width: {}, height: {}, bitrate: {}, profile: {}, max_framerate: {FRAME_RATE} }}",
            r.name, r.width, r.height, r.kbps, r.profile
        );
    }
    let _ = writeln!(
        file,
        "    audio: {{ codec: aac, bitrate: {AUDIO_KBPS}, channels: 2, sample_rate: 48000 }}"
    );
    let mut encoders = serde_yaml::Mapping::new();
    encoders.insert(PROFILE.into(), profile.clone());
    let mut top = serde_yaml::Mapping::new();
    top.insert("encoders".into(), encoders.into());
    file.push_str(&serde_yaml::to_string(&top).map_err(|e| e.to_string())?);
    Ok(file)
}

/// `headend vod ingest` of the clip on ladder `name` of the file `ladder`.
fn headend_command(ladder: &Path, name: &str, out: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_headend"));
    command
        .args(["vod", "ingest", "--quiet", "--force", "--ladder", name])
        .arg("--data")
        .arg(out)
        .arg(ladder)
        .arg(CLIP)
        .env("RUST_LOG", "warn");
    command
}

/// One decode, `split`, a scaler and an encoder per rendition (bilinear, as
/// GStreamer's videoscale), one AAC encoder, HLS with fMP4 segments.
fn ffmpeg_command(x264: &[String], out: &Path) -> Command {
    let n = RENDITIONS.len();
    let mut graph = format!(
        "[0:v]split={n}{}",
        (0..n).map(|i| format!("[s{i}]")).collect::<String>()
    );
    for (i, r) in RENDITIONS.iter().enumerate() {
        let _ = write!(
            graph,
            ";[s{i}]scale={}:{}:flags=bilinear[v{i}]",
            r.width, r.height
        );
    }
    let mut command = Command::new("ffmpeg");
    command
        .args(["-v", "error", "-y", "-i", CLIP])
        .args(["-filter_complex", &graph]);
    for i in 0..n {
        command.args(["-map", &format!("[v{i}]")]);
    }
    // As the headend drives x264enc: a keyframe forced every GOP, and x264's own
    // interval set to twice that as a backstop (`key-int-max`), its minimum x264's
    // default of a tenth of it. x264's SEI then lists the same options in both outputs.
    let backstop = FRAME_RATE * GOP_SECONDS * 2;
    command
        .args(["-map", "0:a", "-c:v", "libx264"])
        .args(x264)
        .args(["-g", &backstop.to_string()])
        .args(["-keyint_min", &(backstop / 10).to_string()])
        .args(["-sc_threshold", "0"])
        .arg("-force_key_frames")
        .arg(format!("expr:gte(t,n_forced*{GOP_SECONDS})"));
    for (i, r) in RENDITIONS.iter().enumerate() {
        command
            .arg(format!("-b:v:{i}"))
            .arg(format!("{}k", r.kbps))
            .arg(format!("-maxrate:v:{i}"))
            .arg(format!("{}k", r.kbps))
            .arg(format!("-bufsize:v:{i}"))
            .arg(format!("{}k", r.kbps * VBV_MS / 1000))
            .arg(format!("-profile:v:{i}"))
            .arg(r.profile);
    }
    let streams = (0..n)
        .map(|i| format!("v:{i}"))
        .chain(["a:0".to_owned()])
        .collect::<Vec<_>>()
        .join(" ");
    command
        .args(["-c:a", "aac", "-b:a", &format!("{AUDIO_KBPS}k")])
        .args(["-ac", "2", "-ar", "48000"])
        .args(["-f", "hls", "-hls_time", &GOP_SECONDS.to_string()])
        .args(["-hls_playlist_type", "vod", "-hls_segment_type", "fmp4"])
        .args(["-var_stream_map", &streams])
        .args(["-master_pl_name", "master.m3u8"])
        .arg("-hls_segment_filename")
        .arg(out.join("%v/%d.m4s"))
        .arg(out.join("%v/index.m3u8"));
    command
}

/// Runs `command` under GNU time: wall seconds, the child's user + system CPU seconds
/// and its peak resident memory.
fn timed(command: &Command, scratch: &Path) -> Result<Usage, String> {
    let report = scratch.join("time.txt");
    let mut timed = Command::new(TIME);
    timed
        .args(["-f", "%e %U %S %M", "-o"])
        .arg(&report)
        .arg(command.get_program())
        .args(command.get_args())
        .envs(
            command
                .get_envs()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
        )
        .stdout(Stdio::null());
    let name = Path::new(command.get_program())
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let out = timed
        .output()
        .map_err(|e| format!("cannot run {TIME} (Debian package time): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{name} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = std::fs::read_to_string(&report).map_err(|e| e.to_string())?;
    let fields: Vec<f64> = text
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let [wall, user, system, peak_kib] = fields[..] else {
        return Err(format!("{TIME} printed {text:?}"));
    };
    Ok(Usage {
        wall,
        cpu: user + system,
        peak_kib: peak_kib as u64,
    })
}

/// The average bit rate of each track folder's files, over the clip.
fn rates(dir: &Path, tracks: &[String]) -> Result<Vec<f64>, String> {
    tracks
        .iter()
        .map(|track| {
            let dir = dir.join(track);
            let bytes: u64 = std::fs::read_dir(&dir)
                .map_err(|e| format!("no output in {}: {e}", dir.display()))?
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "m4s"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum();
            if bytes == 0 {
                return Err(format!("no segments in {}", dir.display()));
            }
            Ok(bytes as f64 * 8.0 / CLIP_SECONDS / 1000.0)
        })
        .collect()
}

/// The PSNR of one rendition (`init` and the numbered `.m4s` segments in `dir`)
/// against the clip scaled to its size with Lanczos: ffmpeg's `psnr` filter, the
/// average over Y, U and V and over every frame, in dB.
fn psnr(dir: &Path, init: &str, rendition: &Rendition, scratch: &Path) -> Result<f64, String> {
    let mut segments: Vec<(u64, std::path::PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            let number = path
                .file_name()?
                .to_str()?
                .strip_suffix(".m4s")?
                .parse()
                .ok()?;
            Some((number, path))
        })
        .collect();
    segments.sort();
    let mut whole = std::fs::read(dir.join(init)).map_err(|e| format!("{init}: {e}"))?;
    for (_, path) in &segments {
        whole.extend(std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?);
    }
    let joined = scratch.join("rendition.mp4");
    std::fs::write(&joined, whole).map_err(|e| e.to_string())?;
    let out = Command::new("ffmpeg")
        .args(["-nostats", "-i"])
        .arg(&joined)
        .args(["-i", CLIP, "-lavfi"])
        .arg(format!(
            "[1:v]scale={}:{}:flags=lanczos[reference];[0:v][reference]psnr",
            rendition.width, rendition.height
        ))
        .args(["-f", "null", "-"])
        .output()
        .map_err(|e| format!("cannot run ffmpeg: {e}"))?;
    let log = String::from_utf8_lossy(&out.stderr);
    log.lines()
        .filter(|l| l.contains("PSNR"))
        .find_map(|l| {
            l.split("average:")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .ok_or_else(|| format!("ffmpeg gave no PSNR for {}: {}", dir.display(), log.trim()))
}

// ---------------------------------------------------------------------------
// The report

fn spread(values: impl Iterator<Item = f64>) -> Spread {
    let values: Vec<f64> = values.collect();
    Spread::of(&values).unwrap_or(Spread {
        min: f64::NAN,
        median: f64::NAN,
        max: f64::NAN,
    })
}

/// Per repetition, the headend's figure over ffmpeg's; then their spread.
fn paired(h: &Runs, f: &Runs, value: impl Fn(&Usage) -> f64) -> Spread {
    spread(
        h.usage
            .iter()
            .zip(&f.usage)
            .map(|(h, f)| value(h) / value(f)),
    )
}

fn write_section(
    out: &mut String,
    h: &Runs,
    f: &Runs,
    x264: &[String],
    repetitions: usize,
) -> std::fmt::Result {
    let cpu = |u: &Usage| u.cpu / CLIP_SECONDS;
    let speed = |u: &Usage| CLIP_SECONDS / u.wall;
    let peak = |u: &Usage| u.peak_kib as f64;
    writeln!(out, "## Transcode: `headend vod ingest` against ffmpeg\n")?;
    writeln!(
        out,
        "`cargo bench --bench transcode` ({machine}). {repetitions} runs each, alternating;\n\
         each figure is the median with the range over the runs. The ratio is the\n\
         headend's over ffmpeg's in each pair of runs, then the median: for CPU and\n\
         memory **at most 1.0 means the headend costs no more than ffmpeg**; for the\n\
         real-time factor at least 1.0 means it is no slower.\n",
        machine = report::machine(),
    )?;
    let kib_spread = |runs: &Runs| {
        let s = spread(runs.usage.iter().map(peak));
        let median = mib(s.median as u64);
        if s.min == s.max {
            median
        } else {
            format!("{median} ({}–{})", mib(s.min as u64), mib(s.max as u64))
        }
    };
    writeln!(
        out,
        "| measure | headend | ffmpeg | **ratio** (headend ÷ ffmpeg) |\n|---|---|---|---|\n\
         | CPU-seconds per content-second | {hc} | {fc} | **{rc}** |\n\
         | real-time factor (content ÷ wall time) | {hs}× | {fs}× | {rs} |\n\
         | peak resident memory | {hm} | {fm} | {rm} |\n\
         | output kbit/s, 720p / 480p / 360p / audio | {hk} | {fk} | |\n\
         | PSNR against the source, dB, 720p / 480p / 360p | {hq} | {fq} | |\n",
        hc = spread(h.usage.iter().map(cpu)).show(3),
        fc = spread(f.usage.iter().map(cpu)).show(3),
        rc = paired(h, f, cpu).show(2),
        hs = spread(h.usage.iter().map(speed)).show(2),
        fs = spread(f.usage.iter().map(speed)).show(2),
        rs = paired(h, f, speed).show(2),
        hm = kib_spread(h),
        fm = kib_spread(f),
        rm = paired(h, f, peak).show(2),
        hk = joined(&h.output_kbps, 0),
        fk = joined(&f.output_kbps, 0),
        hq = joined(&h.psnr, 2),
        fq = joined(&f.psnr, 2),
    )?;
    writeln!(
        out,
        "The clip: {secs:.0} s of ffmpeg's `testsrc2` at 1920×1080, {FRAME_RATE} fps, H.264\n\
         (x264 CRF 18) and a 440 Hz tone in AAC, generated once into `{CLIP}`. The ladder:\n\
         {ladder}, x264 with a {GOP_SECONDS} s GOP and no scene-cut keyframes, AAC\n\
         {AUDIO_KBPS} kbit/s stereo, {GOP_SECONDS} s fMP4 segments. The headend runs\n\
         `headend vod ingest --force` on a ladder file that takes the `{PROFILE}` profile\n\
         of `{LADDERS}` as it is; it scales each rendition from the decoded picture with\n\
         swscale's bilinear filter (`headendscale`). ffmpeg decodes once, `split`s into\n\
         three bilinear scalers and three libx264 encoders with that profile's settings,\n\
         `{x264}`, keyframes forced every {keyint} frames as the\n\
         headend forces them (x264's own interval twice that), and x264enc's default rate\n\
         control (bit rate = `-maxrate`, a {VBV_MS} ms VBV buffer), then writes HLS/fMP4;\n\
         x264's SEI lists the same options in both outputs.\n\
         Both run with their default thread counts. CPU time (user + system) and peak\n\
         memory are GNU time's, from `wait4`, so they count the whole process and nothing\n\
         else. PSNR, from the last run's files, is ffmpeg's `psnr` filter against the clip\n\
         scaled to the rendition's size with Lanczos, averaged over Y, U, V and every\n\
         frame: the same work must give the same pictures.\n",
        secs = CLIP_SECONDS,
        ladder = RENDITIONS
            .iter()
            .map(|r| format!("{}×{} at {} kbit/s", r.width, r.height, r.kbps))
            .collect::<Vec<_>>()
            .join(", "),
        x264 = x264.join(" "),
        keyint = FRAME_RATE * GOP_SECONDS,
    )?;
    Ok(())
}

/// The shipped ladder's ingest of the same clip: speed, CPU and memory.
fn write_shipped(out: &mut String, runs: &Runs) -> std::fmt::Result {
    writeln!(
        out,
        "**VOD ingest on the shipped `{SHIPPED_LADDER}` ladder** (`{LADDERS}` as it is: 720p,\n\
         480p and 360p at 2.5, 1.2 and 0.7 Mbit/s, x264 `veryfast`, 2 s GOP, AAC 128 kbit/s),\n\
         the same clip, {n} runs: {speed}× real time, {cpu} CPU-seconds per content-second,\n\
         peak resident memory {peak}.\n",
        n = runs.usage.len(),
        speed = spread(runs.usage.iter().map(|u| CLIP_SECONDS / u.wall)).show(2),
        cpu = spread(runs.usage.iter().map(|u| u.cpu / CLIP_SECONDS)).show(3),
        peak = mib(spread(runs.usage.iter().map(|u| u.peak_kib as f64)).median as u64),
    )
}

/// `values` with `decimals` decimals, joined by " / ".
fn joined(values: &[f64], decimals: usize) -> String {
    values
        .iter()
        .map(|v| format!("{v:.decimals$}"))
        .collect::<Vec<_>>()
        .join(" / ")
}
