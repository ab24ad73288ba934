use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use url::Url;

use super::{Epg, Multicast};

/// One live channel: where its video comes from and what it is encoded to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// URL segment, `^[a-z0-9][a-z0-9_-]*$`, at most 64 characters; unique.
    pub id: String,
    /// Channel number in the M3U playlist; unique and greater than 0.
    pub number: u32,
    pub name: String,
    pub group: String,
    pub logo: Option<String>,
    pub source: Source,
    /// Name of the channel's [`Ladder`](super::Ladder).
    pub ladder: String,
    pub outputs: Outputs,
    /// The MPEG-TS multicast feed for set-top boxes, if the channel has one.
    pub multicast: Option<Multicast>,
    /// Where the channel's programme guide comes from, if it has one.
    pub epg: Option<Epg>,
    /// What the channel plays when its source stops delivering; `None` (no `backup:`,
    /// `slate:` or `stall_timeout:` in the catalog) keeps a stalled source's channel
    /// waiting for it, as before failover existed.
    pub failover: Option<Failover>,
}

/// A channel's failover: primary source → backup source → slate, and back to the
/// primary once it delivers again (see the supervisor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failover {
    /// The second input, tried when the primary fails or stalls.
    pub backup: Option<Source>,
    /// The picture the slate shows (any image GStreamer decodes); `None` for the
    /// generated "Off air" card. The file need not exist when the catalog is checked.
    pub slate_image: Option<PathBuf>,
    /// An input that delivers no video for this long has stalled.
    pub stall_timeout: std::time::Duration,
}

impl Failover {
    /// `stall_timeout` when the catalog leaves it out.
    pub const DEFAULT_STALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
}

/// Where a channel's input comes from. Only a validated catalog makes one, so
/// the scheme is always supported and a `file://` path already resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// As written in the catalog.
    pub uri: String,
    /// Scheme-specific settings (`latency`, `mode`, `interface`, …) as text,
    /// handed to the input element.
    pub options: BTreeMap<String, String>,
    scheme: SourceScheme,
    target: Target,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    File(PathBuf),
    Url(Url),
}

/// The kinds of input a channel can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceScheme {
    /// `test://`: generated bars and tone.
    Test,
    /// `file://PATH`: a media file, looped.
    File,
    /// `udp://`: MPEG-TS over UDP, multicast or unicast.
    Udp,
    /// `rtp://`: MPEG-TS over RTP.
    Rtp,
    /// `srt://`: MPEG-TS over SRT, caller or listener.
    Srt,
    Rtmp,
    Rtsp,
    /// `http://` or `https://` to an `.m3u8` playlist.
    Hls,
}

impl SourceScheme {
    /// The URI schemes a catalog accepts, for messages.
    pub(super) const NAMES: &'static str = "test, file, udp, rtp, srt, rtmp, rtsp, http, https";
}

impl Source {
    pub fn scheme(&self) -> SourceScheme {
        self.scheme
    }

    /// The absolute path of a `file://` source.
    pub fn file_path(&self) -> Option<&Path> {
        match &self.target {
            Target::File(path) => Some(path),
            Target::Url(_) => None,
        }
    }

    /// The parsed URI of any source but `file://`.
    pub fn url(&self) -> Option<&Url> {
        match &self.target {
            Target::File(_) => None,
            Target::Url(url) => Some(url),
        }
    }

    /// Checks `uri` and resolves a relative `file://` path against `base`, the
    /// directory of the catalog file that declares it. The error is a message
    /// for a [`Problem`](super::Problem).
    pub(super) fn resolve(
        uri: &str,
        options: BTreeMap<String, String>,
        base: &Path,
    ) -> Result<Source, String> {
        let (scheme, target) = match uri.strip_prefix("file://") {
            Some(path) => (SourceScheme::File, Target::File(resolve_path(path, base)?)),
            None => {
                let url = Url::parse(uri)
                    .map_err(|error| format!("cannot parse source URI `{uri}`: {error}"))?;
                (scheme_of(&url)?, Target::Url(url))
            }
        };
        Ok(Source {
            uri: uri.to_owned(),
            options,
            scheme,
            target,
        })
    }
}

/// Resolves a slate image path against `base`, the catalog file's directory.
pub(super) fn resolve_slate_image(path: &str, base: &Path) -> Result<PathBuf, String> {
    if path.is_empty() {
        return Err("slate image path is empty".to_owned());
    }
    std::path::absolute(base.join(path))
        .map_err(|error| format!("cannot resolve slate image path `{path}`: {error}"))
}

/// The part after `file://` is a plain path, not percent-encoded, so that
/// `file://../var/media/demo.mp4` reads as an operator means it. The file need
/// not exist yet: media is often generated after the catalog is checked.
fn resolve_path(path: &str, base: &Path) -> Result<PathBuf, String> {
    if path.is_empty() {
        return Err("file:// source has an empty path".to_owned());
    }
    // `..` is kept rather than folded away: folding it is wrong where the
    // catalog directory is a symbolic link.
    std::path::absolute(base.join(path))
        .map_err(|error| format!("cannot resolve file:// path `{path}`: {error}"))
}

fn scheme_of(url: &Url) -> Result<SourceScheme, String> {
    let scheme = match url.scheme() {
        "test" => return Ok(SourceScheme::Test),
        "udp" => SourceScheme::Udp,
        "rtp" => SourceScheme::Rtp,
        "srt" => SourceScheme::Srt,
        "rtmp" => SourceScheme::Rtmp,
        "rtsp" => SourceScheme::Rtsp,
        "http" | "https" => SourceScheme::Hls,
        "file" => return Err("write file sources as file://PATH".to_owned()),
        other => {
            return Err(format!(
                "unsupported source scheme `{other}` (supported: {})",
                SourceScheme::NAMES
            ))
        }
    };
    let name = url.scheme();
    match scheme {
        // Packet inputs bind or send to a port and have no default one; a
        // listener may leave the host out only as 0.0.0.0.
        SourceScheme::Udp | SourceScheme::Rtp | SourceScheme::Srt if url.port().is_none() => {
            Err(format!("{name}:// source needs a port"))
        }
        SourceScheme::Rtmp | SourceScheme::Rtsp | SourceScheme::Hls
            if url.host_str().is_none_or(str::is_empty) =>
        {
            Err(format!("{name}:// source needs a host"))
        }
        SourceScheme::Hls if !url.path().ends_with(".m3u8") => Err(format!(
            "{name}:// sources are HLS: the path must end in .m3u8, not `{}`",
            url.path()
        )),
        _ => Ok(scheme),
    }
}

/// What a channel is published as.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Outputs {
    pub hls: bool,
}

impl Default for Outputs {
    fn default() -> Outputs {
        Outputs { hls: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(uri: &str) -> Result<Source, String> {
        Source::resolve(uri, BTreeMap::new(), Path::new("/srv/catalog"))
    }

    #[test]
    fn every_supported_scheme_resolves() {
        let cases = [
            ("test://", SourceScheme::Test),
            ("file:///srv/media/a.mp4", SourceScheme::File),
            ("udp://@239.1.1.1:5000?ttl=4", SourceScheme::Udp),
            ("rtp://239.1.1.2:5004", SourceScheme::Rtp),
            ("srt://203.0.113.7:9000?mode=caller", SourceScheme::Srt),
            ("srt://0.0.0.0:9001?mode=listener", SourceScheme::Srt),
            ("rtmp://ingest.example.com/live/key", SourceScheme::Rtmp),
            ("rtsp://camera.example.com:554/stream1", SourceScheme::Rtsp),
            (
                "http://origin.example.com/live/index.m3u8",
                SourceScheme::Hls,
            ),
            (
                "https://origin.example.com/a/index.m3u8?t=1",
                SourceScheme::Hls,
            ),
        ];
        for (uri, scheme) in cases {
            let source = resolve(uri).unwrap_or_else(|error| panic!("{uri}: {error}"));
            assert_eq!(source.scheme(), scheme, "{uri}");
            assert_eq!(source.uri, uri);
            assert_eq!(
                source.url().is_none(),
                scheme == SourceScheme::File,
                "{uri}"
            );
            assert_eq!(
                source.file_path().is_some(),
                scheme == SourceScheme::File,
                "{uri}"
            );
        }
    }

    #[test]
    fn relative_file_paths_resolve_against_the_catalog_directory() {
        let source = resolve("file://../var/media/demo.mp4").expect("resolves");
        assert_eq!(
            source.file_path(),
            Some(Path::new("/srv/catalog/../var/media/demo.mp4"))
        );
        let source = resolve("file:///var/media/demo.mp4").expect("resolves");
        assert_eq!(source.file_path(), Some(Path::new("/var/media/demo.mp4")));
    }

    #[test]
    fn a_relative_catalog_directory_still_yields_an_absolute_path() {
        let source = Source::resolve("file://a.mp4", BTreeMap::new(), Path::new("manifests"))
            .expect("resolves");
        let path = source.file_path().expect("a file source");
        assert!(path.is_absolute(), "{}", path.display());
        assert!(path.ends_with("manifests/a.mp4"), "{}", path.display());
    }

    #[test]
    fn bad_uris_say_what_is_wrong() {
        let cases = [
            ("file://", "file:// source has an empty path"),
            ("ftp://example.com/a.ts", "unsupported source scheme `ftp` (supported: test, file, udp, rtp, srt, rtmp, rtsp, http, https)"),
            ("file:/srv/a.mp4", "write file sources as file://PATH"),
            ("news.ts", "cannot parse source URI `news.ts`: relative URL without a base"),
            ("udp://:5000", "cannot parse source URI `udp://:5000`: empty host"),
            ("udp://239.1.1.1", "udp:// source needs a port"),
            ("srt://203.0.113.7", "srt:// source needs a port"),
            ("rtsp:///stream", "rtsp:// source needs a host"),
            ("https://example.com/live/stream.ts", "https:// sources are HLS: the path must end in .m3u8, not `/live/stream.ts`"),
        ];
        for (uri, message) in cases {
            assert_eq!(resolve(uri).map(|_| ()), Err(message.to_owned()), "{uri}");
        }
    }

    #[test]
    fn outputs_default_to_hls() {
        let outputs: Outputs = serde_yaml::from_str("{}").expect("parses");
        assert_eq!(outputs, Outputs { hls: true });
    }
}
