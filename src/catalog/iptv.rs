//! The IPTV fields of a channel: `multicast:` (an MPEG-TS feed for set-top boxes) and
//! `epg:` (where its programme guide comes from).

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::de::{self, value::MapAccessDeserializer, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::Ladder;

/// Linux `IFNAMSIZ` is 16 bytes with the terminating NUL.
const MAX_INTERFACE_NAME_LEN: usize = 15;

/// A channel's multicast output: one rendition of its ladder, with the ladder's audio,
/// muxed into a constant-rate MPEG-TS and sent to a multicast group. Only a validated
/// catalog makes one, so every field is checked and every default applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Multicast {
    /// In 224.0.0.0/4; the catalog warns outside 239.0.0.0/8.
    pub group: Ipv4Addr,
    /// 1 to 65535. No two channels share a group and port.
    pub port: u16,
    pub protocol: MulticastProtocol,
    /// The network interface to send on; `None` leaves it to the routing table.
    pub interface: Option<String>,
    /// IP time to live, 0 to 255. 0 (the default) keeps every packet on this machine
    /// until an operator raises it.
    pub ttl: u32,
    /// A rendition name of the channel's ladder: the one written, or the ladder's
    /// highest-bitrate rendition.
    pub rendition: String,
    /// The constant transport-stream rate in bit/s: the one written, or the default
    /// of [`mux_rate`].
    pub mux_rate: u64,
}

/// How a multicast feed is carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MulticastProtocol {
    /// Seven TS packets per UDP datagram, nothing else.
    #[default]
    Udp,
    /// The same packets in RTP (RFC 2250, payload type 33).
    Rtp,
}

impl MulticastProtocol {
    /// `udp` or `rtp`: the catalog spelling and the URL scheme players take
    /// (`udp://@239.255.1.1:5000`).
    pub fn as_str(&self) -> &'static str {
        match self {
            MulticastProtocol::Udp => "udp",
            MulticastProtocol::Rtp => "rtp",
        }
    }
}

impl Multicast {
    /// The address a player opens to join the feed: `udp://@GROUP:PORT` or
    /// `rtp://@GROUP:PORT` (the `@` asks VLC and ffmpeg to join rather than send).
    pub fn player_url(&self) -> String {
        format!("{}://@{}:{}", self.protocol.as_str(), self.group, self.port)
    }
}

/// The share of the video and audio bit rate, in thousandths, that the smallest
/// allowed mux rate carries (1.10): TS packet headers (4 bytes in 188), PES headers,
/// and the encoders' rate-control overshoot above their nominal bit rate.
pub const MIN_MUX_FACTOR_PERMILLE: u64 = 1_100;
/// Added to the smallest allowed mux rate, bit/s: PAT, PMT and SDT repeated several
/// times a second, PCR packets and adaptation fields.
pub const MIN_MUX_OVERHEAD_BPS: u64 = 150_000;
/// The share the default mux rate carries (1.30): the minimum's overhead with room
/// for an encoder that overshoots on hard pictures, so the muxer never has to hold
/// packets back.
pub const DEFAULT_MUX_FACTOR_PERMILLE: u64 = 1_300;
/// Added to the default mux rate, bit/s.
pub const DEFAULT_MUX_OVERHEAD_BPS: u64 = 200_000;
/// The default mux rate is rounded up to a multiple of this, bit/s, so operators see
/// round numbers in their monitoring.
pub const DEFAULT_MUX_STEP_BPS: u64 = 100_000;

/// The constant transport-stream rate, in bit/s, of a multicast feed carrying video
/// at `video_kbps` and audio at `audio_kbps` (the rendition's and the ladder's
/// nominal rates, kbit/s).
///
/// With V + A the two rates in kbit/s:
/// - the minimum is (V + A) × 1.10 + 150 kbit/s; a `requested_kbps` below it is an
///   error that names both rates (a CBR mux that is too tight drops packets);
/// - with no request, the rate is (V + A) × 1.30 + 200 kbit/s, rounded up to a
///   multiple of 100 kbit/s.
///
/// All in integers, so the rule has no rounding surprises: 1000 + 128 kbit/s gives a
/// minimum of 1390.8 kbit/s and a default of 1700 kbit/s (1666.4 rounded up).
pub fn mux_rate(
    video_kbps: u32,
    audio_kbps: u32,
    requested_kbps: Option<u64>,
) -> Result<u64, MuxRateTooLow> {
    let payload_kbps = u64::from(video_kbps) + u64::from(audio_kbps);
    let minimum_bps = payload_kbps * MIN_MUX_FACTOR_PERMILLE + MIN_MUX_OVERHEAD_BPS;
    match requested_kbps {
        Some(requested_kbps) => {
            let requested_bps = requested_kbps.saturating_mul(1000);
            if requested_bps < minimum_bps {
                Err(MuxRateTooLow {
                    requested_kbps,
                    minimum_bps,
                    video_kbps,
                    audio_kbps,
                })
            } else {
                Ok(requested_bps)
            }
        }
        None => {
            let bps = payload_kbps * DEFAULT_MUX_FACTOR_PERMILLE + DEFAULT_MUX_OVERHEAD_BPS;
            Ok(bps.div_ceil(DEFAULT_MUX_STEP_BPS) * DEFAULT_MUX_STEP_BPS)
        }
    }
}

/// A `mux_rate` below the minimum of [`mux_rate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "mux_rate {requested_kbps} kbit/s is below the minimum of {} kbit/s for {video_kbps} kbit/s of video and {audio_kbps} kbit/s of audio ((video + audio) × 1.10 + 150 kbit/s)",
    kbps(*.minimum_bps)
)]
pub struct MuxRateTooLow {
    pub requested_kbps: u64,
    /// bit/s.
    pub minimum_bps: u64,
    pub video_kbps: u32,
    pub audio_kbps: u32,
}

/// bit/s as kbit/s, with the decimals it needs: `1390.8`, `1700`.
fn kbps(bps: u64) -> String {
    let text = format!("{}.{:03}", bps / 1000, bps % 1000);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Where a channel's programme guide comes from. Files are read again for every guide
/// served, so an operator may edit them while the headend runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Epg {
    /// A schedule file in YAML: daily programmes and one-off ones (see
    /// [`Schedule`](super::Schedule)).
    Schedule { path: PathBuf },
    /// An XMLTV file: the programmes whose `channel` attribute is `channel`.
    Xmltv { path: PathBuf, channel: String },
}

impl Epg {
    /// The file, as an absolute path.
    pub fn path(&self) -> &Path {
        match self {
            Epg::Schedule { path } | Epg::Xmltv { path, .. } => path,
        }
    }
}

/// `multicast:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MulticastSpec {
    pub group: String,
    /// Wider than `u16` so that 0 and 70000 get the catalog's own message.
    pub port: i64,
    #[serde(default)]
    pub protocol: MulticastProtocol,
    #[serde(default)]
    pub interface: Option<String>,
    #[serde(default)]
    pub ttl: i64,
    #[serde(default)]
    pub rendition: Option<String>,
    /// kbit/s.
    #[serde(default)]
    pub mux_rate: Option<u64>,
}

/// `epg:` as written: a file name, or `{ xmltv: FILE, channel: ID }`.
#[derive(Debug)]
pub(super) enum EpgSpec {
    /// A schedule (`.yaml`, `.yml`) or XMLTV (`.xml`) file, by its extension; an
    /// XMLTV file's programmes are those of the headend channel id.
    File(String),
    Xmltv(XmltvSpec),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct XmltvSpec {
    pub xmltv: String,
    /// The `channel` attribute of the programmes to take; default the channel id.
    #[serde(default)]
    pub channel: Option<String>,
}

impl<'de> Deserialize<'de> for EpgSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<EpgSpec, D::Error> {
        struct EpgVisitor;

        impl<'de> Visitor<'de> for EpgVisitor {
            type Value = EpgSpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a schedule or XMLTV file name, or { xmltv: FILE, channel: ID }")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<EpgSpec, E> {
                Ok(EpgSpec::File(value.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EpgSpec, A::Error> {
                XmltvSpec::deserialize(MapAccessDeserializer::new(map)).map(EpgSpec::Xmltv)
            }
        }

        deserializer.deserialize_any(EpgVisitor)
    }
}

/// What kind of file an `epg:` file name is, by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EpgFileKind {
    Schedule,
    Xmltv,
}

impl EpgFileKind {
    pub fn of(file: &str) -> Option<EpgFileKind> {
        let extension = Path::new(file)
            .extension()?
            .to_string_lossy()
            .to_ascii_lowercase();
        match extension.as_str() {
            "yaml" | "yml" => Some(EpgFileKind::Schedule),
            "xml" => Some(EpgFileKind::Xmltv),
            _ => None,
        }
    }
}

/// Something a check found in a field of `multicast:` or `epg:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Finding {
    /// The field it is about, under the checked node; `None` for the node itself.
    pub field: Option<&'static str>,
    /// A warning rather than an error.
    pub warning: bool,
    pub message: String,
}

impl Finding {
    fn error(field: &'static str, message: String) -> Finding {
        Finding {
            field: Some(field),
            warning: false,
            message,
        }
    }
}

/// The fields of `multicast:` that can be checked without the channel's ladder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MulticastDraft {
    pub group: Ipv4Addr,
    pub port: u16,
    pub protocol: MulticastProtocol,
    pub interface: Option<String>,
    pub ttl: u32,
    pub rendition: Option<String>,
    pub mux_rate_kbps: Option<u64>,
}

/// Checks what of `multicast:` needs no ladder: the draft when nothing is wrong
/// (warnings aside), and every finding.
pub(super) fn check_multicast(spec: &MulticastSpec) -> (Option<MulticastDraft>, Vec<Finding>) {
    let mut findings = Vec::new();
    let group = match spec.group.trim().parse::<Ipv4Addr>() {
        Err(_) => {
            findings.push(Finding::error(
                "group",
                format!("multicast group `{}` is not an IPv4 address", spec.group),
            ));
            None
        }
        Ok(group) if !group.is_multicast() => {
            findings.push(Finding::error(
                "group",
                format!(
                    "multicast group {group} is not a multicast address (224.0.0.0 to 239.255.255.255)"
                ),
            ));
            None
        }
        // RFC 5771 §4: the Local Network Control Block carries routing and discovery
        // protocols (OSPF, mDNS, …); hosts and routers take anything there as theirs.
        Ok(group) if group.octets()[..3] == [224, 0, 0] => {
            findings.push(Finding::error(
                "group",
                format!(
                    "multicast group {group} is in 224.0.0.0/24, which is reserved for local network control protocols (RFC 5771)"
                ),
            ));
            None
        }
        Ok(group) => {
            // RFC 2365: 239.0.0.0/8 is the administratively scoped range, a site's own
            // to assign; other groups are assigned globally or to other uses.
            if group.octets()[0] != 239 {
                findings.push(Finding {
                    field: Some("group"),
                    warning: true,
                    message: format!(
                        "multicast group {group} is outside 239.0.0.0/8, the range a site assigns for its own use (RFC 2365): make sure this group is yours to send to"
                    ),
                });
            }
            Some(group)
        }
    };
    let port = match u16::try_from(spec.port) {
        Ok(port) if port > 0 => Some(port),
        _ => {
            findings.push(Finding::error(
                "port",
                format!("multicast port must be from 1 to 65535, not {}", spec.port),
            ));
            None
        }
    };
    let ttl = match u8::try_from(spec.ttl) {
        Ok(ttl) => Some(u32::from(ttl)),
        Err(_) => {
            findings.push(Finding::error(
                "ttl",
                format!("multicast ttl must be from 0 to 255, not {}", spec.ttl),
            ));
            None
        }
    };
    if let Some(interface) = &spec.interface {
        if !is_interface_name(interface) {
            findings.push(Finding::error(
                "interface",
                format!(
                    "multicast interface `{interface}` is not a network interface name (1 to {MAX_INTERFACE_NAME_LEN} characters, no spaces, `/` or `:`)"
                ),
            ));
        }
    }
    if findings.iter().any(|finding| !finding.warning) {
        return (None, findings);
    }
    let draft = group
        .zip(port)
        .zip(ttl)
        .map(|((group, port), ttl)| MulticastDraft {
            group,
            port,
            protocol: spec.protocol,
            interface: spec.interface.clone(),
            ttl,
            rendition: spec.rendition.clone(),
            mux_rate_kbps: spec.mux_rate,
        });
    (draft, findings)
}

/// What Linux takes as an interface name (`dev_valid_name`).
fn is_interface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_INTERFACE_NAME_LEN
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
}

/// Completes a draft with the channel's ladder: the rendition (default the
/// highest-bitrate one) and the mux rate (see [`mux_rate`]).
pub(super) fn resolve_multicast(
    draft: MulticastDraft,
    ladder_name: &str,
    ladder: &Ladder,
) -> Result<Multicast, Finding> {
    let rendition = match &draft.rendition {
        Some(name) => ladder
            .renditions
            .iter()
            .find(|rendition| rendition.name == *name)
            .ok_or_else(|| {
                let names: Vec<&str> = ladder.renditions.iter().map(|r| r.name.as_str()).collect();
                Finding::error(
                    "rendition",
                    format!(
                        "unknown rendition `{name}` of ladder `{ladder_name}` (renditions: {})",
                        names.join(", ")
                    ),
                )
            })?,
        None => ladder
            .renditions
            .iter()
            .max_by_key(|rendition| rendition.bitrate)
            .ok_or_else(|| {
                Finding::error(
                    "rendition",
                    format!("ladder `{ladder_name}` has no rendition"),
                )
            })?,
    };
    let mux_rate = mux_rate(rendition.bitrate, ladder.audio.bitrate, draft.mux_rate_kbps).map_err(
        |error| {
            Finding::error(
                "mux_rate",
                format!("{error} of rendition `{}`", rendition.name),
            )
        },
    )?;
    Ok(Multicast {
        group: draft.group,
        port: draft.port,
        protocol: draft.protocol,
        interface: draft.interface,
        ttl: draft.ttl,
        rendition: rendition.name.clone(),
        mux_rate,
    })
}

/// Resolves `epg:` against `base`, the directory of the catalog file: the EPG and
/// the file's path as a problem shows it (relative like the catalog's own).
pub(super) fn resolve_epg(
    spec: &EpgSpec,
    channel_id: &str,
    base: &Path,
) -> Result<(Epg, PathBuf), Finding> {
    let (file, field, xmltv_channel) = match spec {
        EpgSpec::File(file) => {
            let kind = EpgFileKind::of(file).ok_or_else(|| Finding {
                field: None,
                warning: false,
                message: format!(
                    "epg file `{file}` must be a schedule (.yaml, .yml) or an XMLTV file (.xml); write {{ xmltv: FILE }} for an XMLTV file with another name"
                ),
            })?;
            let channel = (kind == EpgFileKind::Xmltv).then(|| channel_id.to_owned());
            (file, None, channel)
        }
        EpgSpec::Xmltv(spec) => {
            let channel = spec
                .channel
                .clone()
                .unwrap_or_else(|| channel_id.to_owned());
            if channel.trim().is_empty() {
                return Err(Finding::error(
                    "channel",
                    "epg channel must not be empty".to_owned(),
                ));
            }
            (&spec.xmltv, Some("xmltv"), Some(channel))
        }
    };
    if file.trim().is_empty() {
        return Err(Finding {
            field,
            warning: false,
            message: "epg file name must not be empty".to_owned(),
        });
    }
    let shown = base.join(file);
    let path = std::path::absolute(&shown).map_err(|error| Finding {
        field,
        warning: false,
        message: format!("cannot resolve epg file `{file}`: {error}"),
    })?;
    let epg = match xmltv_channel {
        Some(channel) => Epg::Xmltv { path, channel },
        None => Epg::Schedule { path },
    };
    Ok((epg, shown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_mux_rate_is_thirty_percent_over_plus_200k_in_100k_steps() {
        // (1000 + 128) × 1.3 + 200 = 1666.4 → 1700.
        assert_eq!(mux_rate(1000, 128, None), Ok(1_700_000));
        // (2500 + 128) × 1.3 + 200 = 3616.4 → 3700.
        assert_eq!(mux_rate(2500, 128, None), Ok(3_700_000));
        // (300 + 100) × 1.3 + 200 = 720 → 800; exact multiples stay.
        assert_eq!(mux_rate(300, 100, None), Ok(800_000));
        assert_eq!(mux_rate(1000, 0, None), Ok(1_500_000));
    }

    #[test]
    fn the_minimum_mux_rate_is_ten_percent_over_plus_150k() {
        // (1000 + 128) × 1.1 + 150 = 1390.8 kbit/s.
        assert_eq!(mux_rate(1000, 128, Some(1391)), Ok(1_391_000));
        let error = mux_rate(1000, 128, Some(1390)).expect_err("below the minimum");
        assert_eq!(error.minimum_bps, 1_390_800);
        assert_eq!(
            error.to_string(),
            "mux_rate 1390 kbit/s is below the minimum of 1390.8 kbit/s for 1000 kbit/s of video and 128 kbit/s of audio ((video + audio) × 1.10 + 150 kbit/s)"
        );
        // (300 + 100) × 1.1 + 150 = 590 exactly.
        assert_eq!(mux_rate(300, 100, Some(590)), Ok(590_000));
        assert!(mux_rate(300, 100, Some(589)).is_err());
        assert!(mux_rate(300, 100, Some(0)).is_err());
    }

    #[test]
    fn the_default_is_always_above_the_minimum() {
        for video in [1, 99, 300, 1000, 2500, 8000, 50_000] {
            for audio in [32, 64, 96, 128, 192, 256] {
                let default = mux_rate(video, audio, None).expect("a default");
                assert!(
                    mux_rate(video, audio, Some(default / 1000)).is_ok(),
                    "{video}+{audio}"
                );
                assert_eq!(default % DEFAULT_MUX_STEP_BPS, 0);
            }
        }
    }

    #[test]
    fn absurd_requests_saturate_instead_of_wrapping() {
        assert_eq!(mux_rate(1000, 128, Some(u64::MAX)), Ok(u64::MAX));
    }

    #[test]
    fn player_urls_join_the_group() {
        let multicast = Multicast {
            group: Ipv4Addr::new(239, 255, 1, 1),
            port: 5000,
            protocol: MulticastProtocol::Rtp,
            interface: None,
            ttl: 0,
            rendition: "480p".to_owned(),
            mux_rate: 1_700_000,
        };
        assert_eq!(multicast.player_url(), "rtp://@239.255.1.1:5000");
        let udp = Multicast {
            protocol: MulticastProtocol::Udp,
            ..multicast
        };
        assert_eq!(udp.player_url(), "udp://@239.255.1.1:5000");
    }

    #[test]
    fn epg_is_a_file_name_or_an_xmltv_map() {
        let file: EpgSpec = serde_yaml::from_str("epg/news.yaml").expect("parses");
        assert!(matches!(file, EpgSpec::File(name) if name == "epg/news.yaml"));
        let xmltv: EpgSpec =
            serde_yaml::from_str("{ xmltv: guide.xml, channel: news.example.com }")
                .expect("parses");
        assert!(matches!(
            xmltv,
            EpgSpec::Xmltv(XmltvSpec { xmltv, channel: Some(channel) })
                if xmltv == "guide.xml" && channel == "news.example.com"
        ));
        let error = serde_yaml::from_str::<EpgSpec>("{ xmltv: g.xml, chanel: x }")
            .expect_err("unknown field");
        assert!(
            error.to_string().contains("unknown field `chanel`"),
            "{error}"
        );
        let error = serde_yaml::from_str::<EpgSpec>("[a]").expect_err("a list");
        assert!(
            error
                .to_string()
                .contains("expected a schedule or XMLTV file name"),
            "{error}"
        );
    }

    fn spec(text: &str) -> MulticastSpec {
        serde_yaml::from_str(text).unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    fn messages(findings: &[Finding]) -> Vec<(Option<&str>, bool, &str)> {
        findings
            .iter()
            .map(|f| (f.field, f.warning, f.message.as_str()))
            .collect()
    }

    #[test]
    fn multicast_defaults_and_a_clean_draft() {
        let (draft, findings) = check_multicast(&spec("{ group: 239.255.1.1, port: 5000 }"));
        assert_eq!(findings, []);
        assert_eq!(
            draft,
            Some(MulticastDraft {
                group: Ipv4Addr::new(239, 255, 1, 1),
                port: 5000,
                protocol: MulticastProtocol::Udp,
                interface: None,
                ttl: 0,
                rendition: None,
                mux_rate_kbps: None,
            })
        );
        let (draft, findings) = check_multicast(&spec(
            "{ group: 239.1.1.1, port: 65535, protocol: rtp, interface: eth1, ttl: 255, rendition: 480p, mux_rate: 4000 }",
        ));
        assert_eq!(findings, []);
        let draft = draft.expect("valid");
        assert_eq!(
            (draft.protocol, draft.ttl, draft.mux_rate_kbps),
            (MulticastProtocol::Rtp, 255, Some(4000))
        );
    }

    #[test]
    fn multicast_field_problems() {
        let (draft, findings) = check_multicast(&spec(
            "{ group: 10.0.0.1, port: 0, ttl: 256, interface: \"eth 1\" }",
        ));
        assert_eq!(draft, None);
        assert_eq!(
            messages(&findings),
            [
                (Some("group"), false, "multicast group 10.0.0.1 is not a multicast address (224.0.0.0 to 239.255.255.255)"),
                (Some("port"), false, "multicast port must be from 1 to 65535, not 0"),
                (Some("ttl"), false, "multicast ttl must be from 0 to 255, not 256"),
                (Some("interface"), false, "multicast interface `eth 1` is not a network interface name (1 to 15 characters, no spaces, `/` or `:`)"),
            ]
        );
        let (_, findings) = check_multicast(&spec("{ group: 239.1.1, port: 70000, ttl: -1 }"));
        assert_eq!(
            messages(&findings),
            [
                (
                    Some("group"),
                    false,
                    "multicast group `239.1.1` is not an IPv4 address"
                ),
                (
                    Some("port"),
                    false,
                    "multicast port must be from 1 to 65535, not 70000"
                ),
                (
                    Some("ttl"),
                    false,
                    "multicast ttl must be from 0 to 255, not -1"
                ),
            ]
        );
        let (draft, findings) = check_multicast(&spec("{ group: 224.0.0.251, port: 5353 }"));
        assert_eq!(draft, None);
        assert_eq!(
            messages(&findings),
            [(Some("group"), false, "multicast group 224.0.0.251 is in 224.0.0.0/24, which is reserved for local network control protocols (RFC 5771)")]
        );
    }

    #[test]
    fn groups_outside_the_site_local_range_are_a_warning() {
        let (draft, findings) = check_multicast(&spec("{ group: 233.252.0.1, port: 5000 }"));
        assert!(draft.is_some());
        assert_eq!(
            messages(&findings),
            [(Some("group"), true, "multicast group 233.252.0.1 is outside 239.0.0.0/8, the range a site assigns for its own use (RFC 2365): make sure this group is yours to send to")]
        );
    }

    fn ladder() -> Ladder {
        use super::super::{Audio, AudioCodec, H264Profile, Rendition};
        let rendition = |name: &str, bitrate| Rendition {
            name: name.to_owned(),
            width: 640,
            height: 360,
            bitrate,
            profile: H264Profile::Main,
            max_framerate: 25,
        };
        Ladder {
            encoder: "x264".to_owned(),
            segment_duration: std::time::Duration::from_secs(2),
            gop: std::time::Duration::from_secs(2),
            window: 6,
            renditions: vec![rendition("480p", 1000), rendition("240p", 300)],
            audio: Audio {
                codec: AudioCodec::Aac,
                bitrate: 128,
                channels: 2,
                sample_rate: 48_000,
            },
        }
    }

    #[test]
    fn the_rendition_defaults_to_the_highest_bitrate_and_the_mux_rate_is_computed() {
        let (draft, _) = check_multicast(&spec("{ group: 239.255.1.1, port: 5000 }"));
        let multicast =
            resolve_multicast(draft.expect("valid"), "demo", &ladder()).expect("resolves");
        assert_eq!(multicast.rendition, "480p");
        assert_eq!(multicast.mux_rate, 1_700_000);
        let (draft, _) = check_multicast(&spec(
            "{ group: 239.255.1.1, port: 5000, rendition: 240p, mux_rate: 2000 }",
        ));
        let multicast =
            resolve_multicast(draft.expect("valid"), "demo", &ladder()).expect("resolves");
        assert_eq!(
            (multicast.rendition.as_str(), multicast.mux_rate),
            ("240p", 2_000_000)
        );
    }

    #[test]
    fn unknown_renditions_and_tight_mux_rates_are_refused() {
        let (draft, _) = check_multicast(&spec(
            "{ group: 239.255.1.1, port: 5000, rendition: 1080p }",
        ));
        let error =
            resolve_multicast(draft.expect("valid"), "demo", &ladder()).expect_err("unknown");
        assert_eq!(
            (error.field, error.message.as_str()),
            (
                Some("rendition"),
                "unknown rendition `1080p` of ladder `demo` (renditions: 480p, 240p)"
            )
        );
        let (draft, _) = check_multicast(&spec(
            "{ group: 239.255.1.1, port: 5000, rendition: 240p, mux_rate: 500 }",
        ));
        let error =
            resolve_multicast(draft.expect("valid"), "demo", &ladder()).expect_err("too low");
        assert_eq!(
            (error.field, error.message.as_str()),
            (Some("mux_rate"), "mux_rate 500 kbit/s is below the minimum of 620.8 kbit/s for 300 kbit/s of video and 128 kbit/s of audio ((video + audio) × 1.10 + 150 kbit/s) of rendition `240p`")
        );
    }

    #[test]
    fn epg_files_resolve_against_the_catalog_directory() {
        let base = Path::new("/srv/catalog");
        let (epg, shown) = resolve_epg(&EpgSpec::File("epg/news.yaml".to_owned()), "news", base)
            .expect("resolves");
        assert_eq!(
            epg,
            Epg::Schedule {
                path: PathBuf::from("/srv/catalog/epg/news.yaml")
            }
        );
        assert_eq!(shown, PathBuf::from("/srv/catalog/epg/news.yaml"));
        let (epg, _) =
            resolve_epg(&EpgSpec::File("guide.xml".to_owned()), "news", base).expect("resolves");
        assert_eq!(
            epg,
            Epg::Xmltv {
                path: PathBuf::from("/srv/catalog/guide.xml"),
                channel: "news".to_owned()
            }
        );
        let spec = EpgSpec::Xmltv(XmltvSpec {
            xmltv: "/var/epg/all.txt".to_owned(),
            channel: Some("news.example.com".to_owned()),
        });
        let (epg, _) = resolve_epg(&spec, "news", base).expect("resolves");
        assert_eq!(
            epg,
            Epg::Xmltv {
                path: PathBuf::from("/var/epg/all.txt"),
                channel: "news.example.com".to_owned()
            }
        );
        let (_, shown) = resolve_epg(
            &EpgSpec::File("epg/a.yaml".to_owned()),
            "a",
            Path::new("manifests"),
        )
        .expect("resolves");
        assert_eq!(shown, PathBuf::from("manifests/epg/a.yaml"));
        let error = resolve_epg(&EpgSpec::File("guide.txt".to_owned()), "news", base)
            .expect_err("unknown kind");
        assert_eq!(error.field, None);
        assert!(
            error.message.starts_with(
                "epg file `guide.txt` must be a schedule (.yaml, .yml) or an XMLTV file (.xml)"
            ),
            "{}",
            error.message
        );
        let spec = EpgSpec::Xmltv(XmltvSpec {
            xmltv: "g.xml".to_owned(),
            channel: Some(" ".to_owned()),
        });
        assert_eq!(
            resolve_epg(&spec, "news", base).expect_err("empty").message,
            "epg channel must not be empty"
        );
    }

    #[test]
    fn epg_file_kinds_follow_the_extension() {
        assert_eq!(
            EpgFileKind::of("epg/news.yaml"),
            Some(EpgFileKind::Schedule)
        );
        assert_eq!(EpgFileKind::of("a.YML"), Some(EpgFileKind::Schedule));
        assert_eq!(EpgFileKind::of("guide.xml"), Some(EpgFileKind::Xmltv));
        assert_eq!(EpgFileKind::of("guide.txt"), None);
        assert_eq!(EpgFileKind::of("guide"), None);
    }
}
