//! The VOD HLS set as m3u8-rs values: media playlists (`EXT-X-PLAYLIST-TYPE:VOD`,
//! `EXT-X-ENDLIST`), I-frame playlists for trick play (RFC 8216 4.3.3.6, byte ranges
//! into the same segment files), WebVTT subtitle playlists, and the multivariant
//! playlist tying them together. Pure functions, tested by their exact text.

use std::time::{Duration, SystemTime};

use m3u8_rs::{
    AlternativeMedia, AlternativeMediaType, ByteRange, Map, MasterPlaylist, MediaPlaylist,
    MediaPlaylistType, MediaSegment, Resolution, VariantStream,
};

use crate::packager::playlist::{
    self as live, AudioInfo, Bandwidth, SegmentEntry, VariantInfo, HLS_VERSION,
};

/// The one subtitle rendition group every variant refers to.
pub const SUBTITLE_GROUP: &str = "subs";

/// One segment of a VOD media playlist.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VodSegment {
    pub number: u64,
    pub duration: Duration,
    pub bytes: u64,
}

/// One I-frame: a byte range of a segment file and how long it stands for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IFrame {
    pub number: u64,
    /// Until the next I-frame.
    pub duration: Duration,
    pub offset: u64,
    pub length: u64,
}

/// A subtitle rendition of the multivariant playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct SubtitleInfo {
    pub lang: String,
    pub name: String,
}

/// The I-frame playlist of one video rendition, as the multivariant playlist lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct IFrameInfo {
    pub name: String,
    pub codecs: String,
    pub width: u32,
    pub height: u32,
    pub bandwidth: Bandwidth,
}

/// `Bandwidth::measure` and `target_duration` take live entries; VOD has no
/// wall-clock times, and none of them read it.
fn entries(items: impl Iterator<Item = (u64, Duration, u64)>) -> Vec<SegmentEntry> {
    items
        .map(|(sequence, duration, bytes)| SegmentEntry {
            sequence,
            duration,
            program_date_time: SystemTime::UNIX_EPOCH,
            discontinuity: false,
            bytes: usize::try_from(bytes).unwrap_or(usize::MAX),
            init: 0,
        })
        .collect()
}

/// RFC 8216 4.3.4.2 bit rates of a track's segments, or of its I-frames.
pub fn segments_bandwidth(segments: &[VodSegment], target: Duration) -> Option<Bandwidth> {
    let entries = entries(segments.iter().map(|s| (s.number, s.duration, s.bytes)));
    Bandwidth::measure(&entries, target)
}

pub fn iframes_bandwidth(iframes: &[IFrame], target: Duration) -> Option<Bandwidth> {
    let entries = entries(iframes.iter().map(|i| (i.number, i.duration, i.length)));
    Bandwidth::measure(&entries, target)
}

/// `EXT-X-TARGETDURATION` of a VOD playlist (RFC 8216 4.3.3.1), never below the
/// configured segment duration.
pub fn target_duration(durations: impl Iterator<Item = Duration>, configured: Duration) -> u64 {
    let entries = entries(durations.map(|d| (0, d, 0)));
    live::target_duration(&entries, configured)
}

/// A track's whole media playlist: every segment, the init segment once, the end.
pub fn media_playlist(segments: &[VodSegment], configured: Duration, init: &str) -> MediaPlaylist {
    MediaPlaylist {
        version: Some(HLS_VERSION),
        target_duration: target_duration(segments.iter().map(|s| s.duration), configured),
        media_sequence: segments.first().map_or(0, |s| s.number),
        playlist_type: Some(MediaPlaylistType::Vod),
        independent_segments: true,
        end_list: true,
        segments: segments
            .iter()
            .enumerate()
            .map(|(i, s)| MediaSegment {
                uri: super::writer::segment_name(s.number),
                duration: s.duration.as_secs_f32(),
                map: (i == 0).then(|| Map {
                    uri: init.to_owned(),
                    ..Map::default()
                }),
                ..MediaSegment::default()
            })
            .collect(),
        ..MediaPlaylist::default()
    }
}

/// RFC 8216 4.3.3.6: an I-frame playlist lists each I-frame as a byte range of the
/// segment that holds it (`EXT-X-BYTERANGE`, always with its offset, as the ranges of
/// one file do not follow each other), its `EXTINF` lasting until the next I-frame.
/// `EXT-X-MAP` applies to I-frame playlists too (version 5 and up).
pub fn iframe_playlist(iframes: &[IFrame], configured: Duration, init: &str) -> MediaPlaylist {
    MediaPlaylist {
        version: Some(HLS_VERSION),
        target_duration: target_duration(iframes.iter().map(|i| i.duration), configured),
        playlist_type: Some(MediaPlaylistType::Vod),
        i_frames_only: true,
        independent_segments: true,
        end_list: true,
        segments: iframes
            .iter()
            .enumerate()
            .map(|(i, iframe)| MediaSegment {
                uri: super::writer::segment_name(iframe.number),
                duration: iframe.duration.as_secs_f32(),
                byte_range: Some(ByteRange {
                    length: iframe.length,
                    offset: Some(iframe.offset),
                }),
                map: (i == 0).then(|| Map {
                    uri: init.to_owned(),
                    ..Map::default()
                }),
                ..MediaSegment::default()
            })
            .collect(),
        ..MediaPlaylist::default()
    }
}

/// A sidecar WebVTT file as a one-segment playlist spanning the whole asset. Its cue
/// times count from 0, as the media timeline does, so it needs no
/// `X-TIMESTAMP-MAP` (RFC 8216 3.5).
pub fn subtitle_playlist(file: &str, duration: Duration) -> MediaPlaylist {
    let segments = [VodSegment {
        number: 0,
        duration,
        bytes: 0,
    }];
    MediaPlaylist {
        version: Some(HLS_VERSION),
        target_duration: target_duration(segments.iter().map(|s| s.duration), Duration::ZERO),
        playlist_type: Some(MediaPlaylistType::Vod),
        end_list: true,
        segments: vec![MediaSegment {
            uri: file.to_owned(),
            duration: duration.as_secs_f32(),
            ..MediaSegment::default()
        }],
        ..MediaPlaylist::default()
    }
}

/// The live multivariant playlist (variants with their audio group) plus, for VOD, the
/// subtitle group on every variant and an `EXT-X-I-FRAME-STREAM-INF` per rendition.
/// A source without audio gets variants without an audio group.
pub fn master_playlist(
    variants: &[VariantInfo],
    audio: Option<&AudioInfo>,
    subtitles: &[SubtitleInfo],
    iframes: &[IFrameInfo],
) -> MasterPlaylist {
    let mut master = match audio {
        Some(audio) => live::master_playlist(variants, audio),
        None => MasterPlaylist {
            version: Some(HLS_VERSION),
            independent_segments: true,
            variants: variants
                .iter()
                .map(|v| VariantStream {
                    uri: format!("{}/index.m3u8", v.name),
                    bandwidth: v.bandwidth.peak,
                    average_bandwidth: Some(v.bandwidth.average),
                    codecs: Some(v.codecs.clone()),
                    resolution: Some(resolution(v.width, v.height)),
                    frame_rate: Some(v.frame_rate),
                    ..VariantStream::default()
                })
                .collect(),
            ..MasterPlaylist::default()
        },
    };
    for subtitle in subtitles {
        master.alternatives.push(AlternativeMedia {
            media_type: AlternativeMediaType::Subtitles,
            uri: Some(format!("subs/{}.m3u8", subtitle.lang)),
            group_id: SUBTITLE_GROUP.to_owned(),
            language: Some(subtitle.lang.clone()),
            name: subtitle.name.clone(),
            default: false,
            autoselect: true,
            ..AlternativeMedia::default()
        });
    }
    if !subtitles.is_empty() {
        for variant in &mut master.variants {
            variant.subtitles = Some(SUBTITLE_GROUP.to_owned());
        }
    }
    master
        .variants
        .extend(iframes.iter().map(|iframe| VariantStream {
            is_i_frame: true,
            uri: format!("{}/iframes.m3u8", iframe.name),
            bandwidth: iframe.bandwidth.peak,
            average_bandwidth: Some(iframe.bandwidth.average),
            codecs: Some(iframe.codecs.clone()),
            resolution: Some(resolution(iframe.width, iframe.height)),
            ..VariantStream::default()
        }));
    master
}

fn resolution(width: u32, height: u32) -> Resolution {
    Resolution {
        width: u64::from(width),
        height: u64::from(height),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packager::playlist::render;

    fn text(write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
        String::from_utf8(render(write).to_vec()).unwrap()
    }

    fn segment(number: u64, millis: u64) -> VodSegment {
        VodSegment {
            number,
            duration: Duration::from_millis(millis),
            bytes: 1000,
        }
    }

    #[test]
    fn media_playlist_exact_text() {
        let segments = [segment(0, 2000), segment(1, 2000), segment(2, 1040)];
        let playlist = media_playlist(&segments, Duration::from_secs(2), "init.mp4");
        assert_eq!(
            text(|w| playlist.write_to(w)),
            "#EXTM3U\n\
             #EXT-X-VERSION:7\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-TARGETDURATION:2\n\
             #EXT-X-PLAYLIST-TYPE:VOD\n\
             #EXT-X-MAP:URI=\"init.mp4\"\n\
             #EXTINF:2,\n\
             0.m4s\n\
             #EXTINF:2,\n\
             1.m4s\n\
             #EXTINF:1.04,\n\
             2.m4s\n\
             #EXT-X-ENDLIST\n"
        );
    }

    #[test]
    fn iframe_playlist_exact_text() {
        let iframes = [
            IFrame {
                number: 0,
                duration: Duration::from_secs(1),
                offset: 0,
                length: 4000,
            },
            IFrame {
                number: 0,
                duration: Duration::from_secs(1),
                offset: 9000,
                length: 3500,
            },
            IFrame {
                number: 1,
                duration: Duration::from_millis(500),
                offset: 0,
                length: 3900,
            },
        ];
        let playlist = iframe_playlist(&iframes, Duration::from_secs(2), "init.mp4");
        assert_eq!(
            text(|w| playlist.write_to(w)),
            "#EXTM3U\n\
             #EXT-X-VERSION:7\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-TARGETDURATION:2\n\
             #EXT-X-PLAYLIST-TYPE:VOD\n\
             #EXT-X-I-FRAMES-ONLY\n\
             #EXT-X-MAP:URI=\"init.mp4\"\n\
             #EXT-X-BYTERANGE:4000@0\n\
             #EXTINF:1,\n\
             0.m4s\n\
             #EXT-X-BYTERANGE:3500@9000\n\
             #EXTINF:1,\n\
             0.m4s\n\
             #EXT-X-BYTERANGE:3900@0\n\
             #EXTINF:0.5,\n\
             1.m4s\n\
             #EXT-X-ENDLIST\n"
        );
        // Runs of 1 to 3 s (half to one and a half target durations) count: the last
        // two, 7400 bytes over 1.5 s, are the fastest.
        let bandwidth = iframes_bandwidth(&iframes, Duration::from_secs(2)).unwrap();
        assert_eq!(bandwidth.peak, 39_467);
        assert_eq!(bandwidth.average, 36_480);
    }

    #[test]
    fn subtitle_playlist_spans_the_asset() {
        let playlist = subtitle_playlist("en.vtt", Duration::from_millis(12_040));
        assert_eq!(
            text(|w| playlist.write_to(w)),
            "#EXTM3U\n\
             #EXT-X-VERSION:7\n\
             #EXT-X-TARGETDURATION:12\n\
             #EXT-X-PLAYLIST-TYPE:VOD\n\
             #EXTINF:12.04,\n\
             en.vtt\n\
             #EXT-X-ENDLIST\n"
        );
    }

    fn variant() -> VariantInfo {
        VariantInfo {
            name: "720p".into(),
            codecs: "avc1.64001f".into(),
            width: 1280,
            height: 720,
            frame_rate: 25.0,
            bandwidth: Bandwidth {
                peak: 3_000_000,
                average: 2_500_000,
            },
        }
    }

    fn iframe() -> IFrameInfo {
        IFrameInfo {
            name: "720p".into(),
            codecs: "avc1.64001f".into(),
            width: 1280,
            height: 720,
            bandwidth: Bandwidth {
                peak: 400_000,
                average: 300_000,
            },
        }
    }

    #[test]
    fn master_playlist_exact_text() {
        let audio = AudioInfo {
            codecs: "mp4a.40.2".into(),
            channels: 2,
            bandwidth: Bandwidth {
                peak: 130_000,
                average: 128_000,
            },
        };
        let subtitles = [
            SubtitleInfo {
                lang: "en".into(),
                name: "English".into(),
            },
            SubtitleInfo {
                lang: "pt-BR".into(),
                name: "Português".into(),
            },
        ];
        let master = master_playlist(&[variant()], Some(&audio), &subtitles, &[iframe()]);
        assert_eq!(
            text(|w| master.write_to(w)),
            "#EXTM3U\n\
             #EXT-X-VERSION:7\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MEDIA:TYPE=AUDIO,URI=\"audio/index.m3u8\",GROUP-ID=\"aac\",NAME=\"Audio\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\"\n\
             #EXT-X-MEDIA:TYPE=SUBTITLES,URI=\"subs/en.m3u8\",GROUP-ID=\"subs\",LANGUAGE=\"en\",NAME=\"English\",AUTOSELECT=YES\n\
             #EXT-X-MEDIA:TYPE=SUBTITLES,URI=\"subs/pt-BR.m3u8\",GROUP-ID=\"subs\",LANGUAGE=\"pt-BR\",NAME=\"Português\",AUTOSELECT=YES\n\
             #EXT-X-STREAM-INF:BANDWIDTH=3130000,AVERAGE-BANDWIDTH=2628000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=25,AUDIO=\"aac\",SUBTITLES=\"subs\"\n\
             720p/index.m3u8\n\
             #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=400000,AVERAGE-BANDWIDTH=300000,CODECS=\"avc1.64001f\",RESOLUTION=1280x720,URI=\"720p/iframes.m3u8\"\n"
        );
    }

    #[test]
    fn a_source_without_audio_has_no_audio_group() {
        let master = master_playlist(&[variant()], None, &[], &[]);
        assert_eq!(
            text(|w| master.write_to(w)),
            "#EXTM3U\n\
             #EXT-X-VERSION:7\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-STREAM-INF:BANDWIDTH=3000000,AVERAGE-BANDWIDTH=2500000,CODECS=\"avc1.64001f\",RESOLUTION=1280x720,FRAME-RATE=25\n\
             720p/index.m3u8\n"
        );
    }
}
