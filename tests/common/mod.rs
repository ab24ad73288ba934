//! Support for integration tests that run the real `headend` binary and read its
//! output with real clients: ureq for HTTP, m3u8-rs for playlists, ffprobe and ffmpeg
//! for the media.
//!
//! Each test crate uses a subset of this module.
#![allow(dead_code)]

pub mod browser;
pub mod tls;
pub mod ts;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use m3u8_rs::{MasterPlaylist, MediaPlaylist};

/// The encoder profile test ladders use: the cheapest x264 settings, so a test machine
/// with two cores runs a small ladder in real time. `scenecut=0` leaves every keyframe
/// to the headend's shared schedule.
pub const X264_ULTRAFAST: &str = r#"encoders:
  x264: { element: x264enc, bitrate_property: bitrate, bitrate_unit: kbps, gop_property: key-int-max, properties: { speed-preset: ultrafast, tune: zerolatency, option-string: "scenecut=0" } }
"#;

/// How long the origin may take to accept connections after the process starts
/// (catalog load, GStreamer initialisation).
const LISTEN_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a SIGTERM may take to drain connections and stop the pipelines.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// Between two polls of a URL or a process.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Lines of the headend's log quoted in a failure message.
const LOG_TAIL_LINES: usize = 40;
/// A port picked free can be taken by someone else before the headend binds it.
const START_ATTEMPTS: usize = 3;

// ---------------------------------------------------------------- temp dir

/// A directory under the system temp dir, removed on drop unless the test is
/// failing, so the headend's log and the probed files stay for a post-mortem.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "headend-{label}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `parts` one after the other into `name` (an init segment and a media
    /// segment make a file any MP4 reader opens).
    pub fn write(&self, name: &str, parts: &[&[u8]]) -> PathBuf {
        let path = self.path.join(name);
        fs::write(&path, parts.concat())
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("Kept {} for inspection.", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

// ---------------------------------------------------------------- HTTP

/// One HTTP answer, whatever its status.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of a header (names are case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// GET with ureq, turning 4xx and 5xx into an ordinary response; a transport error
/// (connection refused, timeout) is `Err`.
pub fn http_get(url: &str) -> Result<HttpResponse, String> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let response = match agent.get(url).call() {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(err) => return Err(format!("GET {url}: {err}")),
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .filter_map(|name| {
            let value = response.header(&name)?.to_owned();
            Some((name.to_ascii_lowercase(), value))
        })
        .collect();
    let mut body = Vec::new();
    response
        .into_reader()
        .read_to_end(&mut body)
        .map_err(|e| format!("GET {url}: reading the body: {e}"))?;
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

// ---------------------------------------------------------------- the headend process

/// A `headend run` process serving one catalog on a free loopback port. Dropping it
/// sends SIGTERM, waits, and kills the process if it does not stop.
pub struct Headend {
    /// Behind a mutex so `&self` methods can notice that the process has exited.
    child: Mutex<Option<Child>>,
    addr: SocketAddr,
    log: PathBuf,
    dir: TempDir,
}

impl Headend {
    /// Writes `catalog_yaml` to a temp dir, starts the headend on it and returns once
    /// the origin accepts connections (the channels are still starting).
    pub fn start(catalog_yaml: &str) -> Self {
        let dir = TempDir::new("live");
        let catalog = dir.write("catalog.yaml", &[catalog_yaml.as_bytes()]);
        Self::start_in(dir, &catalog, &[])
    }

    /// Starts the headend on a catalog file already in `dir` (beside the media it
    /// names), with more `headend run` options (`--data DIR`), logging into `dir`.
    pub fn start_in(dir: TempDir, catalog: &Path, args: &[&str]) -> Self {
        Self::start_with_env(dir, catalog, args, &[])
    }

    /// As [`start_in`](Self::start_in), with these environment variables set. The
    /// headend's own variables (`HEADEND_*`) are otherwise taken out of its
    /// environment, so the test's environment cannot change what it tests.
    pub fn start_with_env(
        dir: TempDir,
        catalog: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        Self::start_launched(dir, catalog, args, env, &[])
    }

    /// As [`start_with_env`](Self::start_with_env), with the headend's command line
    /// given to `launcher` (a program and its first arguments) to run, which must
    /// `exec` it so that signals reach the headend itself.
    pub fn start_launched(
        dir: TempDir,
        catalog: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        launcher: &[&str],
    ) -> Self {
        let log = dir.path().join("headend.log");
        let mut failure = String::new();
        for _ in 0..START_ATTEMPTS {
            let addr = free_loopback_port();
            let mut child = spawn(catalog, addr, &log, args, env, launcher);
            match wait_listening(&mut child, addr) {
                Ok(()) => {
                    return Self {
                        child: Mutex::new(Some(child)),
                        addr,
                        log,
                        dir,
                    }
                }
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let tail = tail_of(&log, LOG_TAIL_LINES);
                    failure = format!("{why}; log:\n{tail}");
                    // Only a port taken between our probe and the headend's bind is
                    // worth another try.
                    if !tail.contains("listening on") {
                        break;
                    }
                }
            }
        }
        panic!("the headend did not start: {failure}");
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// This test's temp dir, for files to probe; kept when the test fails.
    pub fn dir(&self) -> &TempDir {
        &self.dir
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// GET a path; a transport error fails the test with the headend's log.
    pub fn get(&self, path: &str) -> HttpResponse {
        http_get(&self.url(path)).unwrap_or_else(|err| self.fail(&err))
    }

    /// GET a path that must answer 200.
    pub fn get_ok(&self, path: &str) -> Vec<u8> {
        let response = self.get(path);
        if response.status != 200 {
            self.fail(&format!(
                "GET {path} answered {}: {}",
                response.status,
                response.text()
            ));
        }
        response.body
    }

    /// Polls `path` until it answers 200 and returns the body. Readiness, not a
    /// measurement: the timeout only bounds how long a broken headend is waited for.
    pub fn wait_for(&self, path: &str, timeout: Duration) -> Vec<u8> {
        let mut last = String::from("no answer yet");
        let body = self.wait_until(timeout, || {
            match http_get(&self.url(path)) {
                Ok(response) if response.status == 200 => return Some(response.body),
                Ok(response) => last = format!("{} {}", response.status, response.text()),
                Err(err) => last = err,
            }
            None
        });
        body.unwrap_or_else(|| {
            self.fail(&format!(
                "GET {path} did not answer 200 within {timeout:?}; last answer: {last}"
            ))
        })
    }

    /// Polls `check` until it returns `Some`; `None` once `timeout` has passed. Fails
    /// at once if the headend exits.
    pub fn wait_until<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(value) = check() {
                return Some(value);
            }
            if Instant::now() > deadline {
                return None;
            }
            self.assert_running();
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Fails the test if the headend has exited.
    pub fn assert_running(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let status = child.as_mut().and_then(|c| c.try_wait().ok().flatten());
        drop(child);
        if let Some(status) = status {
            self.fail(&format!("the headend exited with {status}"));
        }
    }

    /// The last `lines` lines of the headend's stderr.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_of(&self.log, lines)
    }

    /// Fails the test with `message` and the tail of the headend's log.
    pub fn fail(&self, message: &str) -> ! {
        panic!(
            "{message}\n--- headend log (last {LOG_TAIL_LINES} lines, {}) ---\n{}",
            self.log.display(),
            self.log_tail(LOG_TAIL_LINES)
        )
    }

    /// Sends SIGTERM and waits for the process to exit; `None` if it was still running
    /// after `timeout` (it is then killed) or was already stopped.
    pub fn stop(&self, timeout: Duration) -> Option<ExitStatus> {
        self.stop_with("TERM", timeout)
    }

    /// As [`stop`](Self::stop), with another signal (`INT` for a Ctrl-C).
    pub fn stop_with(&self, signal: &str, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self
            .child
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        // Once reaped, the pid may belong to another process: signal only a live child.
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            thread::sleep(POLL_INTERVAL);
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for Headend {
    fn drop(&mut self) {
        let running = self
            .child
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        if running && self.stop(SHUTDOWN_TIMEOUT).is_none() {
            eprintln!(
                "The headend did not stop within {SHUTDOWN_TIMEOUT:?} of SIGTERM and was killed."
            );
        }
    }
}

/// The environment variables `headend run` reads.
const HEADEND_ENV: [&str; 2] = ["HEADEND_API_TOKEN", "HEADEND_LOG_FORMAT"];

fn spawn(
    catalog: &Path,
    addr: SocketAddr,
    log: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    launcher: &[&str],
) -> Child {
    let log_file =
        fs::File::create(log).unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
    let headend = env!("CARGO_BIN_EXE_headend");
    let mut command = match launcher {
        [] => Command::new(headend),
        [program, first @ ..] => {
            let mut command = Command::new(program);
            command.args(first).arg(headend);
            command
        }
    };
    for name in HEADEND_ENV {
        command.env_remove(name);
    }
    command
        .envs(env.iter().copied())
        .arg("run")
        .arg("--listen")
        .arg(addr.to_string())
        .args(args)
        .arg(catalog)
        // Plain text in the log, so a failure message quotes it readably.
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", env!("CARGO_BIN_EXE_headend")))
}

fn wait_listening(child: &mut Child, addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + LISTEN_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("it exited with {status}"));
        }
        if TcpStream::connect_timeout(&addr, POLL_INTERVAL).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "nothing listened on {addr} within {LISTEN_TIMEOUT:?}"
            ));
        }
        thread::sleep(POLL_INTERVAL);
    }
}

fn tail_of(log: &Path, lines: usize) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A loopback port nobody listens on right now.
fn free_loopback_port() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("binding 127.0.0.1:0: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("reading a bound port: {e}"))
}

// ---------------------------------------------------------------- the wall clock

/// Sleeps until the wall clock is `offset` past a multiple of `period`: the next
/// such moment, now included. Live segment boundaries are multiples of the segment
/// duration on the wall clock, so a test can choose where in a segment a channel
/// starts.
pub fn sleep_until_phase(period: Duration, offset: Duration) {
    let period = period.as_nanos().max(1);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let wait = (offset.as_nanos() % period + period - now % period) % period;
    thread::sleep(Duration::from_nanos(u64::try_from(wait).unwrap_or(0)));
}

// ---------------------------------------------------------------- child processes

/// `unshare --net` (with `--map-root-user` when not root: a user namespace grants the
/// rights to configure the new one), for a test that sends multicast: the program it
/// runs sees only its own loopback, so nothing reaches a real network.
pub fn in_network_namespace() -> Command {
    let mut command = Command::new("unshare");
    if !is_root() {
        command.arg("--map-root-user");
    }
    command.arg("--net");
    command
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}
/// Runs a command with its output captured, killing it after `timeout`. `None` on
/// timeout.
pub fn run_with_timeout(command: &mut Command, timeout: Duration) -> Option<Output> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
    // Drained on threads so a chatty child never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut out);
            }
            out
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    status.map(|status| Output {
        status,
        stdout,
        stderr,
    })
}

// ---------------------------------------------------------------- playlists

pub fn parse_master(bytes: &[u8]) -> MasterPlaylist {
    m3u8_rs::parse_master_playlist_res(bytes).unwrap_or_else(|e| {
        panic!(
            "not a multivariant playlist ({e:?}):\n{}",
            String::from_utf8_lossy(bytes)
        )
    })
}

pub fn parse_media(bytes: &[u8]) -> MediaPlaylist {
    m3u8_rs::parse_media_playlist_res(bytes).unwrap_or_else(|e| {
        panic!(
            "not a media playlist ({e:?}):\n{}",
            String::from_utf8_lossy(bytes)
        )
    })
}

/// The sequence number in a live segment URI (`{seq}.m4s`).
pub fn segment_sequence(uri: &str) -> u64 {
    uri.strip_suffix(".m4s")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("segment URI {uri:?} is not {{sequence}}.m4s"))
}

/// Seconds since the UNIX epoch of a segment's EXT-X-PROGRAM-DATE-TIME.
pub fn program_date_time(segment: &m3u8_rs::MediaSegment) -> f64 {
    let pdt = segment
        .program_date_time
        .unwrap_or_else(|| panic!("segment {} has no EXT-X-PROGRAM-DATE-TIME", segment.uri));
    pdt.timestamp() as f64 + f64::from(pdt.timestamp_subsec_nanos()) / 1e9
}

// ---------------------------------------------------------------- ffprobe

/// One section of ffprobe's `compact` output (`frame|key=value|...`).
#[derive(Debug, Clone)]
pub struct Section {
    pub kind: String,
    pub fields: BTreeMap<String, String>,
}

impl Section {
    pub fn get(&self, key: &str) -> &str {
        self.fields
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("ffprobe {} has no {key}: {:?}", self.kind, self.fields))
    }

    pub fn f64(&self, key: &str) -> f64 {
        let value = self.get(key);
        value
            .parse()
            .unwrap_or_else(|_| panic!("ffprobe {} {key}={value} is not a number", self.kind))
    }

    pub fn u64(&self, key: &str) -> u64 {
        let value = self.get(key);
        value
            .parse()
            .unwrap_or_else(|_| panic!("ffprobe {} {key}={value} is not an integer", self.kind))
    }
}

/// Runs `ffprobe -v error -of compact ARGS FILE` and parses its sections. Anything
/// ffprobe reports at error level (a decoding error included) fails the test.
pub fn ffprobe(file: &Path, args: &[&str]) -> Vec<Section> {
    let mut command = Command::new("ffprobe");
    command
        .args(["-v", "error", "-of", "compact"])
        .args(args)
        .arg(file);
    let output = run_with_timeout(&mut command, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("ffprobe on {} timed out", file.display()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "ffprobe {args:?} {} failed ({}):\n{stderr}",
        file.display(),
        output.status
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut tokens = line.split('|');
            let kind = tokens.next().filter(|k| !k.is_empty())?.to_owned();
            let fields = tokens
                .filter_map(|t| t.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            Some(Section { kind, fields })
        })
        .collect()
}

/// A decoded video stream, frame by frame.
#[derive(Debug, Clone)]
pub struct VideoProbe {
    pub codec: String,
    /// As ffprobe names it: `Constrained Baseline`, `Main`, `High`...
    pub profile: String,
    /// `level_idc`, e.g. 30 for level 3.0.
    pub level: u64,
    pub width: u64,
    pub height: u64,
    pub frames: Vec<VideoFrame>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VideoFrame {
    /// Presentation time in seconds (`best_effort_timestamp_time`).
    pub pts: f64,
    pub duration: f64,
    pub key_frame: bool,
    pub pict_type: String,
}

/// Decodes every frame of the first video stream of `file`.
pub fn probe_video(file: &Path) -> VideoProbe {
    // `pkt_duration_time` is `duration_time` from FFmpeg 6; ask for both.
    let sections = ffprobe(
        file,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,profile,level,width,height:\
             frame=best_effort_timestamp_time,pkt_duration_time,duration_time,key_frame,pict_type",
        ],
    );
    let stream = only_stream(&sections, file);
    let mut frames: Vec<VideoFrame> = sections
        .iter()
        .filter(|s| s.kind == "frame")
        .map(|f| VideoFrame {
            pts: f.f64("best_effort_timestamp_time"),
            duration: frame_duration(f).unwrap_or(f64::NAN),
            key_frame: f.get("key_frame") == "1",
            pict_type: f.get("pict_type").to_owned(),
        })
        .collect();
    // FFmpeg 5.1 gives no duration to the frames it read while probing some streams
    // (OpenH264's, whose SPS says nothing of frame reordering), though the fragment
    // carries it (`tfhd`'s default): such a frame lasts until the next one starts.
    for i in 0..frames.len() {
        if frames[i].duration.is_nan() {
            let until = frames.get(i + 1).map(|next| next.pts);
            let before = i.checked_sub(1).map(|j| frames[j].duration);
            frames[i].duration = until
                .map(|pts| pts - frames[i].pts)
                .or(before)
                .unwrap_or_else(|| panic!("{}: a lone frame has no duration", file.display()));
        }
    }
    VideoProbe {
        codec: stream.get("codec_name").to_owned(),
        profile: stream.get("profile").to_owned(),
        level: stream.u64("level"),
        width: stream.u64("width"),
        height: stream.u64("height"),
        frames,
    }
}

/// A decoded audio stream, frame by frame.
#[derive(Debug, Clone)]
pub struct AudioProbe {
    pub codec: String,
    /// As ffprobe names it: `LC`, `HE-AAC`...
    pub profile: String,
    pub channels: u64,
    pub sample_rate: u64,
    pub frames: Vec<AudioFrame>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AudioFrame {
    pub pts: f64,
    pub samples: u64,
}

impl AudioProbe {
    /// Decoded duration: every sample counted.
    pub fn duration(&self) -> f64 {
        self.frames.iter().map(|f| f.samples).sum::<u64>() as f64 / self.sample_rate as f64
    }
}

/// Decodes every frame of the first audio stream of `file`.
pub fn probe_audio(file: &Path) -> AudioProbe {
    let sections = ffprobe(
        file,
        &[
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=codec_name,profile,channels,sample_rate:\
             frame=best_effort_timestamp_time,nb_samples",
        ],
    );
    let stream = only_stream(&sections, file);
    let frames = sections
        .iter()
        .filter(|s| s.kind == "frame")
        .map(|f| AudioFrame {
            pts: f.f64("best_effort_timestamp_time"),
            samples: f.u64("nb_samples"),
        })
        .collect();
    AudioProbe {
        codec: stream.get("codec_name").to_owned(),
        profile: stream.get("profile").to_owned(),
        channels: stream.u64("channels"),
        sample_rate: stream.u64("sample_rate"),
        frames,
    }
}

fn only_stream<'a>(sections: &'a [Section], file: &Path) -> &'a Section {
    let streams: Vec<&Section> = sections.iter().filter(|s| s.kind == "stream").collect();
    match streams.as_slice() {
        [stream] => stream,
        other => panic!(
            "{}: expected one selected stream, ffprobe found {}",
            file.display(),
            other.len()
        ),
    }
}

fn frame_duration(frame: &Section) -> Option<f64> {
    ["duration_time", "pkt_duration_time"]
        .iter()
        .find_map(|key| frame.fields.get(*key).and_then(|v| v.parse().ok()))
}

// ---------------------------------------------------------------- more HTTP, signals, files

/// Any method with ureq and extra headers, turning 4xx and 5xx into an ordinary
/// response; a transport error is `Err`.
pub fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<HttpResponse, String> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build();
    let mut request = agent.request(method, url);
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let response = match request.call() {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(err) => return Err(format!("{method} {url}: {err}")),
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .filter_map(|name| {
            let value = response.header(&name)?.to_owned();
            Some((name.to_ascii_lowercase(), value))
        })
        .collect();
    let mut body = Vec::new();
    response
        .into_reader()
        .read_to_end(&mut body)
        .map_err(|e| format!("{method} {url}: reading the body: {e}"))?;
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// Replaces a file as editors and deploy tools do: the new content is written to a
/// temporary file beside it, then renamed over it in one step.
pub fn replace_file(path: &Path, text: &str) {
    let name = path
        .file_name()
        .unwrap_or_else(|| panic!("{} has no file name", path.display()));
    let temp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    fs::write(&temp, text).unwrap_or_else(|e| panic!("writing {}: {e}", temp.display()));
    fs::rename(&temp, path).unwrap_or_else(|e| panic!("renaming over {}: {e}", path.display()));
}

/// Reads a never-ending HTTP body (`/ts/{channel}`) for `duration` over HTTP/1.0, so
/// it comes unchunked; returns the bytes after the headers.
pub fn read_stream(addr: SocketAddr, path: &str, duration: Duration) -> Vec<u8> {
    use std::io::Write;
    let mut stream =
        TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap_or_else(|e| panic!("setting a read timeout: {e}"));
    write!(stream, "GET {path} HTTP/1.0\r\n\r\n")
        .unwrap_or_else(|e| panic!("sending GET {path}: {e}"));
    let deadline = Instant::now() + duration;
    let mut data = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    while Instant::now() < deadline {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => data.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("reading GET {path}: {e}"),
        }
    }
    let end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: no end of headers in {} bytes", data.len()));
    let head = String::from_utf8_lossy(&data[..end]);
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "GET {path}: {head}"
    );
    data.split_off(end + 4)
}

impl Headend {
    /// Sends a signal (`HUP`, `USR1`...) to the running headend.
    pub fn signal(&self, name: &str) {
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let Some(child) = child.as_ref() else {
            panic!("the headend is not running");
        };
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(child.id().to_string())
            .status()
            .unwrap_or_else(|e| panic!("running kill: {e}"));
        assert!(status.success(), "kill -{name} failed: {status}");
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}
