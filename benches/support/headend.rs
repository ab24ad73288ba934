//! The headend under benchmark: the release binary on a catalog, listening on a free
//! loopback port, stopped when dropped; and what /proc says about it.

use std::ffi::OsStr;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a stopping headend gets to drain before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

pub struct Headend {
    child: Child,
    port: u16,
}

impl Headend {
    /// `headend run --listen 127.0.0.1:PORT CATALOG...`, logging at `warn` to `stderr`.
    pub fn start<S: AsRef<OsStr>>(catalog: &[S], stderr: Stdio) -> Result<Self, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free loopback port: {e}"))?
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_headend"))
            .args(["run", "--listen", &format!("127.0.0.1:{port}")])
            .args(catalog)
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start headend: {e}"))?;
        Ok(Self { child, port })
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Headend {
    /// SIGTERM (a graceful drain), then SIGKILL if it is still running.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// utime + stime of the process, from /proc/PID/stat (fields 14 and 15).
pub fn cpu_seconds(pid: u32) -> Result<f64, String> {
    stat_cpu_seconds(&format!("/proc/{pid}/stat"))
}

/// utime + stime of the process's threads whose name starts with `prefix` (GStreamer
/// names a streaming thread `element:pad`), from /proc/PID/task/*/stat. A thread that
/// ended took its time with it.
#[allow(dead_code, reason = "the iptv bench's; every bench includes this file")]
pub fn threads_cpu_seconds(pid: u32, prefix: &str) -> Result<f64, String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).map_err(|e| e.to_string())?;
    let mut total = 0.0;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.starts_with(prefix) {
            // A thread may end between the listing and the read.
            total += stat_cpu_seconds(&task.path().join("stat").to_string_lossy()).unwrap_or(0.0);
        }
    }
    Ok(total)
}

fn stat_cpu_seconds(path: &str) -> Result<f64, String> {
    let stat = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    // The command name is in parentheses and may contain spaces: split after it.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..13)
        .ok_or("short /proc stat")?
        .iter()
        .filter_map(|f| f.parse::<f64>().ok())
        .sum();
    let hz = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    Ok(ticks / hz)
}
