//! Runs a benchmark inside its own network namespace.
//!
//! The demo catalog sends multicast, and the house rule is that tests and benchmarks
//! send traffic only to loopback, every multicast sender inside a private network
//! namespace, so nothing ever goes out of a real interface. [`enter`] is the first
//! call of a benchmark's `main`: outside a namespace it runs the same binary again
//! under `unshare --net` and exits with its status; in there it checks that loopback
//! is the only interface, brings it up with multicast and routes 239.0.0.0/8 over it.
//! The headend and every client then live on that loopback.

use std::process::Command;

/// Set for the re-executed benchmark: it runs in its own namespace already.
const MARKER: &str = "HEADEND_BENCH_NETNS";

/// What the multicast tests do too (tests/support/udp_multicast.sh).
const LOOPBACK_SETUP: [&[&str]; 3] = [
    &["link", "set", "lo", "up"],
    &["link", "set", "lo", "multicast", "on"],
    &["route", "add", "239.0.0.0/8", "dev", "lo"],
];

/// `ip` is in /usr/sbin, which a non-root user's PATH on Debian leaves out.
const IP_COMMANDS: [&str; 3] = ["ip", "/usr/sbin/ip", "/sbin/ip"];

/// Returns inside a private network namespace with a multicast loopback, or exits.
pub fn enter() {
    if std::env::var_os(MARKER).is_some() {
        if let Err(err) = configure() {
            eprintln!("benchmark: cannot set up the private network namespace: {err}");
            std::process::exit(1);
        }
        return;
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(err) => {
            eprintln!("benchmark: cannot find its own executable: {err}");
            std::process::exit(1);
        }
    };
    let mut command = Command::new("unshare");
    // Without root, a user namespace in which we are root grants the rights to
    // configure the new network namespace.
    if !is_root() {
        command.arg("--map-root-user");
    }
    command
        .arg("--net")
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(MARKER, "1");
    match command.status() {
        // `unshare` says why itself when it may not create the namespaces.
        Ok(status) => std::process::exit(status.code().unwrap_or(1)),
        Err(err) => {
            eprintln!(
                "benchmark: cannot run `unshare` (util-linux) to get a private network namespace: {err}"
            );
            std::process::exit(1);
        }
    }
}

fn configure() -> Result<(), String> {
    // Checked first: a marker set by hand on the host must not touch its routes.
    // /proc/self/net follows this process's namespace (/sys/class/net would show the
    // namespace sysfs was mounted in).
    let devices = std::fs::read_to_string("/proc/self/net/dev").map_err(|e| e.to_string())?;
    let others: Vec<&str> = devices
        .lines()
        .skip(2)
        .filter_map(|line| line.split(':').next())
        .map(str::trim)
        .filter(|name| *name != "lo")
        .collect();
    if !others.is_empty() {
        return Err(format!(
            "{MARKER} is set but this is no private network namespace (interfaces: {})",
            others.join(", ")
        ));
    }
    for args in LOOPBACK_SETUP {
        ip(args)?;
    }
    Ok(())
}

fn ip(args: &[&str]) -> Result<(), String> {
    for program in IP_COMMANDS {
        match Command::new(program).args(args).output() {
            Ok(out) if out.status.success() => return Ok(()),
            Ok(out) => {
                return Err(format!(
                    "`ip {}`: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(format!("`ip {}`: {err}", args.join(" "))),
        }
    }
    Err("`ip` (iproute2) is not installed".into())
}

/// Whether the effective user is root (`Uid:` real, effective, saved, filesystem).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1))
                .map(|euid| euid == "0")
        })
        .unwrap_or(false)
}
