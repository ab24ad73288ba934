//! wrk (Debian package `wrk`) as the load generator: HTTP/1.1 keep-alive connections on
//! loopback, each sending its next request as soon as the last answer is in. Every
//! script ends with a `done` hook that prints the summary as one machine-readable line,
//! so nothing depends on wrk's human-readable units.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Printed by `done`: duration (µs), requests, bytes, p50 and p99 latency (µs), socket
/// errors (connect, read, write, timeout) and answers that were not 2xx or 3xx.
const DONE: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK-RESULT %d %d %d %d %d %d %d\n",
    summary.duration, summary.requests, summary.bytes,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"#;

/// A request wrk waits longer for than this counts as a timeout.
const TIMEOUT: &str = "10s";

/// One wrk run.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub requests: u64,
    /// Response bytes, headers included.
    pub bytes: u64,
    pub seconds: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub socket_errors: u64,
    /// Answers that were not 2xx or 3xx.
    pub bad_status: u64,
}

impl Load {
    pub fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    /// Megabytes (10⁶ bytes) per second.
    pub fn megabytes_per_second(&self) -> f64 {
        self.bytes as f64 / self.seconds / 1e6
    }
}

/// A Lua script for wrk: `body` (may be empty: wrk then repeats the URL's request)
/// with the result hook, written to `dir/name.lua`.
pub fn script(dir: &Path, name: &str, body: &str) -> Result<PathBuf, String> {
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(&path, format!("{body}\n{DONE}"))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Loads `url` with `connections` connections over `threads` threads for `duration`.
pub fn run(
    url: &str,
    connections: u32,
    threads: usize,
    duration: Duration,
    script: &Path,
) -> Result<Load, String> {
    let out = Command::new("wrk")
        .arg(format!("--threads={}", threads.min(connections as usize)))
        .arg(format!("--connections={connections}"))
        .arg(format!("--duration={}s", duration.as_secs().max(1)))
        .arg(format!("--timeout={TIMEOUT}"))
        .arg("--script")
        .arg(script)
        .arg(url)
        .output()
        .map_err(|e| format!("cannot run wrk (Debian package wrk): {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "wrk {url}: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let fields: Vec<u64> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("WRK-RESULT "))
        .ok_or_else(|| format!("wrk {url} printed no result: {}", stdout.trim()))?
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let [micros, requests, bytes, p50, p99, socket_errors, bad_status] = fields[..] else {
        return Err(format!(
            "wrk {url}: unexpected result line in {}",
            stdout.trim()
        ));
    };
    if requests == 0 {
        return Err(format!("wrk {url}: no request completed"));
    }
    Ok(Load {
        requests,
        bytes,
        seconds: micros as f64 / 1e6,
        p50: Duration::from_micros(p50),
        p99: Duration::from_micros(p99),
        socket_errors,
        bad_status,
    })
}

/// Raises this process's soft limit on open files to its hard limit (at most
/// `wanted`), so wrk and the servers it starts can hold every connection: Debian's
/// default soft limit, 1024, is what the largest run opens on its own.
pub fn raise_open_files(wanted: u64) -> Result<u64, String> {
    let limits = std::fs::read_to_string("/proc/self/limits").map_err(|e| e.to_string())?;
    let (soft, hard) = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .map(|rest| {
            let mut values = rest.split_whitespace().map(|v| v.parse::<u64>().ok());
            let soft = values.next().flatten();
            // "unlimited" does not parse: no limit.
            let hard = values.next().map(|v| v.unwrap_or(u64::MAX));
            (soft.unwrap_or(0), hard.unwrap_or(u64::MAX))
        })
        .ok_or("no `Max open files` in /proc/self/limits")?;
    let target = wanted.min(hard);
    if soft >= target {
        return Ok(soft);
    }
    // util-linux's prlimit: std has no setrlimit, and this is the only call that needs it.
    let status = Command::new("prlimit")
        .arg("--pid")
        .arg(std::process::id().to_string())
        .arg(format!("--nofile={target}:"))
        .status()
        .map_err(|e| format!("cannot run prlimit (util-linux): {e}"))?;
    if !status.success() {
        return Err(format!("prlimit --nofile={target}: {status}"));
    }
    Ok(target)
}
