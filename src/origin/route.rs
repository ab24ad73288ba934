//! Request paths to routes (the origin's part of the public URL layout).
//!
//! Every path segment is percent-decoded on its own and then checked, so an encoded
//! slash, dot-segment or control character can never reach a store lookup as part of a
//! name. Nothing here touches a filesystem. VOD routes name files on disk, so their
//! names are held to what the catalog and the VOD writer make (asset and track names
//! are lowercase URL segments without dots, file names come from a fixed set), and a
//! [`VodFile`] turns into a relative path only through [`VodFile::relative_path`].

use std::path::PathBuf;

pub(crate) use super::api::Endpoint;
use super::metrics::RouteKind;
use super::page::{self, UiFile};
use crate::catalog::is_url_segment;

/// One origin route, with its names percent-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/`: the operator page.
    Home,
    /// `/watch/live/{channel}` or `/watch/vod/{asset}`: a player page.
    Watch(Watch),
    /// `/ui/{file}`: the pages' style, scripts and hls.js.
    Ui(&'static UiFile),
    /// `/live/{channel}/thumbnail.jpg`: the channel's newest still picture.
    Thumbnail { channel: String },
    /// `/healthz`: the process answers.
    Health,
    /// `/readyz`: the catalog is loaded and every channel has come up (or failed).
    Ready,
    /// `/metrics`: Prometheus text format.
    Metrics,
    /// `/playlist.m3u`: the channel list for IPTV apps.
    Playlist,
    /// `/epg.xml`: the XMLTV guide of the playlist's channels.
    Guide,
    /// `/live/{channel}/master.m3u8`
    Master { channel: String },
    /// `/live/{channel}/{track}/index.m3u8`
    MediaPlaylist { channel: String, track: String },
    /// `/live/{channel}/{track}/init-{version}.mp4` (what playlists name), or
    /// `init.mp4` for the newest version (`version: None`)
    Init {
        channel: String,
        track: String,
        version: Option<u32>,
    },
    /// `/live/{channel}/{track}/{sequence}.m4s`
    Segment {
        channel: String,
        track: String,
        sequence: u64,
    },
    /// `/live/{channel}/manifest.mpd`
    Manifest { channel: String },
    /// `/time`: the origin's clock, for DASH `UTCTiming`.
    Time,
    /// `/ts/{channel}`: the channel's MPEG transport stream, for as long as the client
    /// reads.
    Ts { channel: String },
    /// `/vod/{asset}/...`
    Vod { asset: String, file: VodFile },
    /// `/api/v1/...`
    Api(Endpoint),
}

impl Route {
    /// The route's kind, as the request metrics label it.
    pub(crate) fn kind(&self) -> RouteKind {
        match self {
            Route::Home | Route::Watch(_) | Route::Ui(_) => RouteKind::Page,
            Route::Thumbnail { .. } => RouteKind::Thumbnail,
            Route::Health => RouteKind::Health,
            Route::Ready => RouteKind::Ready,
            Route::Metrics => RouteKind::Metrics,
            Route::Playlist => RouteKind::Playlist,
            Route::Guide => RouteKind::Guide,
            Route::Master { .. } => RouteKind::Master,
            Route::MediaPlaylist { .. } => RouteKind::MediaPlaylist,
            Route::Init { .. } => RouteKind::Init,
            Route::Segment { .. } => RouteKind::Segment,
            Route::Manifest { .. } => RouteKind::Manifest,
            Route::Time => RouteKind::Time,
            Route::Ts { .. } => RouteKind::Ts,
            Route::Vod { .. } => RouteKind::Vod,
            Route::Api(_) => RouteKind::Api,
        }
    }
}

/// What a player page plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Watch {
    Live(String),
    Vod(String),
}

/// A file of a published VOD asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VodFile {
    /// `master.m3u8`
    Master,
    /// `manifest.mpd`
    Manifest,
    /// `{track}/index.m3u8`
    MediaPlaylist { track: String },
    /// `{track}/iframes.m3u8`
    IFramePlaylist { track: String },
    /// `{track}/init.mp4`
    Init { track: String },
    /// `{track}/{number}.m4s`
    Segment { track: String, number: u64 },
    /// `subs/{lang}.vtt`
    Subtitles { lang: String },
    /// `subs/{lang}.m3u8`
    SubtitlePlaylist { lang: String },
    /// `poster.{extension}`
    Poster { extension: &'static str },
}

/// Poster extensions the VOD writer keeps (`catalog::POSTER_EXTENSIONS`).
const POSTER_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

impl VodFile {
    /// The file's path inside the asset's folder. Every part is a name `parse`
    /// checked or a fixed word, so the path stays inside the folder.
    pub(crate) fn relative_path(&self) -> PathBuf {
        match self {
            VodFile::Master => PathBuf::from("master.m3u8"),
            VodFile::Manifest => PathBuf::from("manifest.mpd"),
            VodFile::MediaPlaylist { track } => PathBuf::from(track).join("index.m3u8"),
            VodFile::IFramePlaylist { track } => PathBuf::from(track).join("iframes.m3u8"),
            VodFile::Init { track } => PathBuf::from(track).join("init.mp4"),
            VodFile::Segment { track, number } => {
                PathBuf::from(track).join(format!("{number}.m4s"))
            }
            VodFile::Subtitles { lang } => PathBuf::from("subs").join(format!("{lang}.vtt")),
            VodFile::SubtitlePlaylist { lang } => {
                PathBuf::from("subs").join(format!("{lang}.m3u8"))
            }
            VodFile::Poster { extension } => PathBuf::from(format!("poster.{extension}")),
        }
    }
}

/// Why a path has no route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteError {
    /// The path is malformed or tries to escape its segment (`..`, encoded `/`, NUL):
    /// answered with 400.
    BadPath,
    /// A well-formed path that names nothing: answered with 404.
    NotFound,
}

/// Parses the path of an origin-form request target (the part before `?`).
pub(crate) fn parse(path: &str) -> Result<Route, RouteError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(RouteError::BadPath);
    };
    if rest.is_empty() {
        return Ok(Route::Home);
    }
    let segments = rest
        .split('/')
        .map(decode_segment)
        .collect::<Result<Vec<String>, RouteError>>()?;
    // No route has an empty segment (`//`, a trailing `/`); this check also keeps empty
    // channel and track names out of the match below.
    if segments.iter().any(String::is_empty) {
        return Err(RouteError::NotFound);
    }
    let names: Vec<&str> = segments.iter().map(String::as_str).collect();
    match names.as_slice() {
        ["healthz"] => Ok(Route::Health),
        ["readyz"] => Ok(Route::Ready),
        ["metrics"] => Ok(Route::Metrics),
        ["playlist.m3u"] => Ok(Route::Playlist),
        ["epg.xml"] => Ok(Route::Guide),
        ["time"] => Ok(Route::Time),
        ["ui", name] => page::ui_file(name)
            .map(Route::Ui)
            .ok_or(RouteError::NotFound),
        ["watch", "live", channel] => Ok(Route::Watch(Watch::Live((*channel).to_owned()))),
        ["watch", "vod", asset] => Ok(Route::Watch(Watch::Vod((*asset).to_owned()))),
        ["api", "v1", "catalog"] => Ok(Route::Api(Endpoint::Catalog)),
        ["api", "v1", "reload"] => Ok(Route::Api(Endpoint::Reload)),
        ["api", "v1", "channels"] => Ok(Route::Api(Endpoint::Channels)),
        ["api", "v1", "channels", channel] => {
            Ok(Route::Api(Endpoint::Channel((*channel).to_owned())))
        }
        ["api", "v1", "vod"] => Ok(Route::Api(Endpoint::Vod)),
        ["ts", channel] => Ok(Route::Ts {
            channel: (*channel).to_owned(),
        }),
        ["vod", asset, rest @ ..] => {
            if !is_url_segment(asset) {
                return Err(RouteError::NotFound);
            }
            Ok(Route::Vod {
                asset: (*asset).to_owned(),
                file: vod_file(rest).ok_or(RouteError::NotFound)?,
            })
        }
        ["live", channel, "manifest.mpd"] => Ok(Route::Manifest {
            channel: (*channel).to_owned(),
        }),
        ["live", channel, "master.m3u8"] => Ok(Route::Master {
            channel: (*channel).to_owned(),
        }),
        ["live", channel, "thumbnail.jpg"] => Ok(Route::Thumbnail {
            channel: (*channel).to_owned(),
        }),
        ["live", channel, track, "index.m3u8"] => Ok(Route::MediaPlaylist {
            channel: (*channel).to_owned(),
            track: (*track).to_owned(),
        }),
        ["live", channel, track, "init.mp4"] => Ok(Route::Init {
            channel: (*channel).to_owned(),
            track: (*track).to_owned(),
            version: None,
        }),
        ["live", channel, track, file] if file.starts_with("init-") => {
            let version = file
                .strip_prefix("init-")
                .and_then(|f| f.strip_suffix(".mp4"))
                .and_then(parse_sequence)
                .and_then(|v| u32::try_from(v).ok())
                .ok_or(RouteError::NotFound)?;
            Ok(Route::Init {
                channel: (*channel).to_owned(),
                track: (*track).to_owned(),
                version: Some(version),
            })
        }
        ["live", channel, track, file] => {
            let sequence = file
                .strip_suffix(".m4s")
                .and_then(parse_sequence)
                .ok_or(RouteError::NotFound)?;
            Ok(Route::Segment {
                channel: (*channel).to_owned(),
                track: (*track).to_owned(),
                sequence,
            })
        }
        _ => Err(RouteError::NotFound),
    }
}

/// The file a VOD path names inside its asset's folder, if it is one the VOD writer
/// makes.
fn vod_file(names: &[&str]) -> Option<VodFile> {
    let file = match names {
        ["master.m3u8"] => VodFile::Master,
        ["manifest.mpd"] => VodFile::Manifest,
        [poster] if poster.starts_with("poster.") => {
            let extension = poster.strip_prefix("poster.")?;
            VodFile::Poster {
                extension: POSTER_EXTENSIONS.into_iter().find(|e| *e == extension)?,
            }
        }
        ["subs", file] if file.ends_with(".vtt") || file.ends_with(".m3u8") => {
            let (lang, playlist) = match file.strip_suffix(".vtt") {
                Some(lang) => (lang, false),
                None => (file.strip_suffix(".m3u8")?, true),
            };
            if !is_language_tag(lang) {
                return None;
            }
            let lang = lang.to_owned();
            if playlist {
                VodFile::SubtitlePlaylist { lang }
            } else {
                VodFile::Subtitles { lang }
            }
        }
        [track, file] if is_url_segment(track) => {
            let track = (*track).to_owned();
            match *file {
                "index.m3u8" => VodFile::MediaPlaylist { track },
                "iframes.m3u8" => VodFile::IFramePlaylist { track },
                "init.mp4" => VodFile::Init { track },
                file => VodFile::Segment {
                    track,
                    number: file.strip_suffix(".m4s").and_then(parse_sequence)?,
                },
            }
        }
        _ => return None,
    };
    Some(file)
}

/// A subtitle language as the catalog takes it (RFC 5646 shape): letters, digits and
/// inner `-`, starting with a letter.
fn is_language_tag(tag: &str) -> bool {
    tag.len() <= 35
        && tag.starts_with(|c: char| c.is_ascii_alphabetic())
        && !tag.ends_with('-')
        && !tag.contains("--")
        && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A media sequence number as the packager writes it: plain decimal, no sign, no
/// leading zeros (so each segment has exactly one URL and one cache entry).
fn parse_sequence(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if text.len() > 1 && text.starts_with('0') {
        return None;
    }
    text.parse().ok()
}

/// Percent-decodes one path segment and rejects what must never be part of a name.
fn decode_segment(raw: &str) -> Result<String, RouteError> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let high = bytes.get(i + 1).and_then(|b| hex_value(*b));
            let low = bytes.get(i + 2).and_then(|b| hex_value(*b));
            let (Some(high), Some(low)) = (high, low) else {
                return Err(RouteError::BadPath);
            };
            decoded.push(high << 4 | low);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    let decoded = String::from_utf8(decoded).map_err(|_| RouteError::BadPath)?;
    let escapes = decoded == "." || decoded == "..";
    let forbidden = decoded
        .chars()
        .any(|c| c == '/' || c == '\\' || c.is_control());
    if escapes || forbidden {
        return Err(RouteError::BadPath);
    }
    Ok(decoded)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(channel: &str, track: &str, sequence: u64) -> Route {
        Route::Segment {
            channel: channel.to_owned(),
            track: track.to_owned(),
            sequence,
        }
    }

    #[test]
    fn public_layout_routes() {
        assert_eq!(parse("/healthz"), Ok(Route::Health));
        assert_eq!(
            parse("/live/news/master.m3u8"),
            Ok(Route::Master {
                channel: "news".into()
            })
        );
        assert_eq!(
            parse("/live/news/720p/index.m3u8"),
            Ok(Route::MediaPlaylist {
                channel: "news".into(),
                track: "720p".into()
            })
        );
        assert_eq!(
            parse("/live/news/audio/init.mp4"),
            Ok(Route::Init {
                channel: "news".into(),
                track: "audio".into(),
                version: None,
            })
        );
        assert_eq!(
            parse("/live/news/720p/init-3.mp4"),
            Ok(Route::Init {
                channel: "news".into(),
                track: "720p".into(),
                version: Some(3),
            })
        );
        for bad in [
            "init-.mp4",
            "init-03.mp4",
            "init-x.mp4",
            "init-4294967296.mp4",
        ] {
            assert_eq!(
                parse(&format!("/live/news/720p/{bad}")),
                Err(RouteError::NotFound),
                "{bad}"
            );
        }
        assert_eq!(
            parse("/live/news/720p/42.m4s"),
            Ok(segment("news", "720p", 42))
        );
        assert_eq!(
            parse("/live/news/720p/0.m4s"),
            Ok(segment("news", "720p", 0))
        );
        assert_eq!(
            parse("/live/news/720p/18446744073709551615.m4s"),
            Ok(segment("news", "720p", u64::MAX))
        );
    }

    #[test]
    fn listings_for_iptv_apps() {
        assert_eq!(parse("/playlist.m3u"), Ok(Route::Playlist));
        assert_eq!(parse("/epg.xml"), Ok(Route::Guide));
        for path in [
            "/playlist.m3u/",
            "/playlist.m3u8",
            "/live/playlist.m3u",
            "/EPG.xml",
            "/epg.xml/x",
        ] {
            assert_eq!(parse(path), Err(RouteError::NotFound), "{path}");
        }
    }

    #[test]
    fn operations_api() {
        assert_eq!(parse("/api/v1/catalog"), Ok(Route::Api(Endpoint::Catalog)));
        assert_eq!(parse("/api/v1/reload"), Ok(Route::Api(Endpoint::Reload)));
        assert_eq!(
            parse("/api/v1/channels"),
            Ok(Route::Api(Endpoint::Channels))
        );
        assert_eq!(
            parse("/api/v1/channels/news"),
            Ok(Route::Api(Endpoint::Channel("news".into())))
        );
        assert_eq!(parse("/api/v1/vod"), Ok(Route::Api(Endpoint::Vod)));
        assert_eq!(parse("/readyz"), Ok(Route::Ready));
        assert_eq!(parse("/metrics"), Ok(Route::Metrics));
        for path in [
            "/api/v1/channels/",
            "/api/v1/channels/news/x",
            "/api/v1/vod/film",
            "/readyz/",
            "/metrics/x",
            "/api",
            "/api/v1",
            "/api/v1/",
            "/api/v2/catalog",
            "/api/v1/catalog/",
            "/api/v1/Reload",
            "/api/v1/reload/now",
        ] {
            assert_eq!(parse(path), Err(RouteError::NotFound), "{path}");
        }
    }

    #[test]
    fn percent_encoded_unreserved_characters_are_the_same_name() {
        assert_eq!(
            parse("/live/n%65ws/master%2Em3u8"),
            Ok(Route::Master {
                channel: "news".into()
            })
        );
    }

    #[test]
    fn sequence_numbers_have_one_spelling() {
        for path in [
            "/live/news/720p/042.m4s",
            "/live/news/720p/+42.m4s",
            "/live/news/720p/-1.m4s",
            "/live/news/720p/4 2.m4s",
            "/live/news/720p/.m4s",
            "/live/news/720p/0x2a.m4s",
            "/live/news/720p/18446744073709551616.m4s",
            "/live/news/720p/42.mp4",
            "/live/news/720p/42.1.m4s",
        ] {
            assert_eq!(parse(path), Err(RouteError::NotFound), "{path}");
        }
    }

    #[test]
    fn pages_thumbnails_and_their_files_have_routes() {
        assert_eq!(parse("/"), Ok(Route::Home));
        assert_eq!(
            parse("/watch/live/news"),
            Ok(Route::Watch(Watch::Live("news".into())))
        );
        assert_eq!(
            parse("/watch/vod/film"),
            Ok(Route::Watch(Watch::Vod("film".into())))
        );
        assert_eq!(
            parse("/live/news/thumbnail.jpg"),
            Ok(Route::Thumbnail {
                channel: "news".into()
            })
        );
        assert!(
            matches!(parse("/ui/hls.min.js"), Ok(Route::Ui(file)) if file.name == "hls.min.js")
        );
        for path in [
            "/ui",
            "/ui/",
            "/ui/secret.js",
            "/ui/hls.min.js.map",
            "/watch/news",
            "/watch/live",
            "/watch/live/news/more",
        ] {
            assert_eq!(parse(path), Err(RouteError::NotFound), "{path}");
        }
    }

    #[test]
    fn unknown_shapes_are_not_found() {
        for path in [
            "/live",
            "/live/",
            "/live/news",
            "/live/news/",
            "/live/news/720p/index.m3u8/",
            "/live//720p/index.m3u8",
            "/live/news//index.m3u8",
            "/live/news/720p/extra/1.m4s",
            "/healthz/",
            "/HEALTHZ",
        ] {
            assert_eq!(parse(path), Err(RouteError::NotFound), "{path}");
        }
    }

    #[test]
    fn traversal_and_smuggled_separators_are_bad_paths() {
        for path in [
            "/live/../etc/passwd",
            "/live/news/../../etc/passwd",
            "/live/./news/master.m3u8",
            "/live/%2e%2e/x",
            "/live/%2E%2E/x",
            "/live/.%2e/x",
            "/live/news/%2F..%2F/index.m3u8",
            "/live/news%2f720p/index.m3u8",
            "/live/news%5c..%5c/index.m3u8",
            "/live/news%00/master.m3u8",
            "/live/news%0a/master.m3u8",
            "/live/news/%zz/index.m3u8",
            "/live/news/%2/index.m3u8",
            "/live/news/%/index.m3u8",
            "/live/%ff%fe/master.m3u8",
            "healthz",
            "*",
            "",
        ] {
            assert_eq!(parse(path), Err(RouteError::BadPath), "{path}");
        }
    }

    fn vod(asset: &str, file: VodFile) -> Result<Route, RouteError> {
        Ok(Route::Vod {
            asset: asset.to_owned(),
            file,
        })
    }

    #[test]
    fn vod_layout_routes() {
        let track = || "720p".to_owned();
        let cases = [
            ("/vod/film/master.m3u8", VodFile::Master, "master.m3u8"),
            ("/vod/film/manifest.mpd", VodFile::Manifest, "manifest.mpd"),
            (
                "/vod/film/720p/index.m3u8",
                VodFile::MediaPlaylist { track: track() },
                "720p/index.m3u8",
            ),
            (
                "/vod/film/720p/iframes.m3u8",
                VodFile::IFramePlaylist { track: track() },
                "720p/iframes.m3u8",
            ),
            (
                "/vod/film/audio/init.mp4",
                VodFile::Init {
                    track: "audio".into(),
                },
                "audio/init.mp4",
            ),
            (
                "/vod/film/720p/12.m4s",
                VodFile::Segment {
                    track: track(),
                    number: 12,
                },
                "720p/12.m4s",
            ),
            (
                "/vod/film/subs/pt-BR.vtt",
                VodFile::Subtitles {
                    lang: "pt-BR".into(),
                },
                "subs/pt-BR.vtt",
            ),
            (
                "/vod/film/subs/en.m3u8",
                VodFile::SubtitlePlaylist { lang: "en".into() },
                "subs/en.m3u8",
            ),
            (
                "/vod/film/poster.jpg",
                VodFile::Poster { extension: "jpg" },
                "poster.jpg",
            ),
        ];
        for (path, file, relative) in cases {
            assert_eq!(file.relative_path(), PathBuf::from(relative), "{path}");
            assert_eq!(parse(path), vod("film", file), "{path}");
        }
        assert_eq!(parse("/time"), Ok(Route::Time));
        assert_eq!(
            parse("/live/news/manifest.mpd"),
            Ok(Route::Manifest {
                channel: "news".into()
            })
        );
    }

    #[test]
    fn vod_paths_name_only_what_the_writer_makes() {
        for path in [
            "/vod/Film/master.m3u8",
            "/vod/film.3f9c0a1b2c3d4e5f.1/master.m3u8",
            "/vod/.tmp-film-1-2/master.m3u8",
            "/vod/film/asset.json",
            "/vod/film/index.m3u8",
            "/vod/film/720p/asset.json",
            "/vod/film/720p/012.m4s",
            "/vod/film/720P/1.m4s",
            "/vod/film/a.b/1.m4s",
            "/vod/film/subs/en.srt",
            "/vod/film/subs/-en.vtt",
            "/vod/film/subs/.vtt",
            "/vod/film/subs/en.vtt.m3u8",
            "/vod/film/poster.gif",
            "/vod/film/poster.",
            "/vod/film/720p/extra/1.m4s",
            "/vod/film",
            "/vod",
        ] {
            assert_eq!(parse(path), Err(RouteError::NotFound), "{path}");
        }
        for path in [
            "/vod/../master.m3u8",
            "/vod/film/%2e%2e/720p/1.m4s",
            "/vod/film/subs/..%2fx.vtt",
        ] {
            assert_eq!(parse(path), Err(RouteError::BadPath), "{path}");
        }
    }
}
