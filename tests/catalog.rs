//! The shipped catalog loads, and every broken fixture is reported with the
//! right message at the right line and column. The IPTV fields (`multicast:`,
//! `epg:`) are checked on catalogs written to a temp dir beside their EPG files,
//! through `Catalog::load` and through `headend check` itself.

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::TempDir;
use headend::catalog::{
    Audio, AudioCodec, BitrateUnit, Catalog, CatalogError, Epg, H264Profile, Multicast,
    MulticastProtocol, Outputs, Problem, Rendition, SourceScheme,
};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

const LADDERS: &str = "pipelines/ladders.yaml";

fn shipped() -> Catalog {
    Catalog::load(&[repo("manifests/channels.yaml"), repo(LADDERS)])
        .unwrap_or_else(|error| panic!("the shipped catalog must load:\n{error}"))
}

#[test]
fn shipped_catalog_has_one_channel_per_source_scheme() {
    let catalog = shipped();
    let channels: Vec<(&str, u32, SourceScheme)> = catalog
        .channels
        .iter()
        .map(|c| (c.id.as_str(), c.number, c.source.scheme()))
        .collect();
    assert_eq!(
        channels,
        [
            ("news", 101, SourceScheme::Test),
            ("movies", 102, SourceScheme::File),
            ("sport", 103, SourceScheme::Udp),
            ("music", 104, SourceScheme::Rtp),
            ("studio", 105, SourceScheme::Srt),
            ("field", 106, SourceScheme::Srt),
            ("events", 107, SourceScheme::Rtmp),
            ("weather-cam", 108, SourceScheme::Rtsp),
            ("weather", 109, SourceScheme::Hls),
        ]
    );
}

#[test]
fn shipped_catalog_channel_fields() {
    let catalog = shipped();
    let news = &catalog.channels[0];
    assert_eq!(news.name, "Newsroom");
    assert_eq!(news.group, "News");
    assert_eq!(
        news.logo.as_deref(),
        Some("https://static.example.com/logos/news.png")
    );
    assert_eq!(news.source.uri, "test://");
    assert!(news.source.options.is_empty());
    assert_eq!(news.ladder, "demo");
    assert_eq!(news.outputs, Outputs { hls: true });
    assert_eq!(
        news.multicast,
        Some(Multicast {
            group: Ipv4Addr::new(239, 255, 1, 1),
            port: 5000,
            protocol: MulticastProtocol::Udp,
            interface: None,
            ttl: 0,
            rendition: "480p".to_owned(),
            mux_rate: 1_800_000,
        })
    );
    assert_eq!(
        news.epg,
        Some(Epg::Schedule {
            path: repo("manifests/epg/news.yaml")
        })
    );

    let movies = &catalog.channels[1];
    assert_eq!(movies.logo, None);
    assert_eq!(movies.source.url(), None);
    assert_eq!(
        movies.source.file_path(),
        Some(repo("manifests/../var/media/demo.mp4").as_path())
    );

    let sport = catalog.channels[2].source.url().expect("udp has a URL");
    assert_eq!(sport.host_str(), Some("239.1.1.1"));
    assert_eq!(sport.port(), Some(5000));
    assert_eq!(catalog.channels[2].source.options["interface"], "eth1");

    let field = &catalog.channels[5].source;
    assert_eq!(field.uri, "srt://0.0.0.0:9001");
    assert_eq!(field.options["mode"], "listener");
    assert_eq!(field.options["latency"], "400");

    let weather = &catalog.channels[8];
    assert_eq!(
        weather.source.url().map(|url| url.path()),
        Some("/live/weather/index.m3u8")
    );
    assert_eq!(
        catalog.ladder(weather).renditions[0].bitrate,
        3000,
        "weather uses the bench ladder"
    );
    // Defaults: the highest rendition, (3000 + 128) × 1.3 + 200 rounded up to 100 kbit/s.
    assert_eq!(
        weather.multicast,
        Some(Multicast {
            group: Ipv4Addr::new(239, 255, 1, 9),
            port: 5004,
            protocol: MulticastProtocol::Rtp,
            interface: Some("eth1".to_owned()),
            ttl: 0,
            rendition: "720p".to_owned(),
            mux_rate: 4_300_000,
        })
    );
    assert_eq!(
        weather.epg,
        Some(Epg::Xmltv {
            path: repo("manifests/epg/guide.xml"),
            channel: "weather.example.com".to_owned()
        })
    );
    assert_eq!(catalog.warnings, []);
}

/// The demo catalog `make run` starts: every channel has a multicast feed that stays
/// on the machine and a schedule that exists, and the files load together with the
/// example catalog (`headend check manifests/*.yaml pipelines/ladders.yaml`).
#[test]
fn demo_channels_have_local_multicast_feeds_and_schedules() {
    let catalog = Catalog::load(&[repo("manifests/demo.yaml"), repo(LADDERS)])
        .unwrap_or_else(|error| panic!("the demo catalog must load:\n{error}"));
    assert_eq!(catalog.warnings, []);
    let mut ports = Vec::new();
    for channel in &catalog.channels {
        let multicast = channel
            .multicast
            .as_ref()
            .unwrap_or_else(|| panic!("{} has no multicast feed", channel.id));
        assert_eq!(multicast.ttl, 0, "{}", channel.id);
        assert_eq!(multicast.group.octets()[..2], [239, 255], "{}", channel.id);
        assert_eq!(multicast.interface, None, "{}", channel.id);
        // The demo ladder's 480p: (1000 + 128) × 1.3 + 200 = 1666.4, rounded up.
        assert_eq!(
            (multicast.rendition.as_str(), multicast.mux_rate),
            ("480p", 1_700_000)
        );
        ports.push(multicast.port);
        let Some(Epg::Schedule { path }) = &channel.epg else {
            panic!("{} has no schedule", channel.id);
        };
        assert_eq!(
            path,
            &repo(&format!("manifests/epg/{}.yaml", channel.id)),
            "{}",
            channel.id
        );
    }
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), catalog.channels.len(), "ports must differ");

    let mut all: Vec<PathBuf> = std::fs::read_dir(repo("manifests"))
        .expect("manifests/")
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    all.sort();
    all.push(repo(LADDERS));
    if let Err(error) = Catalog::load(&all) {
        panic!("manifests/*.yaml must load together:\n{error}");
    }
}

#[test]
fn shipped_ladders_and_encoders() {
    let catalog = shipped();
    let names: Vec<&str> = catalog.ladders.keys().map(String::as_str).collect();
    assert_eq!(names, ["bench", "default", "demo"]);
    let names: Vec<&str> = catalog.encoders.keys().map(String::as_str).collect();
    assert_eq!(names, ["nvh264", "openh264", "vaapi", "x264"]);

    let demo = &catalog.ladders["demo"];
    assert_eq!(demo.encoder, "x264");
    assert_eq!(demo.segment_duration, Duration::from_secs(2));
    assert_eq!(demo.gop, Duration::from_secs(2));
    assert_eq!(demo.window, 6);
    assert_eq!(
        demo.renditions,
        [
            rendition("480p", 854, 480, 1000, H264Profile::Main, 25),
            rendition("360p", 640, 360, 600, H264Profile::Main, 25),
            rendition("240p", 426, 240, 300, H264Profile::Baseline, 25),
        ]
    );
    assert_eq!(
        demo.audio,
        Audio {
            codec: AudioCodec::Aac,
            bitrate: 128,
            channels: 2,
            sample_rate: 48_000
        }
    );
    let default: Vec<(&str, u32, &str)> = catalog.ladders["default"]
        .renditions
        .iter()
        .map(|r| (r.name.as_str(), r.bitrate, r.profile.as_str()))
        .collect();
    assert_eq!(
        default,
        [
            ("720p", 2500, "high"),
            ("480p", 1200, "main"),
            ("360p", 700, "main")
        ]
    );

    let x264 = catalog.encoder(demo);
    assert_eq!(x264.element, "x264enc");
    assert_eq!(x264.bitrate_unit, BitrateUnit::Kbps);
    assert_eq!(x264.gop_property.as_deref(), Some("key-int-max"));
    assert_eq!(x264.properties["option-string"], "scenecut=0:open-gop=0");
    assert_eq!(x264.properties["tune"], "zerolatency");

    let openh264 = &catalog.encoders["openh264"];
    assert_eq!(openh264.bitrate_unit, BitrateUnit::Bps);
    assert_eq!(openh264.properties["scene-change-detection"], "false");
}

fn rendition(
    name: &str,
    width: u32,
    height: u32,
    bitrate: u32,
    profile: H264Profile,
    max_framerate: u32,
) -> Rendition {
    Rendition {
        name: name.to_owned(),
        width,
        height,
        bitrate,
        profile,
        max_framerate,
    }
}

fn fixture(name: &str) -> PathBuf {
    repo(&format!("tests/fixtures/catalog/{name}.yaml"))
}

/// The problems of a fixture loaded beside the shipped ladders and encoders.
fn problems(name: &str) -> Vec<Problem> {
    match Catalog::load(&[fixture(name), repo(LADDERS)]) {
        Ok(_) => panic!("{name} must not load"),
        Err(CatalogError::Invalid(problems)) => problems,
        Err(error) => panic!("{name}: expected problems, got {error}"),
    }
}

/// Asserts the exact places of a fixture's problems, and that each message
/// holds its expected text.
fn assert_problems(name: &str, expected: &[(usize, usize, &str)]) {
    let problems = problems(name);
    let report = problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(problems.len(), expected.len(), "{name}:\n{report}");
    for (problem, &(line, column, message)) in problems.iter().zip(expected) {
        assert_eq!(problem.file, fixture(name), "{report}");
        assert_eq!(
            (problem.line, problem.column),
            (Some(line), Some(column)),
            "{report}"
        );
        assert!(
            problem.message.contains(message),
            "expected `{message}` in:\n{report}"
        );
    }
}

#[test]
fn syntax_error() {
    assert_problems(
        "syntax_error",
        &[(
            8,
            5,
            "did not find expected ',' or '}', while parsing a flow mapping at line 7 column 13",
        )],
    );
}

#[test]
fn unknown_field() {
    assert_problems(
        "unknown_field",
        &[(7, 5, "channels[0]: unknown field `colour`, expected one of")],
    );
}

#[test]
fn duplicate_id() {
    let first = format!("already used at {}:3:9", fixture("duplicate_id").display());
    assert_problems(
        "duplicate_id",
        &[(9, 9, &format!("channel id `news` is {first}"))],
    );
}

#[test]
fn duplicate_number() {
    let first = format!("{}:4:13", fixture("duplicate_number").display());
    assert_problems(
        "duplicate_number",
        &[(
            10,
            13,
            &format!("channel number 7 is already used by channel `news` at {first}"),
        )],
    );
}

#[test]
fn unknown_ladder() {
    assert_problems(
        "unknown_ladder",
        &[(
            8,
            13,
            "unknown ladder `uhd` (defined: bench, default, demo)",
        )],
    );
}

#[test]
fn unknown_encoder() {
    assert_problems(
        "unknown_encoder",
        &[(
            4,
            14,
            "unknown encoder profile `qsv` (defined: nvh264, openh264, vaapi, x264)",
        )],
    );
}

#[test]
fn bad_scheme() {
    assert_problems("bad_scheme", &[(8, 12, "unsupported source scheme `ftp`")]);
}

#[test]
fn gop_not_dividing() {
    assert_problems(
        "gop_not_dividing",
        &[(5, 10, "gop (1.5s) must divide segment_duration (2s)")],
    );
}

#[test]
fn out_of_order_ladder() {
    assert_problems(
        "out_of_order_ladder",
        &[
            (15, 17, "rendition `720p` (720 lines) must not be taller than `360p` above it (360 lines)"),
            (16, 18, "rendition `720p` (2500 kbit/s) must have a lower bitrate than `360p` above it (700 kbit/s)"),
        ],
    );
}

#[test]
fn duplicate_rendition_name() {
    assert_problems(
        "duplicate_rendition_name",
        &[(
            8,
            17,
            "rendition name `sd` is already used by renditions[0]",
        )],
    );
}

#[test]
fn several_problems_are_reported_at_once_in_file_order() {
    assert_problems(
        "several_problems",
        &[
            (3, 9, "channel id `News` must match ^[a-z0-9][a-z0-9_-]*$"),
            (4, 13, "channel number must be from 1 to 65535, not 0"),
            (7, 20, "udp:// source needs a port"),
            (
                14,
                13,
                "unknown ladder `hd` (defined: bench, default, demo, fixture)",
            ),
            (20, 13, "window must be at least 3 segments, not 2"),
            (
                22,
                17,
                "rendition name `audio` is reserved for the audio playlist",
            ),
            (22, 31, "width must be even and greater than 0, not 853"),
            (
                23,
                50,
                "audio channels must be 1 (mono) or 2 (stereo), not 6",
            ),
        ],
    );
}

#[test]
fn problems_from_every_file_are_reported_when_one_does_not_parse() {
    let error = Catalog::load(&[
        fixture("syntax_error"),
        fixture("gop_not_dividing"),
        repo(LADDERS),
    ])
    .expect_err("neither fixture is valid");
    let CatalogError::Invalid(problems) = error else {
        panic!("expected problems, got {error}");
    };
    let places: Vec<(PathBuf, Option<usize>)> =
        problems.into_iter().map(|p| (p.file, p.line)).collect();
    assert_eq!(
        places,
        [
            (fixture("syntax_error"), Some(8)),
            (fixture("gop_not_dividing"), Some(5)),
        ]
    );
}

#[test]
fn check_prints_one_problem_per_line_with_the_paths_as_given() {
    let error = Catalog::load(&["tests/fixtures/catalog/duplicate_id.yaml", LADDERS])
        .expect_err("duplicate ids");
    assert_eq!(
        error.to_string(),
        "tests/fixtures/catalog/duplicate_id.yaml:9:9: channel id `news` is already used at tests/fixtures/catalog/duplicate_id.yaml:3:9"
    );
}

#[test]
fn a_missing_file_is_an_io_error() {
    let missing = fixture("no_such_file");
    match Catalog::load(std::slice::from_ref(&missing)) {
        Err(CatalogError::Io { path, source }) => {
            assert_eq!(path, missing);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

// ---------------------------------------------------------------- multicast and EPG

/// Channels on the shipped `demo` ladder (480p 1000, 360p 600, 240p 300 kbit/s, audio
/// 128 kbit/s), each `(id, number, extra lines)`; the extra lines are indented under
/// the channel.
fn channels_yaml(channels: &[(&str, u32, &str)]) -> String {
    let mut text = String::from("channels:\n");
    for (id, number, extra) in channels {
        text.push_str(&format!(
            "  - id: {id}\n    number: {number}\n    name: {id}\n    group: Test\n    source: {{ uri: \"test://\" }}\n    ladder: demo\n"
        ));
        for line in extra.lines() {
            text.push_str(&format!("    {line}\n"));
        }
    }
    text
}

/// A catalog file and the files beside it (EPG files) in a temp dir.
struct Written {
    dir: TempDir,
    catalog: PathBuf,
}

fn write(catalog: &str, beside: &[(&str, &str)]) -> Written {
    let dir = TempDir::new("catalog");
    for (name, text) in beside {
        dir.write(name, &[text.as_bytes()]);
    }
    let catalog = dir.write("catalog.yaml", &[catalog.as_bytes()]);
    Written { dir, catalog }
}

impl Written {
    fn load(&self) -> Result<Catalog, CatalogError> {
        Catalog::load(&[self.catalog.clone(), repo(LADDERS)])
    }

    /// Every problem, as `headend check` prints it, with the temp dir's path cut to `.`.
    fn problems(&self) -> Vec<String> {
        match self.load() {
            Ok(catalog) => panic!("expected problems, loaded {:#?}", catalog.channels),
            Err(CatalogError::Invalid(problems)) => problems
                .iter()
                .map(|p| self.relative(&p.to_string()))
                .collect(),
            Err(error) => panic!("expected problems, got {error}"),
        }
    }

    fn relative(&self, text: &str) -> String {
        text.replace(&format!("{}/", self.dir.path().display()), "./")
    }
}

#[test]
fn multicast_fields_default_and_resolve() {
    let written = write(
        &channels_yaml(&[
            ("a", 1, "multicast: { group: 239.255.0.1, port: 5000 }"),
            (
                "b",
                2,
                "multicast: { group: 239.255.0.1, port: 5001, protocol: rtp, interface: lo, ttl: 1, rendition: 240p, mux_rate: 700 }",
            ),
            ("c", 3, ""),
        ]),
        &[],
    );
    let catalog = written.load().unwrap_or_else(|error| panic!("{error}"));
    let multicast: Vec<Option<&Multicast>> = catalog
        .channels
        .iter()
        .map(|c| c.multicast.as_ref())
        .collect();
    assert_eq!(
        multicast,
        [
            Some(&Multicast {
                group: Ipv4Addr::new(239, 255, 0, 1),
                port: 5000,
                protocol: MulticastProtocol::Udp,
                interface: None,
                ttl: 0,
                rendition: "480p".to_owned(),
                mux_rate: 1_700_000,
            }),
            Some(&Multicast {
                group: Ipv4Addr::new(239, 255, 0, 1),
                port: 5001,
                protocol: MulticastProtocol::Rtp,
                interface: Some("lo".to_owned()),
                ttl: 1,
                rendition: "240p".to_owned(),
                mux_rate: 700_000,
            }),
            None,
        ]
    );
}

#[test]
fn two_channels_on_one_group_and_port() {
    let written = write(
        &channels_yaml(&[
            ("a", 1, "multicast: { group: 239.255.0.1, port: 5000 }"),
            (
                "b",
                2,
                "multicast: { group: 239.255.0.1, port: 5000, protocol: rtp }",
            ),
        ]),
        &[],
    );
    assert_eq!(
        written.problems(),
        ["./catalog.yaml:15:44: multicast group 239.255.0.1 port 5000 is already used by channel `a` at ./catalog.yaml:8:44"]
    );
}

#[test]
fn unknown_multicast_rendition_lists_the_ladders() {
    let written = write(
        &channels_yaml(&[(
            "a",
            1,
            "multicast:\n  group: 239.255.0.1\n  port: 5000\n  rendition: 1080p",
        )]),
        &[],
    );
    assert_eq!(
        written.problems(),
        ["./catalog.yaml:11:18: unknown rendition `1080p` of ladder `demo` (renditions: 480p, 360p, 240p)"]
    );
    // Reported with the channel's other problems, not instead of them.
    let written = write(
        &channels_yaml(&[(
            "Bad",
            1,
            "multicast: { group: 239.255.0.1, port: 5000, rendition: 720p }",
        )]),
        &[],
    );
    assert_eq!(
        written.problems(),
        [
            "./catalog.yaml:2:9: channel id `Bad` must match ^[a-z0-9][a-z0-9_-]*$ and be at most 64 characters",
            "./catalog.yaml:8:61: unknown rendition `720p` of ladder `demo` (renditions: 480p, 360p, 240p)",
        ]
    );
}

#[test]
fn multicast_groups_ports_and_ttls_out_of_range() {
    let written = write(
        &channels_yaml(&[
            ("a", 1, "multicast: { group: 10.1.2.3, port: 0, ttl: 256 }"),
            ("b", 2, "multicast: { group: 224.0.0.251, port: 70000 }"),
            (
                "c",
                3,
                "multicast: { group: 239.1.1, port: 5000, interface: \"eth 0\" }",
            ),
        ]),
        &[],
    );
    assert_eq!(
        written.problems(),
        [
            "./catalog.yaml:8:25: multicast group 10.1.2.3 is not a multicast address (224.0.0.0 to 239.255.255.255)",
            "./catalog.yaml:8:41: multicast port must be from 1 to 65535, not 0",
            "./catalog.yaml:8:49: multicast ttl must be from 0 to 255, not 256",
            "./catalog.yaml:15:25: multicast group 224.0.0.251 is in 224.0.0.0/24, which is reserved for local network control protocols (RFC 5771)",
            "./catalog.yaml:15:44: multicast port must be from 1 to 65535, not 70000",
            "./catalog.yaml:22:25: multicast group `239.1.1` is not an IPv4 address",
            "./catalog.yaml:22:57: multicast interface `eth 0` is not a network interface name (1 to 15 characters, no spaces, `/` or `:`)",
        ]
    );
}

#[test]
fn a_mux_rate_below_the_minimum_names_both_rates() {
    let written = write(
        &channels_yaml(&[(
            "a",
            1,
            "multicast: { group: 239.255.0.1, port: 5000, mux_rate: 1390 }",
        )]),
        &[],
    );
    assert_eq!(
        written.problems(),
        ["./catalog.yaml:8:60: mux_rate 1390 kbit/s is below the minimum of 1390.8 kbit/s for 1000 kbit/s of video and 128 kbit/s of audio ((video + audio) × 1.10 + 150 kbit/s) of rendition `480p`"]
    );
}

#[test]
fn unknown_multicast_fields_and_protocols_are_refused() {
    let written = write(
        &channels_yaml(&[(
            "a",
            1,
            "multicast: { group: 239.255.0.1, port: 5000, protocol: srt }",
        )]),
        &[],
    );
    let problems = written.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("unknown variant `srt`, expected `udp` or `rtp`"),
        "{problems:?}"
    );
    let written = write(
        &channels_yaml(&[(
            "a",
            1,
            "multicast: { group: 239.255.0.1, port: 5000, tll: 4 }",
        )]),
        &[],
    );
    let problems = written.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("unknown field `tll`, expected one of `group`, `port`, `protocol`, `interface`, `ttl`, `rendition`, `mux_rate`"),
        "{problems:?}"
    );
}

#[test]
fn a_group_outside_the_site_local_range_is_a_warning() {
    let written = write(
        &channels_yaml(&[("a", 1, "multicast: { group: 233.252.0.1, port: 5000 }")]),
        &[],
    );
    let catalog = written.load().unwrap_or_else(|error| panic!("{error}"));
    let warnings: Vec<String> = catalog
        .warnings
        .iter()
        .map(|w| written.relative(&w.as_warning().to_string()))
        .collect();
    assert_eq!(
        warnings,
        ["./catalog.yaml:8:25: warning: multicast group 233.252.0.1 is outside 239.0.0.0/8, the range a site assigns for its own use (RFC 2365): make sure this group is yours to send to"]
    );
    assert!(catalog.channels[0].multicast.is_some());
}

const SCHEDULE: &str = "daily:\n  - { start: \"06:00\", title: Morning }\n";

const XMLTV: &str = r#"<?xml version="1.0"?>
<tv>
  <programme start="20260101060000 +0000" stop="20260101070000 +0000" channel="a.example.com"><title>A</title></programme>
</tv>
"#;

#[test]
fn epg_files_resolve_beside_the_catalog() {
    let written = write(
        &channels_yaml(&[
            ("a", 1, "epg: epg/a.yaml"),
            ("b", 2, "epg: { xmltv: guide.xml, channel: a.example.com }"),
            ("c", 3, ""),
        ]),
        &[("guide.xml", XMLTV)],
    );
    std::fs::create_dir_all(written.dir.path().join("epg")).expect("epg dir");
    written.dir.write("epg/a.yaml", &[SCHEDULE.as_bytes()]);
    let catalog = written.load().unwrap_or_else(|error| panic!("{error}"));
    let dir = written.dir.path();
    assert_eq!(
        catalog.channels[0].epg,
        Some(Epg::Schedule {
            path: dir.join("epg/a.yaml")
        })
    );
    assert_eq!(
        catalog.channels[1].epg,
        Some(Epg::Xmltv {
            path: dir.join("guide.xml"),
            channel: "a.example.com".to_owned()
        })
    );
    assert_eq!(catalog.channels[2].epg, None);
    assert_eq!(catalog.warnings, []);
}

#[test]
fn a_broken_schedule_is_reported_in_its_own_file() {
    let schedule = "utc_offset: \"+01:00\"\ndaily:\n  - { start: \"09:00\", title: A }\n  - { start: \"8:00\", title: B }\n  - { start: \"25:00\", title: C }\n";
    let written = write(
        &channels_yaml(&[("a", 1, "epg: a.yaml"), ("b", 2, "epg: a.yaml")]),
        &[("a.yaml", schedule)],
    );
    // Once, however many channels share the file.
    assert_eq!(
        written.problems(),
        [
            "./a.yaml:4:14: daily start 08:00:00 must be later than 09:00:00 of daily[0]: list daily programmes in the order they start",
            "./a.yaml:5:14: daily start must be a time of day such as \"06:00\" or \"21:30:00\", not `25:00`",
        ]
    );
    let written = write(
        &channels_yaml(&[("a", 1, "epg: a.yaml")]),
        &[("a.yaml", "daily:\n  - { start: \"06:00\", titel: A }\n")],
    );
    let problems = written.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("./a.yaml:2:") && problems[0].contains("unknown field `titel`"),
        "{problems:?}"
    );
}

#[test]
fn a_missing_or_misnamed_epg_file_is_placed_at_the_channel() {
    let written = write(
        &channels_yaml(&[
            ("a", 1, "epg: missing.yaml"),
            ("b", 2, "epg: guide.txt"),
            ("c", 3, "epg: { xmltv: guide.xml, chanel: x }"),
        ]),
        &[],
    );
    let problems = written.problems();
    assert_eq!(
        problems.len(),
        1,
        "a syntax error stops its file: {problems:?}"
    );
    assert!(
        problems[0].contains("unknown field `chanel`, expected `xmltv` or `channel`"),
        "{problems:?}"
    );
    let written = write(
        &channels_yaml(&[("a", 1, "epg: missing.yaml"), ("b", 2, "epg: guide.txt")]),
        &[],
    );
    assert_eq!(
        written.problems(),
        [
            "./catalog.yaml:8:10: cannot read epg file ./missing.yaml: No such file or directory (os error 2)",
            "./catalog.yaml:15:10: epg file `guide.txt` must be a schedule (.yaml, .yml) or an XMLTV file (.xml); write { xmltv: FILE } for an XMLTV file with another name",
        ]
    );
}

#[test]
fn a_broken_xmltv_file_is_reported_in_its_own_file() {
    let broken = XMLTV.replace("</title></programme>", "</title></programme");
    let written = write(
        &channels_yaml(&[("a", 1, "epg: { xmltv: guide.xml, channel: a.example.com }")]),
        &[("guide.xml", &broken)],
    );
    let problems = written.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("./guide.xml:3:") && problems[0].contains("not well-formed XML"),
        "{problems:?}"
    );
    let bad_time = XMLTV.replace("stop=\"20260101070000 +0000\"", "stop=\"tomorrow\"");
    let written = write(
        &channels_yaml(&[("a", 1, "epg: { xmltv: guide.xml, channel: a.example.com }")]),
        &[("guide.xml", &bad_time)],
    );
    assert_eq!(
        written.problems(),
        ["./guide.xml:3:3: programme of channel `a.example.com` has stop=\"tomorrow\", not an XMLTV time such as \"20261224200000 +0100\""]
    );
}

#[test]
fn an_xmltv_file_without_the_channel_is_a_warning() {
    // `epg: guide.xml` takes the headend channel id, which this file does not use.
    let written = write(
        &channels_yaml(&[("a", 1, "epg: guide.xml")]),
        &[("guide.xml", XMLTV)],
    );
    let catalog = written.load().unwrap_or_else(|error| panic!("{error}"));
    let warnings: Vec<String> = catalog
        .warnings
        .iter()
        .map(|w| written.relative(&w.as_warning().to_string()))
        .collect();
    assert_eq!(
        warnings,
        ["./catalog.yaml:8:10: warning: XMLTV file ./guide.xml has no programme for channel `a`"]
    );
}

/// `headend check` itself: warnings on stderr and success, errors on stderr and
/// failure, one per line.
#[test]
fn check_prints_warnings_and_errors() {
    let check = |written: &Written| {
        let output = Command::new(env!("CARGO_BIN_EXE_headend"))
            .arg("check")
            .arg(&written.catalog)
            .arg(repo(LADDERS))
            .output()
            .expect("runs headend check");
        (
            output.status.success(),
            written.relative(&String::from_utf8_lossy(&output.stdout)),
            written.relative(&String::from_utf8_lossy(&output.stderr)),
        )
    };
    let warned = write(
        &channels_yaml(&[("a", 1, "multicast: { group: 233.252.0.1, port: 5000 }")]),
        &[],
    );
    assert_eq!(
        check(&warned),
        (
            true,
            "ok: 1 channels, 0 VOD assets, 3 ladders, 4 encoder profiles\n".to_owned(),
            "./catalog.yaml:8:25: warning: multicast group 233.252.0.1 is outside 239.0.0.0/8, the range a site assigns for its own use (RFC 2365): make sure this group is yours to send to\n".to_owned()
        )
    );
    let broken = write(
        &channels_yaml(&[(
            "a",
            1,
            "multicast: { group: 239.255.0.1, port: 5000, ttl: 300 }\nepg: a.yaml",
        )]),
        &[("a.yaml", "daily: [{ start: \"6\", title: A }]\n")],
    );
    assert_eq!(
        check(&broken),
        (
            false,
            String::new(),
            "./catalog.yaml:8:55: multicast ttl must be from 0 to 255, not 300\n\
             ./a.yaml:1:18: daily start must be a time of day such as \"06:00\" or \"21:30:00\", not `6`\n"
                .to_owned()
        )
    );
}
