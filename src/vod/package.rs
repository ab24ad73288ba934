//! After the transcode: everything that describes the segments the writer left in the
//! staging directory. Per track `index.m3u8` (and `iframes.m3u8` for video), then
//! `master.m3u8`, the static `manifest.mpd`, the subtitles under `subs/`, the poster,
//! and last `asset.json`.

use std::fs;
use std::path::Path;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};

use super::library::{AssetRecord, SubtitleRecord, TrackRecord, ASSET_JSON};
use super::playlist::{self, IFrame, IFrameInfo, SubtitleInfo, VodSegment};
use super::writer::{write_file, TrackOutput, WriteError, INIT_NAME};
use crate::catalog::{Ladder, VodAsset};
use crate::packager::dash::{
    self, Mpd, MpdAudio, MpdKind, MpdPeriod, MpdSubtitle, MpdVideo, TimelineSegment, TrackTimeline,
};
use crate::packager::playlist::{render, AudioInfo, Bandwidth, VariantInfo};
use crate::packager::TrackMedia;

/// WebVTT files start with this, after an optional byte order mark (W3C WebVTT 4.1).
const WEBVTT_SIGNATURE: &[u8] = b"WEBVTT";
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Why the finishing step failed.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("cannot read {what} {}: {error}", .path.display())]
    Read {
        what: &'static str,
        path: std::path::PathBuf,
        error: std::io::Error,
    },
    #[error("subtitle file {} is not WebVTT (it must start with `WEBVTT`)", .0.display())]
    NotWebVtt(std::path::PathBuf),
    #[error("the transcode made no video track")]
    NoVideo,
}

/// What the playlists and the MPD say of one track, measured from its segments.
struct Measured<'a> {
    track: &'a TrackOutput,
    segments: Vec<VodSegment>,
    bandwidth: Bandwidth,
    /// Media time at the start of the file, in ticks: DASH `presentationTimeOffset`.
    presentation_time_offset: u64,
}

/// Writes every file but the media into `dir` and returns the asset's record (already
/// written as `asset.json`).
pub fn write_descriptions(
    dir: &Path,
    asset: &VodAsset,
    ladder: &Ladder,
    tracks: &[TrackOutput],
    fingerprint: &str,
) -> Result<AssetRecord, PackageError> {
    let configured = ladder.segment_duration;
    let measured: Vec<Measured> = tracks.iter().map(|t| measure(t, configured)).collect();
    if !tracks.iter().any(|t| t.is_video) {
        return Err(PackageError::NoVideo);
    }
    let duration = measured
        .iter()
        .map(|m| {
            let end = m
                .track
                .segments
                .last()
                .map_or(0, |s| s.media_time + s.duration);
            Duration::from_secs_f64(
                m.track
                    .seconds(end.saturating_sub(m.presentation_time_offset)),
            )
        })
        .max()
        .unwrap_or_default();

    let mut variants = Vec::new();
    let mut iframes = Vec::new();
    let mut audio = None;
    for m in &measured {
        let track_dir = dir.join(&m.track.name);
        let media = playlist::media_playlist(&m.segments, configured, INIT_NAME);
        write_file(
            &track_dir.join("index.m3u8"),
            &render(|w| media.write_to(w)),
        )?;
        match &m.track.media {
            TrackMedia::Video {
                codecs,
                width,
                height,
                frame_rate,
            } => {
                let frames = keyframes(m.track);
                let list = playlist::iframe_playlist(&frames, configured, INIT_NAME);
                write_file(
                    &track_dir.join("iframes.m3u8"),
                    &render(|w| list.write_to(w)),
                )?;
                variants.push(VariantInfo {
                    name: m.track.name.clone(),
                    codecs: codecs.clone(),
                    width: *width,
                    height: *height,
                    frame_rate: *frame_rate,
                    bandwidth: m.bandwidth,
                });
                if let Some(bandwidth) = playlist::iframes_bandwidth(&frames, configured) {
                    iframes.push(IFrameInfo {
                        name: m.track.name.clone(),
                        codecs: codecs.clone(),
                        width: *width,
                        height: *height,
                        bandwidth,
                    });
                }
            }
            TrackMedia::Audio { codecs, channels } => {
                audio = Some(AudioInfo {
                    codecs: codecs.clone(),
                    channels: *channels,
                    bandwidth: m.bandwidth,
                });
            }
        }
    }

    let subs_dir = dir.join("subs");
    if !asset.subtitles.is_empty() {
        fs::create_dir_all(&subs_dir).map_err(|error| WriteError::Io {
            path: subs_dir.clone(),
            error,
        })?;
    }
    let mut subtitles = Vec::new();
    for subtitle in &asset.subtitles {
        let content = fs::read(&subtitle.file).map_err(|error| PackageError::Read {
            what: "subtitle file",
            path: subtitle.file.clone(),
            error,
        })?;
        if !content
            .strip_prefix(UTF8_BOM)
            .unwrap_or(&content)
            .starts_with(WEBVTT_SIGNATURE)
        {
            return Err(PackageError::NotWebVtt(subtitle.file.clone()));
        }
        let file = format!("{}.vtt", subtitle.lang);
        write_file(&subs_dir.join(&file), &content)?;
        let list = playlist::subtitle_playlist(&file, duration);
        let name = format!("{}.m3u8", subtitle.lang);
        write_file(&subs_dir.join(name), &render(|w| list.write_to(w)))?;
        subtitles.push(SubtitleInfo {
            lang: subtitle.lang.clone(),
            name: subtitle.name.clone(),
        });
    }

    let poster = match &asset.poster {
        Some(path) => {
            let extension = crate::catalog::poster_extension(path).unwrap_or_else(|| "jpg".into());
            let content = fs::read(path).map_err(|error| PackageError::Read {
                what: "poster",
                path: path.clone(),
                error,
            })?;
            let name = format!("poster.{extension}");
            write_file(&dir.join(&name), &content)?;
            Some(name)
        }
        None => None,
    };

    let master = playlist::master_playlist(&variants, audio.as_ref(), &subtitles, &iframes);
    write_file(&dir.join("master.m3u8"), &render(|w| master.write_to(w)))?;

    let mpd = static_mpd(&measured, ladder, &subtitles, duration);
    write_file(&dir.join("manifest.mpd"), dash::render(&mpd).as_bytes())?;

    let record = AssetRecord {
        format: super::fingerprint::FORMAT_VERSION,
        id: asset.id.clone(),
        fingerprint: fingerprint.to_owned(),
        duration: duration.as_secs_f64(),
        created: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        tracks: measured.iter().map(track_record).collect(),
        subtitles: subtitles
            .iter()
            .map(|s| SubtitleRecord {
                lang: s.lang.clone(),
                name: s.name.clone(),
            })
            .collect(),
        poster,
    };
    let json = serde_json::to_vec_pretty(&record).map_err(|error| WriteError::Io {
        path: dir.join(ASSET_JSON),
        error: error.into(),
    })?;
    write_file(&dir.join(ASSET_JSON), &json)?;
    Ok(record)
}

fn measure(track: &TrackOutput, configured: Duration) -> Measured<'_> {
    let segments: Vec<VodSegment> = track
        .segments
        .iter()
        .map(|s| VodSegment {
            number: s.number,
            duration: Duration::from_secs_f64(track.seconds(s.duration)),
            bytes: s.bytes,
        })
        .collect();
    let target = Duration::from_secs(playlist::target_duration(
        segments.iter().map(|s| s.duration),
        configured,
    ));
    let bandwidth = playlist::segments_bandwidth(&segments, target).unwrap_or_default();
    let presentation_time_offset = track.segments.first().map_or(0, |first| {
        let start_ticks = (first.start.as_secs_f64() * f64::from(track.timescale)).round() as u64;
        first.media_time.saturating_sub(start_ticks)
    });
    Measured {
        track,
        segments,
        bandwidth,
        presentation_time_offset,
    }
}

/// Every keyframe of a video track as an I-frame playlist entry.
fn keyframes(track: &TrackOutput) -> Vec<IFrame> {
    track
        .segments
        .iter()
        .flat_map(|s| {
            s.keyframes.iter().map(|k| IFrame {
                number: s.number,
                duration: Duration::from_secs_f64(track.seconds(k.duration)),
                offset: k.offset,
                length: k.length,
            })
        })
        .collect()
}

/// ISO/IEC 23009-1 static MPD: one Period from 0, each track's segments in a
/// `SegmentTimeline` from their `tfdt`s, the subtitles as sidecar files.
fn static_mpd(
    measured: &[Measured],
    ladder: &Ladder,
    subtitles: &[SubtitleInfo],
    duration: Duration,
) -> Mpd {
    let mut videos = Vec::new();
    let mut audio = None;
    for m in measured {
        match &m.track.media {
            TrackMedia::Video {
                codecs,
                width,
                height,
                frame_rate,
            } => videos.push(MpdVideo {
                id: m.track.name.clone(),
                codecs: codecs.clone(),
                width: *width,
                height: *height,
                frame_rate: *frame_rate,
                bandwidth: m.bandwidth.peak,
            }),
            TrackMedia::Audio { codecs, channels } => {
                audio = Some(MpdAudio {
                    id: m.track.name.clone(),
                    codecs: codecs.clone(),
                    channels: *channels,
                    sampling_rate: ladder.audio.sample_rate,
                    bandwidth: m.bandwidth.peak,
                    lang: None,
                })
            }
        }
    }
    let max_segment_duration = measured
        .iter()
        .flat_map(|m| m.segments.iter().map(|s| s.duration))
        .max()
        .unwrap_or(ladder.segment_duration);
    Mpd {
        kind: MpdKind::Static { duration },
        min_buffer_time: ladder.segment_duration,
        max_segment_duration,
        videos,
        audio,
        subtitles: subtitles
            .iter()
            .map(|s| MpdSubtitle {
                id: format!("subs-{}", s.lang),
                lang: Some(s.lang.clone()),
                url: format!("subs/{}.vtt", s.lang),
            })
            .collect(),
        periods: vec![MpdPeriod {
            id: "0".to_owned(),
            start: Duration::ZERO,
            tracks: measured
                .iter()
                .map(|m| TrackTimeline {
                    id: m.track.name.clone(),
                    timescale: m.track.timescale,
                    init_name: INIT_NAME.to_owned(),
                    presentation_time_offset: m.presentation_time_offset,
                    start_number: m.track.segments.first().map_or(0, |s| s.number),
                    segments: m
                        .track
                        .segments
                        .iter()
                        .map(|s| TimelineSegment {
                            media_time: s.media_time,
                            duration: s.duration,
                        })
                        .collect(),
                })
                .collect(),
        }],
    }
}

fn track_record(m: &Measured) -> TrackRecord {
    let (kind, codecs, width, height, frame_rate, channels) = match &m.track.media {
        TrackMedia::Video {
            codecs,
            width,
            height,
            frame_rate,
        } => (
            "video",
            codecs,
            Some(*width),
            Some(*height),
            Some(*frame_rate),
            None,
        ),
        TrackMedia::Audio { codecs, channels } => {
            ("audio", codecs, None, None, None, Some(*channels))
        }
    };
    TrackRecord {
        name: m.track.name.clone(),
        kind: kind.to_owned(),
        codecs: codecs.clone(),
        width,
        height,
        frame_rate,
        channels,
        bandwidth: m.bandwidth.peak,
        average_bandwidth: m.bandwidth.average,
        segments: m.segments.len(),
        duration: m.track.duration().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Audio, AudioCodec, H264Profile, Rendition, Subtitle};
    use crate::vod::writer::tests::{write_synthetic, Staging};

    fn ladder() -> Ladder {
        Ladder {
            encoder: "x264".into(),
            segment_duration: Duration::from_secs(2),
            gop: Duration::from_secs(1),
            window: 6,
            renditions: vec![Rendition {
                name: "720p".into(),
                width: 1280,
                height: 720,
                bitrate: 2500,
                profile: H264Profile::High,
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

    fn read(dir: &Path, name: &str) -> String {
        fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn the_whole_set_is_written_and_agrees() {
        let staging = Staging::new("package");
        let tracks = write_synthetic(&staging.0, 5);
        let vtt = staging.0.join("source-en.vtt");
        fs::write(&vtt, "WEBVTT\n\n00:00.500 --> 00:02.000\nHello\n").unwrap();
        let mut asset = VodAsset::from_file("film".into(), staging.0.join("film.mp4"), "x".into());
        asset.subtitles.push(Subtitle {
            lang: "en".into(),
            name: "English".into(),
            file: vtt,
        });
        let record = write_descriptions(&staging.0, &asset, &ladder(), &tracks, "f00d").unwrap();
        assert_eq!(record.fingerprint, "f00d");
        // Audio runs 13 ms past the video's 5 s: its last AAC frame straddles the end.
        assert!(
            (record.duration - 5.0133).abs() < 0.001,
            "{}",
            record.duration
        );
        assert_eq!(record.tracks.len(), 2);
        assert_eq!(record.tracks[0].segments, 3);

        assert_eq!(
            read(&staging.0, "720p/index.m3u8"),
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-TARGETDURATION:2\n\
             #EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MAP:URI=\"init.mp4\"\n\
             #EXTINF:2,\n0.m4s\n#EXTINF:2,\n1.m4s\n#EXTINF:1,\n2.m4s\n#EXT-X-ENDLIST\n"
        );
        let iframes = read(&staging.0, "720p/iframes.m3u8");
        assert_eq!(iframes.matches("#EXT-X-BYTERANGE:").count(), 5, "{iframes}");
        let master = read(&staging.0, "master.m3u8");
        assert!(
            master.contains("#EXT-X-MEDIA:TYPE=SUBTITLES,URI=\"subs/en.m3u8\""),
            "{master}"
        );
        assert!(master.contains("URI=\"720p/iframes.m3u8\""), "{master}");
        assert_eq!(
            read(&staging.0, "subs/en.vtt"),
            "WEBVTT\n\n00:00.500 --> 00:02.000\nHello\n"
        );
        assert!(read(&staging.0, "subs/en.m3u8").contains("#EXTINF:5.013"));

        let mpd = read(&staging.0, "manifest.mpd");
        assert!(mpd.contains("type=\"static\""), "{mpd}");
        assert!(mpd.contains("mediaPresentationDuration=\"PT5.013"), "{mpd}");
        // Two 2 s segments then one of 1 s, at 12800 ticks a second.
        assert!(mpd.contains("<S t=\"0\" d=\"25600\" r=\"1\"/>"), "{mpd}");
        assert!(mpd.contains("<S d=\"12800\"/>"), "{mpd}");
        assert!(mpd.contains("<BaseURL>subs/en.vtt</BaseURL>"), "{mpd}");

        let json: AssetRecord = serde_json::from_str(&read(&staging.0, ASSET_JSON)).unwrap();
        assert_eq!(json, record);
    }

    #[test]
    fn a_subtitle_that_is_not_webvtt_is_refused() {
        let staging = Staging::new("package-srt");
        let tracks = write_synthetic(&staging.0, 2);
        let srt = staging.0.join("en.vtt");
        fs::write(&srt, "1\n00:00:00,500 --> 00:00:02,000\nHello\n").unwrap();
        let mut asset = VodAsset::from_file("film".into(), staging.0.join("film.mp4"), "x".into());
        asset.subtitles.push(Subtitle {
            lang: "en".into(),
            name: "en".into(),
            file: srt.clone(),
        });
        let error = write_descriptions(&staging.0, &asset, &ladder(), &tracks, "f").unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "subtitle file {} is not WebVTT (it must start with `WEBVTT`)",
                srt.display()
            )
        );
    }
}
