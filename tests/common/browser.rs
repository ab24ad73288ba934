//! A real browser for page tests: Debian's headless Chromium driven by its ChromeDriver
//! over the W3C WebDriver protocol (plain JSON over HTTP on loopback, so no client
//! library and no browser download). `make test` installs both packages.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{free_loopback_port, TempDir};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// ChromeDriver's start, and Chromium's on a loaded two-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// The key of an element reference in WebDriver answers (W3C WebDriver §12).
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One ChromeDriver process with one headless Chromium session; both end on drop.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
    /// Chromium's profile and ChromeDriver's log, kept if the test fails.
    dir: TempDir,
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium with an empty profile. The flags
    /// keep it off the network (no background requests, updates or sync) and let a
    /// muted video start without a click.
    pub fn start() -> Browser {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(program).exists(),
                "{program} is missing: `make test` installs Debian's chromium and chromium-driver"
            );
        }
        let dir = TempDir::new("browser");
        let addr = free_loopback_port();
        let log = dir.path().join("chromedriver.log");
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={}", addr.port()))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {CHROMEDRIVER}: {e}"));
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect_timeout(&addr, POLL_INTERVAL).is_err() {
            assert!(
                Instant::now() < deadline,
                "ChromeDriver did not listen on {addr}"
            );
            thread::sleep(POLL_INTERVAL);
        }
        let agent = ureq::AgentBuilder::new().timeout(START_TIMEOUT).build();
        let base = format!("http://{addr}");
        let profile: PathBuf = dir.path().join("profile");
        let capabilities = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": [
                        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        "--disable-dev-shm-usage", "--mute-audio",
                        "--autoplay-policy=no-user-gesture-required",
                        format!("--user-data-dir={}", profile.display()),
                    ],
                },
            }},
        });
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            agent,
            dir,
        };
        let answer = browser.call("POST", "/session", &capabilities);
        browser.session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session in {answer}"))
            .to_owned();
        browser
    }

    /// Loads `url` and waits for the document to load.
    pub fn open(&self, url: &str) {
        self.session_call("POST", "/url", &json!({ "url": url }));
    }

    /// Runs `script` (a function body: `return …`) in the page and returns its value.
    pub fn eval(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            &json!({ "script": script, "args": [] }),
        )
    }

    /// Clicks the first element matching a CSS selector.
    pub fn click(&self, selector: &str) {
        let found = self.session_call(
            "POST",
            "/element",
            &json!({ "using": "css selector", "value": selector }),
        );
        let id = found[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no element {selector}: {found}"))
            .to_owned();
        self.session_call("POST", &format!("/element/{id}/click"), &json!({}));
    }

    /// Evaluates `script` until it returns something other than `null` or `false`;
    /// `None` once `timeout` has passed.
    pub fn wait_for(&self, script: &str, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.eval(script);
            if !(value.is_null() || value == Value::Bool(false)) {
                return Some(value);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    fn session_call(&self, method: &str, path: &str, body: &Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// One WebDriver command; its `value`. A WebDriver error fails the test.
    fn call(&self, method: &str, path: &str, body: &Value) -> Value {
        let url = format!("{}{path}", self.base);
        let request = self.agent.request(method, &url);
        let response = match method {
            "GET" | "DELETE" => request.call(),
            _ => request
                .set("Content-Type", "application/json")
                .send_string(&body.to_string()),
        };
        let text = match response {
            Ok(response) => response.into_string(),
            Err(ureq::Error::Status(status, response)) => {
                let text = response.into_string().unwrap_or_default();
                panic!("WebDriver {method} {path} answered {status}: {text}");
            }
            Err(err) => panic!("WebDriver {method} {path}: {err}"),
        }
        .unwrap_or_else(|e| panic!("WebDriver {method} {path}: reading the answer: {e}"));
        let mut answer: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}: {text}"));
        answer["value"].take()
    }

    /// Where ChromeDriver's log is, for a failure message.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("chromedriver.log")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let url = format!("{}/session/{}", self.base, self.session);
            let _ = self.agent.delete(&url).call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
