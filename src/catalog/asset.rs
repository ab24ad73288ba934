//! VOD assets: files the operator lists under `assets:`, ingested once into CMAF on
//! disk (see `crate::vod`) and served at `/vod/{id}/...`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One VOD asset, validated: its files resolved to absolute paths (they need not exist
/// yet; ingest checks them), its ladder known to the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VodAsset {
    /// URL segment, `^[a-z0-9][a-z0-9_-]*$`, at most 64 characters; unique among assets.
    pub id: String,
    pub title: String,
    /// The media file, or where to fetch it.
    pub source: AssetSource,
    /// Name of the asset's [`Ladder`](super::Ladder).
    pub ladder: String,
    /// WebVTT sidecar files, in the order written; each language once.
    pub subtitles: Vec<Subtitle>,
    /// An image shown before playback (JPEG, PNG or WebP).
    pub poster: Option<PathBuf>,
}

/// Where a VOD asset's media comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssetSource {
    /// A file on this machine.
    File(PathBuf),
    /// An `http://` or `https://` URL; ingest keeps a copy on disk and asks the server
    /// only whether it changed (`vod::fetch`).
    Url(url::Url),
}

impl std::fmt::Display for AssetSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AssetSource::File(path) => write!(f, "{}", path.display()),
            AssetSource::Url(url) => f.write_str(url.as_str()),
        }
    }
}

/// A WebVTT subtitle file of an asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subtitle {
    /// RFC 5646 language tag (`en`, `pt-BR`): HLS `LANGUAGE`, DASH `lang`, and the file
    /// name under `subs/`.
    pub lang: String,
    /// What a player shows in its subtitle menu; the language tag when not given.
    pub name: String,
    pub file: PathBuf,
}

impl VodAsset {
    /// An asset made on the command line from a bare file path: no subtitles, no
    /// poster, the file name as its title.
    pub fn from_file(id: String, source: PathBuf, ladder: String) -> VodAsset {
        let title = source
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| id.clone());
        VodAsset {
            id,
            title,
            source: AssetSource::File(source),
            ladder,
            subtitles: Vec::new(),
            poster: None,
        }
    }
}

/// Poster image extensions accepted, lowercase. The file keeps its extension on disk
/// and in its URL (`poster.jpg`), so the origin knows its type.
pub const POSTER_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AssetSpec {
    pub id: String,
    pub title: String,
    pub source: String,
    pub ladder: String,
    #[serde(default)]
    pub subtitles: Vec<SubtitleSpec>,
    #[serde(default)]
    pub poster: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SubtitleSpec {
    pub lang: String,
    pub file: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// Resolves a VOD source: an `http://` or `https://` URL, or a plain path or a
/// `file://` path (both relative to the catalog file's directory, taken literally like
/// a channel's `file://`). The error is a message for a [`Problem`](super::Problem).
pub(super) fn resolve_source(source: &str, base: &Path) -> Result<AssetSource, String> {
    if let Some(path) = source.strip_prefix("file://") {
        return resolve_file(path, base, "source").map(AssetSource::File);
    }
    match source.split_once("://") {
        Some((scheme, _))
            if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
        {
            let url = url::Url::parse(source)
                .map_err(|error| format!("VOD source `{source}` is not a URL: {error}"))?;
            if url.host_str().is_none_or(str::is_empty) {
                return Err(format!("VOD source `{source}` has no host"));
            }
            Ok(AssetSource::Url(url))
        }
        Some((scheme, _)) if is_scheme(scheme) => Err(format!(
            "unsupported VOD source scheme `{scheme}`: give a file path, a file:// URL or an http(s):// URL"
        )),
        _ => resolve_file(source, base, "source").map(AssetSource::File),
    }
}

/// A file path relative to the catalog file's directory (a subtitle, a poster).
pub(super) fn resolve_file(path: &str, base: &Path, what: &str) -> Result<PathBuf, String> {
    if path.trim().is_empty() {
        return Err(format!("{what} path must not be empty"));
    }
    // `..` is kept, as for channel file sources: folding it is wrong where the
    // catalog directory is a symbolic link.
    std::path::absolute(base.join(path))
        .map_err(|error| format!("cannot resolve {what} path `{path}`: {error}"))
}

/// RFC 3986 3.1: `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`. A Windows drive letter
/// (`C:`) never reaches here with `://` after it.
fn is_scheme(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// A language tag as RFC 5646 shapes it, loosely: a 2–3 letter primary language
/// (or `und`), then subtags of 1–8 letters or digits, joined by `-`. It becomes a file
/// name and a URL segment, so nothing else is let through.
pub(super) fn is_language_tag(tag: &str) -> bool {
    let mut subtags = tag.split('-');
    let primary_ok = subtags
        .next()
        .is_some_and(|p| (2..=3).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphabetic()));
    primary_ok
        && subtags
            .all(|s| (1..=8).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// The lowercase extension of a poster file, if it is one we serve.
pub fn poster_extension(path: &Path) -> Option<String> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    POSTER_EXTENSIONS
        .contains(&extension.as_str())
        .then_some(extension)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_paths_or_file_urls_relative_to_the_catalog() {
        let base = Path::new("/srv/catalog");
        assert_eq!(
            resolve_source("../media/film.mp4", base),
            Ok(AssetSource::File(PathBuf::from(
                "/srv/catalog/../media/film.mp4"
            )))
        );
        assert_eq!(
            resolve_source("file://media/film.mp4", base),
            Ok(AssetSource::File(PathBuf::from(
                "/srv/catalog/media/film.mp4"
            )))
        );
        assert_eq!(
            resolve_source("file:///var/media/film.mp4", base),
            Ok(AssetSource::File(PathBuf::from("/var/media/film.mp4")))
        );
        assert_eq!(
            resolve_source("/var/media/film.mp4", base),
            Ok(AssetSource::File(PathBuf::from("/var/media/film.mp4")))
        );
    }

    #[test]
    fn http_sources_are_urls_and_other_schemes_say_what_is_wrong() {
        let base = Path::new("/srv");
        let url = "https://cdn.example.com/films/film.mp4?token=a%20b";
        assert_eq!(
            resolve_source(url, base),
            Ok(AssetSource::Url(url::Url::parse(url).unwrap()))
        );
        assert_eq!(
            resolve_source("HTTP://cdn.example.com/film.mp4", base).map(|s| s.to_string()),
            Ok("http://cdn.example.com/film.mp4".to_owned())
        );
        assert_eq!(
            resolve_source("http://", base),
            Err("VOD source `http://` is not a URL: empty host".to_owned())
        );
        assert_eq!(
            resolve_source("ftp://x/film.mp4", base),
            Err(
                "unsupported VOD source scheme `ftp`: give a file path, a file:// URL or an \
                 http(s):// URL"
                    .to_owned()
            )
        );
        assert_eq!(
            resolve_source("", base),
            Err("source path must not be empty".to_owned())
        );
        assert_eq!(
            resolve_source("file://", base),
            Err("source path must not be empty".to_owned())
        );
    }

    #[test]
    fn language_tags() {
        for good in ["en", "fra", "pt-BR", "zh-Hant-TW", "es-419", "und"] {
            assert!(is_language_tag(good), "{good}");
        }
        for bad in [
            "",
            "e",
            "english",
            "en_US",
            "en-",
            "-en",
            "en/..",
            "en-abcdefghi",
            "1a",
        ] {
            assert!(!is_language_tag(bad), "{bad}");
        }
    }

    #[test]
    fn poster_extensions_are_images_we_can_name() {
        assert_eq!(
            poster_extension(Path::new("a/b.JPG")).as_deref(),
            Some("jpg")
        );
        assert_eq!(
            poster_extension(Path::new("b.webp")).as_deref(),
            Some("webp")
        );
        assert_eq!(poster_extension(Path::new("b.gif")), None);
        assert_eq!(poster_extension(Path::new("poster")), None);
    }

    const LADDERS: &str = "\
encoders:
  x264: { element: x264enc }
ladders:
  default:
    segment_duration: 2
    gop: 1
    renditions:
      - { name: 720p, width: 1280, height: 720, bitrate: 2500, profile: high, max_framerate: 30 }
    audio: { codec: aac, bitrate: 128, channels: 2 }
";

    fn load(assets: &str) -> Result<super::super::Catalog, super::super::CatalogError> {
        super::super::Catalog::from_texts(&[
            (PathBuf::from("/srv/catalog/vod.yaml"), assets.to_owned()),
            (
                PathBuf::from("/srv/catalog/ladders.yaml"),
                LADDERS.to_owned(),
            ),
        ])
    }

    fn problems(assets: &str) -> Vec<String> {
        match load(assets) {
            Ok(catalog) => panic!("expected problems, loaded {catalog:#?}"),
            Err(super::super::CatalogError::Invalid(problems)) => {
                problems.iter().map(ToString::to_string).collect()
            }
            Err(error) => panic!("expected problems, got {error}"),
        }
    }

    #[test]
    fn a_valid_asset_loads_with_its_files_resolved() {
        let catalog = load(
            "assets:\n  - id: film\n    title: Film\n    source: media/film.mp4\n    ladder: default\n    subtitles:\n      - { lang: en, file: subs/en.vtt, name: English }\n      - { lang: pt-BR, file: /abs/pt.vtt }\n    poster: art/film.PNG\n",
        )
        .unwrap_or_else(|error| panic!("{error}"));
        let film = catalog.asset("film").expect("the asset");
        assert_eq!(
            film.source,
            AssetSource::File(PathBuf::from("/srv/catalog/media/film.mp4"))
        );
        assert_eq!(
            film.subtitles,
            [
                Subtitle {
                    lang: "en".into(),
                    name: "English".into(),
                    file: "/srv/catalog/subs/en.vtt".into()
                },
                Subtitle {
                    lang: "pt-BR".into(),
                    name: "pt-BR".into(),
                    file: "/abs/pt.vtt".into()
                },
            ]
        );
        assert_eq!(
            film.poster,
            Some(PathBuf::from("/srv/catalog/art/film.PNG"))
        );
        assert_eq!(catalog.asset("other"), None);
    }

    #[test]
    fn every_asset_problem_is_placed() {
        let text = "\
assets:
  - id: Film
    title: ''
    source: rtsp://cam.example.com/film
    ladder: hd
    subtitles:
      - { lang: english, file: en.srt }
      - { lang: fr, file: fr.vtt, name: ' ' }
      - { lang: fr, file: fr2.vtt }
    poster: poster.gif
  - id: film
    title: Film
    source: film.mp4
    ladder: default
  - id: film
    title: Film again
    source: film.mp4
    ladder: default
    colour: red
";
        assert_eq!(
            problems(text),
            [
                "/srv/catalog/vod.yaml:19:5: assets[2]: unknown field `colour`, expected one of `id`, `title`, `source`, `ladder`, `subtitles`, `poster`",
            ]
        );
        let text = text.replace("    colour: red\n", "");
        assert_eq!(
            problems(&text),
            [
                "/srv/catalog/vod.yaml:2:9: asset id `Film` must match ^[a-z0-9][a-z0-9_-]*$ and be at most 64 characters",
                "/srv/catalog/vod.yaml:3:12: asset title must not be empty",
                "/srv/catalog/vod.yaml:4:13: unsupported VOD source scheme `rtsp`: give a file path, a file:// URL or an http(s):// URL",
                "/srv/catalog/vod.yaml:5:13: unknown ladder `hd` (defined: default)",
                "/srv/catalog/vod.yaml:7:17: subtitle lang `english` is not a language tag such as `en`, `fra` or `pt-BR`",
                "/srv/catalog/vod.yaml:7:32: subtitle file `en.srt` must be WebVTT (.vtt)",
                "/srv/catalog/vod.yaml:8:41: subtitle name must not be empty",
                "/srv/catalog/vod.yaml:9:17: subtitle lang `fr` is already used by subtitles[1]",
                "/srv/catalog/vod.yaml:10:13: poster `poster.gif` must be an image named .jpg, .jpeg, .png, .webp",
                "/srv/catalog/vod.yaml:15:9: asset id `film` is already used at /srv/catalog/vod.yaml:11:9",
            ]
        );
    }
}
