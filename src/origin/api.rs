//! The operations API under `/api/v1/` (described in `docs/openapi.yaml`):
//! - `GET /api/v1/catalog`: the running catalog (its files, when it was loaded, its
//!   channel ids) and the latest reload's result, with its problems;
//! - `POST /api/v1/reload`: reloads the catalog and answers what the reload did.
//!
//! Every call needs `Authorization: Bearer TOKEN`, the token the headend was started
//! with (`HEADEND_API_TOKEN` or `--api-token-file`); without one configured the API
//! answers 403 and says how to set one. `--public-api` opens `GET /api/v1/catalog` to
//! anyone. Answers are JSON, never cached, and carry no CORS headers: a page on
//! another origin cannot call the API with a token.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::service::Body;
use crate::catalog::Problem;
use crate::reload::{CatalogStatus, ReloadHandle, ReloadOutcome, ReloadResult, Trigger};

/// The environment variable that holds the API token.
pub const TOKEN_ENV: &str = "HEADEND_API_TOKEN";
/// A shorter token is refused: it could be guessed.
pub const MIN_TOKEN_LEN: usize = 16;
const JSON_TYPE: &str = "application/json";
const NO_STORE: &str = "no-store";
/// RFC 6750 3: the challenge of a protected resource.
const CHALLENGE: &str = "Bearer realm=\"headend\"";
const CHALLENGE_INVALID: &str = "Bearer realm=\"headend\", error=\"invalid_token\"";
const CATALOG_ALLOW: &str = "GET, HEAD, OPTIONS";
const RELOAD_ALLOW: &str = "POST, OPTIONS";

/// An API endpoint, as the router names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `/api/v1/catalog`
    Catalog,
    /// `/api/v1/reload`
    Reload,
}

/// What the API needs: the reloader, and who may call it.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub reloads: ReloadHandle,
    /// `None`: no token configured, every call needing one answers 403.
    pub token: Option<ApiToken>,
    /// `GET /api/v1/catalog` answers without a token.
    pub public_catalog: bool,
}

/// The bearer token API calls must present. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(…)")
    }
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiTokenError {
    #[error("cannot read the API token file {}: {source}", .path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "the API token is {0} characters long; use at least {MIN_TOKEN_LEN} (for example `openssl rand -hex 32`)"
    )]
    TooShort(usize),
    #[error("the API token may only hold visible ASCII characters (no spaces)")]
    Characters,
}

impl ApiToken {
    /// A token from text; surrounding whitespace (a file's final newline) is dropped.
    pub fn new(text: &str) -> Result<ApiToken, ApiTokenError> {
        let token = text.trim();
        // RFC 6750 2.1 allows a b64token; any visible ASCII travels in a header.
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiTokenError::Characters);
        }
        if token.len() < MIN_TOKEN_LEN {
            return Err(ApiTokenError::TooShort(token.len()));
        }
        Ok(ApiToken(token.to_owned()))
    }

    /// The token in a file (`--api-token-file`).
    pub fn read(path: &Path) -> Result<ApiToken, ApiTokenError> {
        let text = std::fs::read_to_string(path).map_err(|source| ApiTokenError::Read {
            path: path.to_owned(),
            source,
        })?;
        ApiToken::new(&text)
    }

    fn matches(&self, presented: &[u8]) -> bool {
        constant_time_eq(self.0.as_bytes(), presented)
    }
}

/// Compares a presented token with the expected one in a time that depends on the
/// expected token's length only, never on where a guess first differs (a short-circuit
/// comparison lets an attacker find a token byte by byte from response times). Small
/// enough to write here rather than add a crate; `black_box` keeps the optimiser from
/// ending the loop early.
fn constant_time_eq(expected: &[u8], presented: &[u8]) -> bool {
    let mut difference = expected.len() ^ presented.len();
    for (i, byte) in expected.iter().enumerate() {
        let other = presented.get(i).copied().unwrap_or(0);
        difference |= usize::from(std::hint::black_box(byte ^ other));
    }
    difference == 0
}

/// Answers one API request.
pub(crate) async fn respond<B>(
    api: &ApiSettings,
    endpoint: Endpoint,
    req: &Request<B>,
) -> Response<Body> {
    let method = req.method();
    let allow = match endpoint {
        Endpoint::Catalog => CATALOG_ALLOW,
        Endpoint::Reload => RELOAD_ALLOW,
    };
    match (endpoint, method) {
        (_, &Method::OPTIONS) => options(allow),
        (Endpoint::Catalog, &Method::GET | &Method::HEAD) => {
            if let Some(refused) = refusal(api, req, api.public_catalog) {
                return without_body_for_head(refused, method);
            }
            let status = api.reloads.status();
            without_body_for_head(
                json_response(StatusCode::OK, &catalog_json(&status)),
                method,
            )
        }
        (Endpoint::Reload, &Method::POST) => {
            if let Some(refused) = refusal(api, req, false) {
                return refused;
            }
            match api.reloads.reload(Trigger::Api).await {
                Some(outcome) => {
                    let status = match outcome.result {
                        ReloadResult::Rejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
                        _ => StatusCode::OK,
                    };
                    json_response(status, &outcome_json(&outcome))
                }
                None => error_json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The headend is shutting down; the catalog is no longer reloaded.",
                ),
            }
        }
        _ => {
            let mut response = error_json(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("This endpoint takes {allow}."),
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            without_body_for_head(response, method)
        }
    }
}

/// The answer that refuses the request, or `None` if it may go on.
fn refusal<B>(api: &ApiSettings, req: &Request<B>, public: bool) -> Option<Response<Body>> {
    if public {
        return None;
    }
    let Some(token) = &api.token else {
        return Some(error_json(
            StatusCode::FORBIDDEN,
            &format!(
                "The API is off: no token is configured. Start the headend with \
                 {TOKEN_ENV}=TOKEN in its environment or with --api-token-file PATH, \
                 then send Authorization: Bearer TOKEN."
            ),
        ));
    };
    let (message, challenge) = match bearer(req) {
        Some(presented) if token.matches(presented) => return None,
        Some(_) => ("The bearer token is not valid.", CHALLENGE_INVALID),
        None => (
            "This endpoint needs Authorization: Bearer TOKEN.",
            CHALLENGE,
        ),
    };
    let mut response = error_json(StatusCode::UNAUTHORIZED, message);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    Some(response)
}

/// The credentials of `Authorization: Bearer CREDENTIALS` (the scheme is
/// case-insensitive, RFC 9110 11.1).
fn bearer<B>(req: &Request<B>) -> Option<&[u8]> {
    let value = req.headers().get(header::AUTHORIZATION)?.as_bytes();
    let space = value.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| rest.trim_ascii())
}

/// `GET /api/v1/catalog`.
fn catalog_json(status: &CatalogStatus) -> Value {
    json!({
        "files": status.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
        "loaded_at": timestamp(status.loaded_at),
        "channels": status.channels,
        "last_reload": status.last_reload.as_ref().map(outcome_json),
    })
}

/// A reload's outcome: every list is present, empty when it does not apply.
fn outcome_json(outcome: &ReloadOutcome) -> Value {
    let empty = Vec::new();
    let (diff, problems) = match &outcome.result {
        ReloadResult::Applied(diff) => (Some(diff), &empty),
        ReloadResult::Unchanged => (None, &empty),
        ReloadResult::Rejected(problems) => (None, problems),
    };
    let ids = |list: fn(&crate::catalog::CatalogDiff) -> &Vec<String>| {
        diff.map_or_else(Vec::new, |d| list(d).clone())
    };
    json!({
        "trigger": outcome.trigger.as_str(),
        "at": timestamp(outcome.at),
        "result": outcome.result.as_str(),
        "added": ids(|d| &d.added),
        "removed": ids(|d| &d.removed),
        "restarted": ids(|d| &d.restarted),
        "updated": ids(|d| &d.updated),
        "problems": problems.iter().map(problem_json).collect::<Vec<_>>(),
    })
}

fn problem_json(problem: &Problem) -> Value {
    json!({
        "file": problem.file.display().to_string(),
        "line": problem.line,
        "column": problem.column,
        "message": problem.message,
        "text": problem.to_string(),
    })
}

/// RFC 3339 UTC to the millisecond.
fn timestamp(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn error_json(status: StatusCode, message: &str) -> Response<Body> {
    json_response(status, &json!({ "error": message }))
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut text = value.to_string();
    text.push('\n');
    let len = text.len() as u64;
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(text))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::SERVER, HeaderValue::from_static("headend"));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_TYPE));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
    response
}

fn options(allow: &'static str) -> Response<Body> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::new())));
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(header::SERVER, HeaderValue::from_static("headend"));
    headers.insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

fn without_body_for_head(response: Response<Body>, method: &Method) -> Response<Body> {
    if *method != Method::HEAD {
        return response;
    }
    let (parts, _) = response.into_parts();
    Response::from_parts(parts, Either::Left(Full::new(Bytes::new())))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http_body_util::BodyExt;
    use tokio::sync::watch;

    use super::*;
    use crate::catalog::Catalog;
    use crate::reload::Reloader;
    use crate::store::SegmentStore;
    use crate::supervisor::Supervisor;

    const TOKEN: &str = "0123456789abcdef0123";

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"secret-token", b"secret-token"));
        assert!(!constant_time_eq(b"secret-token", b"secret-tokeN"));
        assert!(!constant_time_eq(b"secret-token", b"secret-toke"));
        assert!(!constant_time_eq(b"secret-token", b"secret-token\0"));
        assert!(!constant_time_eq(b"secret-token", b""));
        assert!(!constant_time_eq(b"a", b"b"));
    }

    #[test]
    fn tokens_must_be_long_and_plain() {
        assert_eq!(
            ApiToken::new(&format!("  {TOKEN}\n")).ok(),
            Some(ApiToken(TOKEN.to_owned()))
        );
        assert!(matches!(
            ApiToken::new("short\n"),
            Err(ApiTokenError::TooShort(5))
        ));
        assert!(matches!(
            ApiToken::new("0123456789 abcdef0123"),
            Err(ApiTokenError::Characters)
        ));
        assert_eq!(
            format!("{:?}", ApiToken::new(TOKEN).ok()),
            "Some(ApiToken(…))"
        );
    }

    /// An API over a reloader of an empty catalog file (no channel, so no pipeline).
    struct Fixture {
        dir: PathBuf,
        api: ApiSettings,
        _running: crate::reload::Running,
    }

    impl Fixture {
        fn new(token: Option<&str>, public_catalog: bool) -> Fixture {
            static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "headend-api-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let file = dir.join("catalog.yaml");
            std::fs::write(&file, "channels: []\n").expect("catalog file");
            let catalog = Arc::new(Catalog::load(&[&file]).expect("loads"));
            let supervisor = Supervisor::start(catalog.clone(), SegmentStore::new());
            let (listing, _) = watch::channel(catalog.clone());
            let (reloads, running) =
                Reloader::new(vec![file], catalog, supervisor, listing).spawn();
            Fixture {
                dir,
                _running: running,
                api: ApiSettings {
                    reloads,
                    token: token.map(|t| ApiToken::new(t).expect("a valid token")),
                    public_catalog,
                },
            }
        }

        async fn call(
            &self,
            method: Method,
            endpoint: Endpoint,
            auth: Option<&str>,
        ) -> (StatusCode, hyper::HeaderMap, Value) {
            let mut builder = Request::builder().method(method).uri("/api/v1/x");
            if let Some(auth) = auth {
                builder = builder.header("authorization", auth);
            }
            let req = builder.body(()).expect("request");
            let response = respond(&self.api, endpoint, &req).await;
            let (parts, body) = response.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).expect("JSON")
            };
            (parts.status, parts.headers, value)
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[tokio::test]
    async fn without_a_token_configured_the_api_is_forbidden_and_says_how_to_open_it() {
        let fixture = Fixture::new(None, false);
        for (method, endpoint) in [
            (Method::GET, Endpoint::Catalog),
            (Method::POST, Endpoint::Reload),
        ] {
            let (status, headers, body) = fixture
                .call(method, endpoint, Some(&format!("Bearer {TOKEN}")))
                .await;
            assert_eq!(status, StatusCode::FORBIDDEN);
            assert_eq!(
                headers.get("content-type").map(|v| v.as_bytes()),
                Some(&b"application/json"[..])
            );
            let error = body["error"].as_str().unwrap_or_default();
            assert!(
                error.contains("HEADEND_API_TOKEN") && error.contains("--api-token-file"),
                "{error}"
            );
        }
    }

    #[tokio::test]
    async fn a_missing_or_wrong_token_is_unauthorized_with_a_bearer_challenge() {
        let fixture = Fixture::new(Some(TOKEN), false);
        let cases = [
            (None, CHALLENGE),
            (Some("Basic dXNlcjpwYXNz"), CHALLENGE),
            (Some("Bearer"), CHALLENGE),
            (Some("Bearer 0123456789abcdef012"), CHALLENGE_INVALID),
            (Some("Bearer 0123456789abcdef01234"), CHALLENGE_INVALID),
        ];
        for (auth, challenge) in cases {
            for (method, endpoint) in [
                (Method::GET, Endpoint::Catalog),
                (Method::POST, Endpoint::Reload),
            ] {
                let (status, headers, body) = fixture.call(method, endpoint, auth).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
                assert_eq!(
                    headers.get("www-authenticate").map(|v| v.as_bytes()),
                    Some(challenge.as_bytes()),
                    "{auth:?}"
                );
                assert!(body["error"].is_string(), "{body}");
            }
        }
    }

    #[tokio::test]
    async fn the_right_token_reads_the_catalog_and_reloads_it() {
        let fixture = Fixture::new(Some(TOKEN), false);
        let auth = format!("bearer {TOKEN}");
        let (status, headers, body) = fixture
            .call(Method::GET, Endpoint::Catalog, Some(&auth))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers.get("cache-control").map(|v| v.as_bytes()),
            Some(&b"no-store"[..])
        );
        assert!(headers.get("access-control-allow-origin").is_none());
        assert_eq!(body["channels"], json!([]));
        assert_eq!(body["last_reload"], Value::Null);
        assert!(
            body["files"][0]
                .as_str()
                .is_some_and(|f| f.ends_with("catalog.yaml")),
            "{body}"
        );
        assert!(
            body["loaded_at"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{body}"
        );

        let (status, _, body) = fixture
            .call(Method::POST, Endpoint::Reload, Some(&auth))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["trigger"], "api");
        assert_eq!(body["result"], "unchanged");
        assert_eq!(body["problems"], json!([]));

        std::fs::write(fixture.dir.join("catalog.yaml"), "channels:\n  - { id: x\n")
            .expect("write");
        let (status, _, body) = fixture
            .call(Method::POST, Endpoint::Reload, Some(&auth))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["result"], "rejected");
        let problem = &body["problems"][0];
        assert!(
            problem["line"].is_u64() && problem["column"].is_u64(),
            "{body}"
        );
        let text = problem["text"].as_str().unwrap_or_default();
        assert!(text.contains("catalog.yaml:"), "{text}");
        let (_, _, status) = fixture
            .call(Method::GET, Endpoint::Catalog, Some(&auth))
            .await;
        assert_eq!(status["last_reload"], body);
    }

    #[tokio::test]
    async fn a_public_catalog_needs_no_token_but_reloading_does() {
        let fixture = Fixture::new(Some(TOKEN), true);
        let (status, _, _) = fixture.call(Method::GET, Endpoint::Catalog, None).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, _) = fixture.call(Method::POST, Endpoint::Reload, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, headers, body) = fixture.call(Method::HEAD, Endpoint::Catalog, None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers.get("content-length").is_some());
        assert_eq!(body, Value::Null);
    }

    /// `docs/openapi.yaml` names every endpoint and every key the answers carry, so
    /// the description cannot drift from the code.
    #[test]
    fn the_openapi_description_matches_the_answers() {
        let text = include_str!("../../docs/openapi.yaml");
        let spec: serde_yaml::Value = serde_yaml::from_str(text).expect("valid YAML");
        let keys = |value: &serde_yaml::Value| -> Vec<String> {
            let mut keys: Vec<String> = value
                .as_mapping()
                .map(|m| {
                    m.keys()
                        .filter_map(|k| k.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            keys.sort();
            keys
        };
        assert_eq!(keys(&spec["paths"]), ["/api/v1/catalog", "/api/v1/reload"]);
        let required = |schema: &str| -> Vec<String> {
            let schema = &spec["components"]["schemas"][schema];
            let mut required: Vec<String> = schema["required"]
                .as_sequence()
                .map(|s| {
                    s.iter()
                        .filter_map(|k| k.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            required.sort();
            assert_eq!(required, keys(&schema["properties"]), "{schema:?}");
            required
        };
        let json_keys = |value: &Value| -> Vec<String> {
            let mut keys: Vec<String> = value
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            keys.sort();
            keys
        };
        let problem = Problem {
            file: PathBuf::from("c.yaml"),
            line: Some(3),
            column: Some(5),
            message: "bad".to_owned(),
        };
        let outcome = ReloadOutcome {
            trigger: Trigger::FileChange,
            at: SystemTime::UNIX_EPOCH,
            result: ReloadResult::Rejected(vec![problem.clone()]),
        };
        let status = CatalogStatus {
            files: vec![PathBuf::from("c.yaml")],
            loaded_at: SystemTime::UNIX_EPOCH,
            channels: vec!["a".to_owned()],
            last_reload: Some(outcome.clone()),
        };
        assert_eq!(required("Problem"), json_keys(&problem_json(&problem)));
        assert_eq!(
            required("ReloadOutcome"),
            json_keys(&outcome_json(&outcome))
        );
        assert_eq!(required("Catalog"), json_keys(&catalog_json(&status)));
        assert_eq!(required("Error"), ["error"]);
        assert_eq!(
            problem_json(&problem)["text"],
            "c.yaml:3:5: bad",
            "the text is the problem's place and message"
        );
        assert_eq!(outcome_json(&outcome)["at"], "1970-01-01T00:00:00.000Z");
    }

    #[tokio::test]
    async fn other_methods_are_not_allowed() {
        let fixture = Fixture::new(Some(TOKEN), false);
        let (status, headers, _) = fixture.call(Method::GET, Endpoint::Reload, None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            headers.get("allow").map(|v| v.as_bytes()),
            Some(RELOAD_ALLOW.as_bytes())
        );
        let (status, headers, _) = fixture.call(Method::DELETE, Endpoint::Catalog, None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            headers.get("allow").map(|v| v.as_bytes()),
            Some(CATALOG_ALLOW.as_bytes())
        );
        let (status, headers, _) = fixture.call(Method::OPTIONS, Endpoint::Reload, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(
            headers.get("allow").map(|v| v.as_bytes()),
            Some(RELOAD_ALLOW.as_bytes())
        );
    }
}
