//! An HTTPS server on loopback for tests: nginx with a certificate for 127.0.0.1
//! signed by a test CA made with openssl. Nothing trusts that CA but a process run
//! through [`TlsServer::launcher`] (`support/with_trust.sh`: a private mount namespace
//! whose system CA bundle is the test CA), so the host's trust store is never touched.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::TempDir;

const START_TIMEOUT: Duration = Duration::from_secs(10);

/// nginx over TLS on a free loopback port; stopped on drop.
pub struct TlsServer {
    child: Child,
    pub port: u16,
    /// The test CA, in PEM: what a client must trust.
    pub ca: PathBuf,
    dir: TempDir,
}

impl TlsServer {
    /// nginx serving `locations` (nginx `location` blocks of one `server`) over TLS.
    pub fn start(locations: &str) -> TlsServer {
        let dir = TempDir::new("tls");
        let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
        let ca = path("ca.pem");
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=headend test CA",
            "-keyout",
            &path("ca.key"),
            "-out",
            &ca,
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            &path("key.pem"),
            "-out",
            &path("leaf.csr"),
        ]);
        std::fs::write(
            path("leaf.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .expect("writing the certificate's extensions");
        openssl(&[
            "x509",
            "-req",
            "-days",
            "1",
            "-CAcreateserial",
            "-in",
            &path("leaf.csr"),
            "-CA",
            &ca,
            "-CAkey",
            &path("ca.key"),
            "-extfile",
            &path("leaf.ext"),
            "-out",
            &path("cert.pem"),
        ]);
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let config = dir.write(
            "nginx.conf",
            &[format!(
                "daemon off;\nmaster_process off;\nerror_log stderr warn;\npid nginx.pid;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{ access_log off; server {{ listen 127.0.0.1:{port} ssl; \
                 ssl_certificate {cert}; ssl_certificate_key {key}; {locations} }} }}\n",
                cert = path("cert.pem"),
                key = path("key.pem"),
            )
            .as_bytes()],
        );
        let log = std::fs::File::create(path("nginx.log")).expect("nginx log");
        // `-e` before the config is read, or nginx opens /var/log/nginx/error.log.
        let child = Command::new("nginx")
            .args(["-e", "stderr", "-p"])
            .arg(dir.path())
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting nginx");
        let mut server = TlsServer {
            child,
            port,
            ca: PathBuf::from(ca),
            dir,
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            let exited = server.child.try_wait().ok().flatten();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "nginx did not listen on {addr}: {}",
                std::fs::read_to_string(server.dir.path().join("nginx.log")).unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// A command prefix that runs a program trusting the test CA (and the system's).
    pub fn launcher(&self) -> [String; 2] {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/with_trust.sh");
        [
            script.to_string_lossy().into_owned(),
            self.ca.to_string_lossy().into_owned(),
        ]
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl(args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("running openssl");
    assert!(status.success(), "openssl {args:?} failed");
}
