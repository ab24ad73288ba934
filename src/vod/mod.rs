//! VOD: a file in the catalog (or on the command line) ingested once into CMAF on
//! disk, described as HLS (media, I-frame and subtitle playlists) and as a static
//! DASH MPD, and served by the origin from `{data}/vod/{asset}/`.
//!
//! - `writer`: the transcode's [`MediaSink`](crate::pipeline::transcode::MediaSink),
//!   fragments to segment files on the ladder's segment grid;
//! - `package`: the playlists, the MPD, subtitles, poster and `asset.json`;
//! - `playlist`: the VOD HLS playlists as m3u8-rs values (pure);
//! - `fetch`: the local copy of a source given by URL, fetched again only when changed;
//! - `fingerprint`: what decides that an asset is up to date;
//! - `library`: the layout on disk and the atomic publish;
//! - `ingest`: one ingest start to end, and the background loop of `headend run`;
//! - `progress`: the command line's progress bar.

mod fetch;
mod fingerprint;
mod ingest;
mod library;
mod package;
pub mod playlist;
pub mod progress;
mod writer;

use std::path::PathBuf;

pub use fetch::FetchError;
pub use fingerprint::{fingerprint, FingerprintError, FORMAT_VERSION};
pub use ingest::{ingest, settings, spawn_background, Outcome};
pub use library::{AssetRecord, Library, SubtitleRecord, TrackRecord, ASSET_JSON};
pub use package::PackageError;
pub use writer::{AssetWriter, Keyframe, SegmentRecord, TrackOutput, WriteError, INIT_NAME};

use crate::pipeline::PipelineError;

/// Why an asset was not ingested. Every message names the asset; the published
/// version, if any, is untouched and nothing of the failed ingest stays on disk.
///
/// Each message includes its cause's, so a log line with `%error` says everything;
/// the causes are not chained as `source()` as well, or a report that walks the chain
/// (`anyhow`'s `{:#}`) would say them twice.
#[derive(Debug, thiserror::Error)]
pub enum VodError {
    /// The source, a subtitle or the poster cannot be read.
    #[error("asset `{asset}`: {error}")]
    Input {
        asset: String,
        error: FingerprintError,
    },
    /// A source given by URL could not be fetched.
    #[error("asset `{asset}`: cannot fetch the source: {error}")]
    Fetch { asset: String, error: FetchError },
    #[error("asset `{asset}`: unknown ladder `{ladder}`")]
    UnknownLadder { asset: String, ladder: String },
    #[error("asset `{asset}`: ladder `{ladder}` names unknown encoder profile `{encoder}`")]
    UnknownEncoder {
        asset: String,
        ladder: String,
        encoder: String,
    },
    /// The source is not media GStreamer can decode (corrupt, truncated, no video).
    #[error("asset `{asset}`: cannot transcode {}: {error}", .path.display())]
    Transcode {
        asset: String,
        path: PathBuf,
        error: PipelineError,
    },
    #[error("asset `{asset}`: {error}")]
    Package { asset: String, error: PackageError },
    #[error("asset `{asset}`: cannot write {}: {error}", .path.display())]
    Io {
        asset: String,
        path: PathBuf,
        error: std::io::Error,
    },
}
