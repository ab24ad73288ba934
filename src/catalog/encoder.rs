use std::collections::BTreeMap;

use serde::Deserialize;

use super::document::scalar_map;

/// How to drive one H.264 encoder element: which factory, and which of its
/// properties take the bitrate and the GOP length. Ladders name a profile so
/// the same ladder runs on x264 here and on NVENC in production.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderProfile {
    /// GStreamer element factory name, e.g. `x264enc`.
    pub element: String,
    #[serde(default = "default_bitrate_property")]
    pub bitrate_property: String,
    #[serde(default)]
    pub bitrate_unit: BitrateUnit,
    /// The property that takes the GOP length in frames, if the element has
    /// one. Keyframes are forced on the ladder's GOP either way.
    #[serde(default)]
    pub gop_property: Option<String>,
    /// Set with `set_property_from_str` before the pipeline starts.
    #[serde(default, deserialize_with = "scalar_map")]
    pub properties: BTreeMap<String, String>,
}

fn default_bitrate_property() -> String {
    "bitrate".to_owned()
}

/// The unit of an encoder's bitrate property.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BitrateUnit {
    /// kbit/s, as x264enc, nvh264enc and vaapih264enc take it.
    #[default]
    Kbps,
    /// bit/s, as openh264enc takes it.
    Bps,
}

impl BitrateUnit {
    /// A ladder bitrate (kbit/s) in this unit.
    pub fn from_kbps(self, kbps: u32) -> u64 {
        match self {
            BitrateUnit::Kbps => u64::from(kbps),
            BitrateUnit::Bps => u64::from(kbps) * 1000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitrate_converts_from_kbps() {
        assert_eq!(BitrateUnit::Kbps.from_kbps(2500), 2500);
        assert_eq!(BitrateUnit::Bps.from_kbps(2500), 2_500_000);
        assert_eq!(BitrateUnit::Bps.from_kbps(u32::MAX), 4_294_967_295_000);
    }

    #[test]
    fn defaults_fill_in_what_is_left_out() {
        let profile: EncoderProfile = serde_yaml::from_str("element: x264enc").expect("parses");
        assert_eq!(
            profile,
            EncoderProfile {
                element: "x264enc".to_owned(),
                bitrate_property: "bitrate".to_owned(),
                bitrate_unit: BitrateUnit::Kbps,
                gop_property: None,
                properties: BTreeMap::new(),
            }
        );
    }

    #[test]
    fn properties_keep_scalars_as_text() {
        let profile: EncoderProfile = serde_yaml::from_str(
            "element: x\nbitrate_unit: bps\nproperties: { a: veryfast, b: 3, c: true, d: 1.5, e: \"0\" }",
        )
        .expect("parses");
        assert_eq!(profile.bitrate_unit, BitrateUnit::Bps);
        let properties: Vec<(&str, &str)> = profile
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            properties,
            [
                ("a", "veryfast"),
                ("b", "3"),
                ("c", "true"),
                ("d", "1.5"),
                ("e", "0")
            ]
        );
    }

    #[test]
    fn properties_refuse_nested_values() {
        let error = serde_yaml::from_str::<EncoderProfile>("element: x\nproperties: { a: [1] }")
            .expect_err("a list is no property value");
        assert!(
            error
                .to_string()
                .contains("expected a string, number or boolean"),
            "{error}"
        );
    }
}
