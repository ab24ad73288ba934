//! ISO BMFF (MP4) box reading for CMAF init segments and fragments
//! (ISO/IEC 14496-12, CMAF ISO/IEC 23000-19).
//!
//! Only what the packager needs to list segments in a DASH timeline and check them:
//! the track of an init segment, and the timing of each `moof` + `mdat` pair in a
//! segment. Every read is bounds-checked, so malformed input is an [`Mp4Error`], never
//! a panic.
//!
//! Edit lists are not applied. cmafmux (gst-plugin-fmp4 0.14) writes none: it puts
//! B-frame reordering in signed `trun` composition offsets, so a fragment's earliest
//! presentation time is its `tfdt` plus the first sample's offset.

use std::fmt;

use thiserror::Error;

/// A box type or handler type, as its four bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FourCc(pub [u8; 4]);

impl fmt::Display for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.escape_ascii())
    }
}

impl fmt::Debug for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// `hdlr` handler type of a video track.
pub const VIDEO_HANDLER: [u8; 4] = *b"vide";
/// `hdlr` handler type of an audio track.
pub const AUDIO_HANDLER: [u8; 4] = *b"soun";

/// Why an init segment or a segment could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Mp4Error {
    #[error("box at offset {offset} needs {needed} bytes but only {available} remain")]
    Truncated {
        offset: usize,
        needed: u64,
        available: usize,
    },
    #[error("box at offset {offset} declares size {size}, smaller than its own header")]
    BadSize { offset: usize, size: u64 },
    #[error("`{kind}` box at offset {offset} ends before its fields do")]
    ShortBox { kind: FourCc, offset: usize },
    #[error("`{kind}` box at offset {offset} has version {version}, which is not defined")]
    UnknownVersion {
        kind: FourCc,
        offset: usize,
        version: u8,
    },
    #[error("`{kind}` box at offset {offset}: {reason}")]
    Invalid {
        kind: FourCc,
        offset: usize,
        reason: &'static str,
    },
    #[error("no `moov` box in the init segment")]
    NoMoov,
    #[error("no `{kind}` box in the box at offset {parent_offset}")]
    Missing { kind: FourCc, parent_offset: usize },
    #[error("no `moof` box in the segment")]
    NoFragment,
    #[error("`moof` at offset {moof_offset} has no `traf` for track {track_id}")]
    NoTrack { moof_offset: usize, track_id: u32 },
    #[error("`moof` at offset {moof_offset} is not followed by an `mdat`")]
    NoMdat { moof_offset: usize },
    #[error("fragment at offset {moof_offset} has no samples")]
    NoSamples { moof_offset: usize },
    #[error(
        "fragment at offset {moof_offset} gives no sample {field} in `trun` or `tfhd`, \
         and no `trex` default was given"
    )]
    NoDefault {
        moof_offset: usize,
        field: &'static str,
    },
    #[error(
        "`traf` of `moof` at offset {moof_offset} is not the first and has an implicit \
         base data offset"
    )]
    ImplicitBase { moof_offset: usize },
    #[error("first sample of the fragment at offset {moof_offset} lies outside its `mdat`")]
    SampleOutsideMdat { moof_offset: usize },
}

/// What an init segment says of its (first) track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitInfo {
    /// `tkhd` track_ID, which each fragment's `tfhd` repeats.
    pub track_id: u32,
    /// `mdhd` timescale: ticks per second of every time in the fragments.
    pub timescale: u32,
    /// `hdlr` handler type: [`VIDEO_HANDLER`] or [`AUDIO_HANDLER`].
    pub handler: [u8; 4],
    /// `mvex/trex` of the track: the sample defaults a fragment may leave out.
    pub trex: Option<TrackExtends>,
}

/// `trex` (ISO/IEC 14496-12 8.8.3): the last fallback for sample fields that neither
/// `trun` nor `tfhd` state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackExtends {
    pub default_sample_duration: u32,
    pub default_sample_size: u32,
    pub default_sample_flags: u32,
}

/// Timing and layout of one fragment (`moof` + `mdat`). Times are in the track's
/// timescale; offsets are byte offsets in the input given to [`parse_fragments`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentInfo {
    /// `tfdt` baseMediaDecodeTime: decode time of the first sample.
    pub base_decode_time: u64,
    /// Sum of the sample durations of every `trun`.
    pub duration: u64,
    pub sample_count: u32,
    /// Composition offset of the first sample (`trun` v0 unsigned, v1 signed); 0 when
    /// the `trun` has none.
    pub first_composition_offset: i64,
    /// The first sample is a sync sample (`sample_is_non_sync_sample` clear).
    pub first_sample_is_sync: bool,
    pub moof_offset: usize,
    /// Where the first sample's bytes start.
    pub first_sample_offset: usize,
    pub first_sample_size: u32,
    /// Just past this fragment's `mdat`.
    pub end: usize,
}

impl FragmentInfo {
    /// Presentation time of the first sample: `base_decode_time +
    /// first_composition_offset`, clamped at 0. For a fragment that starts with a SAP
    /// of type 1 or 2, as every CMAF segment does, that sample is presented first, so
    /// this is the fragment's earliest presentation time.
    ///
    /// ffprobe and GStreamer's qtdemux report times shifted later by the largest
    /// negative composition offset (to keep PTS ≥ DTS); the MPD wants the ISO times.
    pub fn earliest_presentation_time(&self) -> u64 {
        self.base_decode_time
            .saturating_add_signed(self.first_composition_offset)
    }
}

/// sample_flags bit 16, `sample_is_non_sync_sample` (ISO/IEC 14496-12 8.8.3.1).
pub const SAMPLE_IS_NON_SYNC: u32 = 0x0001_0000;

// tfhd flags (ISO/IEC 14496-12 8.8.7.1).
const TFHD_BASE_DATA_OFFSET: u32 = 0x00_0001;
const TFHD_SAMPLE_DESCRIPTION_INDEX: u32 = 0x00_0002;
const TFHD_DEFAULT_DURATION: u32 = 0x00_0008;
const TFHD_DEFAULT_SIZE: u32 = 0x00_0010;
const TFHD_DEFAULT_FLAGS: u32 = 0x00_0020;
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;

// trun flags (ISO/IEC 14496-12 8.8.8.1).
const TRUN_DATA_OFFSET: u32 = 0x00_0001;
const TRUN_FIRST_SAMPLE_FLAGS: u32 = 0x00_0004;
const TRUN_DURATION: u32 = 0x00_0100;
const TRUN_SIZE: u32 = 0x00_0200;
const TRUN_FLAGS: u32 = 0x00_0400;
const TRUN_COMPOSITION_OFFSET: u32 = 0x00_0800;

/// Reads the first track of an init segment (`ftyp` + `moov`): `moov/trak/tkhd`,
/// `mdia/mdhd`, `mdia/hdlr`, and the track's `moov/mvex/trex` if there is one.
pub fn parse_init(data: &[u8]) -> Result<InitInfo, Mp4Error> {
    let moov = find(Boxes::new(data, 0), b"moov")?.ok_or(Mp4Error::NoMoov)?;
    let trak = child(&moov, b"trak")?;

    let tkhd = child(&trak, b"tkhd")?;
    let mut fields = Fields::new(&tkhd);
    let track_id = match fields.version_and_flags()?.0 {
        0 => fields.skip(8)?.u32()?,
        1 => fields.skip(16)?.u32()?,
        version => return Err(tkhd.unknown_version(version)),
    };

    let mdia = child(&trak, b"mdia")?;
    let mdhd = child(&mdia, b"mdhd")?;
    let mut fields = Fields::new(&mdhd);
    let timescale = match fields.version_and_flags()?.0 {
        0 => fields.skip(8)?.u32()?,
        1 => fields.skip(16)?.u32()?,
        version => return Err(mdhd.unknown_version(version)),
    };
    if timescale == 0 {
        return Err(mdhd.invalid("timescale is 0"));
    }

    let hdlr = child(&mdia, b"hdlr")?;
    let handler = Fields::new(&hdlr).skip(8)?.bytes::<4>()?;

    let mut trex = None;
    if let Some(mvex) = find(moov.children(), b"mvex")? {
        for b in mvex.children() {
            let b = b?;
            if b.kind.0 != *b"trex" {
                continue;
            }
            let mut fields = Fields::new(&b);
            fields.version_and_flags()?;
            if fields.u32()? != track_id {
                continue;
            }
            fields.skip(4)?; // default_sample_description_index
            trex = Some(TrackExtends {
                default_sample_duration: fields.u32()?,
                default_sample_size: fields.u32()?,
                default_sample_flags: fields.u32()?,
            });
            break;
        }
    }

    Ok(InitInfo {
        track_id,
        timescale,
        handler,
        trex,
    })
}

/// Reads every fragment of a segment in order, from the first `traf` of each `moof`.
/// A segment may be several `moof` + `mdat` pairs joined; `styp`, `sidx`, `prft`,
/// `emsg` and any other box between them are skipped. Sample fields a fragment leaves
/// out of both `trun` and `tfhd` are an error here: use [`parse_track_fragments`] to
/// fall back to the init segment's `trex`.
pub fn parse_fragments(data: &[u8]) -> Result<Vec<FragmentInfo>, Mp4Error> {
    read_fragments(data, None, None)
}

/// As [`parse_fragments`], for the `traf` of `init`'s track in each `moof`, with its
/// `trex` defaults.
pub fn parse_track_fragments(data: &[u8], init: &InitInfo) -> Result<Vec<FragmentInfo>, Mp4Error> {
    read_fragments(data, Some(init.track_id), init.trex.as_ref())
}

fn read_fragments(
    data: &[u8],
    track_id: Option<u32>,
    trex: Option<&TrackExtends>,
) -> Result<Vec<FragmentInfo>, Mp4Error> {
    let mut fragments = Vec::new();
    let mut open: Option<(usize, TrackRun)> = None;
    for b in Boxes::new(data, 0) {
        let b = b?;
        match &b.kind.0 {
            b"moof" => {
                if let Some((moof_offset, _)) = open {
                    return Err(Mp4Error::NoMdat { moof_offset });
                }
                open = Some((b.offset, read_moof(&b, track_id, trex)?));
            }
            b"mdat" => {
                // An `mdat` with no `moof` before it carries nothing we can time.
                if let Some((moof_offset, run)) = open.take() {
                    fragments.push(run.locate(moof_offset, &b)?);
                }
            }
            _ => {}
        }
    }
    if let Some((moof_offset, _)) = open {
        return Err(Mp4Error::NoMdat { moof_offset });
    }
    if fragments.is_empty() {
        return Err(Mp4Error::NoFragment);
    }
    Ok(fragments)
}

/// What a `traf` says, before the `mdat` after it locates its first sample.
struct TrackRun {
    base_decode_time: u64,
    duration: u64,
    sample_count: u32,
    first_composition_offset: i64,
    first_sample_is_sync: bool,
    first_sample_size: u32,
    first_sample_start: DataStart,
}

enum DataStart {
    /// Absolute offset in the input: base data offset plus the `trun` data_offset.
    At(u64),
    /// No offset stated: the samples start the `mdat` payload.
    MdatPayload,
}

impl TrackRun {
    fn locate(self, moof_offset: usize, mdat: &Mp4Box<'_>) -> Result<FragmentInfo, Mp4Error> {
        let payload_start = mdat.body_offset;
        let end = mdat.body_offset + mdat.body.len();
        let outside = Mp4Error::SampleOutsideMdat { moof_offset };
        let first_sample_offset = match self.first_sample_start {
            DataStart::At(offset) => usize::try_from(offset).map_err(|_| outside.clone())?,
            DataStart::MdatPayload => payload_start,
        };
        let first_end = first_sample_offset
            .checked_add(self.first_sample_size as usize)
            .ok_or_else(|| outside.clone())?;
        if first_sample_offset < payload_start || first_end > end {
            return Err(outside);
        }
        Ok(FragmentInfo {
            base_decode_time: self.base_decode_time,
            duration: self.duration,
            sample_count: self.sample_count,
            first_composition_offset: self.first_composition_offset,
            first_sample_is_sync: self.first_sample_is_sync,
            moof_offset,
            first_sample_offset,
            first_sample_size: self.first_sample_size,
            end,
        })
    }
}

/// Sample fields the `trun` may leave to `tfhd`, then to `trex`.
#[derive(Clone, Copy)]
struct SampleDefaults {
    duration: Option<u32>,
    size: Option<u32>,
    flags: Option<u32>,
}

fn read_moof(
    moof: &Mp4Box<'_>,
    track_id: Option<u32>,
    trex: Option<&TrackExtends>,
) -> Result<TrackRun, Mp4Error> {
    let moof_offset = moof.offset;
    let mut traf_index = 0;
    for traf in moof.children() {
        let traf = traf?;
        if traf.kind.0 != *b"traf" {
            continue;
        }
        let tfhd = child(&traf, b"tfhd")?;
        let header = read_tfhd(&tfhd)?;
        if track_id.is_some_and(|id| id != header.track_id) {
            traf_index += 1;
            continue;
        }
        // ISO/IEC 14496-12 8.8.7.1: without an explicit base data offset, the base is
        // the `moof` when default-base-is-moof is set, and for the first `traf` of a
        // `moof` also when it is not; later ones continue after the previous track's
        // data, which we do not follow (CMAF always sets default-base-is-moof).
        let base = match header.base_data_offset {
            Some(base) => base,
            None if header.default_base_is_moof || traf_index == 0 => moof_offset as u64,
            None => return Err(Mp4Error::ImplicitBase { moof_offset }),
        };
        let defaults = SampleDefaults {
            duration: header
                .defaults
                .duration
                .or(trex.map(|t| t.default_sample_duration)),
            size: header.defaults.size.or(trex.map(|t| t.default_sample_size)),
            flags: header
                .defaults
                .flags
                .or(trex.map(|t| t.default_sample_flags)),
        };
        return read_traf(&traf, moof_offset, base, &header, &defaults);
    }
    Err(match track_id {
        Some(track_id) => Mp4Error::NoTrack {
            moof_offset,
            track_id,
        },
        None => Mp4Error::Missing {
            kind: FourCc(*b"traf"),
            parent_offset: moof_offset,
        },
    })
}

struct TfhdHeader {
    track_id: u32,
    base_data_offset: Option<u64>,
    default_base_is_moof: bool,
    defaults: SampleDefaults,
}

fn read_tfhd(tfhd: &Mp4Box<'_>) -> Result<TfhdHeader, Mp4Error> {
    let mut fields = Fields::new(tfhd);
    let (_, flags) = fields.version_and_flags()?;
    let track_id = fields.u32()?;
    let base_data_offset = fields.optional_u64(flags & TFHD_BASE_DATA_OFFSET != 0)?;
    fields.optional_u32(flags & TFHD_SAMPLE_DESCRIPTION_INDEX != 0)?;
    Ok(TfhdHeader {
        track_id,
        base_data_offset,
        default_base_is_moof: flags & TFHD_DEFAULT_BASE_IS_MOOF != 0,
        defaults: SampleDefaults {
            duration: fields.optional_u32(flags & TFHD_DEFAULT_DURATION != 0)?,
            size: fields.optional_u32(flags & TFHD_DEFAULT_SIZE != 0)?,
            flags: fields.optional_u32(flags & TFHD_DEFAULT_FLAGS != 0)?,
        },
    })
}

/// First sample of a `traf`, once found.
struct FirstSample {
    composition_offset: i64,
    flags: u32,
    size: u32,
    start: DataStart,
}

fn read_traf(
    traf: &Mp4Box<'_>,
    moof_offset: usize,
    base: u64,
    header: &TfhdHeader,
    defaults: &SampleDefaults,
) -> Result<TrackRun, Mp4Error> {
    let tfdt = child(traf, b"tfdt")?;
    let mut fields = Fields::new(&tfdt);
    let base_decode_time = match fields.version_and_flags()?.0 {
        0 => u64::from(fields.u32()?),
        1 => fields.u64()?,
        version => return Err(tfdt.unknown_version(version)),
    };

    let no_default = |field| Mp4Error::NoDefault { moof_offset, field };
    let mut duration = 0u64;
    let mut sample_count = 0u32;
    let mut first: Option<FirstSample> = None;
    for trun in traf.children() {
        let trun = trun?;
        if trun.kind.0 != *b"trun" {
            continue;
        }
        let mut fields = Fields::new(&trun);
        let (version, flags) = fields.version_and_flags()?;
        let count = fields.u32()?;
        let data_offset = fields.optional_u32(flags & TRUN_DATA_OFFSET != 0)?;
        let first_sample_flags = fields.optional_u32(flags & TRUN_FIRST_SAMPLE_FLAGS != 0)?;
        let has = |bit: u32| flags & bit != 0;
        let per_sample = [
            TRUN_DURATION,
            TRUN_SIZE,
            TRUN_FLAGS,
            TRUN_COMPOSITION_OFFSET,
        ];
        let record = 4 * per_sample.into_iter().filter(|&bit| has(bit)).count();
        // A corrupt count must not make us loop billions of times over nothing.
        if u64::from(count) * record as u64 > fields.remaining() as u64 {
            return Err(trun.short());
        }
        sample_count = sample_count
            .checked_add(count)
            .ok_or_else(|| trun.invalid("sample count overflows"))?;
        if count == 0 {
            continue;
        }

        if has(TRUN_DURATION) {
            let mut row = fields.clone();
            for _ in 0..count {
                duration = duration.saturating_add(u64::from(row.u32()?));
                row.skip(record - 4)?;
            }
        } else {
            let each = defaults.duration.ok_or_else(|| no_default("duration"))?;
            duration = duration.saturating_add(u64::from(each) * u64::from(count));
        }

        if first.is_none() {
            fields.optional_u32(has(TRUN_DURATION))?;
            let size = fields.optional_u32(has(TRUN_SIZE))?;
            let sample_flags = fields.optional_u32(has(TRUN_FLAGS))?;
            let raw_offset = fields.optional_u32(has(TRUN_COMPOSITION_OFFSET))?;
            let composition_offset = match (raw_offset, version) {
                (None, _) => 0,
                (Some(raw), 0) => i64::from(raw),
                // Version 1 makes the offset signed, so B-frame reordering needs no
                // edit list.
                (Some(raw), _) => i64::from(raw as i32),
            };
            let start = match (data_offset, header.base_data_offset) {
                (Some(offset), _) => {
                    let at = base.checked_add_signed(i64::from(offset as i32));
                    DataStart::At(at.ok_or(Mp4Error::SampleOutsideMdat { moof_offset })?)
                }
                (None, Some(explicit)) => DataStart::At(explicit),
                // 14496-12 would start at the base, the `moof` itself, which cannot
                // hold samples; readers take the `mdat` payload, and so do we.
                (None, None) => DataStart::MdatPayload,
            };
            first = Some(FirstSample {
                composition_offset,
                flags: first_sample_flags
                    .or(sample_flags)
                    .or(defaults.flags)
                    .ok_or_else(|| no_default("flags"))?,
                size: size.or(defaults.size).ok_or_else(|| no_default("size"))?,
                start,
            });
        }
    }
    let first = first.ok_or(Mp4Error::NoSamples { moof_offset })?;
    Ok(TrackRun {
        base_decode_time,
        duration,
        sample_count,
        first_composition_offset: first.composition_offset,
        first_sample_is_sync: first.flags & SAMPLE_IS_NON_SYNC == 0,
        first_sample_size: first.size,
        first_sample_start: first.start,
    })
}

/// One box: its type, where it starts, and its payload.
struct Mp4Box<'a> {
    kind: FourCc,
    /// Offset of the box's first header byte in the whole input.
    offset: usize,
    /// Offset of `body` in the whole input.
    body_offset: usize,
    body: &'a [u8],
}

impl<'a> Mp4Box<'a> {
    fn children(&self) -> Boxes<'a> {
        Boxes::new(self.body, self.body_offset)
    }

    fn short(&self) -> Mp4Error {
        Mp4Error::ShortBox {
            kind: self.kind,
            offset: self.offset,
        }
    }

    fn unknown_version(&self, version: u8) -> Mp4Error {
        Mp4Error::UnknownVersion {
            kind: self.kind,
            offset: self.offset,
            version,
        }
    }

    fn invalid(&self, reason: &'static str) -> Mp4Error {
        Mp4Error::Invalid {
            kind: self.kind,
            offset: self.offset,
            reason,
        }
    }
}

/// The boxes laid end to end in `data`, which starts at `base` in the whole input.
/// After an error it ends.
struct Boxes<'a> {
    data: &'a [u8],
    base: usize,
    pos: usize,
}

impl<'a> Boxes<'a> {
    fn new(data: &'a [u8], base: usize) -> Self {
        Self { data, base, pos: 0 }
    }

    /// ISO/IEC 14496-12 4.2: a 32-bit size and a type; size 1 means a 64-bit
    /// `largesize` follows, size 0 that the box runs to the end of its container, and
    /// type `uuid` that a 16-byte extended type follows.
    fn read(&mut self) -> Result<Mp4Box<'a>, Mp4Error> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let offset = self.base + self.pos;
        let truncated = |needed: u64| Mp4Error::Truncated {
            offset,
            needed,
            available: rest.len(),
        };
        let word = |at: usize| -> Option<[u8; 4]> { rest.get(at..at + 4)?.try_into().ok() };
        let (Some(size), Some(kind)) = (word(0), word(4)) else {
            return Err(truncated(8));
        };
        let kind = FourCc(kind);
        let (size, mut header) = match u32::from_be_bytes(size) {
            0 => (rest.len() as u64, 8),
            1 => {
                let (Some(high), Some(low)) = (word(8), word(12)) else {
                    return Err(truncated(16));
                };
                let large =
                    u64::from(u32::from_be_bytes(high)) << 32 | u64::from(u32::from_be_bytes(low));
                (large, 16)
            }
            size => (u64::from(size), 8),
        };
        if kind.0 == *b"uuid" {
            header += 16;
        }
        if size < header as u64 {
            return Err(Mp4Error::BadSize { offset, size });
        }
        let body = usize::try_from(size)
            .ok()
            .and_then(|size| rest.get(header..size))
            .ok_or_else(|| truncated(size))?;
        self.pos += header + body.len();
        Ok(Mp4Box {
            kind,
            offset,
            body_offset: offset + header,
            body,
        })
    }
}

impl<'a> Iterator for Boxes<'a> {
    type Item = Result<Mp4Box<'a>, Mp4Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.data.len() {
            return None;
        }
        let result = self.read();
        if result.is_err() {
            self.pos = self.data.len();
        }
        Some(result)
    }
}

/// The first box of type `kind`, reading (and so checking) only the boxes before it.
fn find<'a>(boxes: Boxes<'a>, kind: &[u8; 4]) -> Result<Option<Mp4Box<'a>>, Mp4Error> {
    for b in boxes {
        let b = b?;
        if b.kind.0 == *kind {
            return Ok(Some(b));
        }
    }
    Ok(None)
}

/// A child box that must be there.
fn child<'a>(parent: &Mp4Box<'a>, kind: &[u8; 4]) -> Result<Mp4Box<'a>, Mp4Error> {
    find(parent.children(), kind)?.ok_or(Mp4Error::Missing {
        kind: FourCc(*kind),
        parent_offset: parent.offset,
    })
}

/// Big-endian fields of a box payload, read in order.
#[derive(Clone)]
struct Fields<'a> {
    kind: FourCc,
    offset: usize,
    body: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    fn new(b: &Mp4Box<'a>) -> Self {
        Self {
            kind: b.kind,
            offset: b.offset,
            body: b.body,
            pos: 0,
        }
    }

    fn short(&self) -> Mp4Error {
        Mp4Error::ShortBox {
            kind: self.kind,
            offset: self.offset,
        }
    }

    fn remaining(&self) -> usize {
        self.body.len().saturating_sub(self.pos)
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], Mp4Error> {
        let end = self.pos.checked_add(N).ok_or_else(|| self.short())?;
        let bytes: [u8; N] = self
            .body
            .get(self.pos..end)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| self.short())?;
        self.pos = end;
        Ok(bytes)
    }

    fn skip(&mut self, n: usize) -> Result<&mut Self, Mp4Error> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.body.len() => {
                self.pos = end;
                Ok(self)
            }
            _ => Err(self.short()),
        }
    }

    fn u32(&mut self) -> Result<u32, Mp4Error> {
        self.bytes().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64, Mp4Error> {
        self.bytes().map(u64::from_be_bytes)
    }

    fn optional_u32(&mut self, present: bool) -> Result<Option<u32>, Mp4Error> {
        present.then(|| self.u32()).transpose()
    }

    fn optional_u64(&mut self, present: bool) -> Result<Option<u64>, Mp4Error> {
        present.then(|| self.u64()).transpose()
    }

    /// A full box's header (ISO/IEC 14496-12 4.2): 8-bit version, 24-bit flags.
    fn version_and_flags(&mut self) -> Result<(u8, u32), Mp4Error> {
        let word = self.u32()?;
        Ok(((word >> 24) as u8, word & 0x00ff_ffff))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A box: 32-bit size, type, payload.
    fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32 + 8).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        out
    }

    /// A box with a 64-bit `largesize`.
    fn large_bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = 1u32.to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(&(body.len() as u64 + 16).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    /// A full box: version, 24-bit flags, then 32-bit fields.
    fn full(kind: &[u8; 4], version: u8, flags: u32, fields: &[u32]) -> Vec<u8> {
        let mut body = (u32::from(version) << 24 | flags).to_be_bytes().to_vec();
        for field in fields {
            body.extend_from_slice(&field.to_be_bytes());
        }
        bx(kind, &body)
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    const SYNC: u32 = 0x0200_0000; // depends on no other sample
    const NON_SYNC: u32 = 0x0101_0000; // depends on others, non-sync

    fn init(
        tkhd_version: u8,
        mdhd_version: u8,
        handler: &[u8; 4],
        trex: Option<[u32; 5]>,
    ) -> Vec<u8> {
        let tkhd = match tkhd_version {
            0 => full(b"tkhd", 0, 7, &[1, 2, 7, 0, 99]),
            _ => full(b"tkhd", 1, 7, &[0, 1, 0, 2, 7, 0, 0, 99]),
        };
        let mdhd = match mdhd_version {
            0 => full(b"mdhd", 0, 0, &[1, 2, 90_000, 0, 0x55c4_0000]),
            _ => full(b"mdhd", 1, 0, &[0, 1, 0, 2, 48_000, 0, 0, 0x55c4_0000]),
        };
        let mut hdlr_body = vec![0u8; 8];
        hdlr_body.extend_from_slice(handler);
        hdlr_body.extend_from_slice(&[0; 12]);
        hdlr_body.extend_from_slice(b"Handler\0");
        let mdia = bx(
            b"mdia",
            &cat(&[&mdhd, &bx(b"hdlr", &hdlr_body), &bx(b"minf", &[])]),
        );
        let trak = bx(b"trak", &cat(&[&tkhd, &mdia]));
        let mvex = trex
            .map(|fields| bx(b"mvex", &full(b"trex", 0, 0, &fields)))
            .unwrap_or_default();
        let moov = bx(
            b"moov",
            &cat(&[&full(b"mvhd", 0, 0, &[0; 25]), &trak, &mvex]),
        );
        cat(&[&bx(b"ftyp", b"cmf2\0\0\0\0cmf2iso6"), &moov])
    }

    #[test]
    fn init_video_with_version_0_headers_and_trex() {
        let data = init(0, 0, b"vide", Some([7, 1, 3000, 0, 0x0101_0000]));
        assert_eq!(
            parse_init(&data),
            Ok(InitInfo {
                track_id: 7,
                timescale: 90_000,
                handler: VIDEO_HANDLER,
                trex: Some(TrackExtends {
                    default_sample_duration: 3000,
                    default_sample_size: 0,
                    default_sample_flags: 0x0101_0000,
                }),
            })
        );
    }

    #[test]
    fn init_audio_with_version_1_headers_and_no_trex() {
        // A trex for another track is not this track's.
        let data = init(1, 1, b"soun", Some([8, 1, 1024, 0, 0]));
        assert_eq!(
            parse_init(&data),
            Ok(InitInfo {
                track_id: 7,
                timescale: 48_000,
                handler: AUDIO_HANDLER,
                trex: None,
            })
        );
    }

    #[test]
    fn init_errors_name_what_is_missing() {
        assert_eq!(parse_init(&bx(b"ftyp", b"iso6")), Err(Mp4Error::NoMoov));
        let moov = bx(b"moov", &bx(b"trak", &full(b"tkhd", 0, 0, &[0, 0, 1])));
        assert_eq!(
            parse_init(&moov),
            Err(Mp4Error::Missing {
                kind: FourCc(*b"mdia"),
                parent_offset: 8,
            })
        );
        let moov = bx(b"moov", &bx(b"trak", &full(b"tkhd", 2, 0, &[0, 0, 1])));
        assert!(matches!(
            parse_init(&moov),
            Err(Mp4Error::UnknownVersion { version: 2, .. })
        ));
        let mut zero_timescale = init(0, 0, b"vide", None);
        let at = zero_timescale
            .windows(4)
            .position(|w| w == 90_000u32.to_be_bytes())
            .unwrap();
        zero_timescale[at..at + 4].copy_from_slice(&[0; 4]);
        assert!(matches!(
            parse_init(&zero_timescale),
            Err(Mp4Error::Invalid {
                reason: "timescale is 0",
                ..
            })
        ));
    }

    /// `moof` + `mdat` with the `trun` data offset worked out: `traf` gets the offset
    /// from the `moof` start to the `mdat` payload and returns the `traf` body.
    fn fragment(traf: impl Fn(u32) -> Vec<u8>, payload: &[u8]) -> Vec<u8> {
        let trafs = |offset| bx(b"traf", &traf(offset));
        fragment_with(trafs, &[], &bx(b"mdat", payload), 8)
    }

    /// `before` + `moof` + `mdat`, where `trafs` gives the `moof` children after `mfhd`
    /// and the `mdat` payload starts `header` bytes in.
    fn fragment_with(
        trafs: impl Fn(u32) -> Vec<u8>,
        before: &[u8],
        mdat: &[u8],
        header: usize,
    ) -> Vec<u8> {
        let moof = |offset| bx(b"moof", &cat(&[&full(b"mfhd", 0, 0, &[1]), &trafs(offset)]));
        let offset = (moof(0).len() + header) as u32;
        cat(&[before, &moof(offset), mdat])
    }

    fn tfdt_v0(time: u32) -> Vec<u8> {
        full(b"tfdt", 0, 0, &[time])
    }

    fn tfdt_v1(time: u64) -> Vec<u8> {
        full(b"tfdt", 1, 0, &[(time >> 32) as u32, time as u32])
    }

    /// tfhd with default-base-is-moof and no defaults.
    fn tfhd_plain(track_id: u32) -> Vec<u8> {
        full(b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF, &[track_id])
    }

    /// A trun with a data offset and every per-sample field: (duration, size, flags,
    /// composition offset) for each sample.
    fn trun_samples(version: u8, offset: u32, samples: &[(u32, u32, u32, i32)]) -> Vec<u8> {
        let flags =
            TRUN_DATA_OFFSET | TRUN_DURATION | TRUN_SIZE | TRUN_FLAGS | TRUN_COMPOSITION_OFFSET;
        let mut fields = vec![samples.len() as u32, offset];
        for &(duration, size, sample_flags, composition_offset) in samples {
            fields.extend([duration, size, sample_flags, composition_offset as u32]);
        }
        full(b"trun", version, flags, &fields)
    }

    #[test]
    fn one_fragment_after_styp_sidx_prft_and_emsg() {
        let prefix = cat(&[
            &bx(b"styp", b"msdhmsix"),
            &full(
                b"sidx",
                1,
                0,
                &[1, 90_000, 0, 0, 0, 0, 0, 1, 100, 3600, 0x9000_0000],
            ),
            &full(b"prft", 1, 0, &[1, 0, 0, 0, 0]),
            &full(b"emsg", 1, 0, &[1000, 0, 0, 0, 0]),
        ]);
        let frag = fragment(
            |offset| {
                cat(&[
                    &tfhd_plain(1),
                    &tfdt_v0(180_000),
                    // Version 0: composition offsets are unsigned.
                    &trun_samples(
                        0,
                        offset,
                        &[
                            (3000, 5, SYNC, 6000),
                            (3000, 4, NON_SYNC, 0),
                            (3600, 3, NON_SYNC, 3000),
                        ],
                    ),
                ])
            },
            &[1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3],
        );
        let data = cat(&[&prefix, &frag]);
        let moof_offset = prefix.len();
        let fragments = parse_fragments(&data).unwrap();
        assert_eq!(
            fragments,
            [FragmentInfo {
                base_decode_time: 180_000,
                duration: 9600,
                sample_count: 3,
                first_composition_offset: 6000,
                first_sample_is_sync: true,
                moof_offset,
                first_sample_offset: data.len() - 12,
                first_sample_size: 5,
                end: data.len(),
            }]
        );
        assert_eq!(fragments[0].earliest_presentation_time(), 186_000);
        assert_eq!(&data[fragments[0].first_sample_offset..][..5], [1; 5]);
    }

    #[test]
    fn tfdt_v1_and_signed_composition_offsets_in_trun_v1() {
        let base = (1u64 << 33) + 1000;
        let data = fragment(
            |offset| {
                cat(&[
                    &tfhd_plain(1),
                    &tfdt_v1(base),
                    &trun_samples(1, offset, &[(1000, 1, SYNC, -2000), (1000, 1, NON_SYNC, 0)]),
                ])
            },
            &[9, 9],
        );
        let f = parse_fragments(&data).unwrap()[0];
        assert_eq!(f.base_decode_time, base);
        assert_eq!(f.first_composition_offset, -2000);
        assert_eq!(f.earliest_presentation_time(), base - 2000);
        assert_eq!(f.duration, 2000);

        // Negative presentation times clamp at 0.
        let early = FragmentInfo {
            base_decode_time: 1000,
            ..f
        };
        assert_eq!(early.earliest_presentation_time(), 0);
    }

    /// A fragment whose tfhd has default-sample-flags `tfhd_flags` and whose trun
    /// has `first_sample_flags` and per-sample flags as given.
    fn flags_fragment(
        tfhd_flags: Option<u32>,
        first: Option<u32>,
        per_sample: Option<[u32; 2]>,
    ) -> FragmentInfo {
        let data = fragment(
            |offset| {
                let tfhd = match tfhd_flags {
                    Some(f) => full(
                        b"tfhd",
                        0,
                        TFHD_DEFAULT_BASE_IS_MOOF | TFHD_DEFAULT_DURATION | TFHD_DEFAULT_FLAGS,
                        &[1, 1024, f],
                    ),
                    None => full(
                        b"tfhd",
                        0,
                        TFHD_DEFAULT_BASE_IS_MOOF | TFHD_DEFAULT_DURATION,
                        &[1, 1024],
                    ),
                };
                let mut flags = TRUN_DATA_OFFSET | TRUN_SIZE;
                let mut fields = vec![2, offset];
                if let Some(first) = first {
                    flags |= TRUN_FIRST_SAMPLE_FLAGS;
                    fields.push(first);
                }
                match per_sample {
                    Some([a, b]) => {
                        flags |= TRUN_FLAGS;
                        fields.extend([1, a, 1, b]);
                    }
                    None => fields.extend([1, 1]),
                }
                cat(&[&tfhd, &tfdt_v0(0), &full(b"trun", 0, flags, &fields)])
            },
            &[0, 0],
        );
        parse_fragments(&data).unwrap()[0]
    }

    #[test]
    fn first_sample_flags_then_per_sample_flags_then_tfhd_default() {
        // cmafmux video: non-sync default in tfhd, sync in first_sample_flags.
        assert!(flags_fragment(Some(NON_SYNC), Some(SYNC), None).first_sample_is_sync);
        assert!(!flags_fragment(Some(NON_SYNC), None, None).first_sample_is_sync);
        assert!(flags_fragment(Some(SYNC), None, None).first_sample_is_sync);
        // Per-sample flags win over the tfhd default, first_sample_flags over both.
        assert!(flags_fragment(Some(NON_SYNC), None, Some([SYNC, NON_SYNC])).first_sample_is_sync);
        assert!(!flags_fragment(Some(SYNC), None, Some([NON_SYNC, SYNC])).first_sample_is_sync);
        assert!(!flags_fragment(None, Some(NON_SYNC), Some([SYNC, SYNC])).first_sample_is_sync);
    }

    fn defaults_fragment() -> Vec<u8> {
        // Durations, sizes and flags all left to the trex.
        fragment(
            |offset| {
                cat(&[
                    &tfhd_plain(3),
                    &tfdt_v0(0),
                    &full(b"trun", 0, TRUN_DATA_OFFSET, &[4, offset]),
                ])
            },
            &[0; 8],
        )
    }

    #[test]
    fn tfhd_defaults_give_duration_and_size_of_every_sample() {
        // cmafmux audio: 93 AAC frames of 1024, sizes in the trun, flags in tfhd.
        let data = fragment(
            |offset| {
                let mut fields = vec![93, offset];
                fields.extend(std::iter::repeat_n(10, 93));
                cat(&[
                    &full(b"tfhd", 0, 0x2_0028, &[1, 1024, 0x0280_0000]),
                    &tfdt_v0(95_232),
                    &full(b"trun", 0, TRUN_DATA_OFFSET | TRUN_SIZE, &fields),
                ])
            },
            &[0; 930],
        );
        let f = parse_fragments(&data).unwrap()[0];
        assert_eq!((f.sample_count, f.duration), (93, 93 * 1024));
        assert_eq!(f.first_sample_size, 10);
        assert!(f.first_sample_is_sync);

        // Size from the tfhd default too.
        let data = fragment(
            |offset| {
                cat(&[
                    &full(b"tfhd", 0, 0x2_0038, &[1, 1024, 2, SYNC]),
                    &tfdt_v0(0),
                    &full(b"trun", 0, TRUN_DATA_OFFSET, &[3, offset]),
                ])
            },
            &[0; 6],
        );
        let f = parse_fragments(&data).unwrap()[0];
        assert_eq!((f.duration, f.first_sample_size), (3072, 2));
    }

    #[test]
    fn trex_defaults_only_with_the_init_segment() {
        let data = defaults_fragment();
        assert_eq!(
            parse_fragments(&data),
            Err(Mp4Error::NoDefault {
                moof_offset: 0,
                field: "duration",
            })
        );
        let mut info = parse_init(&init(0, 0, b"soun", Some([7, 1, 1024, 2, 0]))).unwrap();
        info.track_id = 3;
        info.trex = Some(TrackExtends {
            default_sample_duration: 1024,
            default_sample_size: 2,
            default_sample_flags: NON_SYNC,
        });
        let f = parse_track_fragments(&data, &info).unwrap()[0];
        assert_eq!((f.duration, f.first_sample_size), (4096, 2));
        assert!(!f.first_sample_is_sync);
    }

    fn two_fragments() -> (Vec<u8>, usize) {
        let one = |time: u32, payload: &[u8]| {
            let frag = fragment(
                |offset| {
                    cat(&[
                        &full(b"tfhd", 0, 0x2_0028, &[1, 1001, NON_SYNC]),
                        &tfdt_v0(time),
                        &full(
                            b"trun",
                            1,
                            0xa05,
                            &[2, offset, SYNC, 3, 1001, 2, (-1001i32) as u32],
                        ),
                    ])
                },
                payload,
            );
            cat(&[&bx(b"styp", b"cmfs"), &frag])
        };
        let first = one(30_030, &[1, 1, 1, 2, 2]);
        let second = one(32_032, &[3, 3, 4, 4]);
        (cat(&[&first, &second]), first.len())
    }

    #[test]
    fn two_fragments_back_to_back() {
        let (data, split) = two_fragments();
        let fragments = parse_fragments(&data).unwrap();
        assert_eq!(fragments.len(), 2);
        let [a, b] = [fragments[0], fragments[1]];
        assert_eq!((a.moof_offset, a.end), (12, split));
        assert_eq!((b.moof_offset, b.end), (split + 12, data.len()));
        assert_eq!(a.base_decode_time + a.duration, b.base_decode_time);
        assert_eq!(a.earliest_presentation_time(), 31_031);
        assert_eq!(&data[a.first_sample_offset..][..3], [1, 1, 1]);
        assert_eq!(&data[b.first_sample_offset..][..2], [3, 3]);
        assert!(a.first_sample_is_sync && b.first_sample_is_sync);
    }

    #[test]
    fn large_size_zero_size_and_uuid_boxes() {
        let info = InitInfo {
            track_id: 3,
            timescale: 1000,
            handler: VIDEO_HANDLER,
            trex: Some(TrackExtends {
                default_sample_duration: 10,
                default_sample_size: 2,
                default_sample_flags: 0,
            }),
        };
        // A uuid box has a 16-byte extended type after its header.
        let uuid = bx(b"uuid", &[0xab; 20]);
        let mdat = large_bx(b"mdat", &[5; 8]);
        let traf = |offset| {
            let trun = full(b"trun", 0, TRUN_DATA_OFFSET, &[4, offset]);
            bx(b"traf", &cat(&[&tfhd_plain(3), &tfdt_v0(0), &trun]))
        };
        let data = fragment_with(traf, &uuid, &mdat, 16);
        let f = parse_track_fragments(&data, &info).unwrap()[0];
        assert_eq!(f.moof_offset, uuid.len());
        assert_eq!(f.first_sample_offset, data.len() - 8);
        assert_eq!(f.end, data.len());

        // Size 0: the mdat runs to the end of the input.
        let mut data = defaults_fragment();
        let mdat_at = data.len() - 16;
        data[mdat_at..mdat_at + 4].copy_from_slice(&[0; 4]);
        data.extend_from_slice(&[0; 100]);
        let f = parse_track_fragments(&data, &info).unwrap()[0];
        assert_eq!(f.end, data.len());

        assert_eq!(
            parse_fragments(&uuid[..26]),
            Err(Mp4Error::Truncated {
                offset: 0,
                needed: 28,
                available: 26,
            })
        );
        let mut too_small = uuid.clone();
        too_small[3] = 20;
        assert_eq!(
            parse_fragments(&too_small),
            Err(Mp4Error::BadSize {
                offset: 0,
                size: 20
            })
        );
    }

    #[test]
    fn base_data_offset_rules() {
        // mp4mux style: no default-base-is-moof, so the first traf's base is the moof.
        let data = fragment(
            |offset| {
                cat(&[
                    &full(b"tfhd", 0, 0, &[1]),
                    &tfdt_v0(0),
                    &trun_samples(0, offset, &[(100, 2, SYNC, 200)]),
                ])
            },
            &[7, 7],
        );
        assert_eq!(
            parse_fragments(&data).unwrap()[0].first_sample_offset,
            data.len() - 2
        );

        // No trun data offset: the samples start the mdat payload.
        let data = fragment(
            |_| {
                cat(&[
                    &full(b"tfhd", 0, 0x2_0038, &[1, 100, 2, SYNC]),
                    &tfdt_v0(0),
                    &full(b"trun", 0, 0, &[1]),
                ])
            },
            &[7, 7],
        );
        assert_eq!(
            parse_fragments(&data).unwrap()[0].first_sample_offset,
            data.len() - 2
        );

        // An explicit base data offset is an offset in the input.
        let data = fragment(
            |_| {
                let base = 0u64;
                cat(&[
                    &full(
                        b"tfhd",
                        0,
                        TFHD_BASE_DATA_OFFSET | 0x38,
                        &[1, (base >> 32) as u32, base as u32, 100, 2, SYNC],
                    ),
                    &tfdt_v0(0),
                    &full(b"trun", 0, TRUN_DATA_OFFSET, &[1, 0]),
                ])
            },
            &[7, 7],
        );
        // Offset 0 is the moof, not the mdat.
        assert_eq!(
            parse_fragments(&data),
            Err(Mp4Error::SampleOutsideMdat { moof_offset: 0 })
        );
    }

    /// One moof with a traf for track 1 (two samples) and one for track 2 (one sample,
    /// after track 1's data), each with default-base-is-moof unless `implicit`.
    fn two_tracks(implicit: bool) -> Vec<u8> {
        let trafs = |offset| {
            let second_tfhd = if implicit { 0x38 } else { 0x2_0038 };
            cat(&[
                &bx(
                    b"traf",
                    &cat(&[
                        &full(b"tfhd", 0, 0x2_0038, &[1, 512, 3, SYNC]),
                        &tfdt_v1(12_800),
                        &full(b"trun", 0, TRUN_DATA_OFFSET, &[2, offset]),
                    ]),
                ),
                &bx(
                    b"traf",
                    &cat(&[
                        &full(b"tfhd", 0, second_tfhd, &[2, 1024, 4, SYNC]),
                        &tfdt_v1(46_080),
                        &full(b"trun", 0, TRUN_DATA_OFFSET, &[1, offset + 6]),
                    ]),
                ),
            ])
        };
        let payload = [1, 1, 1, 1, 1, 1, 2, 2, 2, 2];
        fragment_with(trafs, &[], &bx(b"mdat", &payload), 8)
    }

    #[test]
    fn the_init_track_picks_its_traf() {
        let data = two_tracks(false);
        let first = parse_fragments(&data).unwrap()[0];
        assert_eq!((first.base_decode_time, first.duration), (12_800, 1024));
        let track_2 = InitInfo {
            track_id: 2,
            timescale: 48_000,
            handler: AUDIO_HANDLER,
            trex: None,
        };
        let second = parse_track_fragments(&data, &track_2).unwrap()[0];
        assert_eq!((second.base_decode_time, second.duration), (46_080, 1024));
        assert_eq!(&data[second.first_sample_offset..][..4], [2; 4]);
        assert_eq!(
            parse_track_fragments(
                &data,
                &InitInfo {
                    track_id: 9,
                    ..track_2
                }
            ),
            Err(Mp4Error::NoTrack {
                moof_offset: 0,
                track_id: 9,
            })
        );
        assert_eq!(
            parse_track_fragments(&two_tracks(true), &track_2),
            Err(Mp4Error::ImplicitBase { moof_offset: 0 })
        );
    }

    #[test]
    fn structural_errors() {
        let (data, split) = two_fragments();
        let moof_only = &data[12..split - 13];
        assert_eq!(
            parse_fragments(moof_only),
            Err(Mp4Error::NoMdat { moof_offset: 0 })
        );
        let moof_twice = cat(&[moof_only, moof_only, &bx(b"mdat", &[0; 5])]);
        assert_eq!(
            parse_fragments(&moof_twice),
            Err(Mp4Error::NoMdat { moof_offset: 0 })
        );
        assert_eq!(parse_fragments(&[]), Err(Mp4Error::NoFragment));
        assert_eq!(
            parse_fragments(&bx(b"mdat", &[0; 5])),
            Err(Mp4Error::NoFragment)
        );

        let no_tfdt = fragment(
            |offset| cat(&[&tfhd_plain(1), &trun_samples(0, offset, &[(1, 1, SYNC, 0)])]),
            &[0],
        );
        assert!(matches!(
            parse_fragments(&no_tfdt),
            Err(Mp4Error::Missing { kind, .. }) if kind == FourCc(*b"tfdt")
        ));

        let empty = fragment(
            |_| cat(&[&tfhd_plain(1), &tfdt_v0(0), &full(b"trun", 0, 0, &[0])]),
            &[],
        );
        assert_eq!(
            parse_fragments(&empty),
            Err(Mp4Error::NoSamples { moof_offset: 0 })
        );

        for bad_offset in [u32::MAX, 10_000, 0x8000_0000] {
            let outside = fragment(
                |_| {
                    cat(&[
                        &tfhd_plain(1),
                        &tfdt_v0(0),
                        &trun_samples(0, bad_offset, &[(1, 1, SYNC, 0)]),
                    ])
                },
                &[0],
            );
            assert_eq!(
                parse_fragments(&outside),
                Err(Mp4Error::SampleOutsideMdat { moof_offset: 0 })
            );
        }
        // The first sample must end inside the mdat too.
        let too_big = fragment(
            |offset| {
                cat(&[
                    &tfhd_plain(1),
                    &tfdt_v0(0),
                    &trun_samples(0, offset, &[(1, 2, SYNC, 0)]),
                ])
            },
            &[0],
        );
        assert_eq!(
            parse_fragments(&too_big),
            Err(Mp4Error::SampleOutsideMdat { moof_offset: 0 })
        );
    }

    #[test]
    fn a_huge_sample_count_is_not_looped_over() {
        // With no per-sample fields the count costs nothing ...
        let data = fragment(
            |offset| {
                cat(&[
                    &full(b"tfhd", 0, 0x2_0038, &[1, 1024, 2, SYNC]),
                    &tfdt_v0(0),
                    &full(b"trun", 0, TRUN_DATA_OFFSET, &[u32::MAX, offset]),
                ])
            },
            &[0; 2],
        );
        let f = parse_fragments(&data).unwrap()[0];
        assert_eq!(f.duration, u64::from(u32::MAX) * 1024);
        // ... and with them it must fit in the box.
        let data = fragment(
            |offset| {
                cat(&[
                    &tfhd_plain(1),
                    &tfdt_v0(0),
                    &full(b"trun", 0, 0x301, &[u32::MAX, offset, 1, 1]),
                ])
            },
            &[0; 2],
        );
        assert!(matches!(
            parse_fragments(&data),
            Err(Mp4Error::ShortBox { kind, .. }) if kind == FourCc(*b"trun")
        ));
    }

    #[test]
    fn every_truncation_is_an_error_or_a_whole_fragment() {
        let (data, split) = two_fragments();
        for len in 0..data.len() {
            match parse_fragments(&data[..len]) {
                // Only a cut after the first mdat, or after the second styp, leaves
                // a valid segment.
                Ok(fragments) => {
                    assert!(len == split || len == split + 12, "prefix of {len} bytes");
                    assert_eq!(fragments.len(), 1);
                }
                Err(_) => assert!(len != split && len != split + 12),
            }
        }
        assert!(matches!(
            parse_fragments(&data[..data.len() - 1]),
            Err(Mp4Error::Truncated { .. })
        ));
        let init = init(1, 1, b"vide", Some([7, 1, 0, 0, 0]));
        for len in 0..init.len() {
            assert!(parse_init(&init[..len]).is_err(), "prefix of {len} bytes");
        }
    }

    #[test]
    fn garbage_never_panics() {
        // xorshift64: the same "random" bytes every run.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2000 {
            let len = (next() % 200) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = parse_fragments(&bytes);
            let _ = parse_init(&bytes);
        }
        // Every byte of valid input overwritten in turn, with values that hit the
        // size, version and flag fields hardest.
        let (segment, _) = two_fragments();
        let init = init(1, 1, b"vide", Some([7, 1, 0, 0, 0]));
        let info = parse_init(&init).unwrap();
        for value in [0x00, 0x01, 0x7f, 0x80, 0xff] {
            for at in 0..segment.len() {
                let mut bad = segment.clone();
                bad[at] = value;
                let _ = parse_fragments(&bad);
                let _ = parse_track_fragments(&bad, &info);
            }
            for at in 0..init.len() {
                let mut bad = init.clone();
                bad[at] = value;
                let _ = parse_init(&bad);
            }
        }
    }

    /// Real cmafmux output (gst-plugin-fmp4 0.14, GStreamer 1.22, avenc_aac): the whole
    /// file for three buffers of 48 kHz mono silence, init segment and one fragment.
    const CMAFMUX_AUDIO: &str = concat!(
        "0000001c66747970636d66320000000069736f36636d6663636161630000025f6d6f6f76000000786d766864",
        "0100000000000000e72740fd00000000e72740fd0000bb800000000000000000000100000100000000000000",
        "0000000000010000000000000000000000000000000100000000000000000000000000004000000000000000",
        "000000000000000000000000000000000000000000000002000001b77472616b00000068746b686401000007",
        "00000000e72740fd00000000e72740fd00000001000000000000000000000000000000000000000000000000",
        "0100000000010000000000000000000000000000000100000000000000000000000000004000000000000000",
        "00000000000001476d6469610000002c6d6468640100000000000000e72740fd00000000e72740fd0000bb80",
        "000000000000000055c400000000002d68646c720000000000000000736f756e000000000000000000000000",
        "536f756e6448616e646c657200000000e66d696e6600000010736d686400000000000000000000002464696e",
        "660000001c6472656600000000000000010000000c75726c2000000001000000aa7374626c0000005e737473",
        "6400000000000000010000004e6d703461000000000000000100000000000000000001001000000000bb8000",
        "000000002a6573647300000000031c0001000414401500000000000000000000000505118856e50006010200",
        "00001073747473000000000000000000000010737473630000000000000000000000147374737a0000000000",
        "00000000000000000000107374636f0000000000000000000000286d76657800000020747265780000000000",
        "000001000000010000000000000000000000000000002073747970636d66320000000069736f36636d666363",
        "6161636c6d73670000006c6d6f6f66000000106d666864000000000000000100000054747261660000001874",
        "6668640002002800000001000004000280000000000010746664740000000000000000000000247472756e00",
        "000201000000040000007400000015000000040000000400000004000000296d646174de02004c6176633539",
        "2e33372e313030000230400e011820070118200701182007",
    );

    /// The `styp` + `moof` of cmafmux's fragment of four x264 frames (two B-frames) at
    /// 25 fps, timescale 2500. Its 890-byte `mdat` payload is left out.
    const CMAFMUX_VIDEO_MOOF: &str = concat!(
        "0000001c73747970636d66320000000069736f36636d66636c6d7367000000806d6f6f66000000106d666864",
        "0000000000000001000000687472616600000018746668640002002800000001000000640101000000000010",
        "746664740000000000000000000000387472756e01000a050000000400000088020000000000034100000000",
        "00000013000000c800000013ffffff9c00000013ffffff9c",
    );

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn real_cmafmux_audio() {
        let data = unhex(CMAFMUX_AUDIO);
        let init = parse_init(&data).unwrap();
        assert_eq!(
            init,
            InitInfo {
                track_id: 1,
                timescale: 48_000,
                handler: AUDIO_HANDLER,
                trex: Some(TrackExtends {
                    default_sample_duration: 0,
                    default_sample_size: 0,
                    default_sample_flags: 0,
                }),
            }
        );
        // Durations and flags in tfhd (0x02800000: depends on no other sample), sizes
        // in a version 0 trun.
        assert_eq!(
            parse_track_fragments(&data, &init),
            Ok(vec![FragmentInfo {
                base_decode_time: 0,
                duration: 4 * 1024,
                sample_count: 4,
                first_composition_offset: 0,
                first_sample_is_sync: true,
                moof_offset: 667,
                first_sample_offset: 667 + 116,
                first_sample_size: 21,
                end: data.len(),
            }])
        );
    }

    #[test]
    fn real_cmafmux_video_with_b_frames() {
        let mut data = unhex(CMAFMUX_VIDEO_MOOF);
        data.extend_from_slice(&898u32.to_be_bytes());
        data.extend_from_slice(b"mdat");
        data.resize(data.len() + 890, 0);
        // Version 1 trun: offsets 0, 200, -100, -100; the first sample is the
        // keyframe through first_sample_flags, the rest non-sync by the tfhd default.
        assert_eq!(
            parse_fragments(&data),
            Ok(vec![FragmentInfo {
                base_decode_time: 0,
                duration: 4 * 100,
                sample_count: 4,
                first_composition_offset: 0,
                first_sample_is_sync: true,
                moof_offset: 28,
                first_sample_offset: 28 + 136,
                first_sample_size: 833,
                end: data.len(),
            }])
        );
    }
}
