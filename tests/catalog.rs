//! The shipped catalog loads, and every broken fixture is reported with the
//! right message at the right line and column.

use std::path::{Path, PathBuf};
use std::time::Duration;

use headend::catalog::{
    Audio, AudioCodec, BitrateUnit, Catalog, CatalogError, H264Profile, Outputs, Problem,
    Rendition, SourceScheme,
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
            ("news", 1, SourceScheme::Test),
            ("movies", 2, SourceScheme::File),
            ("sport", 3, SourceScheme::Udp),
            ("music", 4, SourceScheme::Rtp),
            ("studio", 5, SourceScheme::Srt),
            ("field", 6, SourceScheme::Srt),
            ("events", 7, SourceScheme::Rtmp),
            ("weather-cam", 8, SourceScheme::Rtsp),
            ("weather", 9, SourceScheme::Hls),
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
            (4, 13, "channel number must be greater than 0"),
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
