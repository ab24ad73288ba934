use std::time::Duration;

use serde::Deserialize;

/// An ABR ladder: the renditions one channel is encoded to, and how its HLS
/// output is cut into segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ladder {
    /// Name of the [`EncoderProfile`](super::EncoderProfile) that encodes the video.
    pub encoder: String,
    /// A whole number of milliseconds and a whole multiple of `gop`, so every
    /// segment starts on a keyframe.
    pub segment_duration: Duration,
    /// Keyframe interval; a whole number of milliseconds.
    pub gop: Duration,
    /// Segments in the live playlist, at least 3.
    pub window: u32,
    /// Highest bitrate first.
    pub renditions: Vec<Rendition>,
    pub audio: Audio,
}

/// One video variant of a ladder.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rendition {
    /// URL segment of its playlist; unique in the ladder, never `audio`.
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// kbit/s.
    pub bitrate: u32,
    pub profile: H264Profile,
    /// Frames per second; faster sources are decimated.
    pub max_framerate: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum H264Profile {
    Baseline,
    Main,
    High,
}

impl H264Profile {
    /// The name caps and encoders use: `baseline`, `main` or `high`.
    pub fn as_str(&self) -> &'static str {
        match self {
            H264Profile::Baseline => "baseline",
            H264Profile::Main => "main",
            H264Profile::High => "high",
        }
    }
}

/// The one audio rendition every video rendition shares.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audio {
    pub codec: AudioCodec,
    /// kbit/s.
    pub bitrate: u32,
    /// 1 (mono) or 2 (stereo).
    pub channels: u32,
    /// Hz.
    #[serde(default = "default_sample_rate")]
    pub sample_rate: u32,
}

fn default_sample_rate() -> u32 {
    48_000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioCodec {
    Aac,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_names_round_trip() {
        for profile in [H264Profile::Baseline, H264Profile::Main, H264Profile::High] {
            let parsed: H264Profile = serde_yaml::from_str(profile.as_str()).expect("parses");
            assert_eq!(parsed, profile);
        }
    }

    #[test]
    fn audio_sample_rate_defaults_to_48k() {
        let audio: Audio =
            serde_yaml::from_str("{ codec: aac, bitrate: 96, channels: 1 }").expect("parses");
        assert_eq!(
            audio,
            Audio {
                codec: AudioCodec::Aac,
                bitrate: 96,
                channels: 1,
                sample_rate: 48_000
            }
        );
    }
}
