//! nginx as the origin's anchor: Debian's binary, our own process on a loopback port
//! with a minimal static-file configuration written into a scratch folder, never the
//! system's nginx or its configuration. Stopped (and waited for) when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const READY_LIMIT: Duration = Duration::from_secs(10);
const STOP_GRACE: Duration = Duration::from_secs(10);

pub struct Nginx {
    master: Child,
    port: u16,
    dir: PathBuf,
}

impl Nginx {
    /// Serves `docroot` on a free loopback port with `workers` worker processes, as a
    /// tuned static origin would: sendfile, open_file_cache, long keep-alive, no access
    /// log. `dir` holds its configuration, pid file, error log and temp folders.
    pub fn start(docroot: &Path, dir: &Path, workers: usize) -> Result<Self, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free loopback port: {e}"))?
            .port();
        std::fs::create_dir_all(dir.join("temp")).map_err(|e| e.to_string())?;
        let config = dir.join("nginx.conf");
        std::fs::write(&config, configuration(docroot, dir, port, workers))
            .map_err(|e| format!("{}: {e}", config.display()))?;
        let error_log = dir.join("error.log");
        let master = Command::new(nginx_binary())
            .arg("-e")
            .arg(&error_log)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start nginx (Debian package nginx): {e}"))?;
        let mut nginx = Nginx {
            master,
            port,
            dir: dir.to_owned(),
        };
        let deadline = Instant::now() + READY_LIMIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = nginx.master.try_wait() {
                return Err(format!(
                    "nginx exited ({status}): {}",
                    std::fs::read_to_string(&error_log)
                        .unwrap_or_default()
                        .trim()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!("nginx did not listen within {READY_LIMIT:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The port answers once the master listens; the workers may still be starting.
        while nginx.workers().len() < workers && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(nginx)
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The master and its workers.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.master.id()];
        pids.extend(self.workers());
        pids
    }

    fn workers(&self) -> Vec<u32> {
        let master = self.master.id();
        std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// What nginx logged at `warn` and above.
    pub fn errors(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    /// SIGQUIT is nginx's graceful stop; SIGKILL for the master and its workers if it
    /// does not stop in time.
    fn drop(&mut self) {
        let workers = self.workers();
        signal("QUIT", self.master.id());
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.master.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for worker in workers {
            signal("KILL", worker);
        }
        let _ = self.master.kill();
        let _ = self.master.wait();
    }
}

fn signal(name: &str, pid: u32) {
    let _ = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status();
}

/// `nginx` is in /usr/sbin, which a non-root user's PATH on Debian leaves out.
fn nginx_binary() -> &'static str {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("nginx")
}

/// The whole configuration: nothing is read from /etc/nginx. `daemon off` keeps the
/// master our child; the master and `workers` workers run as nginx always does. The
/// segments and playlists get the headers the headend sends (CORS for browser players,
/// and the caching a CDN needs), as an operator serving HLS from nginx configures.
fn configuration(docroot: &Path, dir: &Path, port: u16, workers: usize) -> String {
    let temp = dir.join("temp");
    let temp = temp.display();
    format!(
        "daemon off;\n\
         master_process on;\n\
         worker_processes {workers};\n\
         pid {pid};\n\
         events {{ worker_connections 8192; }}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   sendfile on;\n\
         \x20   tcp_nopush on;\n\
         \x20   tcp_nodelay on;\n\
         \x20   open_file_cache max=1000 inactive=60s;\n\
         \x20   open_file_cache_valid 60s;\n\
         \x20   keepalive_timeout 300s;\n\
         \x20   keepalive_requests 1000000;\n\
         \x20   types {{\n\
         \x20       application/vnd.apple.mpegurl m3u8;\n\
         \x20       video/iso.segment m4s;\n\
         \x20       video/mp4 mp4;\n\
         \x20   }}\n\
         \x20   default_type application/octet-stream;\n\
         \x20   client_body_temp_path {temp}/body;\n\
         \x20   proxy_temp_path {temp}/proxy;\n\
         \x20   fastcgi_temp_path {temp}/fastcgi;\n\
         \x20   uwsgi_temp_path {temp}/uwsgi;\n\
         \x20   scgi_temp_path {temp}/scgi;\n\
         \x20   server {{\n\
         \x20       listen 127.0.0.1:{port} backlog=1024;\n\
         \x20       root {root};\n\
         \x20       location ~ \\.m3u8$ {{ add_header Cache-Control \"max-age=1\"; \
         add_header Access-Control-Allow-Origin \"*\"; \
         add_header Access-Control-Expose-Headers \"Content-Length, Content-Range, ETag\"; }}\n\
         \x20       location ~ \\.m4s$ {{ add_header Cache-Control \"public, max-age=31536000, immutable\"; \
         add_header Access-Control-Allow-Origin \"*\"; \
         add_header Access-Control-Expose-Headers \"Content-Length, Content-Range, ETag\"; }}\n\
         \x20   }}\n\
         }}\n",
        pid = dir.join("nginx.pid").display(),
        root = docroot.display(),
    )
}
