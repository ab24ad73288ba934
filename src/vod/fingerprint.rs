//! What an ingest depends on, condensed to one value: an asset whose fingerprint
//! matches the published one is up to date and is not transcoded again.
//!
//! The fingerprint covers:
//! - the source file's size, modification time (to the nanosecond) and a hash of its
//!   first and last MiB. Size and mtime catch every ordinary change (a copy, an
//!   rsync, an editor's save); the hash catches a different file put in place with the
//!   same size and a preserved mtime (`cp -p`, `rsync -t`): a different encode differs
//!   in its container header (`moov` sits at the start or at the end of an MP4) and
//!   its first and last frames. Hashing the whole file would make checking a library
//!   of feature films take minutes, so it is not done;
//! - the ladder and the encoder profile, every field;
//! - each subtitle (language, name, and the file's whole content: they are small) and
//!   the poster's content;
//! - [`FORMAT_VERSION`], so a headend that writes assets differently re-ingests.
//!
//! The asset's title is left out: it is not in any file written, and a retitled film
//! needs no transcode.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::UNIX_EPOCH;

use serde_json::{json, Value};

use crate::catalog::{EncoderProfile, Ladder, VodAsset};

/// Bumped whenever what an ingest writes changes (layout, playlists, MPD), so
/// assets ingested by an older headend are made again.
pub const FORMAT_VERSION: u32 = 1;

/// How much of each end of the source is hashed.
const SAMPLE_BYTES: u64 = 1024 * 1024;

/// What could not be read while fingerprinting: the file, and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {what} {}: {error}", .path.display())]
pub struct FingerprintError {
    pub what: &'static str,
    pub path: std::path::PathBuf,
    pub error: io::Error,
}

/// 32 lowercase hex digits. `source` is the asset's media file on this machine: its
/// own file, or the copy of its URL (`vod::fetch`).
pub fn fingerprint(
    asset: &VodAsset,
    source: &Path,
    ladder: &Ladder,
    encoder: &EncoderProfile,
) -> Result<String, FingerprintError> {
    let input = canonical_input(asset, source, ladder, encoder)?;
    Ok(format!("{:032x}", fnv1a_128(input.to_string().as_bytes())))
}

/// Everything the fingerprint covers, as JSON with sorted keys (serde_json's default
/// map), so the same inputs always give the same text.
fn canonical_input(
    asset: &VodAsset,
    source: &Path,
    ladder: &Ladder,
    encoder: &EncoderProfile,
) -> Result<Value, FingerprintError> {
    let error = |what, path: &Path| {
        let path = path.to_owned();
        move |error| FingerprintError { what, path, error }
    };
    let subtitles = asset
        .subtitles
        .iter()
        .map(|s| {
            let content = std::fs::read(&s.file).map_err(error("subtitle file", &s.file))?;
            Ok(json!({ "lang": s.lang, "name": s.name, "hash": hex(fnv1a_128(&content)) }))
        })
        .collect::<Result<Vec<Value>, FingerprintError>>()?;
    let poster = match &asset.poster {
        Some(path) => {
            let content = std::fs::read(path).map_err(error("poster", path))?;
            json!({
                "extension": crate::catalog::poster_extension(path),
                "hash": hex(fnv1a_128(&content)),
            })
        }
        None => Value::Null,
    };
    let source = source_sample(source).map_err(error("source", source))?;
    let renditions: Vec<Value> = ladder
        .renditions
        .iter()
        .map(|r| {
            json!({
                "name": r.name, "width": r.width, "height": r.height, "bitrate": r.bitrate,
                "profile": r.profile.as_str(), "max_framerate": r.max_framerate,
            })
        })
        .collect();
    Ok(json!({
        "format": FORMAT_VERSION,
        "source": source,
        "ladder": {
            "segment_duration_ms": ladder.segment_duration.as_millis() as u64,
            "gop_ms": ladder.gop.as_millis() as u64,
            "renditions": renditions,
            "audio": {
                "codec": format!("{:?}", ladder.audio.codec),
                "bitrate": ladder.audio.bitrate,
                "channels": ladder.audio.channels,
                "sample_rate": ladder.audio.sample_rate,
            },
        },
        "encoder": {
            "element": encoder.element,
            "bitrate_property": encoder.bitrate_property,
            "bitrate_unit": format!("{:?}", encoder.bitrate_unit),
            "gop_property": encoder.gop_property,
            "properties": encoder.properties,
        },
        "subtitles": subtitles,
        "poster": poster,
    }))
}

/// Size, mtime and a hash of the first and last [`SAMPLE_BYTES`] of the source.
fn source_sample(path: &Path) -> io::Result<Value> {
    let mut file = File::open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a file"));
    }
    let size = metadata.len();
    let mtime_ns = metadata
        .modified()?
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut head = Vec::new();
    (&mut file).take(SAMPLE_BYTES).read_to_end(&mut head)?;
    let mut tail = Vec::new();
    if size > SAMPLE_BYTES {
        file.seek(SeekFrom::Start(
            size.saturating_sub(SAMPLE_BYTES).max(SAMPLE_BYTES),
        ))?;
        file.take(SAMPLE_BYTES).read_to_end(&mut tail)?;
    }
    let hash = fnv1a_128(&[head, tail].concat());
    Ok(json!({ "size": size, "mtime_ns": mtime_ns.to_string(), "sample_hash": hex(hash) }))
}

fn hex(hash: u128) -> String {
    format!("{hash:032x}")
}

/// FNV-1a, 128 bits: stable across Rust releases and platforms (unlike `std`'s
/// hasher) and wide enough that two different inputs never meet by chance. No
/// adversary is in play: the operator owns the files.
fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    bytes.iter().fold(OFFSET, |hash, b| {
        (hash ^ u128::from(*b)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Audio, AudioCodec, BitrateUnit, H264Profile, Rendition};
    use std::collections::BTreeMap;
    use std::time::Duration;

    #[test]
    fn fnv1a_128_known_values() {
        // The FNV reference test vectors.
        assert_eq!(fnv1a_128(b""), 0x6c62272e07bb014262b821756295c58d);
        assert_eq!(fnv1a_128(b"a"), 0xd228cb696f1a8caf78912b704e4a8964);
    }

    fn ladder() -> Ladder {
        Ladder {
            encoder: "x264".into(),
            segment_duration: Duration::from_secs(2),
            gop: Duration::from_secs(1),
            window: 6,
            renditions: vec![Rendition {
                name: "360p".into(),
                width: 640,
                height: 360,
                bitrate: 700,
                profile: H264Profile::Main,
                max_framerate: 25,
            }],
            audio: Audio {
                codec: AudioCodec::Aac,
                bitrate: 128,
                channels: 2,
                sample_rate: 48_000,
            },
        }
    }

    fn encoder() -> EncoderProfile {
        EncoderProfile {
            element: "x264enc".into(),
            bitrate_property: "bitrate".into(),
            bitrate_unit: BitrateUnit::Kbps,
            gop_property: None,
            properties: BTreeMap::new(),
        }
    }

    #[test]
    fn every_input_changes_the_fingerprint_and_the_title_does_not() {
        let dir = super::super::writer::tests::Staging::new("fingerprint");
        let source = dir.0.join("film.mp4");
        // Larger than two samples, so head and tail are separate reads.
        let mut content = vec![7u8; 3 * SAMPLE_BYTES as usize];
        std::fs::write(&source, &content).unwrap();
        let subtitle = dir.0.join("en.vtt");
        std::fs::write(&subtitle, "WEBVTT\n").unwrap();
        let mut asset = VodAsset::from_file("film".into(), source.clone(), "default".into());
        let base = fingerprint(&asset, &source, &ladder(), &encoder()).unwrap();
        assert_eq!(base.len(), 32);
        assert_eq!(
            fingerprint(&asset, &source, &ladder(), &encoder()).unwrap(),
            base
        );

        asset.title = "Another title".into();
        assert_eq!(
            fingerprint(&asset, &source, &ladder(), &encoder()).unwrap(),
            base
        );

        let mut other = ladder();
        other.renditions[0].bitrate = 600;
        assert_ne!(
            fingerprint(&asset, &source, &other, &encoder()).unwrap(),
            base
        );
        let mut other = encoder();
        other
            .properties
            .insert("speed-preset".into(), "slow".into());
        assert_ne!(
            fingerprint(&asset, &source, &ladder(), &other).unwrap(),
            base
        );

        let mut with_subtitles = asset.clone();
        with_subtitles.subtitles.push(crate::catalog::Subtitle {
            lang: "en".into(),
            name: "English".into(),
            file: subtitle.clone(),
        });
        let subtitled = fingerprint(&with_subtitles, &source, &ladder(), &encoder()).unwrap();
        assert_ne!(subtitled, base);
        std::fs::write(&subtitle, "WEBVTT\n\n00:00.000 --> 00:01.000\nHi\n").unwrap();
        assert_ne!(
            fingerprint(&with_subtitles, &source, &ladder(), &encoder()).unwrap(),
            subtitled
        );

        // The same size and mtime, a different last byte.
        let modified = std::fs::metadata(&source).unwrap().modified().unwrap();
        *content.last_mut().unwrap() = 8;
        std::fs::write(&source, &content).unwrap();
        File::options()
            .write(true)
            .open(&source)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        assert_ne!(
            fingerprint(&asset, &source, &ladder(), &encoder()).unwrap(),
            base
        );
    }

    #[test]
    fn a_missing_source_names_the_file() {
        let source = Path::new("/nonexistent/film.mp4");
        let asset = VodAsset::from_file("film".into(), source.to_owned(), "default".into());
        let error = fingerprint(&asset, source, &ladder(), &encoder()).expect_err("missing");
        assert_eq!(
            error.to_string(),
            "cannot read source /nonexistent/film.mp4: No such file or directory (os error 2)"
        );
    }
}
