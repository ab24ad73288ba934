//! The validation pass: turns parsed files into one [`Catalog`], finding every
//! problem rather than stopping at the first, each placed at the YAML node it
//! is about.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::asset::{self, AssetSpec};
use super::channel;
use super::document::{ChannelSpec, Document, LadderSpec};
use super::epg::Schedule;
use super::iptv::{self, Finding, MulticastDraft};
use super::position::{DuplicateKey, NodePath, Position, Positions};
use super::{
    Catalog, Channel, EncoderProfile, Epg, Failover, Ladder, Problem, Source, Subtitle, VodAsset,
};
use crate::iptv::xmltv;

/// Channel ids and rendition names are URL path segments: lowercase so URLs
/// are case-proof, and no dots so they never look like file names.
const URL_SEGMENT_PATTERN: &str = "^[a-z0-9][a-z0-9_-]*$";
const URL_SEGMENT_MAX_LEN: usize = 64;

/// The audio playlist lives beside the video renditions at `<channel>/audio/`.
const RESERVED_RENDITION_NAME: &str = "audio";

/// RFC 8216 §6.3.3: a client should not start playback less than three
/// target durations from the end of a live playlist, so shorter windows
/// leave it nothing to start on.
const MIN_WINDOW: u32 = 3;

/// ISO/IEC 14496-3 §1.6.3.4, the AAC sampling frequency table.
const AAC_SAMPLE_RATES: [u32; 12] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
];

/// A file that serde_yaml read, waiting for validation.
pub(super) struct Parsed {
    /// Place among all files given, parsed or not.
    pub order: usize,
    pub file: PathBuf,
    pub document: Document,
    pub positions: Positions,
    pub duplicate_keys: Vec<DuplicateKey>,
}

/// Problems (errors and warnings) from all files, each tagged with its catalog
/// file's place in the argument list so the report reads file by file, top to
/// bottom; the problems in a file a catalog file names (an EPG schedule) come
/// right after that catalog file's own.
#[derive(Debug, Default)]
pub(super) struct Problems {
    errors: Vec<Ranked>,
    warnings: Vec<Ranked>,
}

/// (catalog file order, 0 for the catalog file itself or 1 for a file it names,
/// the problem).
type Ranked = (usize, u8, Problem);

fn problem(file: &Path, at: Option<Position>, message: String) -> Problem {
    Problem {
        file: file.to_owned(),
        line: at.map(|at| at.line),
        column: at.map(|at| at.column),
        message,
    }
}

impl Problems {
    pub fn push(&mut self, order: usize, file: &Path, at: Option<Position>, message: String) {
        self.errors.push((order, 0, problem(file, at, message)));
    }

    /// An error in `file`, a file named by catalog file `order`.
    fn push_named(&mut self, order: usize, file: &Path, at: Option<Position>, message: String) {
        self.errors.push((order, 1, problem(file, at, message)));
    }

    fn warn(&mut self, order: usize, file: &Path, at: Option<Position>, message: String) {
        self.warnings.push((order, 0, problem(file, at, message)));
    }

    /// The number of errors.
    fn len(&self) -> usize {
        self.errors.len()
    }

    /// Errors and warnings, each sorted.
    pub fn into_sorted(self) -> (Vec<Problem>, Vec<Problem>) {
        (sorted(self.errors), sorted(self.warnings))
    }
}

fn sorted(mut problems: Vec<Ranked>) -> Vec<Problem> {
    problems.sort_by(|(order, rank, problem), (other_order, other_rank, other)| {
        (order, rank, &problem.file, problem.line, problem.column).cmp(&(
            other_order,
            other_rank,
            &other.file,
            other.line,
            other.column,
        ))
    });
    problems
        .into_iter()
        .map(|(_, _, problem)| problem)
        .collect()
}

/// Where something was first defined, for "already used at …" messages.
#[derive(Debug, Clone, Copy)]
struct Place<'a> {
    file: &'a Path,
    at: Option<Position>,
}

impl fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(at) = self.at {
            write!(f, ":{}:{}", at.line, at.column)?;
        }
        Ok(())
    }
}

/// A name that must be defined somewhere in the catalog.
struct Reference<'a> {
    order: usize,
    place: Place<'a>,
    name: &'a str,
}

/// Reports problems of one file.
struct FileCheck<'a, 'p> {
    order: usize,
    file: &'a Path,
    positions: &'a Positions,
    problems: &'p mut Problems,
}

impl<'a> FileCheck<'a, '_> {
    fn place(&self, path: &NodePath) -> Place<'a> {
        Place {
            file: self.file,
            at: self.positions.value(path),
        }
    }

    fn key_place(&self, path: &NodePath) -> Place<'a> {
        Place {
            file: self.file,
            at: self.positions.key(path),
        }
    }

    /// A problem with the value at `path`.
    fn at(&mut self, path: &NodePath, message: String) {
        let at = self.positions.value(path);
        self.problems.push(self.order, self.file, at, message);
    }

    /// A problem with the name (mapping key) of the node at `path`.
    fn at_key(&mut self, path: &NodePath, message: String) {
        let at = self.positions.key(path);
        self.problems.push(self.order, self.file, at, message);
    }

    /// A finding about the node at `path` or one of its fields.
    fn finding(&mut self, path: &NodePath, finding: Finding) {
        let path = match finding.field {
            Some(field) => path.key(field),
            None => path.clone(),
        };
        let at = self.positions.value(&path);
        if finding.warning {
            self.problems
                .warn(self.order, self.file, at, finding.message);
        } else {
            self.problems
                .push(self.order, self.file, at, finding.message);
        }
    }
}

/// A channel's `multicast:` waiting for the ladders: its rendition and mux rate
/// are checked once every file is read, whether or not the channel has other
/// problems, so that every problem is reported at once.
struct PendingMulticast<'a> {
    /// Index in `Catalog::channels`; `None` for a channel with other problems.
    channel: Option<usize>,
    ladder: &'a str,
    order: usize,
    file: &'a Path,
    /// Where the `multicast:` fields are, for problems.
    places: HashMap<&'static str, Option<Position>>,
    draft: MulticastDraft,
}

/// A channel's `epg:`, checked once all channels are known so a file several
/// channels share is read once.
struct EpgUse<'a> {
    order: usize,
    place: Place<'a>,
    /// The file as problems show it.
    shown: PathBuf,
    epg: Epg,
}

/// Builds the catalog from every parsed file. `complete` is false when some
/// file did not parse: its ladders and encoders are unknown, so references
/// to them are not checked rather than all reported as undefined.
pub(super) fn assemble(files: &[Parsed], complete: bool, problems: &mut Problems) -> Catalog {
    let mut catalog = Catalog::default();
    let mut ids: HashMap<&str, Place> = HashMap::new();
    let mut numbers: HashMap<u32, (&str, Place)> = HashMap::new();
    let mut asset_ids: HashMap<&str, Place> = HashMap::new();
    let mut ladders: HashMap<&str, Place> = HashMap::new();
    let mut encoders: HashMap<&str, Place> = HashMap::new();
    let mut multicast_addresses: HashMap<(Ipv4Addr, u16), (&str, Place)> = HashMap::new();
    let mut pending_multicast = Vec::new();
    let mut epg_uses = Vec::new();
    let mut ladder_references = Vec::new();
    let mut encoder_references = Vec::new();

    for parsed in files {
        let order = parsed.order;
        let mut check = FileCheck {
            order,
            file: &parsed.file,
            positions: &parsed.positions,
            problems,
        };
        for duplicate in &parsed.duplicate_keys {
            check.problems.push(
                order,
                &parsed.file,
                Some(duplicate.again),
                format!(
                    "duplicate key `{}`, first at line {} column {}",
                    duplicate.key, duplicate.first.line, duplicate.first.column
                ),
            );
        }

        let base = parsed.file.parent().unwrap_or(Path::new(""));
        for (index, spec) in parsed.document.channels.iter().enumerate() {
            let at = NodePath::root().key("channels").index(index);
            if let Some(first) = ids.get(spec.id.as_str()) {
                check.at(
                    &at.key("id"),
                    format!("channel id `{}` is already used at {first}", spec.id),
                );
            } else {
                ids.insert(&spec.id, check.place(&at.key("id")));
            }
            if let Some((first_id, first)) = numbers.get(&spec.number) {
                check.at(
                    &at.key("number"),
                    format!(
                        "channel number {} is already used by channel `{first_id}` at {first}",
                        spec.number
                    ),
                );
            } else {
                numbers.insert(spec.number, (&spec.id, check.place(&at.key("number"))));
            }
            ladder_references.push(Reference {
                order,
                place: check.place(&at.key("ladder")),
                name: &spec.ladder,
            });
            let before = check.problems.len();
            let multicast = spec.multicast.as_ref().and_then(|multicast| {
                let at = at.key("multicast");
                let (draft, findings) = iptv::check_multicast(multicast);
                for finding in findings {
                    check.finding(&at, finding);
                }
                let draft = draft?;
                let address = (draft.group, draft.port);
                if let Some((first_id, first)) = multicast_addresses.get(&address) {
                    check.at(
                        &at.key("port"),
                        format!(
                            "multicast group {} port {} is already used by channel `{first_id}` at {first}",
                            draft.group, draft.port
                        ),
                    );
                } else {
                    multicast_addresses.insert(address, (&spec.id, check.place(&at.key("port"))));
                }
                let places = ["rendition", "mux_rate"]
                    .into_iter()
                    .map(|field| (field, check.positions.value(&at.key(field))))
                    .collect();
                Some((draft, places))
            });
            let epg = spec.epg.as_ref().and_then(|epg| {
                let at = at.key("epg");
                match iptv::resolve_epg(epg, &spec.id, base) {
                    Ok((epg, shown)) => {
                        epg_uses.push(EpgUse {
                            order,
                            place: check.place(&at),
                            shown,
                            epg: epg.clone(),
                        });
                        Some(epg)
                    }
                    Err(finding) => {
                        check.finding(&at, finding);
                        None
                    }
                }
            });
            let channel = check_channel(&mut check, &at, spec, base)
                .filter(|_| check.problems.len() == before);
            if let Some((draft, places)) = multicast {
                pending_multicast.push(PendingMulticast {
                    channel: channel.is_some().then_some(catalog.channels.len()),
                    ladder: &spec.ladder,
                    order,
                    file: &parsed.file,
                    places,
                    draft,
                });
            }
            if let Some(mut channel) = channel {
                channel.epg = epg;
                catalog.channels.push(channel);
            }
        }

        for (index, spec) in parsed.document.assets.iter().enumerate() {
            let at = NodePath::root().key("assets").index(index);
            if let Some(first) = asset_ids.get(spec.id.as_str()) {
                check.at(
                    &at.key("id"),
                    format!("asset id `{}` is already used at {first}", spec.id),
                );
            } else {
                asset_ids.insert(&spec.id, check.place(&at.key("id")));
            }
            ladder_references.push(Reference {
                order,
                place: check.place(&at.key("ladder")),
                name: &spec.ladder,
            });
            if let Some(asset) = check_asset(&mut check, &at, spec, base) {
                catalog.assets.push(asset);
            }
        }

        for (name, spec) in &parsed.document.ladders {
            let at = NodePath::root().key("ladders").key(name);
            if let Some(first) = ladders.get(name.as_str()) {
                check.at_key(
                    &at,
                    format!("ladder `{name}` is already defined at {first}"),
                );
            } else {
                ladders.insert(name, check.key_place(&at));
            }
            encoder_references.push(Reference {
                order,
                place: check.place(&at.key("encoder")),
                name: &spec.encoder,
            });
            if let Some(ladder) = check_ladder(&mut check, &at, spec) {
                catalog.ladders.entry(name.clone()).or_insert(ladder);
            }
        }

        for (name, profile) in &parsed.document.encoders {
            let at = NodePath::root().key("encoders").key(name);
            if let Some(first) = encoders.get(name.as_str()) {
                check.at_key(
                    &at,
                    format!("encoder profile `{name}` is already defined at {first}"),
                );
            } else {
                encoders.insert(name, check.key_place(&at));
            }
            if check_encoder(&mut check, &at, profile) {
                catalog
                    .encoders
                    .entry(name.clone())
                    .or_insert_with(|| profile.clone());
            }
        }
    }

    for pending in pending_multicast {
        // A ladder that is unknown or has problems of its own is reported as such.
        let Some(ladder) = catalog.ladders.get(pending.ladder) else {
            continue;
        };
        match iptv::resolve_multicast(pending.draft, pending.ladder, ladder) {
            Ok(multicast) => {
                if let Some(channel) = pending.channel.and_then(|i| catalog.channels.get_mut(i)) {
                    channel.multicast = Some(multicast);
                }
            }
            Err(finding) => {
                let at = finding
                    .field
                    .and_then(|field| pending.places.get(field).copied().flatten());
                problems.push(pending.order, pending.file, at, finding.message);
            }
        }
    }
    check_epg_files(&epg_uses, problems);

    if complete {
        for reference in ladder_references {
            if !ladders.contains_key(reference.name) {
                let message = format!(
                    "unknown ladder `{}` ({})",
                    reference.name,
                    defined(&ladders, "ladders")
                );
                problems.push(
                    reference.order,
                    reference.place.file,
                    reference.place.at,
                    message,
                );
            }
        }
        for reference in encoder_references {
            if !encoders.contains_key(reference.name) {
                let message = format!(
                    "unknown encoder profile `{}` ({})",
                    reference.name,
                    defined(&encoders, "encoder profiles")
                );
                problems.push(
                    reference.order,
                    reference.place.file,
                    reference.place.at,
                    message,
                );
            }
        }
    }
    catalog
}

/// Reads every EPG file the channels name, each once: a schedule's problems are
/// placed in the schedule, an XMLTV file's first error in that file, and a file that
/// cannot be read (or an XMLTV file without a programme for a channel) at the
/// channel's `epg:`.
fn check_epg_files(uses: &[EpgUse], problems: &mut Problems) {
    let mut files: BTreeMap<(&Path, bool), Vec<&EpgUse>> = BTreeMap::new();
    for epg_use in uses {
        let xmltv = matches!(epg_use.epg, Epg::Xmltv { .. });
        files
            .entry((epg_use.epg.path(), xmltv))
            .or_default()
            .push(epg_use);
    }
    for ((path, _), users) in files {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) => {
                for user in users {
                    problems.push(
                        user.order,
                        user.place.file,
                        user.place.at,
                        format!("cannot read epg file {}: {error}", user.shown.display()),
                    );
                }
                continue;
            }
        };
        // The first channel to name the file places its problems in the report.
        let first = users[0];
        let wanted: BTreeSet<&str> = users
            .iter()
            .filter_map(|user| match &user.epg {
                Epg::Xmltv { channel, .. } => Some(channel.as_str()),
                Epg::Schedule { .. } => None,
            })
            .collect();
        if wanted.is_empty() {
            if let Err(found) = Schedule::parse(&text) {
                for (at, message) in found {
                    problems.push_named(first.order, &first.shown, at, message);
                }
            }
            continue;
        }
        match xmltv::read(&text, &wanted) {
            Err(error) => problems.push_named(
                first.order,
                &first.shown,
                Some(Position {
                    line: error.line,
                    column: error.column,
                }),
                error.message,
            ),
            Ok(guide) => {
                for user in users {
                    if let Epg::Xmltv { channel, .. } = &user.epg {
                        if !guide.contains_key(channel) {
                            problems.warn(
                                user.order,
                                user.place.file,
                                user.place.at,
                                format!(
                                    "XMLTV file {} has no programme for channel `{channel}`",
                                    user.shown.display()
                                ),
                            );
                        }
                    }
                }
            }
        }
    }
}

/// "defined: a, b" or "no ladders are defined", sorted for a stable message.
fn defined(names: &HashMap<&str, Place>, what: &str) -> String {
    let mut names: Vec<&str> = names.keys().copied().collect();
    if names.is_empty() {
        return format!("no {what} are defined");
    }
    names.sort_unstable();
    format!("defined: {}", names.join(", "))
}

/// Channel, ladder-rung and asset names: a URL path segment as the catalog allows it
/// (`[a-z0-9][a-z0-9_-]*`, at most 64 characters). No dots, so a name never reaches a
/// dot-segment, a staging folder or a version folder.
pub fn is_url_segment(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    first_ok
        && name.len() <= URL_SEGMENT_MAX_LEN
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn check_channel(
    check: &mut FileCheck,
    at: &NodePath,
    spec: &ChannelSpec,
    base: &Path,
) -> Option<Channel> {
    let before = check.problems.len();
    if !is_url_segment(&spec.id) {
        check.at(
            &at.key("id"),
            format!(
                "channel id `{}` must match {URL_SEGMENT_PATTERN} and be at most {URL_SEGMENT_MAX_LEN} characters",
                spec.id
            ),
        );
    }
    // The number is also the transport stream's 16-bit program number.
    if spec.number == 0 || spec.number > u32::from(u16::MAX) {
        check.at(
            &at.key("number"),
            format!(
                "channel number must be from 1 to 65535, not {}",
                spec.number
            ),
        );
    }
    if spec.name.trim().is_empty() {
        check.at(&at.key("name"), "channel name must not be empty".to_owned());
    }
    let source = Source::resolve(&spec.source.uri, spec.source.options.clone(), base)
        .map_err(|message| check.at(&at.key("source").key("uri"), message))
        .ok();
    let failover = check_failover(check, at, spec, base, source.as_ref());
    let source = source?;
    (check.problems.len() == before).then(|| Channel {
        id: spec.id.clone(),
        number: spec.number,
        name: spec.name.clone(),
        group: spec.group.clone(),
        logo: spec.logo.clone(),
        source,
        ladder: spec.ladder.clone(),
        outputs: spec.outputs.clone(),
        // Filled in by `assemble`, which checks them.
        multicast: None,
        epg: None,
        failover,
    })
}

/// A channel's `backup:`, `slate:` and `stall_timeout:`; any one of them turns
/// failover on. Problems are pushed; what is wrong is left out.
fn check_failover(
    check: &mut FileCheck,
    at: &NodePath,
    spec: &ChannelSpec,
    base: &Path,
    primary: Option<&Source>,
) -> Option<Failover> {
    if spec.backup.is_none() && spec.slate.is_none() && spec.stall_timeout.is_none() {
        return None;
    }
    let backup = spec.backup.as_ref().and_then(|backup| {
        let uri = at.key("backup").key("uri");
        let source = Source::resolve(&backup.uri, backup.options.clone(), base)
            .map_err(|message| check.at(&uri, message))
            .ok()?;
        if primary.is_some_and(|p| p.uri == source.uri) {
            check.at(
                &uri,
                "backup must be another source than `source`".to_owned(),
            );
            return None;
        }
        Some(source)
    });
    let slate_image = spec
        .slate
        .as_ref()
        .and_then(|slate| slate.image.as_deref())
        .and_then(|image| {
            channel::resolve_slate_image(image, base)
                .map_err(|message| check.at(&at.key("slate").key("image"), message))
                .ok()
        });
    let stall_timeout = match spec.stall_timeout {
        Some(seconds) => duration(check, at, "stall_timeout", seconds)?,
        None => Failover::DEFAULT_STALL_TIMEOUT,
    };
    Some(Failover {
        backup,
        slate_image,
        stall_timeout,
    })
}

/// An asset's id, title, files and subtitle languages. Files need not exist yet (media
/// is often copied in after the catalog is checked); ingest reports a missing one.
fn check_asset(
    check: &mut FileCheck,
    at: &NodePath,
    spec: &AssetSpec,
    base: &Path,
) -> Option<VodAsset> {
    let before = check.problems.len();
    if !is_url_segment(&spec.id) {
        check.at(
            &at.key("id"),
            format!(
                "asset id `{}` must match {URL_SEGMENT_PATTERN} and be at most {URL_SEGMENT_MAX_LEN} characters",
                spec.id
            ),
        );
    }
    if spec.title.trim().is_empty() {
        check.at(&at.key("title"), "asset title must not be empty".to_owned());
    }
    let source = asset::resolve_source(&spec.source, base)
        .map_err(|message| check.at(&at.key("source"), message))
        .ok();
    let mut subtitles = Vec::with_capacity(spec.subtitles.len());
    let mut languages: HashMap<&str, usize> = HashMap::new();
    for (index, subtitle) in spec.subtitles.iter().enumerate() {
        let at = at.key("subtitles").index(index);
        let lang = subtitle.lang.as_str();
        if !asset::is_language_tag(lang) {
            check.at(
                &at.key("lang"),
                format!(
                    "subtitle lang `{lang}` is not a language tag such as `en`, `fra` or `pt-BR`"
                ),
            );
        } else if let Some(first) = languages.get(lang) {
            check.at(
                &at.key("lang"),
                format!("subtitle lang `{lang}` is already used by subtitles[{first}]"),
            );
        } else {
            languages.insert(lang, index);
        }
        // Players and the origin take the file as WebVTT; other formats are converted
        // beforehand.
        if !subtitle.file.to_ascii_lowercase().ends_with(".vtt") {
            check.at(
                &at.key("file"),
                format!("subtitle file `{}` must be WebVTT (.vtt)", subtitle.file),
            );
        }
        if subtitle
            .name
            .as_deref()
            .is_some_and(|name| name.trim().is_empty())
        {
            check.at(
                &at.key("name"),
                "subtitle name must not be empty".to_owned(),
            );
        }
        match asset::resolve_file(&subtitle.file, base, "subtitle") {
            Ok(file) => subtitles.push(Subtitle {
                lang: lang.to_owned(),
                name: subtitle.name.clone().unwrap_or_else(|| lang.to_owned()),
                file,
            }),
            Err(message) => check.at(&at.key("file"), message),
        }
    }
    let poster = match &spec.poster {
        None => None,
        Some(poster) => match asset::resolve_file(poster, base, "poster") {
            Ok(path) if super::poster_extension(&path).is_some() => Some(path),
            Ok(_) => {
                check.at(
                    &at.key("poster"),
                    format!(
                        "poster `{poster}` must be an image named .{}",
                        super::POSTER_EXTENSIONS.join(", .")
                    ),
                );
                None
            }
            Err(message) => {
                check.at(&at.key("poster"), message);
                None
            }
        },
    };
    let source = source?;
    (check.problems.len() == before).then(|| VodAsset {
        id: spec.id.clone(),
        title: spec.title.clone(),
        source,
        ladder: spec.ladder.clone(),
        subtitles,
        poster,
    })
}

fn check_ladder(check: &mut FileCheck, at: &NodePath, spec: &LadderSpec) -> Option<Ladder> {
    let before = check.problems.len();
    let segment_duration = duration(check, at, "segment_duration", spec.segment_duration);
    let gop = duration(check, at, "gop", spec.gop);
    if let (Some(segment_duration), Some(gop)) = (segment_duration, gop) {
        // Segments are cut on keyframes only, so a segment holds whole GOPs.
        if segment_duration.as_millis() % gop.as_millis() != 0 {
            check.at(
                &at.key("gop"),
                format!(
                    "gop ({}) must divide segment_duration ({}) so every segment starts on a keyframe",
                    seconds(gop),
                    seconds(segment_duration)
                ),
            );
        }
    }
    if spec.window < MIN_WINDOW {
        check.at(
            &at.key("window"),
            format!(
                "window must be at least {MIN_WINDOW} segments, not {}: players start {MIN_WINDOW} segments from the live edge",
                spec.window
            ),
        );
    }

    let renditions = at.key("renditions");
    if spec.renditions.is_empty() {
        check.at(
            &renditions,
            "a ladder needs at least one rendition".to_owned(),
        );
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (index, rendition) in spec.renditions.iter().enumerate() {
        let at = renditions.index(index);
        let name = &rendition.name;
        if name == RESERVED_RENDITION_NAME {
            check.at(
                &at.key("name"),
                format!("rendition name `{name}` is reserved for the audio playlist"),
            );
        } else if !is_url_segment(name) {
            check.at(
                &at.key("name"),
                format!(
                    "rendition name `{name}` must match {URL_SEGMENT_PATTERN} and be at most {URL_SEGMENT_MAX_LEN} characters"
                ),
            );
        } else if let Some(first) = names.get(name.as_str()) {
            check.at(
                &at.key("name"),
                format!("rendition name `{name}` is already used by renditions[{first}]"),
            );
        } else {
            names.insert(name, index);
        }
        // 4:2:0 video halves both chroma dimensions, so the picture must be even.
        for (field, value) in [("width", rendition.width), ("height", rendition.height)] {
            if value == 0 || value % 2 != 0 {
                check.at(
                    &at.key(field),
                    format!("{field} must be even and greater than 0, not {value}"),
                );
            }
        }
        for (field, value) in [
            ("bitrate", rendition.bitrate),
            ("max_framerate", rendition.max_framerate),
        ] {
            if value == 0 {
                check.at(&at.key(field), format!("{field} must be greater than 0"));
            }
        }
        // Players pick the first variant they can sustain by walking the
        // playlist in order, and ABR steps down by bitrate.
        if let Some(above) = index.checked_sub(1).and_then(|i| spec.renditions.get(i)) {
            if rendition.bitrate >= above.bitrate {
                check.at(
                    &at.key("bitrate"),
                    format!(
                        "rendition `{name}` ({} kbit/s) must have a lower bitrate than `{}` above it ({} kbit/s): list renditions from highest to lowest",
                        rendition.bitrate, above.name, above.bitrate
                    ),
                );
            }
            if rendition.height > above.height {
                check.at(
                    &at.key("height"),
                    format!(
                        "rendition `{name}` ({} lines) must not be taller than `{}` above it ({} lines): list renditions from highest to lowest",
                        rendition.height, above.name, above.height
                    ),
                );
            }
        }
    }

    let audio = at.key("audio");
    if !matches!(spec.audio.channels, 1 | 2) {
        check.at(
            &audio.key("channels"),
            format!(
                "audio channels must be 1 (mono) or 2 (stereo), not {}",
                spec.audio.channels
            ),
        );
    }
    if spec.audio.bitrate == 0 {
        check.at(
            &audio.key("bitrate"),
            "audio bitrate must be greater than 0".to_owned(),
        );
    }
    if !AAC_SAMPLE_RATES.contains(&spec.audio.sample_rate) {
        let rates: Vec<String> = AAC_SAMPLE_RATES.iter().map(u32::to_string).collect();
        check.at(
            &audio.key("sample_rate"),
            format!(
                "audio sample_rate {} is not an AAC sampling frequency ({})",
                spec.audio.sample_rate,
                rates.join(", ")
            ),
        );
    }

    (check.problems.len() == before).then(|| Ladder {
        encoder: spec.encoder.clone(),
        segment_duration: segment_duration.unwrap_or_default(),
        gop: gop.unwrap_or_default(),
        window: spec.window,
        renditions: spec.renditions.clone(),
        audio: spec.audio.clone(),
    })
}

/// Seconds as written, kept as whole milliseconds: compared as floats,
/// 0.1 s would not divide 0.3 s.
fn duration(check: &mut FileCheck, at: &NodePath, field: &str, seconds: f64) -> Option<Duration> {
    let millis = seconds * 1000.0;
    let message = if !millis.is_finite() || millis < 0.5 {
        format!("{field} must be at least 1 millisecond, not {seconds}")
    } else if (millis - millis.round()).abs() > 1e-6 {
        format!("{field} must be a whole number of milliseconds, not {seconds}")
    } else {
        // Saturates rather than wraps for absurd values; no rule needs a cap.
        return Some(Duration::from_millis(millis.round() as u64));
    };
    check.at(&at.key(field), message);
    None
}

/// `2s`, `1.5s`.
fn seconds(duration: Duration) -> String {
    format!("{}s", duration.as_secs_f64())
}

fn check_encoder(check: &mut FileCheck, at: &NodePath, profile: &EncoderProfile) -> bool {
    let before = check.problems.len();
    let names = [
        ("element", Some(&profile.element)),
        ("bitrate_property", Some(&profile.bitrate_property)),
        ("gop_property", profile.gop_property.as_ref()),
    ];
    for (field, value) in names {
        if value.is_some_and(|value| value.trim().is_empty()) {
            check.at(&at.key(field), format!("{field} must not be empty"));
        }
    }
    for (property, _) in profile
        .properties
        .iter()
        .filter(|(name, _)| name.trim().is_empty())
    {
        check.at(
            &at.key("properties").key(property),
            "property names must not be empty".to_owned(),
        );
    }
    check.problems.len() == before
}

#[cfg(test)]
mod tests {
    use super::super::CatalogError;
    use super::*;

    const ENCODERS: &str = "\
encoders:
  x264:
    element: x264enc
    gop_property: key-int-max
";

    const LADDERS: &str = "\
ladders:
  default:
    segment_duration: 2
    gop: 1
    renditions:
      - { name: 720p, width: 1280, height: 720, bitrate: 2500, profile: high, max_framerate: 30 }
      - { name: 360p, width: 640, height: 360, bitrate: 700, profile: main, max_framerate: 30 }
    audio: { codec: aac, bitrate: 128, channels: 2 }
";

    fn channel(id: &str, number: u32, uri: &str) -> String {
        format!(
            "  - id: {id}\n    number: {number}\n    name: Test\n    group: Test\n    source: {{ uri: \"{uri}\" }}\n    ladder: default\n"
        )
    }

    fn load(files: &[(&str, &str)]) -> Result<Catalog, CatalogError> {
        let files: Vec<(PathBuf, String)> = files
            .iter()
            .map(|(name, text)| (PathBuf::from(name), (*text).to_owned()))
            .collect();
        Catalog::from_texts(&files)
    }

    /// Every problem, as the `check` command prints it.
    fn problems(files: &[(&str, &str)]) -> Vec<String> {
        match load(files) {
            Ok(catalog) => panic!("expected problems, loaded {catalog:#?}"),
            Err(CatalogError::Invalid(problems)) => {
                problems.iter().map(Problem::to_string).collect()
            }
            Err(error) => panic!("expected problems, got {error}"),
        }
    }

    /// Problems of a ladder file with `ladder` as its only ladder.
    fn ladder_problems(ladder: &str) -> Vec<String> {
        let text = format!("{ENCODERS}ladders:\n  default:\n{ladder}");
        problems(&[("l.yaml", &text)])
    }

    const GOOD_LADDER: &str = concat!(
        "    segment_duration: 2\n",
        "    gop: 1\n",
        "    renditions:\n",
        "      - { name: hi, width: 1280, height: 720, bitrate: 2500, profile: high, max_framerate: 30 }\n",
        "    audio: { codec: aac, bitrate: 128, channels: 2 }\n",
    );

    #[test]
    fn a_valid_catalog_loads_across_files() {
        let channels = format!(
            "channels:\n{}{}",
            channel("news", 1, "test://"),
            channel("film", 2, "file://media/film.mp4")
        );
        let catalog = load(&[
            ("c.yaml", &channels),
            ("l.yaml", LADDERS),
            ("e.yaml", ENCODERS),
        ])
        .unwrap_or_else(|error| panic!("{error}"));
        let ids: Vec<&str> = catalog.channels.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["news", "film"]);
        let ladder = catalog.ladder(&catalog.channels[0]);
        assert_eq!(ladder.segment_duration, Duration::from_secs(2));
        assert_eq!(ladder.gop, Duration::from_secs(1));
        assert_eq!(ladder.window, 6);
        assert_eq!(ladder.encoder, "x264");
        assert_eq!(catalog.encoder(ladder).element, "x264enc");
        let film = catalog.channels[1]
            .source
            .file_path()
            .expect("a file source");
        assert!(
            film.is_absolute() && film.ends_with("media/film.mp4"),
            "{}",
            film.display()
        );
    }

    #[test]
    fn fractional_durations_are_kept_in_milliseconds() {
        let ladder = GOOD_LADDER
            .replace("segment_duration: 2", "segment_duration: 1.5")
            .replace("gop: 1", "gop: 0.5");
        let text = format!("{ENCODERS}ladders:\n  default:\n{ladder}");
        let catalog = load(&[("l.yaml", &text)]).unwrap_or_else(|error| panic!("{error}"));
        let ladder = &catalog.ladders["default"];
        assert_eq!(ladder.segment_duration, Duration::from_millis(1500));
        assert_eq!(ladder.gop, Duration::from_millis(500));
    }

    #[test]
    fn point_one_divides_point_three() {
        let ladder = GOOD_LADDER
            .replace("segment_duration: 2", "segment_duration: 0.3")
            .replace("gop: 1", "gop: 0.1");
        let text = format!("{ENCODERS}ladders:\n  default:\n{ladder}");
        assert!(load(&[("l.yaml", &text)]).is_ok());
    }

    #[test]
    fn syntax_errors_are_placed_by_serde_yaml() {
        assert_eq!(
            problems(&[("a.yaml", "channels: [\n")]),
            ["a.yaml:2:1: did not find expected node content, while parsing a flow node"]
        );
    }

    #[test]
    fn unknown_fields_are_placed_at_the_field() {
        let text = format!(
            "channels:\n{}    colour: red\n",
            channel("news", 1, "test://")
        );
        assert_eq!(
            problems(&[("c.yaml", &text), ("l.yaml", LADDERS), ("e.yaml", ENCODERS)]),
            ["c.yaml:8:5: channels[0]: unknown field `colour`, expected one of `id`, `number`, `name`, `group`, `logo`, `source`, `ladder`, `outputs`, `multicast`, `epg`, `backup`, `slate`, `stall_timeout`"]
        );
    }

    #[test]
    fn a_file_that_fails_to_parse_does_not_hide_problems_in_others() {
        let channels = format!("channels:\n{}", channel("News", 1, "test://"));
        assert_eq!(
            problems(&[("c.yaml", &channels), ("l.yaml", "ladders: {\n")]),
            [
                "c.yaml:2:9: channel id `News` must match ^[a-z0-9][a-z0-9_-]*$ and be at most 64 characters",
                "l.yaml:2:1: did not find expected node content, while parsing a flow node",
            ]
        );
    }

    #[test]
    fn duplicate_channel_ids_and_numbers_point_at_the_first() {
        let one = format!("channels:\n{}", channel("news", 1, "test://"));
        let two = format!(
            "channels:\n{}{}",
            channel("sport", 2, "test://"),
            channel("news", 1, "test://")
        );
        assert_eq!(
            problems(&[
                ("a.yaml", &one),
                ("b.yaml", &two),
                ("l.yaml", LADDERS),
                ("e.yaml", ENCODERS)
            ]),
            [
                "b.yaml:8:9: channel id `news` is already used at a.yaml:2:9",
                "b.yaml:9:13: channel number 1 is already used by channel `news` at a.yaml:3:13",
            ]
        );
    }

    #[test]
    fn channel_ids_are_url_segments() {
        for id in [
            "News",
            "-news",
            "news.hd",
            "n\u{e9}ws",
            "\"\"",
            &"a".repeat(65),
        ] {
            let text = format!("channels:\n{}", channel(id, 1, "test://"));
            let problems =
                problems(&[("c.yaml", &text), ("l.yaml", LADDERS), ("e.yaml", ENCODERS)]);
            assert_eq!(problems.len(), 1, "{id}: {problems:?}");
            assert!(
                problems[0].starts_with("c.yaml:2:9: channel id `"),
                "{id}: {problems:?}"
            );
        }
        for id in ["news", "0", "news-hd_2", &"a".repeat(64)] {
            let text = format!("channels:\n{}", channel(id, 1, "test://"));
            assert!(
                load(&[("c.yaml", &text), ("l.yaml", LADDERS), ("e.yaml", ENCODERS)]).is_ok(),
                "{id}"
            );
        }
    }

    #[test]
    fn channel_number_zero_and_empty_name_are_refused() {
        let text = format!("channels:\n{}", channel("news", 0, "test://"))
            .replace("name: Test", "name: ''");
        assert_eq!(
            problems(&[("c.yaml", &text), ("l.yaml", LADDERS), ("e.yaml", ENCODERS)]),
            [
                "c.yaml:3:13: channel number must be from 1 to 65535, not 0",
                "c.yaml:4:11: channel name must not be empty",
            ]
        );
        let text = format!("channels:\n{}", channel("news", 65_536, "test://"));
        assert_eq!(
            problems(&[("c.yaml", &text), ("l.yaml", LADDERS), ("e.yaml", ENCODERS)]),
            ["c.yaml:3:13: channel number must be from 1 to 65535, not 65536"]
        );
    }

    #[test]
    fn bad_source_uris_are_placed_at_the_uri() {
        let text = format!(
            "channels:\n{}{}",
            channel("news", 1, "ftp://x/a.ts"),
            channel("film", 2, "file://")
        );
        assert_eq!(
            problems(&[("c.yaml", &text), ("l.yaml", LADDERS), ("e.yaml", ENCODERS)]),
            [
                "c.yaml:6:20: unsupported source scheme `ftp` (supported: test, file, udp, rtp, srt, rtmp, rtsp, http, https)",
                "c.yaml:12:20: file:// source has an empty path",
            ]
        );
    }

    #[test]
    fn failover_fields_are_resolved_and_default() {
        let text = "channels:\n".to_owned()
            + &channel("plain", 1, "test://")
            + &channel("news", 2, "udp://127.0.0.1:5000")
            + "    backup: { uri: \"udp://127.0.0.1:5002\", options: { buffer-size: 65536 } }\n    slate: { image: slates/off-air.png }\n    stall_timeout: 1.5\n"
            + &channel("film", 3, "test://")
            + "    slate: {}\n";
        let catalog = load(&[
            ("/srv/c.yaml", &text),
            ("l.yaml", LADDERS),
            ("e.yaml", ENCODERS),
        ])
        .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(catalog.channels[0].failover, None);
        let news = catalog.channels[1].failover.as_ref().expect("failover");
        let backup = news.backup.as_ref().expect("a backup");
        assert_eq!(backup.uri, "udp://127.0.0.1:5002");
        assert_eq!(backup.options["buffer-size"], "65536");
        assert_eq!(
            news.slate_image.as_deref(),
            Some(Path::new("/srv/slates/off-air.png"))
        );
        assert_eq!(news.stall_timeout, Duration::from_millis(1500));
        let film = catalog.channels[2].failover.as_ref().expect("failover");
        assert_eq!(
            film,
            &Failover {
                backup: None,
                slate_image: None,
                stall_timeout: Failover::DEFAULT_STALL_TIMEOUT,
            }
        );
    }

    #[test]
    fn bad_failover_fields_are_placed_at_the_field() {
        let text = "channels:\n".to_owned()
            + &channel("news", 1, "udp://127.0.0.1:5000")
            + "    backup: { uri: \"ftp://x/a.ts\" }\n    slate: { image: \"\" }\n    stall_timeout: 0\n"
            + &channel("film", 2, "test://")
            + "    backup: { uri: \"test://\" }\n";
        assert_eq!(
            problems(&[("c.yaml", &text), ("l.yaml", LADDERS), ("e.yaml", ENCODERS)]),
            [
                "c.yaml:8:20: unsupported source scheme `ftp` (supported: test, file, udp, rtp, srt, rtmp, rtsp, http, https)",
                "c.yaml:9:21: slate image path is empty",
                "c.yaml:10:20: stall_timeout must be at least 1 millisecond, not 0",
                "c.yaml:17:20: backup must be another source than `source`",
            ]
        );
    }

    #[test]
    fn unknown_ladders_and_encoders_list_what_is_defined() {
        let text = format!("channels:\n{}", channel("news", 1, "test://"))
            .replace("ladder: default", "ladder: hd");
        let ladders = LADDERS.replace("    gop: 1\n", "    gop: 1\n    encoder: nvenc\n");
        assert_eq!(
            problems(&[
                ("c.yaml", &text),
                ("l.yaml", &ladders),
                ("e.yaml", ENCODERS)
            ]),
            [
                "c.yaml:7:13: unknown ladder `hd` (defined: default)",
                "l.yaml:5:14: unknown encoder profile `nvenc` (defined: x264)",
            ]
        );
    }

    #[test]
    fn an_absent_encoder_defaults_to_x264_and_is_placed_at_its_ladder() {
        assert_eq!(
            problems(&[("l.yaml", LADDERS)]),
            ["l.yaml:3:5: unknown encoder profile `x264` (no encoder profiles are defined)"]
        );
    }

    #[test]
    fn references_are_not_checked_while_a_file_does_not_parse() {
        let text = format!("channels:\n{}", channel("news", 1, "test://"));
        assert_eq!(
            problems(&[("c.yaml", &text), ("l.yaml", "ladders: [")]),
            ["l.yaml:1:10: ladders: invalid type: sequence, expected a map"]
        );
    }

    #[test]
    fn names_defined_twice_across_files_point_at_the_first() {
        assert_eq!(
            problems(&[
                ("a.yaml", &format!("{ENCODERS}{LADDERS}")),
                ("b.yaml", &format!("{LADDERS}{ENCODERS}"))
            ]),
            [
                "b.yaml:2:3: ladder `default` is already defined at a.yaml:6:3",
                "b.yaml:10:3: encoder profile `x264` is already defined at a.yaml:2:3",
            ]
        );
    }

    #[test]
    fn keys_defined_twice_in_one_mapping_are_refused() {
        let text = format!("{ENCODERS}{LADDERS}{}", LADDERS.replace("ladders:\n", ""));
        // serde_yaml would silently keep the second `default`.
        assert_eq!(
            problems(&[("a.yaml", &text)]),
            ["a.yaml:13:3: duplicate key `default`, first at line 6 column 3"]
        );
    }

    #[test]
    fn gop_must_divide_segment_duration() {
        assert_eq!(
            ladder_problems(&GOOD_LADDER.replace("gop: 1", "gop: 0.75")),
            ["l.yaml:8:10: gop (0.75s) must divide segment_duration (2s) so every segment starts on a keyframe"]
        );
    }

    #[test]
    fn durations_are_positive_whole_milliseconds() {
        let ladder = GOOD_LADDER
            .replace("segment_duration: 2", "segment_duration: 0.0005")
            .replace("gop: 1", "gop: -1");
        assert_eq!(
            ladder_problems(&ladder),
            [
                "l.yaml:7:23: segment_duration must be a whole number of milliseconds, not 0.0005",
                "l.yaml:8:10: gop must be at least 1 millisecond, not -1",
            ]
        );
        assert_eq!(
            ladder_problems(&GOOD_LADDER.replace("gop: 1", "gop: .nan")),
            ["l.yaml:8:10: gop must be at least 1 millisecond, not NaN"]
        );
    }

    #[test]
    fn window_is_at_least_three_segments() {
        assert_eq!(
            ladder_problems(&format!("    window: 2\n{GOOD_LADDER}")),
            ["l.yaml:7:13: window must be at least 3 segments, not 2: players start 3 segments from the live edge"]
        );
    }

    #[test]
    fn a_ladder_needs_a_rendition() {
        let ladder = "    segment_duration: 2\n    gop: 1\n    renditions: []\n    audio: { codec: aac, bitrate: 128, channels: 2 }\n";
        assert_eq!(
            ladder_problems(ladder),
            ["l.yaml:9:17: a ladder needs at least one rendition"]
        );
    }

    const RENDITIONS_HEAD: &str = "    segment_duration: 2\n    gop: 1\n    audio: { codec: aac, bitrate: 128, channels: 2 }\n    renditions:\n";

    fn rendition(name: &str, width: u32, height: u32, bitrate: u32, framerate: u32) -> String {
        format!(
            "      - {{ name: {name}, width: {width}, height: {height}, bitrate: {bitrate}, profile: main, max_framerate: {framerate} }}\n"
        )
    }

    #[test]
    fn renditions_go_from_highest_to_lowest() {
        let ladder = format!(
            "{RENDITIONS_HEAD}{}{}{}",
            rendition("a", 640, 360, 700, 30),
            rendition("b", 1280, 720, 700, 30),
            rendition("c", 640, 360, 300, 30)
        );
        assert_eq!(
            ladder_problems(&ladder),
            [
                "l.yaml:12:41: rendition `b` (720 lines) must not be taller than `a` above it (360 lines): list renditions from highest to lowest",
                "l.yaml:12:55: rendition `b` (700 kbit/s) must have a lower bitrate than `a` above it (700 kbit/s): list renditions from highest to lowest",
            ]
        );
    }

    #[test]
    fn rendition_names_are_unique_url_segments_and_not_audio() {
        let ladder = format!(
            "{RENDITIONS_HEAD}{}{}{}{}",
            rendition("a", 1280, 720, 3000, 30),
            rendition("a", 854, 480, 1400, 30),
            rendition("audio", 640, 360, 800, 30),
            rendition("Low", 426, 240, 300, 30)
        );
        assert_eq!(
            ladder_problems(&ladder),
            [
                "l.yaml:12:17: rendition name `a` is already used by renditions[0]",
                "l.yaml:13:17: rendition name `audio` is reserved for the audio playlist",
                "l.yaml:14:17: rendition name `Low` must match ^[a-z0-9][a-z0-9_-]*$ and be at most 64 characters",
            ]
        );
    }

    #[test]
    fn rendition_sizes_are_even_and_rates_positive() {
        let ladder = format!("{RENDITIONS_HEAD}{}", rendition("a", 853, 0, 0, 0));
        assert_eq!(
            ladder_problems(&ladder),
            [
                "l.yaml:11:27: width must be even and greater than 0, not 853",
                "l.yaml:11:40: height must be even and greater than 0, not 0",
                "l.yaml:11:52: bitrate must be greater than 0",
                "l.yaml:11:85: max_framerate must be greater than 0",
            ]
        );
    }

    #[test]
    fn audio_is_mono_or_stereo_aac_at_a_standard_rate() {
        let ladder = GOOD_LADDER.replace(
            "{ codec: aac, bitrate: 128, channels: 2 }",
            "{ codec: aac, bitrate: 0, channels: 6, sample_rate: 47000 }",
        );
        assert_eq!(
            ladder_problems(&ladder),
            [
                "l.yaml:11:35: audio bitrate must be greater than 0",
                "l.yaml:11:48: audio channels must be 1 (mono) or 2 (stereo), not 6",
                "l.yaml:11:64: audio sample_rate 47000 is not an AAC sampling frequency (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)",
            ]
        );
    }

    #[test]
    fn encoder_names_must_not_be_empty() {
        let text = format!(
            "encoders:\n  x264:\n    element: ''\n    gop_property: ' '\n{}",
            "    properties: { '': 1 }\n"
        );
        assert_eq!(
            problems(&[("e.yaml", &text)]),
            [
                "e.yaml:3:14: element must not be empty",
                "e.yaml:4:19: gop_property must not be empty",
                "e.yaml:5:23: property names must not be empty",
            ]
        );
    }

    #[test]
    fn problems_are_sorted_by_file_then_position() {
        let two = format!(
            "channels:\n{}{}",
            channel("Bad", 0, "test://"),
            channel("also-bad", 3, "ftp://x")
        );
        let one = format!("channels:\n{}", channel("x", 7, "ftp://y"));
        let problems = problems(&[
            ("b.yaml", &two),
            ("a.yaml", &one),
            ("l.yaml", LADDERS),
            ("e.yaml", ENCODERS),
        ]);
        let places: Vec<&str> = problems
            .iter()
            .map(|p| p.split(": ").next().unwrap_or(""))
            .collect();
        assert_eq!(
            places,
            ["b.yaml:2:9", "b.yaml:3:13", "b.yaml:12:20", "a.yaml:6:20"]
        );
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let texts = [
            "",
            "~",
            "[]",
            "- 1",
            "channels: 3",
            "channels: [~]",
            "ladders: { a: ~ }",
            "channels:\n  - &c { id: a }\n  - *c\n",
            "{{{{",
            "'",
            "\u{0}",
            "a: &a\n  b: *a\n",
            "<<: { channels: [] }",
            "ladders:\n  x:\n    renditions: [{ name: a }]\n",
        ];
        for text in texts {
            let _ = load(&[("x.yaml", text)]);
        }
    }
}
