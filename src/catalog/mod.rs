//! Catalog: channels, VOD assets, ladders and encoder profiles from YAML, and the
//! EPG schedule files channels name.
//!
//! Operators split the catalog over as many files as they like; any file may
//! hold any of the top-level keys `channels:`, `assets:`, `ladders:` and
//! `encoders:`.
//! [`Catalog::load`] reads them all and merges them, and a name defined twice
//! across files is a problem like any other. `manifests/channels.yaml` and
//! `pipelines/ladders.yaml` document every field, `manifests/vod.yaml` the
//! assets.
//!
//! Loading is two passes. serde_yaml reads each file into plain structs that
//! refuse unknown fields, and stops at that file's first syntax or type error.
//! A validation pass then checks every rule over all files that did parse and
//! reports every problem at once, each placed at the line and column of the
//! YAML node it is about (see `position`). Some things are allowed but probably
//! a mistake (a multicast group outside the site-local range): those are
//! [`Catalog::warnings`], which do not stop loading.
//!
//! A reload compares the running catalog with the new one channel by channel
//! ([`CatalogDiff`]): what restarts a channel and what changes live
//! ([`LIVE_FIELDS`]).
//!
//! A channel's `epg:` file is read and checked at load time too (its problems
//! are placed in that file), and read again each time the guide is served
//! ([`guide`]), so an operator may edit it while the headend runs.

mod asset;
mod channel;
mod diff;
mod document;
mod encoder;
mod epg;
mod error;
mod iptv;
mod ladder;
mod position;
mod validate;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

pub use asset::{poster_extension, AssetSource, Subtitle, VodAsset, POSTER_EXTENSIONS};
pub use channel::{Channel, Failover, Outputs, Source, SourceScheme};
pub use diff::{CatalogDiff, LIVE_FIELDS};
pub use encoder::{BitrateUnit, EncoderProfile};
pub use epg::{guide, DailyProgramme, EpgFailure, Guide, Schedule};
pub use error::{CatalogError, Problem};
pub use iptv::{
    mux_rate, Epg, Multicast, MulticastProtocol, MuxRateTooLow, DEFAULT_MUX_FACTOR_PERMILLE,
    DEFAULT_MUX_OVERHEAD_BPS, DEFAULT_MUX_STEP_BPS, MIN_MUX_FACTOR_PERMILLE, MIN_MUX_OVERHEAD_BPS,
};
pub use ladder::{Audio, AudioCodec, H264Profile, Ladder, Rendition};
pub use validate::is_url_segment;

use document::Document;
use position::{Position, Positions};
use validate::{Parsed, Problems};

/// Every channel, ladder and encoder profile, validated: each channel's
/// ladder and each ladder's encoder profile exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    /// In the order of the files given, then as written.
    pub channels: Vec<Channel>,
    /// VOD assets, in the order of the files given, then as written.
    pub assets: Vec<VodAsset>,
    pub ladders: BTreeMap<String, Ladder>,
    pub encoders: BTreeMap<String, EncoderProfile>,
    /// What is allowed but probably a mistake, ordered like problems. `headend
    /// check` prints them and `headend run` logs them; they stop nothing.
    pub warnings: Vec<Problem>,
}

impl Catalog {
    /// Reads and validates the catalog files. A file that cannot be read
    /// stops loading; otherwise every problem in every file is reported.
    pub fn load(paths: &[impl AsRef<Path>]) -> Result<Catalog, CatalogError> {
        let files = paths
            .iter()
            .map(|path| {
                let path = path.as_ref();
                fs::read_to_string(path)
                    .map(|text| (path.to_owned(), text))
                    .map_err(|source| CatalogError::Io {
                        path: path.to_owned(),
                        source,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Catalog::from_texts(&files)
    }

    /// The ladder of a channel of this catalog.
    ///
    /// # Panics
    ///
    /// If `channel` names a ladder this catalog does not hold, which a
    /// channel from this catalog never does.
    pub fn ladder(&self, channel: &Channel) -> &Ladder {
        self.ladders.get(&channel.ladder).unwrap_or_else(|| {
            panic!(
                "channel `{}` names ladder `{}`, which is not in this catalog",
                channel.id, channel.ladder
            )
        })
    }

    /// The encoder profile of a ladder of this catalog.
    ///
    /// # Panics
    ///
    /// If `ladder` names a profile this catalog does not hold, which a ladder
    /// from this catalog never does.
    pub fn encoder(&self, ladder: &Ladder) -> &EncoderProfile {
        self.encoders.get(&ladder.encoder).unwrap_or_else(|| {
            panic!(
                "ladder names encoder profile `{}`, which is not in this catalog",
                ladder.encoder
            )
        })
    }

    /// The channels in channel-number order: the order of the M3U playlist and
    /// the XMLTV guide.
    pub fn channels_by_number(&self) -> Vec<&Channel> {
        let mut channels: Vec<&Channel> = self.channels.iter().collect();
        channels.sort_by_key(|channel| channel.number);
        channels
    }

    /// The VOD asset with this id.
    pub fn asset(&self, id: &str) -> Option<&VodAsset> {
        self.assets.iter().find(|asset| asset.id == id)
    }

    /// Parses and validates catalog texts, each named by the file it came from.
    fn from_texts(files: &[(PathBuf, String)]) -> Result<Catalog, CatalogError> {
        let mut problems = Problems::default();
        let mut parsed = Vec::with_capacity(files.len());
        for (order, (file, text)) in files.iter().enumerate() {
            match Document::parse(text) {
                Ok(document) => {
                    let (positions, duplicate_keys) = Positions::of_yaml(text);
                    parsed.push(Parsed {
                        order,
                        file: file.clone(),
                        document,
                        positions,
                        duplicate_keys,
                    });
                }
                Err(error) => {
                    let (at, message) = parse_problem(&error);
                    problems.push(order, file, at, message);
                }
            }
        }
        let complete = parsed.len() == files.len();
        let mut catalog = validate::assemble(&parsed, complete, &mut problems);
        let (errors, warnings) = problems.into_sorted();
        if errors.is_empty() {
            catalog.warnings = warnings;
            Ok(catalog)
        } else {
            Err(CatalogError::Invalid(errors))
        }
    }
}

/// serde_yaml's message without the place it appends, which the problem
/// carries as fields.
fn parse_problem(error: &serde_yaml::Error) -> (Option<Position>, String) {
    let message = error.to_string();
    let Some(location) = error.location() else {
        return (None, message);
    };
    let suffix = format!(" at line {} column {}", location.line(), location.column());
    let message = match message.find(&suffix) {
        Some(start) => format!("{}{}", &message[..start], &message[start + suffix.len()..]),
        None => message,
    };
    let at = Position {
        line: location.line(),
        column: location.column(),
    };
    (Some(at), message)
}
