//! `/metrics`: the Prometheus text exposition format (version 0.0.4), written here.
//! The format is a few lines of text per series; a metrics crate would bring a
//! registry and its own types for what is a handful of counters and gauges read from
//! values the headend keeps anyway.
//!
//! Every label's values are bounded: channel and track ids come from the catalog,
//! states from fixed lists, HTTP routes are the route's kind (never the raw path, which
//! a client chooses) and statuses the few codes the origin answers with.
//!
//! Format rules followed (prometheus/docs `exposition_formats.md`): `# HELP` then
//! `# TYPE` once per family before its samples; label values escape `\`, `"` and
//! newlines; HELP text escapes `\` and newlines; values are Go-style floats (`NaN`,
//! `+Inf`); a counter's name ends in `_total`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use hyper::StatusCode;

use crate::reload::{CatalogStatus, ReloadResult};
use crate::status::{AssetState, AssetStatus, ChannelSnapshot, ChannelState};

/// `Content-Type` of the text format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a request asked for, as `headend_http_requests_total` labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum RouteKind {
    Health,
    Ready,
    Metrics,
    Time,
    Playlist,
    Guide,
    Master,
    MediaPlaylist,
    Init,
    Segment,
    Manifest,
    Ts,
    Vod,
    Api,
    /// The operator and player pages and their files.
    Page,
    Thumbnail,
    /// No route: a path that names nothing, or a malformed one.
    Unknown,
}

impl RouteKind {
    const ALL: [RouteKind; 17] = [
        RouteKind::Health,
        RouteKind::Ready,
        RouteKind::Metrics,
        RouteKind::Time,
        RouteKind::Playlist,
        RouteKind::Guide,
        RouteKind::Master,
        RouteKind::MediaPlaylist,
        RouteKind::Init,
        RouteKind::Segment,
        RouteKind::Manifest,
        RouteKind::Ts,
        RouteKind::Vod,
        RouteKind::Api,
        RouteKind::Page,
        RouteKind::Thumbnail,
        RouteKind::Unknown,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RouteKind::Health => "health",
            RouteKind::Ready => "ready",
            RouteKind::Metrics => "metrics",
            RouteKind::Time => "time",
            RouteKind::Playlist => "playlist",
            RouteKind::Guide => "guide",
            RouteKind::Master => "master",
            RouteKind::MediaPlaylist => "media_playlist",
            RouteKind::Init => "init",
            RouteKind::Segment => "segment",
            RouteKind::Manifest => "manifest",
            RouteKind::Ts => "ts",
            RouteKind::Vod => "vod",
            RouteKind::Api => "api",
            RouteKind::Page => "page",
            RouteKind::Thumbnail => "thumbnail",
            RouteKind::Unknown => "unknown",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The origin's request counters.
#[derive(Debug, Default)]
pub(crate) struct HttpMetrics {
    /// Answers by route and status.
    requests: Mutex<BTreeMap<(RouteKind, u16), u64>>,
    /// Body bytes by route, indexed by `RouteKind::index`.
    bytes: [AtomicU64; RouteKind::ALL.len()],
}

impl HttpMetrics {
    /// One answer, and the bytes of its body known now (a stream adds its own as it
    /// goes, see [`add_bytes`](Self::add_bytes)).
    pub(crate) fn record(&self, route: RouteKind, status: StatusCode, body_bytes: u64) {
        *self
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((route, status.as_u16()))
            .or_default() += 1;
        self.add_bytes(route, body_bytes);
    }

    pub(crate) fn add_bytes(&self, route: RouteKind, bytes: u64) {
        if bytes > 0 {
            self.bytes[route.index()].fetch_add(bytes, Ordering::Relaxed);
        }
    }

    fn requests(&self) -> Vec<((RouteKind, u16), u64)> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(key, count)| (*key, *count))
            .collect()
    }

    fn bytes(&self, route: RouteKind) -> u64 {
        self.bytes[route.index()].load(Ordering::Relaxed)
    }
}

/// Everything one scrape reports, read out before it is written.
pub(crate) struct Scrape<'a> {
    pub now: SystemTime,
    pub channels: &'a [ChannelSnapshot],
    /// `/ts/` clients per channel in the store.
    pub ts_clients: &'a BTreeMap<String, usize>,
    pub http: &'a HttpMetrics,
    /// The catalog reloader's status, when the origin has one.
    pub catalog: Option<&'a CatalogStatus>,
    pub assets: &'a [AssetStatus],
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// A text exposition being written.
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{label}=\"");
                for c in value.chars() {
                    match c {
                        '\\' => self.0.push_str("\\\\"),
                        '"' => self.0.push_str("\\\""),
                        '\n' => self.0.push_str("\\n"),
                        c => self.0.push(c),
                    }
                }
                self.0.push('"');
            }
            self.0.push('}');
        }
        self.0.push(' ');
        self.0.push_str(&number(value));
        self.0.push('\n');
    }
}

/// A sample value as Prometheus reads it (Go's `ParseFloat`).
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        // Rust prints the shortest text that reads back as the same f64, without an
        // exponent: `3`, `0.25`, `1234567`.
        format!("{value}")
    }
}

/// The whole `/metrics` answer.
pub(crate) fn render(scrape: &Scrape<'_>) -> String {
    let mut out = Exposition(String::new());
    let channels = scrape.channels;

    out.family(
        "headend_build_info",
        Kind::Gauge,
        "The headend's version, as a label; always 1.",
    );
    out.sample(
        "headend_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );

    out.family(
        "headend_channel_state",
        Kind::Gauge,
        "1 for the state each channel is in (starting, live, failover, slate, error, stopped), 0 for the others.",
    );
    for channel in channels {
        for state in ChannelState::ALL {
            let value = if channel.state == state { 1.0 } else { 0.0 };
            out.sample(
                "headend_channel_state",
                &[("channel", &channel.id), ("state", state.as_str())],
                value,
            );
        }
    }
    let per_channel = |out: &mut Exposition,
                       name: &str,
                       kind: Kind,
                       help: &str,
                       value: &dyn Fn(&ChannelSnapshot) -> Option<f64>| {
        out.family(name, kind, help);
        for channel in channels {
            if let Some(value) = value(channel) {
                out.sample(name, &[("channel", &channel.id)], value);
            }
        }
    };
    per_channel(
        &mut out,
        "headend_channel_restarts_total",
        Kind::Counter,
        "Pipeline restarts after a failure.",
        &|c| Some(c.restarts as f64),
    );
    per_channel(
        &mut out,
        "headend_channel_failovers_total",
        Kind::Counter,
        "Switches from an input to the next one: primary to backup, or to the slate.",
        &|c| Some(c.failovers as f64),
    );
    per_channel(
        &mut out,
        "headend_channel_uptime_seconds",
        Kind::Gauge,
        "Seconds since the channel's current pipeline run went live (only while live).",
        &|c| c.uptime(scrape.now).map(|d| d.as_secs_f64()),
    );
    per_channel(
        &mut out,
        "headend_channel_input_bytes_total",
        Kind::Counter,
        "Bytes that entered the channel's pipeline from its source (test:// counts raw pictures and samples).",
        &|c| Some(c.input_bytes as f64),
    );
    per_channel(
        &mut out,
        "headend_live_edge_delay_seconds",
        Kind::Gauge,
        "Seconds since the end of the channel's newest published segment.",
        &|c| c.live_edge_age(scrape.now).map(|d| d.as_secs_f64()),
    );
    per_channel(
        &mut out,
        "headend_channel_viewers",
        Kind::Gauge,
        "Active viewers: /ts/ clients plus HLS and DASH players estimated from segment requests.",
        &|c| Some((c.segment_viewers + ts_clients(scrape, &c.id)) as f64),
    );

    out.family(
        "headend_segments_total",
        Kind::Counter,
        "Segments published, per channel and track.",
    );
    for channel in channels {
        for track in &channel.tracks {
            out.sample(
                "headend_segments_total",
                &[("channel", &channel.id), ("track", &track.name)],
                track.segments as f64,
            );
        }
    }
    out.family(
        "headend_encode_speed",
        Kind::Gauge,
        "Content seconds each rendition's encoder produced per wall-clock second over the last 10 s (about 1 while it keeps up).",
    );
    for channel in channels {
        for track in &channel.tracks {
            if let Some(speed) = track.encode_speed {
                out.sample(
                    "headend_encode_speed",
                    &[("channel", &channel.id), ("rendition", &track.name)],
                    speed,
                );
            }
        }
    }

    out.family(
        "headend_ts_clients",
        Kind::Gauge,
        "HTTP MPEG-TS (/ts/) clients connected now.",
    );
    for (channel, clients) in scrape.ts_clients {
        out.sample(
            "headend_ts_clients",
            &[("channel", channel)],
            *clients as f64,
        );
    }

    out.family(
        "headend_http_requests_total",
        Kind::Counter,
        "HTTP requests answered, by route kind and status.",
    );
    for ((route, status), count) in scrape.http.requests() {
        out.sample(
            "headend_http_requests_total",
            &[("route", route.as_str()), ("status", &status.to_string())],
            count as f64,
        );
    }
    out.family(
        "headend_http_response_bytes_total",
        Kind::Counter,
        "Bytes of response bodies sent, by route kind.",
    );
    for route in RouteKind::ALL {
        out.sample(
            "headend_http_response_bytes_total",
            &[("route", route.as_str())],
            scrape.http.bytes(route) as f64,
        );
    }

    if let Some(catalog) = scrape.catalog {
        out.family(
            "headend_catalog_reload_failures_total",
            Kind::Counter,
            "Catalog reloads rejected (an invalid edit); the running catalog stayed.",
        );
        out.sample(
            "headend_catalog_reload_failures_total",
            &[],
            catalog.rejected as f64,
        );
        out.family(
            "headend_catalog_last_reload_success",
            Kind::Gauge,
            "0 if the latest catalog reload was rejected, else 1.",
        );
        let rejected = catalog
            .last_reload
            .as_ref()
            .is_some_and(|r| matches!(r.result, ReloadResult::Rejected(_)));
        out.sample(
            "headend_catalog_last_reload_success",
            &[],
            if rejected { 0.0 } else { 1.0 },
        );
    }

    out.family(
        "headend_vod_assets",
        Kind::Gauge,
        "VOD assets of the catalog by ingest status.",
    );
    for state in AssetState::ALL {
        let count = scrape.assets.iter().filter(|a| a.state == state).count();
        out.sample(
            "headend_vod_assets",
            &[("status", state.as_str())],
            count as f64,
        );
    }
    out.0
}

fn ts_clients(scrape: &Scrape<'_>, channel: &str) -> u64 {
    scrape.ts_clients.get(channel).map_or(0, |n| *n as u64)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::reload::{ReloadOutcome, Trigger};
    use crate::status::TrackSnapshot;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn channel(id: &str, state: ChannelState) -> ChannelSnapshot {
        ChannelSnapshot {
            id: id.to_owned(),
            state,
            since: at(100),
            live_since: (state == ChannelState::Live).then(|| at(100)),
            restarts: 2,
            failovers: 0,
            input: Some("test://".to_owned()),
            input_bitrate: Some(8000.0),
            input_bytes: 1000,
            last_error: None,
            segment_duration: Duration::from_secs(2),
            newest_segment_end: (state == ChannelState::Live).then(|| at(109)),
            tracks: vec![
                TrackSnapshot {
                    name: "720p".to_owned(),
                    segments: 5,
                    encode_speed: Some(0.98),
                },
                TrackSnapshot {
                    name: "audio".to_owned(),
                    segments: 5,
                    encode_speed: None,
                },
            ],
            segment_viewers: 3,
            ready: true,
        }
    }

    #[test]
    fn a_scrape_is_the_exact_text_format() {
        let http = HttpMetrics::default();
        http.record(RouteKind::Segment, StatusCode::OK, 1000);
        http.record(RouteKind::Segment, StatusCode::OK, 500);
        http.record(RouteKind::Unknown, StatusCode::NOT_FOUND, 10);
        http.add_bytes(RouteKind::Ts, 188);
        let ts_clients = BTreeMap::from([("news".to_owned(), 2)]);
        let catalog = CatalogStatus {
            files: vec![PathBuf::from("c.yaml")],
            loaded_at: at(0),
            channels: vec!["news".to_owned()],
            last_reload: Some(ReloadOutcome {
                trigger: Trigger::FileChange,
                at: at(50),
                result: ReloadResult::Rejected(Vec::new()),
            }),
            rejected: 1,
        };
        let channels = [channel("news", ChannelState::Live)];
        let text = render(&Scrape {
            now: at(110),
            channels: &channels,
            ts_clients: &ts_clients,
            http: &http,
            catalog: Some(&catalog),
            assets: &[],
        });
        let expected = format!(
            "\
# HELP headend_build_info The headend's version, as a label; always 1.
# TYPE headend_build_info gauge
headend_build_info{{version=\"{}\"}} 1
# HELP headend_channel_state 1 for the state each channel is in (starting, live, failover, slate, error, stopped), 0 for the others.
# TYPE headend_channel_state gauge
headend_channel_state{{channel=\"news\",state=\"starting\"}} 0
headend_channel_state{{channel=\"news\",state=\"live\"}} 1
headend_channel_state{{channel=\"news\",state=\"failover\"}} 0
headend_channel_state{{channel=\"news\",state=\"slate\"}} 0
headend_channel_state{{channel=\"news\",state=\"error\"}} 0
headend_channel_state{{channel=\"news\",state=\"stopped\"}} 0
# HELP headend_channel_restarts_total Pipeline restarts after a failure.
# TYPE headend_channel_restarts_total counter
headend_channel_restarts_total{{channel=\"news\"}} 2
# HELP headend_channel_failovers_total Switches from an input to the next one: primary to backup, or to the slate.
# TYPE headend_channel_failovers_total counter
headend_channel_failovers_total{{channel=\"news\"}} 0
# HELP headend_channel_uptime_seconds Seconds since the channel's current pipeline run went live (only while live).
# TYPE headend_channel_uptime_seconds gauge
headend_channel_uptime_seconds{{channel=\"news\"}} 10
# HELP headend_channel_input_bytes_total Bytes that entered the channel's pipeline from its source (test:// counts raw pictures and samples).
# TYPE headend_channel_input_bytes_total counter
headend_channel_input_bytes_total{{channel=\"news\"}} 1000
# HELP headend_live_edge_delay_seconds Seconds since the end of the channel's newest published segment.
# TYPE headend_live_edge_delay_seconds gauge
headend_live_edge_delay_seconds{{channel=\"news\"}} 1
# HELP headend_channel_viewers Active viewers: /ts/ clients plus HLS and DASH players estimated from segment requests.
# TYPE headend_channel_viewers gauge
headend_channel_viewers{{channel=\"news\"}} 5
# HELP headend_segments_total Segments published, per channel and track.
# TYPE headend_segments_total counter
headend_segments_total{{channel=\"news\",track=\"720p\"}} 5
headend_segments_total{{channel=\"news\",track=\"audio\"}} 5
# HELP headend_encode_speed Content seconds each rendition's encoder produced per wall-clock second over the last 10 s (about 1 while it keeps up).
# TYPE headend_encode_speed gauge
headend_encode_speed{{channel=\"news\",rendition=\"720p\"}} 0.98
# HELP headend_ts_clients HTTP MPEG-TS (/ts/) clients connected now.
# TYPE headend_ts_clients gauge
headend_ts_clients{{channel=\"news\"}} 2
# HELP headend_http_requests_total HTTP requests answered, by route kind and status.
# TYPE headend_http_requests_total counter
headend_http_requests_total{{route=\"segment\",status=\"200\"}} 2
headend_http_requests_total{{route=\"unknown\",status=\"404\"}} 1
# HELP headend_http_response_bytes_total Bytes of response bodies sent, by route kind.
# TYPE headend_http_response_bytes_total counter
{}\
# HELP headend_catalog_reload_failures_total Catalog reloads rejected (an invalid edit); the running catalog stayed.
# TYPE headend_catalog_reload_failures_total counter
headend_catalog_reload_failures_total 1
# HELP headend_catalog_last_reload_success 0 if the latest catalog reload was rejected, else 1.
# TYPE headend_catalog_last_reload_success gauge
headend_catalog_last_reload_success 0
# HELP headend_vod_assets VOD assets of the catalog by ingest status.
# TYPE headend_vod_assets gauge
headend_vod_assets{{status=\"pending\"}} 0
headend_vod_assets{{status=\"ingesting\"}} 0
headend_vod_assets{{status=\"published\"}} 0
headend_vod_assets{{status=\"failed\"}} 0
",
            env!("CARGO_PKG_VERSION"),
            RouteKind::ALL
                .iter()
                .map(|r| {
                    let bytes = match r {
                        RouteKind::Segment => 1500,
                        RouteKind::Unknown => 10,
                        RouteKind::Ts => 188,
                        _ => 0,
                    };
                    format!(
                        "headend_http_response_bytes_total{{route=\"{}\"}} {bytes}\n",
                        r.as_str()
                    )
                })
                .collect::<String>()
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn label_values_and_help_are_escaped_and_values_are_go_floats() {
        let mut out = Exposition(String::new());
        out.family("m", Kind::Gauge, "a \\ b\nc");
        out.sample("m", &[("l", "q\"x\\y\nz")], f64::NAN);
        out.sample("m", &[], f64::INFINITY);
        out.sample("m", &[], f64::NEG_INFINITY);
        out.sample("m", &[], 0.25);
        out.sample("m", &[], 1e21);
        assert_eq!(
            out.0,
            "# HELP m a \\\\ b\\nc\n# TYPE m gauge\nm{l=\"q\\\"x\\\\y\\nz\"} NaN\nm +Inf\nm -Inf\nm 0.25\nm 1000000000000000000000\n"
        );
    }

    #[test]
    fn route_kinds_index_their_own_slot() {
        for (i, route) in RouteKind::ALL.iter().enumerate() {
            assert_eq!(route.index(), i, "{route:?}");
        }
    }
}
