//! Requests to responses: target checks, routing, store lookups, VOD files, conditional
//! requests, ranges, and the headers every answer carries. Free of sockets, so it is
//! tested without one; `mod.rs` wraps it in a hyper service. Live answers come from
//! memory at once; VOD answers read one file with `tokio::fs` (the blocking pool), so a
//! slow disk never holds a runtime thread.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{Either, Full, StreamBody};
use hyper::body::{Body as _, Frame};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Version};

use tokio::sync::watch;

use super::api::{self, ApiSettings, Operations};
use super::etag;
use super::listing::{self, FailureLog, ListingError, PublicUrl};
use super::metrics::{self, HttpMetrics, RouteKind, Scrape};
use super::page::{self, Overview, Playable, UiFile};
use super::range::{self, ByteRange};
use super::route::{self, Route, RouteError, VodFile, Watch};
use super::ClientConnection;
use crate::catalog::Catalog;
use crate::status::Registry;
use crate::store::{Document, LiveChannel, SegmentStore, AUDIO_TRACK, THUMBNAIL_INTERVAL};
use crate::ts::{Subscription, TooSlow};

/// A whole answer from memory or disk, or a transport stream that goes on as long as
/// the client reads.
pub(crate) type Body = Either<Full<Bytes>, StreamBody<TsFrames>>;

/// A TS client's stream as HTTP body frames, counted into the `ts` route's bytes as
/// they go.
pub(crate) struct TsFrames(Subscription, Arc<HttpMetrics>);

impl futures_util::Stream for TsFrames {
    /// A client dropped as too slow fails its body, so hyper aborts the connection
    /// instead of ending the response as if the stream were over.
    type Item = Result<Frame<Bytes>, TooSlow>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.0).poll_next(cx);
        if let Poll::Ready(Some(Ok(bytes))) = &polled {
            self.1.add_bytes(RouteKind::Ts, bytes.len() as u64);
        }
        polled.map(|chunk| chunk.map(|bytes| bytes.map(Frame::data)))
    }
}

fn whole(bytes: Bytes) -> Body {
    Either::Left(Full::new(bytes))
}

fn empty() -> Body {
    whole(Bytes::new())
}

const SERVER: &str = "headend";
const ALLOW: &str = "GET, HEAD, OPTIONS";
const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
/// ISO/IEC 23009-1 Annex C.
const MPD_TYPE: &str = "application/dash+xml";
const WEBVTT_TYPE: &str = "text/vtt; charset=utf-8";
const VIDEO_INIT_TYPE: &str = "video/mp4";
const AUDIO_INIT_TYPE: &str = "audio/mp4";
/// IANA's type for CMAF/ISO BMFF media segments (RFC 8216 §3.3 leaves the type open).
const SEGMENT_TYPE: &str = "video/iso.segment";
const TEXT_TYPE: &str = "text/plain; charset=utf-8";
const HTML_TYPE: &str = "text/html; charset=utf-8";
const JPEG_TYPE: &str = "image/jpeg";
/// RFC 3555 §4.2.9: an MPEG-2 transport stream.
const TS_TYPE: &str = "video/mp2t";
/// The M3U channel list. `audio/x-mpegurl` is what shared-mime-info, Apache and
/// players (VLC, Kodi) take for `.m3u`; `application/vnd.apple.mpegurl` would claim an
/// HLS playlist, which this is not. No `charset` parameter: the extended M3U of IPTV
/// apps is UTF-8 by convention, and some players compare the type string whole.
const M3U_TYPE: &str = "audio/x-mpegurl";
const XMLTV_TYPE: &str = "application/xml; charset=utf-8";
/// The channel list changes only with the catalog; a few seconds lets an edge cache
/// absorb a burst of set-top boxes starting at once.
const M3U_CACHE: &str = "max-age=5";
/// The guide follows EPG file edits within a minute; apps fetch it rarely.
const GUIDE_CACHE: &str = "max-age=60";
/// Init segments and media segments never change under their URL, so caches may keep
/// them for the longest time RFC 9111 practice allows and skip revalidation.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Errors and health answers describe a moment: a cached 404 for a segment just ahead
/// of the live edge would hide it once it exists.
const NO_STORE: &str = "no-store";
/// Headers a browser player may read from a cross-origin response.
const EXPOSE_HEADERS: &str = "Content-Length, Content-Range, ETag";
/// Request headers a cross-origin player may send (preflight answer).
const ALLOW_HEADERS: &str = "Range, If-None-Match, If-Range";
/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: &str = "86400";
/// A VOD playlist, MPD, subtitle file or poster changes only when its asset is
/// ingested again; a few minutes keeps caches useful and lets a re-ingest show soon.
const VOD_DESCRIPTION_CACHE: &str = "public, max-age=300";
/// The pages show a moment (states, the newest thumbnail) and their files change with
/// the binary: a browser revalidates each time (a 304 is cheap) and never shows an
/// old state or an old script with a new page.
const REVALIDATE: &str = "no-cache";
/// What a client should wait before asking again for a channel that is starting.
const RETRY_AFTER_SECS: &str = "1";

/// `Cache-Control` for a live playlist. HLS CDN practice is to cache a live playlist
/// for no longer than half the target duration, or a player behind the cache falls a
/// segment behind and stalls. Whole seconds, rounded down; below one second only
/// revalidation is safe.
pub(crate) fn playlist_cache_control(target_duration: Duration) -> Cow<'static, str> {
    /// The usual values, written once rather than on every request.
    const COMMON: [&str; 6] = [
        "no-cache",
        "max-age=1",
        "max-age=2",
        "max-age=3",
        "max-age=4",
        "max-age=5",
    ];
    let secs = (target_duration / 2).as_secs();
    match usize::try_from(secs).ok().and_then(|i| COMMON.get(i)) {
        Some(common) => Cow::Borrowed(common),
        None => Cow::Owned(format!("max-age={secs}")),
    }
}

/// Where answers come from: the live window in memory, the VOD library on disk, and
/// the catalog for the IPTV listings. Cloning shares everything.
#[derive(Clone)]
pub(crate) struct Sources {
    pub store: Arc<SegmentStore>,
    /// `{data}/vod`; `None` serves no VOD.
    pub vod_root: Option<PathBuf>,
    /// What `/playlist.m3u` and `/epg.xml` list: the running catalog, which a reload
    /// replaces; `None` serves neither.
    pub catalog: Option<watch::Receiver<Arc<Catalog>>>,
    /// The base of the listings' URLs; `None` takes it from each request.
    pub public_url: Option<PublicUrl>,
    pub epg_failures: Arc<FailureLog>,
    /// The operations API under `/api/v1/`; `None` answers 404 there.
    pub api: Option<ApiSettings>,
    /// The channels' and VOD assets' status: the API, `/metrics` and `/readyz` read
    /// it, and segment requests are counted into it.
    pub status: Arc<Registry>,
    /// Requests answered and bytes sent, for `/metrics`.
    pub http: Arc<HttpMetrics>,
}

impl Sources {
    /// Sources with nothing but the store: no VOD, no listings, no API, and no
    /// channel registered.
    pub fn new(store: Arc<SegmentStore>) -> Sources {
        Sources {
            store,
            vod_root: None,
            catalog: None,
            public_url: None,
            epg_failures: Arc::default(),
            api: None,
            status: Registry::new(),
            http: Arc::default(),
        }
    }
}

/// Answers one request and counts it (by route kind and status) with the bytes of its
/// body; a transport stream counts its bytes as they are sent.
pub(crate) async fn respond<B>(sources: &Sources, req: &Request<B>) -> Response<Body> {
    let route = is_origin_form(req).then(|| route::parse(req.uri().path()));
    let kind = match &route {
        Some(Ok(route)) => route.kind(),
        _ => RouteKind::Unknown,
    };
    let response = answer(sources, req, route).await;
    let body_bytes = response.body().size_hint().exact().unwrap_or(0);
    sources.http.record(kind, response.status(), body_bytes);
    response
}

/// The answer to a request whose target parsed to `route` (`None`: not origin-form).
async fn answer<B>(
    sources: &Sources,
    req: &Request<B>,
    route: Option<Result<Route, RouteError>>,
) -> Response<Body> {
    let method = req.method();
    let Some(route) = route else {
        return error(StatusCode::BAD_REQUEST, method);
    };
    if route == Err(RouteError::BadPath) {
        return error(StatusCode::BAD_REQUEST, method);
    }
    // The API has its own methods, answers and access rules.
    if let Ok(Route::Api(endpoint)) = &route {
        return match &sources.api {
            Some(settings) => {
                let operations = Operations {
                    status: &sources.status,
                    store: &sources.store,
                };
                api::respond(settings, &operations, endpoint, req).await
            }
            None => error(StatusCode::NOT_FOUND, method),
        };
    }
    match *method {
        Method::GET | Method::HEAD => {}
        Method::OPTIONS => return preflight(),
        _ => return method_not_allowed(method),
    }
    let resource = match route {
        Ok(Route::Ts { channel }) => return transport_stream(sources, &channel, req),
        Ok(Route::Ready) => {
            let response = api::readiness(sources.catalog.is_some(), &sources.status);
            return without_body_for_head(response, method);
        }
        Ok(Route::Metrics) => Ok(metrics_text(sources)),
        Ok(Route::Home) => operator_page(sources),
        Ok(Route::Watch(watch)) => player_page(sources, &watch),
        Ok(Route::Ui(file)) => Ok(ui_file(file)),
        Ok(Route::Vod { asset, file }) => match &sources.vod_root {
            Some(root) => vod_file(root, &asset, &file).await,
            None => Err(Missing::NotFound),
        },
        Ok(route @ (Route::Playlist | Route::Guide)) => match listing(sources, req, &route).await {
            Ok(resource) => Ok(resource),
            Err(ListingError::NoCatalog) => Err(Missing::NotFound),
            Err(ListingError::BadRequest(message)) => {
                return error_text(StatusCode::BAD_REQUEST, method, &format!("{message}\n"));
            }
            Err(ListingError::Internal) => {
                return error(StatusCode::INTERNAL_SERVER_ERROR, method);
            }
        },
        Ok(route) => {
            let found = lookup(&sources.store, &route);
            if let (Ok(_), Route::Segment { channel, track, .. }) = (&found, &route) {
                if let Some(status) = sources.status.channel(channel) {
                    status.segment_requested(track == AUDIO_TRACK);
                }
            }
            found
        }
        Err(_) => Err(Missing::NotFound),
    };
    let response = match resource {
        Ok(resource) => represent(resource, req.headers(), method),
        Err(Missing::NotFound) => error(StatusCode::NOT_FOUND, method),
        Err(Missing::NotYet) => {
            let mut response = error(StatusCode::SERVICE_UNAVAILABLE, method);
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
            response
        }
    };
    without_body_for_head(response, method)
}

/// `/ts/{channel}`: the channel's transport stream from its GOP cache on, for as long
/// as the client keeps up. No length, no ranges, no caching: it is live. HEAD answers
/// the headers without joining. Over HTTP/1, the connection's send buffer is sized to
/// the stream (about a second of it): the kernel's own would hold up to a minute of a
/// low-rate stream before a stalled client's queue began to fill. HTTP/2 connections
/// are left alone, as their other streams share the socket.
fn transport_stream<B>(sources: &Sources, channel: &str, req: &Request<B>) -> Response<Body> {
    let method = req.method();
    let Some(live) = sources.store.channel(channel) else {
        return error(StatusCode::NOT_FOUND, method);
    };
    let hub = live.ts();
    if !hub.ready() {
        let mut response = error(StatusCode::SERVICE_UNAVAILABLE, method);
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        );
        return response;
    }
    let body = match *method {
        Method::HEAD => empty(),
        _ => {
            let subscription = hub.subscribe();
            let connection = req.extensions().get::<ClientConnection>();
            if let Some(connection) = connection.filter(|_| req.version() <= Version::HTTP_11) {
                connection
                    .socket
                    .set_send_buffer(subscription.send_buffer());
            }
            Either::Right(StreamBody::new(TsFrames(
                subscription,
                sources.http.clone(),
            )))
        }
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    common_headers(headers);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(TS_TYPE));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
    response
}

/// RFC 9112 §3.2: an origin server is asked with origin-form (`/path?query`). We take
/// nothing else: absolute-form is for proxies, authority-form for CONNECT, asterisk-form
/// (`OPTIONS *`) asks about the server, which has nothing to say. HTTP/2 carries the
/// scheme and authority in their own pseudo-headers, so there only `:path` is checked.
fn is_origin_form<B>(req: &Request<B>) -> bool {
    let uri = req.uri();
    let path_ok = uri.path().starts_with('/');
    match req.version() {
        Version::HTTP_2 | Version::HTTP_3 => path_ok,
        _ => path_ok && uri.scheme().is_none() && uri.authority().is_none(),
    }
}

/// `/playlist.m3u` or `/epg.xml`, from the catalog.
async fn listing<B>(
    sources: &Sources,
    req: &Request<B>,
    route: &Route,
) -> Result<Resource, ListingError> {
    // The catalog at this moment; a reload during the request does not change it.
    let catalog = catalog(sources).ok_or(ListingError::NoCatalog)?;
    let (body, content_type, cache_control) = if *route == Route::Playlist {
        let transport = listing::transport(req.uri().query())?;
        let base = listing::base_url(sources.public_url.as_ref(), req);
        let body = listing::playlist(&catalog, &base, transport);
        (body, M3U_TYPE, M3U_CACHE)
    } else {
        let body = listing::guide_off_runtime(catalog, Arc::clone(&sources.epg_failures)).await?;
        (body, XMLTV_TYPE, GUIDE_CACHE)
    };
    let body = Bytes::from(body);
    let etag = etag::for_content(&body);
    Ok(Resource {
        body,
        content_type,
        cache_control: Cow::Borrowed(cache_control),
        etag: Some(etag),
    })
}

/// The running catalog, if the origin serves one.
fn catalog(sources: &Sources) -> Option<Arc<Catalog>> {
    sources
        .catalog
        .as_ref()
        .map(|catalog| catalog.borrow().clone())
}

/// `/`: the channels and VOD assets of the running catalog with their states.
fn operator_page(sources: &Sources) -> Result<Resource, Missing> {
    let catalog = catalog(sources).ok_or(Missing::NotFound)?;
    let thumbnail = |id: &str| {
        let thumbnail = sources.store.channel(id)?.thumbnail()?;
        Some(thumbnail.version)
    };
    let html = page::operator_page(&Overview {
        catalog: &catalog,
        channels: &sources.status.channels(),
        assets: &sources.status.assets(),
        thumbnail: &thumbnail,
        refresh: THUMBNAIL_INTERVAL,
    });
    Ok(html_page(html))
}

/// `/watch/...`: a player for a channel with HLS or a VOD asset of the catalog.
fn player_page(sources: &Sources, watch: &Watch) -> Result<Resource, Missing> {
    let catalog = catalog(sources).ok_or(Missing::NotFound)?;
    let playable = match watch {
        Watch::Live(id) => catalog
            .channels
            .iter()
            .find(|c| c.id == *id && c.outputs.hls)
            .map(Playable::Channel),
        Watch::Vod(id) => catalog
            .assets
            .iter()
            .find(|a| a.id == *id)
            .map(Playable::Asset),
    };
    let playable = playable.ok_or(Missing::NotFound)?;
    Ok(html_page(page::player_page(&playable)))
}

fn html_page(html: String) -> Resource {
    let body = Bytes::from(html);
    Resource {
        etag: Some(etag::for_content(&body)),
        body,
        content_type: HTML_TYPE,
        cache_control: Cow::Borrowed(REVALIDATE),
    }
}

fn ui_file(file: &'static UiFile) -> Resource {
    Resource {
        body: Bytes::from_static(file.body),
        content_type: file.content_type,
        cache_control: Cow::Borrowed(REVALIDATE),
        etag: Some(file.etag().to_owned()),
    }
}

/// A representation found in the store.
struct Resource {
    body: Bytes,
    content_type: &'static str,
    cache_control: Cow<'static, str>,
    etag: Option<String>,
}

enum Missing {
    /// No such channel, track or segment (or the segment left the window): 404.
    NotFound,
    /// The channel exists but has not published this yet: 503 with Retry-After.
    NotYet,
}

fn lookup(store: &SegmentStore, route: &Route) -> Result<Resource, Missing> {
    match route {
        Route::Health => Ok(Resource {
            body: Bytes::from_static(b"ok"),
            content_type: TEXT_TYPE,
            cache_control: Cow::Borrowed(NO_STORE),
            etag: None,
        }),
        // ISO/IEC 23009-1 5.8.5.7 (`urn:mpeg:dash:utc:http-iso:2014`): the time as an
        // ISO 8601 UTC date-time; a player corrects its clock by it, so never cached.
        Route::Time => Ok(Resource {
            body: Bytes::from(utc_now()),
            content_type: TEXT_TYPE,
            cache_control: Cow::Borrowed(NO_STORE),
            etag: None,
        }),
        Route::Manifest { channel } => {
            let live = store.channel(channel).ok_or(Missing::NotFound)?;
            let body = live.manifest().ok_or_else(|| {
                // A channel that lists its HLS variants but no MPD has no DASH.
                if live.master_playlist().is_some() {
                    Missing::NotFound
                } else {
                    Missing::NotYet
                }
            })?;
            let mut resource = playlist(body, &live);
            resource.content_type = MPD_TYPE;
            Ok(resource)
        }
        // Answered from disk by `vod_file`, from the catalog by `listing`, and by
        // `answer` itself.
        Route::Thumbnail { channel } => {
            let live = store.channel(channel).ok_or(Missing::NotFound)?;
            let thumbnail = live.thumbnail().ok_or(Missing::NotYet)?;
            Ok(Resource {
                etag: Some(etag::for_content(&thumbnail.jpeg)),
                body: thumbnail.jpeg,
                content_type: JPEG_TYPE,
                cache_control: Cow::Borrowed(REVALIDATE),
            })
        }
        Route::Vod { .. }
        | Route::Home
        | Route::Watch(_)
        | Route::Ui(_)
        | Route::Playlist
        | Route::Guide
        | Route::Ts { .. }
        | Route::Api(_)
        | Route::Ready
        | Route::Metrics => Err(Missing::NotFound),
        Route::Master { channel } => {
            let live = store.channel(channel).ok_or(Missing::NotFound)?;
            let body = live.master_playlist().ok_or(Missing::NotYet)?;
            Ok(playlist(body, &live))
        }
        Route::MediaPlaylist { channel, track } => {
            let live = store.channel(channel).ok_or(Missing::NotFound)?;
            let body = live
                .media_playlist(track)
                .ok_or_else(|| not_yet_or_not_found(&live, track))?;
            Ok(playlist(body, &live))
        }
        Route::Init {
            channel,
            track,
            version,
        } => {
            let live = store.channel(channel).ok_or(Missing::NotFound)?;
            let body = live
                .init_segment(track, *version)
                .ok_or_else(|| match version {
                    // Playlists name a version only once it is published.
                    Some(_) => Missing::NotFound,
                    None => not_yet_or_not_found(&live, track),
                })?;
            let content_type = if track == AUDIO_TRACK {
                AUDIO_INIT_TYPE
            } else {
                VIDEO_INIT_TYPE
            };
            // A version never changes; `init.mp4` (the newest) does when a channel
            // restarts, so it is cached like a playlist and its tag follows the bytes.
            let etag = etag::for_content(&body);
            let cache_control = match version {
                Some(_) => Cow::Borrowed(IMMUTABLE),
                None => playlist_cache_control(live.target_duration()),
            };
            Ok(Resource {
                body,
                content_type,
                cache_control,
                etag: Some(etag),
            })
        }
        Route::Segment {
            channel,
            track,
            sequence,
        } => {
            let live = store.channel(channel).ok_or(Missing::NotFound)?;
            // A sequence outside the window is gone (or not yet made): 404 either way,
            // as a player that asks for it has lost the live edge and must reload.
            let body = live.segment(track, *sequence).ok_or(Missing::NotFound)?;
            let etag = etag::for_segment(channel, track, *sequence, body.len());
            Ok(Resource {
                body,
                content_type: SEGMENT_TYPE,
                cache_control: Cow::Borrowed(IMMUTABLE),
                etag: Some(etag),
            })
        }
    }
}

/// `/metrics`: every channel's, the HTTP server's, the catalog's and the VOD
/// ingest's numbers in the Prometheus text format. Public, like `/healthz`: scrapers
/// rarely send tokens, and nothing in it is secret (channel and track ids, counts).
fn metrics_text(sources: &Sources) -> Resource {
    let channels = sources.status.channels();
    let ts_clients: BTreeMap<String, usize> = sources
        .store
        .channel_ids()
        .into_iter()
        .filter_map(|id| {
            let clients = sources.store.channel(&id)?.ts().clients();
            Some((id, clients))
        })
        .collect();
    let catalog = sources.api.as_ref().map(|api| api.reloads.status());
    let assets = sources.status.assets();
    let text = metrics::render(&Scrape {
        now: SystemTime::now(),
        channels: &channels,
        ts_clients: &ts_clients,
        http: &sources.http,
        catalog: catalog.as_ref(),
        assets: &assets,
    });
    Resource {
        body: Bytes::from(text),
        content_type: metrics::CONTENT_TYPE,
        cache_control: Cow::Borrowed(NO_STORE),
        etag: None,
    }
}

/// `2026-11-21T12:00:00.123Z`.
fn utc_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A file of a published VOD asset: `{root}/{asset}` is a link to the published
/// version's folder (see `vod::Library`), read once so the tag and the bytes come from
/// one version even while a re-ingest swaps the link. `asset` and `file` were checked
/// by the router; the version is a single name the library wrote.
async fn vod_file(root: &Path, asset: &str, file: &VodFile) -> Result<Resource, Missing> {
    let version = tokio::fs::read_link(root.join(asset))
        .await
        .map_err(|_| Missing::NotFound)?;
    let version = version
        .to_str()
        .filter(|v| !v.is_empty() && !v.starts_with('.') && !v.contains('/'))
        .ok_or(Missing::NotFound)?;
    let relative = file.relative_path();
    let body = tokio::fs::read(root.join(version).join(&relative))
        .await
        .map_err(|_| Missing::NotFound)?;
    let body = Bytes::from(body);
    let (content_type, cache_control) = match file {
        VodFile::Master
        | VodFile::MediaPlaylist { .. }
        | VodFile::IFramePlaylist { .. }
        | VodFile::SubtitlePlaylist { .. } => (PLAYLIST_TYPE, VOD_DESCRIPTION_CACHE),
        VodFile::Manifest => (MPD_TYPE, VOD_DESCRIPTION_CACHE),
        VodFile::Subtitles { .. } => (WEBVTT_TYPE, VOD_DESCRIPTION_CACHE),
        VodFile::Poster { extension } => (poster_type(extension), VOD_DESCRIPTION_CACHE),
        VodFile::Init { track } if track == AUDIO_TRACK => (AUDIO_INIT_TYPE, IMMUTABLE),
        VodFile::Init { .. } => (VIDEO_INIT_TYPE, IMMUTABLE),
        VodFile::Segment { .. } => (SEGMENT_TYPE, IMMUTABLE),
    };
    let etag = etag::for_file(version, &relative.to_string_lossy(), body.len() as u64);
    Ok(Resource {
        body,
        content_type,
        cache_control: Cow::Borrowed(cache_control),
        etag: Some(etag),
    })
}

fn poster_type(extension: &str) -> &'static str {
    match extension {
        "png" => "image/png",
        "webp" => "image/webp",
        _ => "image/jpeg",
    }
}

/// The store cannot say which tracks a channel will have. While a channel has not
/// published its master playlist it is starting, and any track may still appear; after
/// that, a track with an init segment is real and only its playlist is late.
fn not_yet_or_not_found(live: &LiveChannel, track: &str) -> Missing {
    if live.master_playlist().is_none() || live.init_segment(track, None).is_some() {
        Missing::NotYet
    } else {
        Missing::NotFound
    }
}

/// A published playlist or manifest, tagged by the hash taken when it was published.
fn playlist(document: Document, live: &LiveChannel) -> Resource {
    Resource {
        etag: Some(etag::for_hash(document.hash, document.bytes.len())),
        body: document.bytes,
        content_type: PLAYLIST_TYPE,
        cache_control: playlist_cache_control(live.target_duration()),
    }
}

/// Applies `If-None-Match`, `Range` and `If-Range` to a found resource.
fn represent(resource: Resource, request: &HeaderMap, method: &Method) -> Response<Body> {
    let Resource {
        body,
        content_type,
        cache_control,
        etag,
    } = resource;

    // RFC 9110 §13.2.2: If-None-Match is evaluated before Range.
    if let Some(tag) = &etag {
        let values = request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .map(HeaderValue::as_bytes);
        if etag::none_match(values, tag) {
            let mut response = Response::new(empty());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            let headers = response.headers_mut();
            common_headers(headers);
            insert_text(headers, header::ETAG, tag);
            insert_text(headers, header::CACHE_CONTROL, &cache_control);
            return response;
        }
    }

    let len = body.len() as u64;
    // RFC 9110 §14.2: GET is the only method with range handling; a server MUST ignore
    // Range on any other, HEAD included.
    let byte_range = match request.get(header::RANGE) {
        Some(range) if *method == Method::GET && if_range_allows(request, etag.as_deref()) => {
            range::evaluate(range.as_bytes(), len)
        }
        _ => ByteRange::Full,
    };

    let (status, body, content_range) = match byte_range {
        ByteRange::Full => (StatusCode::OK, body, None),
        ByteRange::Partial { start, end } => {
            // `evaluate` keeps `start <= end < len`, and len came from a usize.
            let slice = body.slice(start as usize..=end as usize);
            let content_range = format!("bytes {start}-{end}/{len}");
            (StatusCode::PARTIAL_CONTENT, slice, Some(content_range))
        }
        ByteRange::Unsatisfiable => {
            let mut response = Response::new(empty());
            *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            let headers = response.headers_mut();
            common_headers(headers);
            headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
            insert_text(headers, header::CONTENT_RANGE, &format!("bytes */{len}"));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
            return response;
        }
    };

    let body_len = body.len() as u64;
    let mut response = Response::new(whole(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    common_headers(headers);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body_len));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    insert_text(headers, header::CACHE_CONTROL, &cache_control);
    if let Some(tag) = &etag {
        insert_text(headers, header::ETAG, tag);
    }
    if content_type == HTML_TYPE {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(page::CONTENT_SECURITY_POLICY),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
    }
    if let Some(content_range) = content_range {
        insert_text(headers, header::CONTENT_RANGE, &content_range);
    }
    response
}

/// No `If-Range`, or one naming the current strong tag: the Range header applies.
fn if_range_allows(request: &HeaderMap, etag: Option<&str>) -> bool {
    match request.get(header::IF_RANGE) {
        None => true,
        Some(value) => etag.is_some_and(|tag| etag::if_range_matches(value.as_bytes(), tag)),
    }
}

fn preflight() -> Response<Body> {
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    common_headers(headers);
    headers.insert(header::ALLOW, HeaderValue::from_static(ALLOW));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOW),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    response
}

fn method_not_allowed(method: &Method) -> Response<Body> {
    let mut response = error(StatusCode::METHOD_NOT_ALLOWED, method);
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
    response
}

/// A short plain-text error. The body is the reason phrase, so it says nothing about
/// the store that the status does not already say.
fn error(status: StatusCode, method: &Method) -> Response<Body> {
    let text = format!("{}\n", status.canonical_reason().unwrap_or("error"));
    error_text(status, method, &text)
}

/// A plain-text error that says what to send instead.
fn error_text(status: StatusCode, method: &Method, text: &str) -> Response<Body> {
    let text = text.to_owned();
    let len = text.len() as u64;
    let mut response = Response::new(whole(Bytes::from(text)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    common_headers(headers);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_TYPE));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
    without_body_for_head(response, method)
}

/// A HEAD answer keeps every header of the GET answer (Content-Length included) and
/// drops the body; hyper sends the headers as they are.
fn without_body_for_head(response: Response<Body>, method: &Method) -> Response<Body> {
    if *method != Method::HEAD {
        return response;
    }
    let (parts, _) = response.into_parts();
    Response::from_parts(parts, empty())
}

/// Headers on every answer. `Date` is added by hyper.
fn common_headers(headers: &mut HeaderMap) {
    headers.insert(header::SERVER, HeaderValue::from_static(SERVER));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
}

/// Inserts a header built from text we generated (tags, numbers, fixed words), which
/// is always a valid header value; a bug that broke that drops the header rather than
/// the response.
fn insert_text(headers: &mut HeaderMap, name: HeaderName, text: &str) {
    match HeaderValue::from_str(text) {
        Ok(value) => {
            headers.insert(name, value);
        }
        Err(_) => debug_assert!(false, "invalid {name} header value {text:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoredSegment;
    use futures_util::FutureExt;
    use http_body_util::BodyExt;

    const SEGMENT: &[u8] = b"0123456789abcdefghij";

    fn store() -> Arc<SegmentStore> {
        let store = SegmentStore::new();
        let live = store.channel_or_insert("news", Duration::from_secs(6));
        live.publish_master(Bytes::from_static(b"#EXTM3U\nmaster\n"));
        live.publish_init("720p", 0, Bytes::from_static(b"video-init"));
        live.publish_init(AUDIO_TRACK, 0, Bytes::from_static(b"audio-init"));
        let segment = StoredSegment {
            sequence: 7,
            init: 0,
            data: Bytes::from_static(SEGMENT),
        };
        live.publish_segment("720p", segment, Bytes::from_static(b"#EXTM3U\n720p\n"), 0);
        store
    }

    fn request(method: Method, target: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder().method(method).uri(target);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).expect("test request")
    }

    /// Live answers never wait, so their future is ready at once.
    fn respond(store: &Arc<SegmentStore>, req: &Request<()>) -> Response<Body> {
        let sources = Sources::new(Arc::clone(store));
        super::respond(&sources, req)
            .now_or_never()
            .expect("a live answer is ready at once")
    }

    fn get(store: &Arc<SegmentStore>, target: &str, headers: &[(&str, &str)]) -> Response<Body> {
        respond(store, &request(Method::GET, target, headers))
    }

    fn header<'a>(response: &'a Response<Body>, name: &str) -> Option<&'a str> {
        response.headers().get(name).and_then(|v| v.to_str().ok())
    }

    async fn body(response: Response<Body>) -> Vec<u8> {
        let collected = response.into_body().collect().await;
        collected.expect("a whole body").to_bytes().to_vec()
    }

    #[test]
    fn playlist_cache_lifetime_is_at_most_half_the_target_duration() {
        let cc = |ms| playlist_cache_control(Duration::from_millis(ms));
        assert_eq!(cc(6000), "max-age=3");
        assert_eq!(cc(5000), "max-age=2");
        assert_eq!(cc(4000), "max-age=2");
        assert_eq!(cc(3999), "max-age=1");
        assert_eq!(cc(2000), "max-age=1");
        assert_eq!(cc(1999), "no-cache");
        assert_eq!(cc(1000), "no-cache");
        assert_eq!(cc(0), "no-cache");
    }

    #[tokio::test]
    async fn segments_are_immutable_with_a_named_tag() {
        let store = store();
        let response = get(&store, "/live/news/720p/7.m4s", &[]);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "content-type"), Some(SEGMENT_TYPE));
        assert_eq!(header(&response, "cache-control"), Some(IMMUTABLE));
        assert_eq!(header(&response, "content-length"), Some("20"));
        let tag = etag::for_segment("news", "720p", 7, SEGMENT.len());
        assert_eq!(header(&response, "etag"), Some(tag.as_str()));
        assert_eq!(body(response).await, SEGMENT);
    }

    #[test]
    fn init_content_type_follows_the_track() {
        let store = store();
        let video = get(&store, "/live/news/720p/init.mp4", &[]);
        assert_eq!(header(&video, "content-type"), Some("video/mp4"));
        let audio = get(&store, "/live/news/audio/init.mp4", &[]);
        assert_eq!(header(&audio, "content-type"), Some("audio/mp4"));
        assert_eq!(
            header(&audio, "etag"),
            Some(etag::for_content(b"audio-init").as_str())
        );
    }

    #[test]
    fn init_versions_are_immutable_and_the_newest_is_not() {
        let store = store();
        let live = store.channel("news").unwrap();
        live.publish_init("720p", 1, Bytes::from_static(b"restarted"));
        let newest = get(&store, "/live/news/720p/init.mp4", &[]);
        assert_eq!(header(&newest, "cache-control"), Some("max-age=3"));
        let old = get(&store, "/live/news/720p/init-0.mp4", &[]);
        assert_eq!(old.status(), StatusCode::OK);
        assert_eq!(header(&old, "cache-control"), Some(IMMUTABLE));
        assert_eq!(
            header(&old, "etag"),
            Some(etag::for_content(b"video-init").as_str())
        );
        let missing = get(&store, "/live/news/720p/init-9.mp4", &[]);
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn ranges_slice_the_segment() {
        let store = store();
        let response = get(&store, "/live/news/720p/7.m4s", &[("range", "bytes=2-4")]);
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(header(&response, "content-range"), Some("bytes 2-4/20"));
        assert_eq!(header(&response, "content-length"), Some("3"));
        assert_eq!(body(response).await, b"234");

        let response = get(&store, "/live/news/720p/7.m4s", &[("range", "bytes=20-")]);
        assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(header(&response, "content-range"), Some("bytes */20"));
        assert_eq!(body(response).await, b"");
    }

    #[tokio::test]
    async fn if_range_with_a_stale_tag_gets_the_whole_segment() {
        let store = store();
        let tag = etag::for_segment("news", "720p", 7, SEGMENT.len());
        let fresh = get(
            &store,
            "/live/news/720p/7.m4s",
            &[("range", "bytes=0-0"), ("if-range", &tag)],
        );
        assert_eq!(fresh.status(), StatusCode::PARTIAL_CONTENT);
        let stale = get(
            &store,
            "/live/news/720p/7.m4s",
            &[("range", "bytes=0-0"), ("if-range", "\"old\"")],
        );
        assert_eq!(stale.status(), StatusCode::OK);
        assert_eq!(header(&stale, "content-range"), None);
        assert_eq!(body(stale).await, SEGMENT);
    }

    #[test]
    fn head_ignores_range() {
        let store = store();
        let req = request(
            Method::HEAD,
            "/live/news/720p/7.m4s",
            &[("range", "bytes=0-0")],
        );
        let response = respond(&store, &req);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "content-length"), Some("20"));
    }

    #[test]
    fn not_modified_wins_over_range() {
        let store = store();
        let tag = etag::for_segment("news", "720p", 7, SEGMENT.len());
        let response = get(
            &store,
            "/live/news/720p/7.m4s",
            &[("range", "bytes=0-0"), ("if-none-match", &tag)],
        );
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header(&response, "etag"), Some(tag.as_str()));
        assert_eq!(header(&response, "content-length"), None);
    }

    #[test]
    fn a_starting_channel_asks_to_retry() {
        let store = SegmentStore::new();
        let live = store.channel_or_insert("news", Duration::from_secs(2));
        for target in [
            "/live/news/master.m3u8",
            "/live/news/720p/index.m3u8",
            "/live/news/720p/init.mp4",
        ] {
            let response = get(&store, target, &[]);
            assert_eq!(
                response.status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "{target}"
            );
            assert_eq!(header(&response, "retry-after"), Some("1"), "{target}");
            assert_eq!(
                header(&response, "cache-control"),
                Some(NO_STORE),
                "{target}"
            );
        }
        live.publish_master(Bytes::from_static(b"#EXTM3U\n"));
        live.publish_init("720p", 0, Bytes::from_static(b"init"));
        // The master is out: a track with an init segment is late, any other is unknown.
        let late = get(&store, "/live/news/720p/index.m3u8", &[]);
        assert_eq!(late.status(), StatusCode::SERVICE_UNAVAILABLE);
        let unknown = get(&store, "/live/news/1080p/index.m3u8", &[]);
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        let unknown = get(&store, "/live/news/1080p/init.mp4", &[]);
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn targets_that_are_not_origin_form_are_refused() {
        let store = store();
        for target in ["http://example.com/healthz", "*"] {
            let response = get(&store, target, &[]);
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{target}");
        }
        let response = respond(&store, &request(Method::OPTIONS, "*", &[]));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        // HTTP/2 always carries scheme and authority; only the path matters there.
        let mut h2 = request(Method::GET, "http://example.com/healthz", &[]);
        *h2.version_mut() = Version::HTTP_2;
        assert_eq!(respond(&store, &h2).status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn requests_are_counted_by_route_kind_and_metrics_are_public_text() {
        let sources = Sources::new(store());
        let live = |target: &str, method: Method| {
            super::respond(&sources, &request(method, target, &[]))
                .now_or_never()
                .expect("a live answer is ready at once")
        };
        assert_eq!(
            live("/live/news/720p/7.m4s", Method::GET).status(),
            StatusCode::OK
        );
        assert_eq!(
            live("/live/news/720p/7.m4s", Method::HEAD).status(),
            StatusCode::OK
        );
        assert_eq!(
            live("/live/news/720p/8.m4s", Method::GET).status(),
            StatusCode::NOT_FOUND
        );
        // The raw path is never a label: every unknown path is `unknown`.
        assert_eq!(
            live("/secret-admin-path", Method::GET).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            live("/live/%2e%2e/x", Method::GET).status(),
            StatusCode::BAD_REQUEST
        );
        let response = live("/metrics", Method::GET);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header(&response, "content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        assert_eq!(header(&response, "cache-control"), Some(NO_STORE));
        let text = String::from_utf8(body(response).await).expect("UTF-8");
        for line in [
            "headend_http_requests_total{route=\"segment\",status=\"200\"} 2\n",
            "headend_http_requests_total{route=\"segment\",status=\"404\"} 1\n",
            "headend_http_requests_total{route=\"unknown\",status=\"404\"} 1\n",
            "headend_http_requests_total{route=\"unknown\",status=\"400\"} 1\n",
            // One GET of the 20-byte segment (HEAD sends no body) and the 404 texts.
            "headend_http_response_bytes_total{route=\"segment\"} 30\n",
            "headend_ts_clients{channel=\"news\"} 0\n",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
        assert!(!text.contains("secret"), "{text}");
        // Without a reloader there is no catalog to report.
        assert!(!text.contains("headend_catalog_"), "{text}");
        // The scrape itself is counted once it is answered.
        let text = String::from_utf8(body(live("/metrics", Method::GET)).await).expect("UTF-8");
        assert!(
            text.contains("headend_http_requests_total{route=\"metrics\",status=\"200\"} 1\n"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn readiness_is_json_and_needs_a_catalog() {
        let store = store();
        let response = get(&store, "/readyz", &[]);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header(&response, "content-type"), Some("application/json"));
        assert_eq!(header(&response, "cache-control"), Some(NO_STORE));
        let fixture = super::super::listing::tests::Fixture::new();
        let sources = listing_sources(&fixture.catalog, None);
        let news = sources
            .status
            .register("news", crate::status::ChannelState::Starting);
        let ready = |method| {
            super::respond(&sources, &request(method, "/readyz", &[]))
                .now_or_never()
                .expect("ready at once")
        };
        assert_eq!(ready(Method::GET).status(), StatusCode::SERVICE_UNAVAILABLE);
        news.segment_published("720p", std::time::SystemTime::now());
        let response = ready(Method::GET);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            body(response).await,
            b"{\"catalog_loaded\":true,\"ready\":true,\"waiting\":[]}\n"
        );
        let head = ready(Method::HEAD);
        assert_eq!(head.status(), StatusCode::OK);
        assert_eq!(body(head).await, b"");
        assert_eq!(ready(Method::POST).status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn segment_requests_are_counted_for_the_channel() {
        let sources = Sources::new(store());
        let news = sources
            .status
            .register("news", crate::status::ChannelState::Starting);
        news.run_starting("test://", Duration::from_secs(1));
        for _ in 0..10 {
            let req = request(Method::GET, "/live/news/720p/7.m4s", &[]);
            let response = super::respond(&sources, &req)
                .now_or_never()
                .expect("ready");
            assert_eq!(response.status(), StatusCode::OK);
        }
        // Counted per whole second: the current one is not over yet.
        assert_eq!(news.snapshot().segment_viewers, 0);
        std::thread::sleep(Duration::from_millis(1100));
        // Ten 1 s segments in a 10 s window: one player.
        assert_eq!(news.snapshot().segment_viewers, 1);
    }

    #[test]
    fn other_methods_are_not_allowed() {
        let store = store();
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            let response = respond(&store, &request(method.clone(), "/healthz", &[]));
            assert_eq!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method}"
            );
            assert_eq!(header(&response, "allow"), Some(ALLOW), "{method}");
        }
    }

    #[test]
    fn the_live_mpd_is_a_dash_manifest_cached_like_a_playlist() {
        let store = store();
        // Master published, no MPD: this channel has no DASH.
        let response = get(&store, "/live/news/manifest.mpd", &[]);
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let starting = store.channel_or_insert("starting", Duration::from_secs(2));
        let response = get(&store, "/live/starting/manifest.mpd", &[]);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        starting.publish_manifest(Bytes::from_static(b"<MPD/>"));
        let response = get(&store, "/live/starting/manifest.mpd", &[]);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "content-type"), Some(MPD_TYPE));
        assert_eq!(header(&response, "cache-control"), Some("max-age=1"));
        assert_eq!(
            header(&response, "etag"),
            Some(etag::for_content(b"<MPD/>").as_str())
        );
    }

    fn listing_sources(catalog: &Catalog, public_url: Option<&str>) -> Sources {
        Sources {
            catalog: Some(watch::channel(Arc::new(catalog.clone())).1),
            public_url: public_url.map(|url| url.parse().expect("a valid public URL")),
            ..Sources::new(SegmentStore::new())
        }
    }

    #[tokio::test]
    async fn the_playlist_has_its_type_short_caching_and_a_tag() {
        let fixture = super::super::listing::tests::Fixture::new();
        let sources = listing_sources(&fixture.catalog, None);
        let req = request(Method::GET, "/playlist.m3u", &[("host", "tv.lan:8080")]);
        let response = super::respond(&sources, &req).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "content-type"), Some(M3U_TYPE));
        assert_eq!(header(&response, "cache-control"), Some(M3U_CACHE));
        let tag = header(&response, "etag").expect("a tag").to_owned();
        let text = String::from_utf8(body(response).await).expect("UTF-8");
        assert!(
            text.starts_with("#EXTM3U x-tvg-url=\"http://tv.lan:8080/epg.xml\"\n"),
            "{text}"
        );
        assert!(
            text.contains("\nhttp://tv.lan:8080/live/news/master.m3u8\n"),
            "{text}"
        );
        // Revalidation, and HEAD with the GET headers and no body.
        let req = request(
            Method::GET,
            "/playlist.m3u",
            &[("host", "tv.lan:8080"), ("if-none-match", &tag)],
        );
        assert_eq!(
            super::respond(&sources, &req).await.status(),
            StatusCode::NOT_MODIFIED
        );
        let req = request(Method::HEAD, "/playlist.m3u", &[("host", "tv.lan:8080")]);
        let head = super::respond(&sources, &req).await;
        assert_eq!(head.status(), StatusCode::OK);
        assert_eq!(
            header(&head, "content-length"),
            Some(text.len().to_string().as_str())
        );
        assert_eq!(body(head).await, b"");
        // A public URL wins over the Host header.
        let sources = listing_sources(&fixture.catalog, Some("https://tv.example.com/"));
        let req = request(
            Method::GET,
            "/playlist.m3u?transport=http",
            &[("host", "tv.lan:8080")],
        );
        let text =
            String::from_utf8(body(super::respond(&sources, &req).await).await).expect("UTF-8");
        assert!(
            text.starts_with("#EXTM3U x-tvg-url=\"https://tv.example.com/epg.xml\"\n"),
            "{text}"
        );
        assert!(
            text.contains("\nhttps://tv.example.com/ts/radio\n"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn pages_are_html_that_loads_only_from_here_and_is_always_revalidated() {
        let fixture = super::super::listing::tests::Fixture::new();
        let sources = listing_sources(&fixture.catalog, None);
        for target in ["/", "/watch/live/news", "/watch/live/sport"] {
            let response = super::respond(&sources, &request(Method::GET, target, &[])).await;
            assert_eq!(response.status(), StatusCode::OK, "{target}");
            assert_eq!(header(&response, "content-type"), Some(HTML_TYPE));
            assert_eq!(header(&response, "cache-control"), Some(REVALIDATE));
            assert_eq!(
                header(&response, "content-security-policy"),
                Some(page::CONTENT_SECURITY_POLICY)
            );
            assert_eq!(header(&response, "x-content-type-options"), Some("nosniff"));
            let text = String::from_utf8(body(response).await).expect("UTF-8");
            assert!(text.starts_with("<!doctype html>"), "{text}");
        }
        // A channel without HLS has no player; nor has a channel not in the catalog.
        for target in ["/watch/live/radio", "/watch/live/nope", "/watch/vod/nope"] {
            let response = super::respond(&sources, &request(Method::GET, target, &[])).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{target}");
        }
        // Without a catalog there is nothing to list.
        let bare = Sources::new(SegmentStore::new());
        let response = super::respond(&bare, &request(Method::GET, "/", &[])).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn ui_files_are_served_with_their_types_and_tags() {
        let sources = Sources::new(SegmentStore::new());
        let response = super::respond(&sources, &request(Method::GET, "/ui/hls.min.js", &[])).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header(&response, "content-type"),
            Some("text/javascript; charset=utf-8")
        );
        let tag = header(&response, "etag").expect("a tag").to_owned();
        let bytes = body(response).await;
        assert_eq!(bytes, page::ui_file("hls.min.js").expect("hls.js").body);
        let req = request(Method::GET, "/ui/hls.min.js", &[("if-none-match", &tag)]);
        assert_eq!(
            super::respond(&sources, &req).await.status(),
            StatusCode::NOT_MODIFIED
        );
    }

    #[tokio::test]
    async fn a_thumbnail_is_the_newest_jpeg_once_there_is_one() {
        let store = store();
        let sources = Sources::new(Arc::clone(&store));
        let get = |target: &'static str| {
            let sources = &sources;
            async move { super::respond(sources, &request(Method::GET, target, &[])).await }
        };
        let response = get("/live/news/thumbnail.jpg").await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            get("/live/nope/thumbnail.jpg").await.status(),
            StatusCode::NOT_FOUND
        );
        let live = store.channel("news").expect("news");
        live.publish_thumbnail(Bytes::from_static(b"\xff\xd8first"));
        live.publish_thumbnail(Bytes::from_static(b"\xff\xd8second"));
        // The page's `?v=` names a version for caches; the newest is served.
        let response = get("/live/news/thumbnail.jpg?v=0").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "content-type"), Some(JPEG_TYPE));
        assert_eq!(header(&response, "cache-control"), Some(REVALIDATE));
        assert_eq!(body(response).await, b"\xff\xd8second");
    }

    #[tokio::test]
    async fn an_unknown_transport_is_a_bad_request_that_says_why() {
        let fixture = super::super::listing::tests::Fixture::new();
        let sources = listing_sources(&fixture.catalog, None);
        let req = request(Method::GET, "/playlist.m3u?transport=dash", &[]);
        let response = super::respond(&sources, &req).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(header(&response, "content-type"), Some(TEXT_TYPE));
        assert_eq!(header(&response, "cache-control"), Some(NO_STORE));
        assert_eq!(
            body(response).await,
            b"unknown transport \"dash\": use hls (the default), http or multicast\n"
        );
    }

    #[tokio::test]
    async fn the_guide_is_xml_cached_for_a_minute() {
        let fixture = super::super::listing::tests::Fixture::new();
        let sources = listing_sources(&fixture.catalog, None);
        let response = super::respond(&sources, &request(Method::GET, "/epg.xml", &[])).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "content-type"), Some(XMLTV_TYPE));
        assert_eq!(header(&response, "cache-control"), Some(GUIDE_CACHE));
        assert!(header(&response, "etag").is_some());
        let text = String::from_utf8(body(response).await).expect("UTF-8");
        assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE tv SYSTEM \"xmltv.dtd\">\n<tv generator-info-name=\"headend\">"), "{text}");
    }

    #[test]
    fn without_a_catalog_there_is_no_listing() {
        let store = store();
        for target in ["/playlist.m3u", "/epg.xml", "/playlist.m3u?transport=bogus"] {
            assert_eq!(
                get(&store, target, &[]).status(),
                StatusCode::NOT_FOUND,
                "{target}"
            );
        }
    }

    #[tokio::test]
    async fn time_is_iso_8601_utc_to_the_millisecond_and_never_cached() {
        let store = store();
        let before = chrono::Utc::now();
        let response = get(&store, "/time", &[]);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "cache-control"), Some(NO_STORE));
        assert_eq!(header(&response, "content-type"), Some(TEXT_TYPE));
        let text = String::from_utf8(body(response).await).unwrap();
        assert_eq!(text.len(), "2026-11-21T12:00:00.123Z".len(), "{text}");
        assert!(text.ends_with('Z'), "{text}");
        let time = chrono::DateTime::parse_from_rfc3339(&text).unwrap();
        let skew = time.with_timezone(&chrono::Utc) - before;
        assert!(skew.num_milliseconds().abs() < 5_000, "{text}");
    }

    /// `{root}/film -> film.v1`, with a segment, a playlist, an init segment, a
    /// subtitle file and a poster.
    struct Library(PathBuf);

    impl Library {
        fn new() -> Self {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let root = std::env::temp_dir()
                .join(format!("headend-origin-vod-{}-{nanos}", std::process::id()));
            for version in ["film.v1", "film.v2"] {
                let dir = root.join(version);
                std::fs::create_dir_all(dir.join("720p")).unwrap();
                std::fs::create_dir_all(dir.join("audio")).unwrap();
                std::fs::create_dir_all(dir.join("subs")).unwrap();
                std::fs::write(dir.join("720p/0.m4s"), SEGMENT).unwrap();
                std::fs::write(dir.join("720p/index.m3u8"), version).unwrap();
                std::fs::write(dir.join("720p/init.mp4"), b"video-init").unwrap();
                std::fs::write(dir.join("audio/init.mp4"), b"audio-init").unwrap();
                std::fs::write(dir.join("subs/en.vtt"), b"WEBVTT\n").unwrap();
                std::fs::write(dir.join("manifest.mpd"), b"<MPD/>").unwrap();
                std::fs::write(dir.join("poster.png"), b"png").unwrap();
                std::fs::write(dir.join("asset.json"), b"{}").unwrap();
            }
            std::os::unix::fs::symlink("film.v1", root.join("film")).unwrap();
            Library(root)
        }

        fn relink(&self, version: &str) {
            let link = self.0.join("film.link");
            std::os::unix::fs::symlink(version, &link).unwrap();
            std::fs::rename(&link, self.0.join("film")).unwrap();
        }

        async fn get(&self, target: &str, headers: &[(&str, &str)]) -> Response<Body> {
            let sources = Sources {
                vod_root: Some(self.0.clone()),
                ..Sources::new(SegmentStore::new())
            };
            super::respond(&sources, &request(Method::GET, target, headers)).await
        }
    }

    impl Drop for Library {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[tokio::test]
    async fn vod_files_have_their_types_and_caching() {
        let library = Library::new();
        let cases = [
            ("/vod/film/720p/0.m4s", SEGMENT_TYPE, IMMUTABLE, SEGMENT),
            (
                "/vod/film/720p/init.mp4",
                VIDEO_INIT_TYPE,
                IMMUTABLE,
                &b"video-init"[..],
            ),
            (
                "/vod/film/audio/init.mp4",
                AUDIO_INIT_TYPE,
                IMMUTABLE,
                &b"audio-init"[..],
            ),
            (
                "/vod/film/720p/index.m3u8",
                PLAYLIST_TYPE,
                VOD_DESCRIPTION_CACHE,
                &b"film.v1"[..],
            ),
            (
                "/vod/film/manifest.mpd",
                MPD_TYPE,
                VOD_DESCRIPTION_CACHE,
                &b"<MPD/>"[..],
            ),
            (
                "/vod/film/subs/en.vtt",
                WEBVTT_TYPE,
                VOD_DESCRIPTION_CACHE,
                &b"WEBVTT\n"[..],
            ),
            (
                "/vod/film/poster.png",
                "image/png",
                VOD_DESCRIPTION_CACHE,
                &b"png"[..],
            ),
        ];
        for (target, content_type, cache_control, content) in cases {
            let response = library.get(target, &[]).await;
            assert_eq!(response.status(), StatusCode::OK, "{target}");
            assert_eq!(
                header(&response, "content-type"),
                Some(content_type),
                "{target}"
            );
            assert_eq!(
                header(&response, "cache-control"),
                Some(cache_control),
                "{target}"
            );
            assert_eq!(header(&response, "access-control-allow-origin"), Some("*"));
            assert_eq!(body(response).await, content, "{target}");
        }
        for target in [
            "/vod/other/720p/0.m4s",
            "/vod/film/720p/1.m4s",
            "/vod/film/1080p/index.m3u8",
            "/vod/film/subs/fr.vtt",
            "/vod/film/poster.jpg",
            "/vod/film/asset.json",
            "/vod/film.v1/720p/0.m4s",
        ] {
            let response = library.get(target, &[]).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{target}");
            assert_eq!(
                header(&response, "cache-control"),
                Some(NO_STORE),
                "{target}"
            );
        }
        // No library configured: nothing under /vod.
        let response = get(&store(), "/vod/film/720p/0.m4s", &[]);
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn vod_segments_take_ranges_and_tags_follow_the_version() {
        let library = Library::new();
        let target = "/vod/film/720p/0.m4s";
        let response = library.get(target, &[("range", "bytes=5-9")]).await;
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(header(&response, "content-range"), Some("bytes 5-9/20"));
        let tag = header(&response, "etag").unwrap().to_owned();
        assert_eq!(body(response).await, b"56789");
        let response = library.get(target, &[("range", "bytes=20-")]).await;
        assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);

        let response = library.get(target, &[("if-none-match", &tag)]).await;
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        // A re-ingest publishes a new version: the same bytes get a new tag.
        library.relink("film.v2");
        let response = library.get(target, &[("if-none-match", &tag)]).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_ne!(header(&response, "etag"), Some(tag.as_str()));
        let playlist = library.get("/vod/film/720p/index.m3u8", &[]).await;
        assert_eq!(body(playlist).await, b"film.v2");
    }
}
