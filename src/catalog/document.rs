//! One catalog file as written, before validation.
//!
//! `Channel` and `Ladder` differ from what is written (a resolved source,
//! durations), so they are read into the `…Spec` types here first; types that
//! are kept as written derive `Deserialize` themselves.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::asset::AssetSpec;
use super::iptv::{EpgSpec, MulticastSpec};
use super::ladder::{Audio, Rendition};
use super::{EncoderProfile, Outputs};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Document {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub channels: Vec<ChannelSpec>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub ladders: BTreeMap<String, LadderSpec>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub encoders: BTreeMap<String, EncoderProfile>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub assets: Vec<AssetSpec>,
}

impl Document {
    /// Parses one file; an empty file (or one of comments only) is an empty
    /// document. The error is serde_yaml's, which knows where it happened.
    pub fn parse(text: &str) -> Result<Document, serde_yaml::Error> {
        Ok(serde_yaml::from_str::<Option<Document>>(text)?.unwrap_or_default())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ChannelSpec {
    pub id: String,
    pub number: u32,
    pub name: String,
    pub group: String,
    #[serde(default)]
    pub logo: Option<String>,
    pub source: SourceSpec,
    pub ladder: String,
    #[serde(default)]
    pub outputs: Outputs,
    #[serde(default)]
    pub multicast: Option<MulticastSpec>,
    #[serde(default)]
    pub epg: Option<EpgSpec>,
    /// Same shape as `source`.
    #[serde(default)]
    pub backup: Option<SourceSpec>,
    #[serde(default)]
    pub slate: Option<SlateSpec>,
    /// Seconds.
    #[serde(default)]
    pub stall_timeout: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SlateSpec {
    /// A path, relative to the catalog file; absent for the generated card.
    #[serde(default)]
    pub image: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SourceSpec {
    pub uri: String,
    #[serde(default, deserialize_with = "scalar_map")]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LadderSpec {
    #[serde(default = "default_encoder")]
    pub encoder: String,
    /// Seconds.
    pub segment_duration: f64,
    /// Seconds.
    pub gop: f64,
    #[serde(default = "default_window")]
    pub window: u32,
    pub renditions: Vec<Rendition>,
    pub audio: Audio,
}

fn default_encoder() -> String {
    "x264".to_owned()
}

fn default_window() -> u32 {
    6
}

/// Lets an operator comment out every entry under `channels:` and leave the key.
pub(super) fn null_as_empty<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A map of YAML scalars kept as text, for values handed on to GStreamer as
/// strings (`latency: 200`, `tune: zerolatency`, `b-adapt: false`).
pub(super) fn scalar_map<'de, D>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: Deserializer<'de>,
{
    struct ScalarMap;

    impl<'de> Visitor<'de> for ScalarMap {
        type Value = BTreeMap<String, String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of names to strings, numbers or booleans")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut values = BTreeMap::new();
            while let Some((name, Scalar(value))) = map.next_entry::<String, Scalar>()? {
                values.insert(name, value);
            }
            Ok(values)
        }
    }

    deserializer.deserialize_any(ScalarMap)
}

struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Scalar, D::Error> {
        struct ScalarText;

        impl Visitor<'_> for ScalarText {
            type Value = Scalar;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Scalar, E> {
                Ok(Scalar(value.to_owned()))
            }

            fn visit_bool<E: de::Error>(self, value: bool) -> Result<Scalar, E> {
                Ok(Scalar(value.to_string()))
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Scalar, E> {
                Ok(Scalar(value.to_string()))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Scalar, E> {
                Ok(Scalar(value.to_string()))
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Scalar, E> {
                Ok(Scalar(value.to_string()))
            }
        }

        deserializer.deserialize_any(ScalarText)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_files_and_empty_keys_are_empty_documents() {
        for text in ["", "# nothing yet\n", "channels:\nladders:\nencoders:\n"] {
            let document =
                Document::parse(text).unwrap_or_else(|error| panic!("{text:?}: {error}"));
            assert!(document.channels.is_empty(), "{text:?}");
            assert!(document.ladders.is_empty(), "{text:?}");
            assert!(document.encoders.is_empty(), "{text:?}");
        }
    }

    #[test]
    fn source_options_keep_scalars_as_text() {
        let source: SourceSpec =
            serde_yaml::from_str("uri: srt://h:1\noptions: { latency: 200, mode: caller }")
                .expect("parses");
        assert_eq!(source.options["latency"], "200");
        assert_eq!(source.options["mode"], "caller");
    }

    #[test]
    fn source_options_refuse_null() {
        let error = serde_yaml::from_str::<SourceSpec>("uri: srt://h:1\noptions: { mode: ~ }")
            .expect_err("null is no option value");
        assert_eq!(
            error.to_string(),
            "options.mode: invalid type: unit value, expected a string, number or boolean at line 2 column 18"
        );
    }
}
