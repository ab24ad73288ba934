//! `/playlist.m3u` and `/epg.xml`: the catalog's channels as an M3U playlist for IPTV
//! apps, and their programme guide as XMLTV. Both are derived from the running catalog
//! on each request (the catalog is the truth); the guide also reads the EPG files
//! again, off the runtime's threads, so an operator's edits show within a minute.
//!
//! Every URL in them is absolute: IPTV apps resolve nothing. The base is the
//! configured public URL, or else `http://` and the authority the client asked for
//! (`Host`, or HTTP/2's `:authority`), or else the address the connection reached.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use hyper::header;
use hyper::http::uri::Authority;
use hyper::{Request, Version};
use tracing::{info, warn};

use super::ClientConnection;
use crate::catalog::{self, Catalog};
use crate::iptv::{m3u, xmltv, GuideWindow};

/// The URL the origin is reached at from outside (`--public-url`), for the absolute
/// URLs of the M3U playlist and its guide: a proxy or CDN in front, or HTTPS
/// terminated elsewhere. Without one, the client's `Host` is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    /// `scheme://host[:port][/path]`, never with a trailing `/`: paths are appended
    /// to it as they are.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a `--public-url` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublicUrlError {
    #[error("not a URL: {0}")]
    Parse(#[from] url::ParseError),
    #[error("the public URL must be http:// or https://, not {0}://")]
    Scheme(String),
    #[error("the public URL needs a host")]
    NoHost,
    #[error("the public URL must not carry a user name or password")]
    Credentials,
    #[error("the public URL must not have a query or a fragment: paths are appended to it")]
    QueryOrFragment,
}

impl FromStr for PublicUrl {
    type Err = PublicUrlError;

    /// An `http` or `https` URL with a host, optionally a path prefix
    /// (`https://tv.example.com/headend/`); a trailing `/` is dropped.
    fn from_str(text: &str) -> Result<PublicUrl, PublicUrlError> {
        let url = url::Url::parse(text.trim())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(PublicUrlError::Scheme(url.scheme().to_owned()));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(PublicUrlError::NoHost);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(PublicUrlError::Credentials);
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(PublicUrlError::QueryOrFragment);
        }
        // `Url` serialises a bare host with a `/` path.
        let serialized = url.as_str().trim_end_matches('/').to_owned();
        Ok(PublicUrl(serialized))
    }
}

/// What the playlist's URLs point at (`?transport=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// `{base}/live/{id}/master.m3u8`, for channels published as HLS.
    Hls,
    /// `{base}/ts/{id}`: MPEG-TS over HTTP.
    Http,
    /// `udp://@group:port` or `rtp://@group:port`, for channels with a multicast feed.
    Multicast,
}

/// Why a listing could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListingError {
    /// The origin was started without a catalog: nothing to list.
    NoCatalog,
    /// A query the origin does not understand; the text says what to send instead.
    BadRequest(String),
    /// The guide could not be built (its task panicked).
    Internal,
}

/// `transport=hls|http|multicast`, default `hls`; other parameters are ignored
/// (players add cache busters), a repeated or unknown transport is refused.
pub(crate) fn transport(query: Option<&str>) -> Result<Transport, ListingError> {
    let mut given = None;
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if name == "transport" {
            if given.is_some() {
                return Err(ListingError::BadRequest(
                    "give transport once: hls (the default), http or multicast".to_owned(),
                ));
            }
            given = Some(value);
        }
    }
    match given.as_deref() {
        None | Some("hls") => Ok(Transport::Hls),
        Some("http") => Ok(Transport::Http),
        Some("multicast") => Ok(Transport::Multicast),
        Some(other) => {
            // Quoted with escapes and cut short: the answer never carries raw input.
            let shown: String = other.chars().take(32).collect();
            Err(ListingError::BadRequest(format!(
                "unknown transport {shown:?}: use hls (the default), http or multicast"
            )))
        }
    }
}

/// The base of every absolute URL in a listing.
pub(crate) fn base_url<B>(public_url: Option<&PublicUrl>, req: &Request<B>) -> String {
    if let Some(public_url) = public_url {
        return public_url.as_str().to_owned();
    }
    let asked = match req.version() {
        Version::HTTP_2 | Version::HTTP_3 => req.uri().authority().map(Authority::as_str),
        _ => None,
    }
    .or_else(|| {
        req.headers()
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
    });
    match asked.and_then(usable_authority) {
        Some(authority) => format!("http://{authority}"),
        None => {
            let local = req
                .extensions()
                .get::<ClientConnection>()
                .map_or_else(|| "localhost".to_owned(), |c| c.local_addr.to_string());
            format!("http://{local}")
        }
    }
}

/// A `Host` value that can stand in a URL as it is: host and optional port, nothing
/// that could end an M3U attribute or an XML attribute, no user information.
fn usable_authority(text: &str) -> Option<&str> {
    let authority = Authority::from_str(text).ok()?;
    let clean = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']'));
    (clean && !authority.host().is_empty()).then_some(text)
}

/// The M3U playlist: every channel with a URL for `transport`, by channel number.
pub(crate) fn playlist(catalog: &Catalog, base: &str, transport: Transport) -> String {
    let urls: Vec<(&catalog::Channel, String)> = catalog
        .channels_by_number()
        .into_iter()
        .filter_map(|channel| {
            let url = match transport {
                Transport::Hls => channel
                    .outputs
                    .hls
                    .then(|| format!("{base}/live/{}/master.m3u8", channel.id))?,
                Transport::Http => format!("{base}/ts/{}", channel.id),
                Transport::Multicast => channel.multicast.as_ref()?.player_url(),
            };
            Some((channel, url))
        })
        .collect();
    let entries: Vec<m3u::Entry<'_>> = urls
        .iter()
        .map(|(channel, url)| m3u::Entry {
            id: &channel.id,
            number: channel.number,
            name: &channel.name,
            logo: channel.logo.as_deref(),
            group: &channel.group,
            url,
        })
        .collect();
    m3u::render(Some(&format!("{base}/epg.xml")), &entries)
}

/// The XMLTV guide of every channel, by channel number, inside the window around
/// `now`. Reads the EPG files: blocking.
pub(crate) fn guide(
    catalog: &Catalog,
    now: chrono::DateTime<chrono::Utc>,
    failures: &FailureLog,
) -> String {
    let window = GuideWindow::around(now);
    let guide = catalog::guide(&catalog.channels, &window);
    failures.update(&guide.failures);
    let channels: Vec<xmltv::ChannelGuide<'_>> = catalog
        .channels_by_number()
        .into_iter()
        .map(|channel| xmltv::ChannelGuide {
            id: &channel.id,
            name: &channel.name,
            icon: channel.logo.as_deref(),
            programmes: guide.programmes.get(&channel.id).map_or(&[], Vec::as_slice),
        })
        .collect();
    xmltv::render(&channels)
}

/// Builds the guide on the blocking pool.
pub(crate) async fn guide_off_runtime(
    catalog: Arc<Catalog>,
    failures: Arc<FailureLog>,
) -> Result<String, ListingError> {
    let now = chrono::Utc::now();
    tokio::task::spawn_blocking(move || guide(&catalog, now, &failures))
        .await
        .map_err(|_| ListingError::Internal)
}

/// The EPG files that failed when the guide was last built. Players fetch the guide
/// often; a broken file is logged as a warning when it breaks and when it is readable
/// again, not on every request.
#[derive(Debug, Default)]
pub(crate) struct FailureLog {
    current: Mutex<BTreeSet<String>>,
}

impl FailureLog {
    fn update(&self, failures: &[catalog::EpgFailure]) {
        let now: BTreeSet<String> = failures.iter().map(|f| f.error.to_string()).collect();
        let before = {
            let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *current, now.clone())
        };
        for failure in failures {
            let error = failure.error.to_string();
            if !before.contains(&error) {
                warn!(
                    channels = ?failure.channels,
                    %error,
                    "EPG file skipped: these channels are listed in the guide without programmes until it is fixed."
                );
            }
        }
        for error in before.difference(&now) {
            info!(previous_error = %error, "EPG file is readable again.");
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::sendfile::SocketTuning;
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn public_urls_are_http_or_https_without_a_trailing_slash() {
        let cases = [
            ("https://tv.example.com", "https://tv.example.com"),
            ("https://tv.example.com/", "https://tv.example.com"),
            (
                "http://tv.example.com:8080/headend/",
                "http://tv.example.com:8080/headend",
            ),
            ("HTTP://TV.Example.COM", "http://tv.example.com"),
            ("http://[::1]:8080", "http://[::1]:8080"),
        ];
        for (text, expected) in cases {
            let url: PublicUrl = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(url.as_str(), expected, "{text}");
        }
        let refused = [
            (
                "ftp://tv.example.com",
                "the public URL must be http:// or https://, not ftp://",
            ),
            ("tv.example.com", "not a URL: relative URL without a base"),
            (
                "http://user:pw@tv.example.com",
                "the public URL must not carry a user name or password",
            ),
            (
                "http://tv.example.com/?a=1",
                "the public URL must not have a query or a fragment: paths are appended to it",
            ),
            (
                "http://tv.example.com/#top",
                "the public URL must not have a query or a fragment: paths are appended to it",
            ),
            (
                "file:///srv",
                "the public URL must be http:// or https://, not file://",
            ),
        ];
        for (text, message) in refused {
            let error = text.parse::<PublicUrl>().expect_err(text);
            assert_eq!(error.to_string(), message, "{text}");
        }
    }

    #[test]
    fn transports() {
        assert_eq!(transport(None), Ok(Transport::Hls));
        assert_eq!(transport(Some("")), Ok(Transport::Hls));
        assert_eq!(transport(Some("transport=hls")), Ok(Transport::Hls));
        assert_eq!(transport(Some("transport=http&x=1")), Ok(Transport::Http));
        assert_eq!(
            transport(Some("_=123&transport=multicast")),
            Ok(Transport::Multicast)
        );
        assert_eq!(
            transport(Some("transport=dash")),
            Err(ListingError::BadRequest(
                "unknown transport \"dash\": use hls (the default), http or multicast".to_owned()
            ))
        );
        assert_eq!(
            transport(Some("transport=%22%0A%3Cb%3E")),
            Err(ListingError::BadRequest(
                "unknown transport \"\\\"\\n<b>\": use hls (the default), http or multicast"
                    .to_owned()
            ))
        );
        assert!(matches!(
            transport(Some("transport=hls&transport=http")),
            Err(ListingError::BadRequest(_))
        ));
    }

    fn request(version: Version, uri: &str, host: Option<&str>) -> Request<()> {
        let mut builder = Request::builder().version(version).uri(uri);
        if let Some(host) = host {
            builder = builder.header("host", host);
        }
        let mut req = builder.body(()).expect("test request");
        req.extensions_mut().insert(ClientConnection {
            local_addr: SocketAddr::from(([10, 0, 0, 5], 8080)),
            socket: SocketTuning::default(),
        });
        req
    }

    #[test]
    fn the_base_is_the_public_url_or_the_host_asked_for_or_the_local_address() {
        let public: PublicUrl = "https://tv.example.com/iptv/".parse().expect("valid");
        let h1 = request(Version::HTTP_11, "/playlist.m3u", Some("headend.lan:8080"));
        assert_eq!(base_url(Some(&public), &h1), "https://tv.example.com/iptv");
        assert_eq!(base_url(None, &h1), "http://headend.lan:8080");
        let v6 = request(Version::HTTP_11, "/playlist.m3u", Some("[::1]:8080"));
        assert_eq!(base_url(None, &v6), "http://[::1]:8080");
        let h2 = request(
            Version::HTTP_2,
            "http://h2.example.com:81/playlist.m3u",
            None,
        );
        assert_eq!(base_url(None, &h2), "http://h2.example.com:81");
        for host in [
            None,
            Some(""),
            Some("a\"b"),
            Some("user@evil.example.com"),
            Some("a b"),
            Some("x/y"),
        ] {
            let req = request(Version::HTTP_10, "/playlist.m3u", host);
            assert_eq!(base_url(None, &req), "http://10.0.0.5:8080", "{host:?}");
        }
    }

    /// A catalog in a temp dir, with a schedule for `news` and an XMLTV file for
    /// `sport`; removed on drop.
    pub(in crate::origin) struct Fixture {
        pub dir: std::path::PathBuf,
        pub catalog: Catalog,
    }

    impl Fixture {
        pub(in crate::origin) fn new() -> Fixture {
            Fixture::with(&[
                ("news.yaml", NEWS_SCHEDULE),
                ("sport.xml", SPORT_XMLTV),
                ("catalog.yaml", CATALOG),
            ])
        }

        /// `files` written into a new temp dir, and its `catalog.yaml` loaded.
        pub(in crate::origin) fn with(files: &[(&str, &str)]) -> Fixture {
            static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "headend-listing-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).expect("temp dir");
            for (name, text) in files {
                std::fs::write(dir.join(name), text).expect("fixture file");
            }
            let catalog = Catalog::load(&[dir.join("catalog.yaml")])
                .unwrap_or_else(|error| panic!("fixture catalog: {error}"));
            Fixture { dir, catalog }
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    const CATALOG: &str = r#"
encoders: { x264: { element: x264enc } }
ladders:
  small:
    segment_duration: 2
    gop: 2
    renditions: [{ name: 240p, width: 320, height: 240, bitrate: 300, profile: main, max_framerate: 25 }]
    audio: { codec: aac, bitrate: 64, channels: 2 }
channels:
  - id: sport
    number: 7
    name: 'Sport "Live"'
    group: Sport
    source: { uri: "test://" }
    ladder: small
    multicast: { group: 239.255.0.7, port: 5007, protocol: rtp }
    epg: { xmltv: sport.xml, channel: sport.example.com }
  - { id: news, number: 2, name: News, group: News, logo: "http://logos.example.com/news.png", source: { uri: "test://" }, ladder: small, epg: news.yaml, multicast: { group: 239.255.0.2, port: 5002 } }
  - { id: radio, number: 3, name: Radio, group: Radio, source: { uri: "test://" }, ladder: small, outputs: { hls: false } }
"#;

    const NEWS_SCHEDULE: &str = "daily:\n  - { start: \"06:00\", title: Morning & Co, category: News }\n  - { start: \"18:00\", title: Evening }\n";

    const SPORT_XMLTV: &str = r#"<tv><programme start="20260310120000 +0000" stop="20260310140000 +0000" channel="sport.example.com"><title>Match</title></programme></tv>"#;

    #[test]
    fn the_playlist_lists_channels_by_number_for_each_transport() {
        let fixture = Fixture::new();
        let catalog = &fixture.catalog;
        assert_eq!(
            playlist(catalog, "http://tv.example.com", Transport::Hls),
            "#EXTM3U x-tvg-url=\"http://tv.example.com/epg.xml\"\n\
             #EXTINF:-1 tvg-id=\"news\" tvg-chno=\"2\" tvg-name=\"News\" tvg-logo=\"http://logos.example.com/news.png\" group-title=\"News\",News\n\
             http://tv.example.com/live/news/master.m3u8\n\
             #EXTINF:-1 tvg-id=\"sport\" tvg-chno=\"7\" tvg-name=\"Sport 'Live'\" group-title=\"Sport\",Sport 'Live'\n\
             http://tv.example.com/live/sport/master.m3u8\n"
        );
        let urls = |transport| -> Vec<String> {
            playlist(catalog, "https://cdn.example.com/tv", transport)
                .lines()
                .filter(|line| !line.starts_with('#'))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(
            urls(Transport::Http),
            [
                "https://cdn.example.com/tv/ts/news",
                "https://cdn.example.com/tv/ts/radio",
                "https://cdn.example.com/tv/ts/sport",
            ]
        );
        assert_eq!(
            urls(Transport::Multicast),
            ["udp://@239.255.0.2:5002", "rtp://@239.255.0.7:5007"]
        );
    }

    #[test]
    fn the_guide_lists_every_channel_and_the_programmes_of_those_with_an_epg() {
        let fixture = Fixture::new();
        let now = chrono::DateTime::parse_from_rfc3339("2026-03-10T12:30:00Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let text = guide(&fixture.catalog, now, &FailureLog::default());
        let options = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..roxmltree::ParsingOptions::default()
        };
        let document = roxmltree::Document::parse_with_options(&text, options)
            .unwrap_or_else(|e| panic!("{e}:\n{text}"));
        let ids: Vec<&str> = document
            .descendants()
            .filter(|n| n.has_tag_name("channel"))
            .filter_map(|n| n.attribute("id"))
            .collect();
        assert_eq!(ids, ["news", "radio", "sport"]);
        let programmes: Vec<(&str, &str, &str)> = document
            .descendants()
            .filter(|n| n.has_tag_name("programme"))
            .map(|n| {
                let title = n
                    .children()
                    .find(|c| c.has_tag_name("title"))
                    .and_then(|c| c.text())
                    .unwrap_or_default();
                (
                    n.attribute("channel").unwrap_or_default(),
                    n.attribute("start").unwrap_or_default(),
                    title,
                )
            })
            .collect();
        // news: the evening of 8 March, then two a day from 9 to 17 March.
        assert_eq!(programmes.iter().filter(|p| p.0 == "news").count(), 19);
        assert!(programmes.contains(&("news", "20260310060000 +0000", "Morning & Co")));
        assert!(programmes.contains(&("sport", "20260310120000 +0000", "Match")));
        assert!(programmes.iter().all(|p| p.0 != "radio"));
        // A broken file loses only its own channel's programmes.
        std::fs::write(fixture.dir.join("news.yaml"), "daily: [").expect("break it");
        let failures = FailureLog::default();
        let text = guide(&fixture.catalog, now, &failures);
        assert!(!text.contains("channel=\"news\""), "{text}");
        assert!(text.contains("<channel id=\"news\">"), "{text}");
        assert!(text.contains("<title>Match</title>"), "{text}");
        let logged = failures.current.lock().expect("unpoisoned").clone();
        assert_eq!(logged.len(), 1, "{logged:?}");
        // Gone: the file is readable again.
        std::fs::remove_file(fixture.dir.join("sport.xml")).expect("remove");
        std::fs::write(fixture.dir.join("news.yaml"), NEWS_SCHEDULE).expect("mend it");
        let text = guide(&fixture.catalog, now, &failures);
        assert!(text.contains("channel=\"news\""), "{text}");
        assert!(!text.contains("channel=\"sport\""), "{text}");
        let logged = failures.current.lock().expect("unpoisoned").clone();
        assert_eq!(logged.len(), 1, "{logged:?}");
        assert!(logged.iter().all(|e| e.contains("sport.xml")), "{logged:?}");
    }
}
