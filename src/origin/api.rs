//! The operations API under `/api/v1/` (described in `docs/openapi.yaml`):
//! - `GET /api/v1/catalog`: the running catalog (its files, when it was loaded, its
//!   channel ids) and the latest reload's result, with its problems;
//! - `POST /api/v1/reload`: reloads the catalog and answers what the reload did;
//! - `GET /api/v1/channels`, `GET /api/v1/channels/{id}`: each channel's state and
//!   numbers (`crate::status`);
//! - `GET /api/v1/vod`: each VOD asset's ingest.
//!
//! Every call needs `Authorization: Bearer TOKEN`, the token the headend was started
//! with (`HEADEND_API_TOKEN` or `--api-token-file`); without one configured the API
//! answers 403 and says how to set one. `--public-api` opens the read-only calls (every
//! `GET`) to anyone. Answers are JSON, never cached, and carry no CORS headers: a page
//! on another origin cannot call the API with a token.
//!
//! `/readyz` answers JSON from here too, without a token.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::service::Body;
use crate::catalog::Problem;
use crate::reload::{CatalogStatus, ReloadHandle, ReloadOutcome, ReloadResult, Trigger};
use crate::status::{AssetStatus, ChannelSnapshot, LastError, Registry};
use crate::store::SegmentStore;

/// The environment variable that holds the API token.
pub const TOKEN_ENV: &str = "HEADEND_API_TOKEN";
/// A shorter token is refused: it could be guessed.
pub const MIN_TOKEN_LEN: usize = 16;
const JSON_TYPE: &str = "application/json";
const NO_STORE: &str = "no-store";
/// RFC 6750 3: the challenge of a protected resource.
const CHALLENGE: &str = "Bearer realm=\"headend\"";
const CHALLENGE_INVALID: &str = "Bearer realm=\"headend\", error=\"invalid_token\"";
const READ_ALLOW: &str = "GET, HEAD, OPTIONS";
const RELOAD_ALLOW: &str = "POST, OPTIONS";

/// An API endpoint, as the router names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `/api/v1/catalog`
    Catalog,
    /// `/api/v1/reload`
    Reload,
    /// `/api/v1/channels`
    Channels,
    /// `/api/v1/channels/{id}`
    Channel(String),
    /// `/api/v1/vod`
    Vod,
}

/// What the API needs: the reloader, and who may call it.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub reloads: ReloadHandle,
    /// `None`: no token configured, every call needing one answers 403.
    pub token: Option<ApiToken>,
    /// The read-only calls (every `GET`) answer without a token.
    pub public_read: bool,
}

/// What the read-only calls report on: the channels' and assets' status, and the
/// store for the `/ts/` clients.
pub(crate) struct Operations<'a> {
    pub status: &'a Registry,
    pub store: &'a SegmentStore,
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
    operations: &Operations<'_>,
    endpoint: &Endpoint,
    req: &Request<B>,
) -> Response<Body> {
    let method = req.method();
    let allow = match endpoint {
        Endpoint::Reload => RELOAD_ALLOW,
        _ => READ_ALLOW,
    };
    match (endpoint, method) {
        (_, &Method::OPTIONS) => options(allow),
        (Endpoint::Reload, &Method::POST) => reload(api, req).await,
        (Endpoint::Reload, _) => method_not_allowed(allow, method),
        (read, &Method::GET | &Method::HEAD) => {
            if let Some(refused) = refusal(api, req, api.public_read) {
                return without_body_for_head(refused, method);
            }
            let (status, body) = read_json(api, operations, read);
            without_body_for_head(json_response(status, &body), method)
        }
        _ => method_not_allowed(allow, method),
    }
}

/// The answer of a read-only call.
fn read_json(
    api: &ApiSettings,
    operations: &Operations<'_>,
    endpoint: &Endpoint,
) -> (StatusCode, Value) {
    let now = SystemTime::now();
    let ts_clients = |id: &str| {
        operations
            .store
            .channel(id)
            .map_or(0, |live| live.ts().clients())
    };
    match endpoint {
        Endpoint::Channels => {
            let channels: Vec<Value> = operations
                .status
                .channels()
                .iter()
                .map(|c| channel_json(c, ts_clients(&c.id), now))
                .collect();
            (StatusCode::OK, json!({ "channels": channels }))
        }
        Endpoint::Channel(id) => match operations.status.channel(id) {
            Some(status) => (
                StatusCode::OK,
                channel_json(&status.snapshot(), ts_clients(id), now),
            ),
            None => (
                StatusCode::NOT_FOUND,
                json!({ "error": format!("No channel `{id}`.") }),
            ),
        },
        Endpoint::Vod => {
            let assets: Vec<Value> = operations.status.assets().iter().map(asset_json).collect();
            (StatusCode::OK, json!({ "assets": assets }))
        }
        Endpoint::Catalog | Endpoint::Reload => {
            (StatusCode::OK, catalog_json(&api.reloads.status()))
        }
    }
}

/// `POST /api/v1/reload`.
async fn reload<B>(api: &ApiSettings, req: &Request<B>) -> Response<Body> {
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

fn method_not_allowed(allow: &'static str, method: &Method) -> Response<Body> {
    let mut response = error_json(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("This endpoint takes {allow}."),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    without_body_for_head(response, method)
}

/// `/readyz`: 200 once the catalog is loaded and every channel has published a
/// segment or failed (a stopped channel waits for nothing), else 503; the body lists
/// what is waited for.
pub(crate) fn readiness(catalog_loaded: bool, status: &Registry) -> Response<Body> {
    let waiting: Vec<Value> = status
        .channels()
        .iter()
        .filter(|c| !c.ready)
        .map(|c| json!({ "channel": c.id, "state": c.state.as_str() }))
        .collect();
    let ready = catalog_loaded && waiting.is_empty();
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(code, &readiness_json(ready, catalog_loaded, waiting))
}

fn readiness_json(ready: bool, catalog_loaded: bool, waiting: Vec<Value>) -> Value {
    json!({ "ready": ready, "catalog_loaded": catalog_loaded, "waiting": waiting })
}

/// Seconds to the millisecond, as the API writes durations.
fn seconds(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1000.0).round() / 1000.0
}

/// A channel's status. `viewers` adds the `/ts/` clients to the HLS and DASH players
/// estimated from segment requests (see `status::ChannelStatus::snapshot`).
fn channel_json(channel: &ChannelSnapshot, ts_clients: usize, now: SystemTime) -> Value {
    json!({
        "id": channel.id,
        "state": channel.state.as_str(),
        "state_since": timestamp(channel.since),
        "uptime_seconds": channel.uptime(now).map(seconds),
        "restarts": channel.restarts,
        "failovers": channel.failovers,
        "input": channel.input,
        "input_bitrate": channel.input_bitrate.map(f64::round),
        "last_error": channel.last_error.as_ref().map(last_error_json),
        "live_edge_age_seconds": channel.live_edge_age(now).map(seconds),
        "segment_duration_seconds": seconds(channel.segment_duration),
        "tracks": channel.tracks.iter().map(|t| json!({
            "name": t.name,
            "segments": t.segments,
            "encode_speed": t.encode_speed.map(|s| (s * 1000.0).round() / 1000.0),
        })).collect::<Vec<_>>(),
        "viewers": channel.segment_viewers + ts_clients as u64,
        "ts_clients": ts_clients,
    })
}

fn last_error_json(error: &LastError) -> Value {
    json!({ "message": error.message, "at": timestamp(error.at) })
}

fn asset_json(asset: &AssetStatus) -> Value {
    json!({
        "id": asset.id,
        "title": asset.title,
        "status": asset.state.as_str(),
        "progress": asset.progress.map(|p| (p * 1000.0).round() / 1000.0),
        "available": asset.available,
        "last_error": asset.last_error.as_ref().map(last_error_json),
    })
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
    use crate::status::{AssetState, ChannelState, TrackSnapshot};
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

    /// An API over a reloader of an empty catalog file (no channel, so no pipeline),
    /// and a status registry the tests fill by hand.
    struct Fixture {
        dir: PathBuf,
        api: ApiSettings,
        status: Arc<Registry>,
        store: Arc<SegmentStore>,
        _running: crate::reload::Running,
    }

    impl Fixture {
        fn new(token: Option<&str>, public_read: bool) -> Fixture {
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
            let store = SegmentStore::new();
            let status = Registry::new();
            let supervisor = Supervisor::start(catalog.clone(), store.clone(), status.clone());
            let (listing, _) = watch::channel(catalog.clone());
            let (reloads, running) =
                Reloader::new(vec![file], catalog, supervisor, listing).spawn();
            Fixture {
                dir,
                _running: running,
                status,
                store,
                api: ApiSettings {
                    reloads,
                    token: token.map(|t| ApiToken::new(t).expect("a valid token")),
                    public_read,
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
            let operations = Operations {
                status: &self.status,
                store: &self.store,
            };
            let response = respond(&self.api, &operations, &endpoint, &req).await;
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
    async fn a_public_api_reads_without_a_token_but_reloading_needs_one() {
        let fixture = Fixture::new(Some(TOKEN), true);
        for endpoint in [
            Endpoint::Catalog,
            Endpoint::Channels,
            Endpoint::Vod,
            Endpoint::Channel("none".to_owned()),
        ] {
            let (status, _, _) = fixture.call(Method::GET, endpoint.clone(), None).await;
            let expected = match endpoint {
                Endpoint::Channel(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::OK,
            };
            assert_eq!(status, expected, "{endpoint:?}");
        }
        let (status, _, _) = fixture.call(Method::POST, Endpoint::Reload, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // Not public: every read needs the token too.
        let closed = Fixture::new(Some(TOKEN), false);
        for endpoint in [
            Endpoint::Channels,
            Endpoint::Vod,
            Endpoint::Channel("x".into()),
        ] {
            let (status, _, _) = closed.call(Method::GET, endpoint.clone(), None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{endpoint:?}");
        }
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
        assert_eq!(
            keys(&spec["paths"]),
            [
                "/api/v1/catalog",
                "/api/v1/channels",
                "/api/v1/channels/{id}",
                "/api/v1/reload",
                "/api/v1/vod",
                "/healthz",
                "/metrics",
                "/readyz"
            ]
        );
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
            rejected: 1,
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

        let error = LastError {
            message: "the source ended".to_owned(),
            at: SystemTime::UNIX_EPOCH,
        };
        let channel = ChannelSnapshot {
            last_error: Some(error.clone()),
            ..snapshot()
        };
        let json = channel_json(
            &channel,
            1,
            SystemTime::UNIX_EPOCH + Duration::from_secs(200),
        );
        assert_eq!(required("Channel"), json_keys(&json));
        assert_eq!(required("Track"), json_keys(&json["tracks"][0]));
        assert_eq!(required("LastError"), json_keys(&json["last_error"]));
        assert_eq!(required("ChannelList"), ["channels"]);
        let asset = AssetStatus {
            id: "film".to_owned(),
            title: "A Film".to_owned(),
            state: AssetState::Failed,
            progress: None,
            available: true,
            last_error: Some(error),
        };
        assert_eq!(required("Asset"), json_keys(&asset_json(&asset)));
        assert_eq!(required("AssetList"), ["assets"]);
        let waiting = vec![json!({ "channel": "news", "state": "starting" })];
        let readiness = readiness_json(false, true, waiting.clone());
        assert_eq!(required("Readiness"), json_keys(&readiness));
        assert_eq!(required("Waiting"), json_keys(&waiting[0]));
        // The enums list every state the code has.
        let enumeration = |schema: &str, property: &str| -> Vec<String> {
            spec["components"]["schemas"][schema]["properties"][property]["enum"]
                .as_sequence()
                .map(|s| {
                    s.iter()
                        .filter_map(|k| k.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let states: Vec<&str> = ChannelState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(enumeration("Channel", "state"), states);
        assert_eq!(enumeration("Waiting", "state"), states);
        let states: Vec<&str> = AssetState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(enumeration("Asset", "status"), states);
    }

    /// A live channel 10 s into its run, 1 s after its newest segment ended.
    fn snapshot() -> ChannelSnapshot {
        let at = |secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        ChannelSnapshot {
            id: "news".to_owned(),
            state: ChannelState::Live,
            since: at(190),
            live_since: Some(at(190)),
            restarts: 1,
            failovers: 0,
            input: Some("udp://@239.1.1.1:5000".to_owned()),
            input_bitrate: Some(4_000_123.4),
            input_bytes: 5_000_000,
            last_error: None,
            segment_duration: Duration::from_secs(2),
            newest_segment_end: Some(at(199)),
            tracks: vec![TrackSnapshot {
                name: "720p".to_owned(),
                segments: 5,
                encode_speed: Some(1.00049),
            }],
            segment_viewers: 2,
            ready: true,
        }
    }

    #[test]
    fn a_channel_is_reported_with_its_numbers() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(200);
        assert_eq!(
            channel_json(&snapshot(), 3, now),
            json!({
                "id": "news",
                "state": "live",
                "state_since": "1970-01-01T00:03:10.000Z",
                "uptime_seconds": 10.0,
                "restarts": 1,
                "failovers": 0,
                "input": "udp://@239.1.1.1:5000",
                "input_bitrate": 4_000_123.0,
                "last_error": null,
                "live_edge_age_seconds": 1.0,
                "segment_duration_seconds": 2.0,
                "tracks": [{ "name": "720p", "segments": 5, "encode_speed": 1.0 }],
                "viewers": 5,
                "ts_clients": 3,
            })
        );
    }

    #[tokio::test]
    async fn channels_and_assets_are_listed_from_the_registry() {
        let fixture = Fixture::new(Some(TOKEN), false);
        let auth = format!("Bearer {TOKEN}");
        let news = fixture.status.register("news", ChannelState::Starting);
        news.run_starting("test://", Duration::from_secs(2));
        fixture.status.register("off", ChannelState::Stopped);
        let (status, _, body) = fixture
            .call(Method::GET, Endpoint::Channels, Some(&auth))
            .await;
        assert_eq!(status, StatusCode::OK);
        let states: Vec<(&str, &str)> = body["channels"]
            .as_array()
            .map(|c| {
                c.iter()
                    .map(|c| {
                        (
                            c["id"].as_str().unwrap_or(""),
                            c["state"].as_str().unwrap_or(""),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(states, [("news", "starting"), ("off", "stopped")]);

        news.segment_published("720p", SystemTime::now());
        let (status, _, body) = fixture
            .call(Method::GET, Endpoint::Channel("news".into()), Some(&auth))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["state"], "live");
        assert_eq!(body["input"], "test://");
        assert_eq!(body["tracks"][0]["segments"], 1);
        assert!(
            body["live_edge_age_seconds"]
                .as_f64()
                .is_some_and(|a| a < 1.0),
            "{body}"
        );
        assert_eq!(body["viewers"], 0);

        let (status, _, body) = fixture
            .call(Method::GET, Endpoint::Channel("nope".into()), Some(&auth))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], "No channel `nope`.");

        fixture.status.set_assets(vec![AssetStatus {
            id: "film".to_owned(),
            title: "A Film".to_owned(),
            state: AssetState::Ingesting,
            progress: Some(0.4567),
            available: false,
            last_error: None,
        }]);
        let (status, _, body) = fixture.call(Method::GET, Endpoint::Vod, Some(&auth)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({ "assets": [{
                "id": "film",
                "title": "A Film",
                "status": "ingesting",
                "progress": 0.457,
                "available": false,
                "last_error": null,
            }] })
        );
    }

    #[tokio::test]
    async fn readiness_waits_for_every_channel_to_publish_or_fail() {
        let body = |response: Response<Body>| async move {
            let (parts, body) = response.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let value: Value = serde_json::from_slice(&bytes).expect("JSON");
            (parts.status, value)
        };
        let status = Registry::new();
        let (code, value) = body(readiness(false, &status)).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            value,
            json!({ "ready": false, "catalog_loaded": false, "waiting": [] })
        );
        let news = status.register("news", ChannelState::Starting);
        let broken = status.register("broken", ChannelState::Starting);
        status.register("off", ChannelState::Stopped);
        let (code, value) = body(readiness(true, &status)).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            value["waiting"],
            json!([
                { "channel": "broken", "state": "starting" },
                { "channel": "news", "state": "starting" },
            ])
        );
        broken.run_failed("no such file".to_owned());
        news.segment_published("720p", SystemTime::now());
        let (code, value) = body(readiness(true, &status)).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(
            value,
            json!({ "ready": true, "catalog_loaded": true, "waiting": [] })
        );
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
            Some(READ_ALLOW.as_bytes())
        );
        let (status, headers, _) = fixture.call(Method::OPTIONS, Endpoint::Reload, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(
            headers.get("allow").map(|v| v.as_bytes()),
            Some(RELOAD_ALLOW.as_bytes())
        );
    }
}
