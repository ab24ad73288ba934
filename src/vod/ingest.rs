//! One ingest, start to end: fingerprint, skip if up to date, transcode into a staging
//! directory, describe, publish. And the background loop `headend run` uses.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tracing::{error, info, warn};

use super::fetch::fetch;
use super::fingerprint::fingerprint;
use super::library::Library;
use super::package::write_descriptions;
use super::writer::AssetWriter;
use super::VodError;
use crate::catalog::{AssetSource, Catalog, EncoderProfile, Ladder, VodAsset};
use crate::pipeline::transcode::{self, Progress};
use crate::status::{AssetState, AssetStatus, LastError, Registry};

/// What an ingest did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The published version has this fingerprint already: nothing was done.
    UpToDate { fingerprint: String },
    Ingested {
        fingerprint: String,
        /// Media transcoded.
        duration: Duration,
        /// Wall-clock time the whole ingest took.
        elapsed: Duration,
        /// The asset's folder (`{data}/vod/{id}`, the link to the new version).
        dir: PathBuf,
    },
}

impl Outcome {
    /// Media seconds per wall-clock second of an ingest that ran.
    pub fn speed(&self) -> Option<f64> {
        match self {
            Outcome::Ingested {
                duration, elapsed, ..
            } if !elapsed.is_zero() => Some(duration.as_secs_f64() / elapsed.as_secs_f64()),
            _ => None,
        }
    }
}

/// Ingests `asset` into `library` unless it is up to date (or `force`). Blocks for
/// the whole transcode; `progress` is called now and then. On any error nothing of
/// this ingest is left on disk and the published version, if any, stays as it was.
pub fn ingest(
    library: &Library,
    asset: &VodAsset,
    ladder: &Ladder,
    encoder: &EncoderProfile,
    force: bool,
    progress: impl FnMut(Progress),
) -> Result<Outcome, VodError> {
    let started = Instant::now();
    let id = asset.id.clone();
    let source = match &asset.source {
        AssetSource::File(path) => path.clone(),
        AssetSource::Url(url) => {
            fetch(library.sources_dir(), &id, url).map_err(|error| VodError::Fetch {
                asset: id.clone(),
                error,
            })?
        }
    };
    let fingerprint =
        fingerprint(asset, &source, ladder, encoder).map_err(|error| VodError::Input {
            asset: id.clone(),
            error,
        })?;
    if !force {
        if let Some(current) = library.current(&asset.id) {
            if current.fingerprint == fingerprint {
                info!(asset = %id, %fingerprint, "VOD asset is up to date.");
                return Ok(Outcome::UpToDate { fingerprint });
            }
        }
    }
    info!(asset = %id, source = %asset.source, ladder = %asset.ladder, %fingerprint, "Ingesting VOD asset.");
    let io = |path: PathBuf| {
        let asset = id.clone();
        move |error| VodError::Io { asset, path, error }
    };
    let staging = library.stage(&id).map_err(io(library.root().to_owned()))?;
    let writer = AssetWriter::new(
        staging.path(),
        transcode::track_names(ladder),
        ladder.segment_duration,
    );
    let (writer, report) = transcode::transcode(&source, ladder, encoder, writer, progress)
        .map_err(|error| VodError::Transcode {
            asset: id.clone(),
            path: source.clone(),
            error,
        })?;
    let tracks = writer.finish().map_err(|error| VodError::Package {
        asset: id.clone(),
        error: error.into(),
    })?;
    write_descriptions(staging.path(), asset, ladder, &tracks, &fingerprint).map_err(|error| {
        VodError::Package {
            asset: id.clone(),
            error,
        }
    })?;
    library
        .publish(staging, &fingerprint)
        .map_err(io(library.asset_dir(&id)))?;
    let dir = library.asset_dir(&id);
    let elapsed = started.elapsed();
    let outcome = Outcome::Ingested {
        fingerprint,
        duration: report.media_duration,
        elapsed,
        dir,
    };
    info!(
        asset = %id,
        media_seconds = report.media_duration.as_secs_f64(),
        elapsed_seconds = elapsed.as_secs_f64(),
        speed = outcome.speed().unwrap_or_default(),
        has_audio = report.has_audio,
        "VOD asset ingested."
    );
    Ok(outcome)
}

/// The ladder and encoder profile of a catalog asset.
pub fn settings<'a>(
    catalog: &'a Catalog,
    asset: &VodAsset,
) -> Result<(&'a Ladder, &'a EncoderProfile), VodError> {
    let ladder = catalog
        .ladders
        .get(&asset.ladder)
        .ok_or_else(|| VodError::UnknownLadder {
            asset: asset.id.clone(),
            ladder: asset.ladder.clone(),
        })?;
    let encoder =
        catalog
            .encoders
            .get(&ladder.encoder)
            .ok_or_else(|| VodError::UnknownEncoder {
                asset: asset.id.clone(),
                ladder: asset.ladder.clone(),
                encoder: ladder.encoder.clone(),
            })?;
    Ok((ladder, encoder))
}

/// How far a transcode has come, 0 to 1; `None` while the source's duration is not
/// known.
fn fraction(progress: Progress) -> Option<f64> {
    let duration = progress.duration.filter(|d| !d.is_zero())?;
    Some((progress.position.as_secs_f64() / duration.as_secs_f64()).clamp(0.0, 1.0))
}

/// Ingests every asset of the catalog that is not up to date, one at a time, on a
/// thread of its own (a transcode blocks), reporting each asset's status and progress
/// into `status`. An asset that fails is logged and the next one goes on. `stop` ends
/// the loop before the next asset.
pub fn spawn_background(
    library: Library,
    catalog: Arc<Catalog>,
    stop: Arc<AtomicBool>,
    base_url: String,
    status: Arc<Registry>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    // Listed at once, before the thread reads anything.
    status.set_assets(
        catalog
            .assets
            .iter()
            .map(|asset| AssetStatus {
                id: asset.id.clone(),
                title: asset.title.clone(),
                state: AssetState::Pending,
                progress: None,
                available: false,
                last_error: None,
            })
            .collect(),
    );
    std::thread::Builder::new()
        .name("vod-ingest".to_owned())
        .spawn(move || {
            if let Err(error) = library.clean_stale() {
                warn!(root = %library.root().display(), %error, "Could not clean the VOD library.");
            }
            for asset in &catalog.assets {
                let available = library.current(&asset.id).is_some();
                status.update_asset(&asset.id, |a| a.available = available);
            }
            for asset in &catalog.assets {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let id = asset.id.as_str();
                status.update_asset(id, |a| {
                    a.state = AssetState::Ingesting;
                    a.progress = None;
                });
                let url = format!("{base_url}/vod/{id}/master.m3u8");
                let result = settings(&catalog, asset).and_then(|(ladder, encoder)| {
                    ingest(&library, asset, ladder, encoder, false, |progress| {
                        status.update_asset(id, |a| a.progress = fraction(progress));
                    })
                });
                match result {
                    Ok(_) => {
                        status.update_asset(id, |a| {
                            a.state = AssetState::Published;
                            a.progress = Some(1.0);
                            a.available = true;
                        });
                        info!(asset = %id, %url, "VOD asset ready.");
                    }
                    Err(err) => {
                        let available = library.current(id).is_some();
                        status.update_asset(id, |a| {
                            a.state = AssetState::Failed;
                            a.progress = None;
                            a.available = available;
                            a.last_error = Some(LastError {
                                message: err.to_string(),
                                at: SystemTime::now(),
                            });
                        });
                        error!(asset = %id, error = %err, "VOD ingest failed.");
                    }
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_a_fraction_of_a_known_duration() {
        let progress = |position: u64, duration: Option<u64>| Progress {
            position: Duration::from_millis(position),
            duration: duration.map(Duration::from_millis),
        };
        assert_eq!(fraction(progress(2500, Some(10_000))), Some(0.25));
        assert_eq!(fraction(progress(12_000, Some(10_000))), Some(1.0));
        assert_eq!(fraction(progress(2500, None)), None);
        assert_eq!(fraction(progress(0, Some(0))), None);
    }
}
