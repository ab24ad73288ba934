//! The operator page (`/`) and the player pages (`/watch/live/{channel}`,
//! `/watch/vod/{asset}`): HTML written from the running catalog and the status
//! registry on each request, and the few static files they load (`/ui/...`, built into
//! the binary, hls.js among them, so the pages work on a machine with no internet).
//!
//! Every text that comes from the catalog (names, groups, titles, logo URLs) is
//! escaped where it is written; ids are URL segments by the catalog's rules. The page
//! scripts reload the page's own tables, so the table is written in one place only.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::LazyLock;
use std::time::Duration;

use quick_xml::escape::escape;

use super::etag;

use crate::catalog::{poster_extension, Catalog, Channel, VodAsset};
use crate::status::{AssetState, AssetStatus, ChannelSnapshot};

/// A file the pages load, served at `/ui/{name}`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct UiFile {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file under `/ui/`. hls.js is the npm package's `dist/hls.min.js`, unchanged
/// (`ui/vendor/hls.js/README.md` says which version and how to update it).
const UI_FILES: [UiFile; 5] = [
    UiFile {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("ui/style.css"),
    },
    UiFile {
        name: "operator.js",
        content_type: JS,
        body: include_bytes!("ui/operator.js"),
    },
    UiFile {
        name: "player.js",
        content_type: JS,
        body: include_bytes!("ui/player.js"),
    },
    UiFile {
        name: "hls.min.js",
        content_type: JS,
        body: include_bytes!("ui/vendor/hls.js/hls.min.js"),
    },
    UiFile {
        name: "hls.js-LICENSE",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("ui/vendor/hls.js/LICENSE"),
    },
];

/// The `/ui/` file called `name`, if there is one.
pub(crate) fn ui_file(name: &str) -> Option<&'static UiFile> {
    UI_FILES.iter().find(|file| file.name == name)
}

impl UiFile {
    /// The file's entity tag, hashed once per process (hls.js is over 600 kB).
    pub(crate) fn etag(&self) -> &'static str {
        static TAGS: LazyLock<Vec<String>> =
            LazyLock::new(|| UI_FILES.iter().map(|f| etag::for_content(f.body)).collect());
        UI_FILES
            .iter()
            .position(|file| file.name == self.name)
            .and_then(|i| TAGS.get(i))
            .map_or("", String::as_str)
    }
}

/// What the pages may load: scripts, styles, pictures and media from this origin only;
/// hls.js feeds the video element from `blob:` URLs (Media Source Extensions) and may
/// run its transmuxer in a `blob:` worker. No inline script or style, no framing.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; media-src 'self' blob:; \
     worker-src 'self' blob:; img-src 'self'; object-src 'none'; base-uri 'none'; \
     frame-ancestors 'none'";

/// What the operator page shows of the running headend at one moment.
pub(crate) struct Overview<'a> {
    pub catalog: &'a Catalog,
    /// Channels' states, by id (a channel that has none yet is starting).
    pub channels: &'a [ChannelSnapshot],
    /// VOD assets' ingests, by id.
    pub assets: &'a [AssetStatus],
    /// The version of a channel's newest thumbnail, if it has one.
    pub thumbnail: &'a dyn Fn(&str) -> Option<u64>,
    /// How often the page reloads its tables.
    pub refresh: Duration,
}

/// `/`: every channel by number with its state and thumbnail, every VOD asset with
/// its ingest, and links to the listings.
pub(crate) fn operator_page(overview: &Overview<'_>) -> String {
    let mut channels: Vec<&Channel> = overview.catalog.channels.iter().collect();
    channels.sort_by_key(|c| c.number);
    let mut html = String::new();
    head(&mut html, "headend");
    let _ = writeln!(
        html,
        "<body data-refresh-ms=\"{}\">\n<h1>headend</h1>",
        overview.refresh.as_millis()
    );

    html.push_str(
        "<h2>Channels</h2>\n<table id=\"channels\">\n<thead><tr><th>No.</th><th>Picture</th>\
         <th>Name</th><th>Group</th><th>State</th></tr></thead>\n<tbody>\n",
    );
    for channel in &channels {
        let snapshot = overview.channels.iter().find(|s| s.id == channel.id);
        let state = snapshot.map_or("starting", |s| s.state.as_str());
        let id = &channel.id;
        let picture = match (overview.thumbnail)(id) {
            Some(version) => format!(
                "<img class=\"thumb\" src=\"/live/{id}/thumbnail.jpg?v={version}\" \
                 width=\"160\" height=\"90\" alt=\"\">"
            ),
            None => "<div class=\"thumb\"></div>".to_owned(),
        };
        let name = escape(channel.name.as_str());
        // A channel without HLS has nothing a browser can play.
        let (picture, name) = if channel.outputs.hls {
            let watch = format!("/watch/live/{id}");
            (link(&watch, &picture), link(&watch, &name))
        } else {
            (picture, name.into_owned())
        };
        let _ = writeln!(
            html,
            "<tr data-id=\"{id}\"><td class=\"number\">{number}</td><td>{picture}</td>\
             <td>{name}</td><td>{group}</td><td class=\"state state-{state}\">{state}</td></tr>",
            number = channel.number,
            group = escape(channel.group.as_str()),
        );
    }
    if channels.is_empty() {
        html.push_str("<tr data-id=\"\"><td colspan=\"5\" class=\"muted\">No channels in the catalog.</td></tr>\n");
    }
    html.push_str("</tbody>\n</table>\n");

    html.push_str(
        "<h2>Video on demand</h2>\n<table id=\"vod\">\n<thead><tr><th>Poster</th><th>Title</th>\
         <th>State</th></tr></thead>\n<tbody>\n",
    );
    for asset in &overview.catalog.assets {
        let status = overview.assets.iter().find(|a| a.id == asset.id);
        vod_row(&mut html, asset, status);
    }
    if overview.catalog.assets.is_empty() {
        html.push_str(
            "<tr data-id=\"\"><td colspan=\"3\" class=\"muted\">No VOD assets in the catalog.</td></tr>\n",
        );
    }
    html.push_str("</tbody>\n</table>\n");

    html.push_str(
        "<footer>IPTV apps: <a href=\"/playlist.m3u\">/playlist.m3u</a> and \
         <a href=\"/epg.xml\">/epg.xml</a> · <a href=\"/metrics\">/metrics</a> · \
         updated <span id=\"updated\">now</span></footer>\n\
         <script src=\"/ui/operator.js\"></script>\n</body>\n</html>\n",
    );
    html
}

fn vod_row(html: &mut String, asset: &VodAsset, status: Option<&AssetStatus>) {
    let id = &asset.id;
    let available = status.is_some_and(|s| s.available);
    let state = match status {
        Some(s) if s.state == AssetState::Ingesting => match s.progress {
            Some(progress) => format!("ingesting {:.0} %", progress * 100.0),
            None => "ingesting".to_owned(),
        },
        Some(s) => s.state.as_str().to_owned(),
        None => AssetState::Pending.as_str().to_owned(),
    };
    let state_class = status.map_or(AssetState::Pending, |s| s.state).as_str();
    let poster = asset
        .poster
        .as_deref()
        .and_then(poster_extension)
        .filter(|_| available)
        .map_or_else(String::new, |extension| {
            format!(
                "<img class=\"thumb\" src=\"/vod/{id}/poster.{extension}\" width=\"160\" \
                 height=\"90\" alt=\"\">"
            )
        });
    let title = escape(asset.title.as_str());
    let (poster, title) = if available {
        (
            link(&format!("/watch/vod/{id}"), &poster),
            link(&format!("/watch/vod/{id}"), &title),
        )
    } else {
        (poster, title.into_owned())
    };
    let _ = writeln!(
        html,
        "<tr data-id=\"{id}\"><td>{poster}</td><td>{title}</td>\
         <td class=\"state state-{state_class}\">{state}</td></tr>"
    );
}

/// A link around HTML that is already escaped (`href` is a path we made).
fn link(href: &str, inner: &str) -> String {
    if inner.is_empty() {
        return String::new();
    }
    format!("<a href=\"{href}\">{inner}</a>")
}

/// What a player page plays.
pub(crate) enum Playable<'a> {
    Channel(&'a Channel),
    Asset(&'a VodAsset),
}

/// `/watch/live/{channel}` or `/watch/vod/{asset}`: the video, and the URLs to open
/// elsewhere (VLC, ffplay, a set-top box).
pub(crate) fn player_page(playable: &Playable<'_>) -> String {
    let (title, hls, others): (Cow<'_, str>, String, Vec<(&str, String)>) = match playable {
        Playable::Channel(channel) => {
            let id = &channel.id;
            (
                Cow::Owned(format!("{} {}", channel.number, channel.name)),
                format!("/live/{id}/master.m3u8"),
                vec![
                    ("DASH", format!("/live/{id}/manifest.mpd")),
                    ("MPEG-TS over HTTP", format!("/ts/{id}")),
                ],
            )
        }
        Playable::Asset(asset) => {
            let id = &asset.id;
            (
                Cow::Borrowed(asset.title.as_str()),
                format!("/vod/{id}/master.m3u8"),
                vec![("DASH", format!("/vod/{id}/manifest.mpd"))],
            )
        }
    };
    let title = escape(title.as_ref());
    let mut html = String::new();
    head(&mut html, &title);
    let _ = writeln!(
        html,
        "<body>\n<h1><a href=\"/\">headend</a> · {title}</h1>\n\
         <video id=\"player\" controls autoplay muted playsinline data-src=\"{hls}\"></video>\n\
         <p id=\"status\" role=\"status\"></p>\n<ul class=\"links\">\n\
         <li>HLS: <a href=\"{hls}\"><code>{hls}</code></a></li>"
    );
    for (label, url) in others {
        let _ = writeln!(
            html,
            "<li>{label}: <a href=\"{url}\"><code>{url}</code></a></li>"
        );
    }
    html.push_str(
        "</ul>\n<footer>Played with <a href=\"/ui/hls.js-LICENSE\">hls.js</a>.</footer>\n\
         <script src=\"/ui/hls.min.js\"></script>\n<script src=\"/ui/player.js\"></script>\n\
         </body>\n</html>\n",
    );
    html
}

/// The document's start, up to `<body>`; `title` is already escaped.
fn head(html: &mut String, title: &str) {
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<link rel=\"stylesheet\" href=\"/ui/style.css\">\n</head>\n"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{ChannelState, Registry};

    use crate::origin::listing::tests::Fixture;

    const CATALOG: &str = r#"
encoders: { x264: { element: x264enc } }
ladders:
  small:
    segment_duration: 2
    gop: 2
    renditions: [{ name: 240p, width: 320, height: 240, bitrate: 300, profile: main, max_framerate: 25 }]
    audio: { codec: aac, bitrate: 64, channels: 2 }
channels:
  - { id: sport, number: 7, name: 'Sport <b>"Live"</b>', group: "Sport & Co", source: { uri: "test://" }, ladder: small }
  - { id: news, number: 2, name: News, group: News, source: { uri: "test://" }, ladder: small }
  - { id: radio, number: 3, name: Radio, group: Radio, source: { uri: "test://" }, ladder: small, outputs: { hls: false } }
assets:
  - { id: film, title: "Film & <Friends>", source: film.mp4, ladder: small, poster: film.JPG }
  - { id: next, title: Next, source: next.mp4, ladder: small }
"#;

    fn page(fixture: &Fixture, assets: &[AssetStatus]) -> String {
        let registry = Registry::new();
        registry.register("sport", ChannelState::Slate);
        registry.register("radio", ChannelState::Live);
        let thumbnail = |id: &str| (id == "news").then_some(12);
        operator_page(&Overview {
            catalog: &fixture.catalog,
            channels: &registry.channels(),
            assets,
            thumbnail: &thumbnail,
            refresh: Duration::from_secs(4),
        })
    }

    fn rows<'a>(html: &'a str, table: &str) -> Vec<&'a str> {
        let start = html
            .find(&format!("<table id=\"{table}\">"))
            .expect("table");
        let body = &html[start..];
        let body =
            &body[body.find("<tbody>").expect("tbody") + 8..body.find("</tbody>").expect("end")];
        body.lines().collect()
    }

    #[test]
    fn channels_are_listed_by_number_with_state_picture_and_escaped_text() {
        let fixture = Fixture::with(&[("catalog.yaml", CATALOG)]);
        let html = page(&fixture, &[]);
        assert!(html.contains("<body data-refresh-ms=\"4000\">"), "{html}");
        assert_eq!(
            rows(&html, "channels"),
            [
                "<tr data-id=\"news\"><td class=\"number\">2</td><td><a href=\"/watch/live/news\">\
                 <img class=\"thumb\" src=\"/live/news/thumbnail.jpg?v=12\" width=\"160\" height=\"90\" alt=\"\">\
                 </a></td><td><a href=\"/watch/live/news\">News</a></td><td>News</td>\
                 <td class=\"state state-starting\">starting</td></tr>",
                "<tr data-id=\"radio\"><td class=\"number\">3</td><td><div class=\"thumb\"></div></td>\
                 <td>Radio</td><td>Radio</td><td class=\"state state-live\">live</td></tr>",
                "<tr data-id=\"sport\"><td class=\"number\">7</td><td><a href=\"/watch/live/sport\">\
                 <div class=\"thumb\"></div></a></td><td><a href=\"/watch/live/sport\">\
                 Sport &lt;b&gt;&quot;Live&quot;&lt;/b&gt;</a></td><td>Sport &amp; Co</td>\
                 <td class=\"state state-slate\">slate</td></tr>",
            ]
        );
    }

    #[test]
    fn vod_assets_show_their_ingest_and_link_once_available() {
        let fixture = Fixture::with(&[("catalog.yaml", CATALOG)]);
        let assets = [
            AssetStatus {
                id: "film".into(),
                title: "Film".into(),
                state: AssetState::Published,
                progress: Some(1.0),
                available: true,
                last_error: None,
            },
            AssetStatus {
                id: "next".into(),
                title: "Next".into(),
                state: AssetState::Ingesting,
                progress: Some(0.425),
                available: false,
                last_error: None,
            },
        ];
        let html = page(&fixture, &assets);
        assert_eq!(
            rows(&html, "vod"),
            [
                "<tr data-id=\"film\"><td><a href=\"/watch/vod/film\"><img class=\"thumb\" \
                 src=\"/vod/film/poster.jpg\" width=\"160\" height=\"90\" alt=\"\"></a></td>\
                 <td><a href=\"/watch/vod/film\">Film &amp; &lt;Friends&gt;</a></td>\
                 <td class=\"state state-published\">published</td></tr>",
                "<tr data-id=\"next\"><td></td><td>Next</td>\
                 <td class=\"state state-ingesting\">ingesting 42 %</td></tr>",
            ]
        );
        // Before the background ingest has listed an asset, it is pending.
        let html = page(&fixture, &[]);
        assert_eq!(
            rows(&html, "vod")[1],
            "<tr data-id=\"next\"><td></td><td>Next</td>\
             <td class=\"state state-pending\">pending</td></tr>"
        );
    }

    #[test]
    fn a_player_page_plays_the_hls_and_names_the_other_urls() {
        let fixture = Fixture::with(&[("catalog.yaml", CATALOG)]);
        let html = player_page(&Playable::Channel(&fixture.catalog.channels[0]));
        assert!(html.contains("<title>7 Sport &lt;b&gt;&quot;Live&quot;&lt;/b&gt;</title>"));
        assert!(html.contains(
            "<video id=\"player\" controls autoplay muted playsinline \
             data-src=\"/live/sport/master.m3u8\"></video>"
        ));
        assert!(html.contains("<li>DASH: <a href=\"/live/sport/manifest.mpd\">"));
        assert!(html.contains("<li>MPEG-TS over HTTP: <a href=\"/ts/sport\">"));
        assert!(html.contains("<script src=\"/ui/hls.min.js\"></script>"));
        let html = player_page(&Playable::Asset(&fixture.catalog.assets[0]));
        assert!(html.contains("<title>Film &amp; &lt;Friends&gt;</title>"));
        assert!(html.contains("data-src=\"/vod/film/master.m3u8\""));
        assert!(!html.contains("/ts/"));
    }

    #[test]
    fn ui_files_are_known_by_name_and_tagged_by_content() {
        let hls = ui_file("hls.min.js").expect("hls.js");
        assert!(hls.body.starts_with(b"!function"));
        assert_eq!(hls.etag(), etag::for_content(hls.body));
        let player = ui_file("player.js").expect("player");
        assert_ne!(player.etag(), hls.etag());
        assert_eq!(ui_file("hls.min.js.map"), None);
        assert_eq!(ui_file("../Cargo.toml"), None);
    }
}
