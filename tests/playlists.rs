//! `/playlist.m3u` and `/epg.xml` end to end: the real binary serves a catalog with a
//! daily schedule, an operator's XMLTV file and a channel without a guide, and a strict
//! M3U parser, roxmltree and chrono read what it answers.
//!
//! The channels' sources are UDP ports nobody sends to: the listings need a catalog,
//! not pictures, so no channel encodes (cheap on a two-core machine) and none of the
//! channels' multicast feeds ever sends a packet outside a private network namespace.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use common::{Headend, TempDir, X264_ULTRAFAST};

/// One channel as the catalog has it, and as the listings must show it.
struct Expected {
    id: &'static str,
    number: u32,
    /// As written in the catalog.
    name: &'static str,
    /// As the M3U carries it: `"` cannot appear in an attribute.
    m3u_name: &'static str,
    group: &'static str,
    logo: Option<&'static str>,
    multicast: Option<&'static str>,
}

/// In channel-number order, the order of both listings.
const CHANNELS: [Expected; 3] = [
    Expected {
        id: "sport",
        number: 2,
        name: "Sport \"Live\", Today",
        m3u_name: "Sport 'Live', Today",
        group: "Sport & Games",
        logo: None,
        multicast: Some("udp://@239.255.42.2:5002"),
    },
    Expected {
        id: "news",
        number: 5,
        name: "Newsroom",
        m3u_name: "Newsroom",
        group: "News",
        logo: Some("https://static.example.com/logos/news.png"),
        multicast: Some("rtp://@239.255.42.1:5000"),
    },
    Expected {
        id: "radio",
        number: 9,
        name: "Radio",
        m3u_name: "Radio",
        group: "Music",
        logo: None,
        multicast: None,
    },
];

/// Daily programmes in a fixed offset: three a day, so one always covers now.
const NEWS_SCHEDULE: &str = r#"utc_offset: "+02:00"
daily:
  - { start: "06:00", title: "Morning News", description: "Headlines & weather", category: News }
  - { start: "12:00", title: "Midday <Live>", category: News }
  - { start: "20:00", title: "Evening News" }
"#;

/// A UDP port on loopback that nothing sends to.
fn idle_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|e| panic!("binding a UDP port: {e}"))
}

fn catalog_yaml() -> String {
    let [a, b, c] = [idle_udp_port(), idle_udp_port(), idle_udp_port()];
    format!(
        r#"{X264_ULTRAFAST}
ladders:
  tiny:
    segment_duration: 1
    gop: 1
    renditions:
      - {{ name: 240p, width: 320, height: 240, bitrate: 300, profile: main, max_framerate: 25 }}
    audio: {{ codec: aac, bitrate: 64, channels: 2 }}
channels:
  - id: news
    number: 5
    name: Newsroom
    group: News
    logo: "https://static.example.com/logos/news.png"
    source: {{ uri: "udp://127.0.0.1:{a}" }}
    ladder: tiny
    multicast: {{ group: 239.255.42.1, port: 5000, protocol: rtp }}
    epg: epg/news.yaml
  - id: sport
    number: 2
    name: 'Sport "Live", Today'
    group: "Sport & Games"
    source: {{ uri: "udp://127.0.0.1:{b}" }}
    ladder: tiny
    multicast: {{ group: 239.255.42.2, port: 5002 }}
    epg: {{ xmltv: guide.xml, channel: sport.example.com }}
  - id: radio
    number: 9
    name: Radio
    group: Music
    source: {{ uri: "udp://127.0.0.1:{c}" }}
    ladder: tiny
"#
    )
}

fn xmltv_time(time: DateTime<Utc>) -> String {
    time.format("%Y%m%d%H%M%S +0000").to_string()
}

/// An operator's XMLTV guide: two programmes of `sport.example.com` around now, one
/// long gone and one far ahead (both outside the guide's window), and one of a channel
/// the catalog does not take.
fn guide_xml(now: DateTime<Utc>) -> String {
    let at = |hours: i64| xmltv_time(now + TimeDelta::hours(hours));
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<tv>
  <programme start="{}" stop="{}" channel="sport.example.com"><title>Match &amp; Highlights</title><desc>Live</desc><category>Sports</category></programme>
  <programme start="{}" stop="{}" channel="sport.example.com"><title>Studio</title></programme>
  <programme start="{}" stop="{}" channel="sport.example.com"><title>Long Gone</title></programme>
  <programme start="{}" stop="{}" channel="sport.example.com"><title>Far Ahead</title></programme>
  <programme start="{}" stop="{}" channel="other.example.com"><title>Not Ours</title></programme>
</tv>
"#,
        at(-1),
        at(1),
        at(1),
        at(3),
        at(-24 * 30),
        at(-24 * 30 + 1),
        at(24 * 30),
        at(24 * 30 + 1),
        at(0),
        at(1),
    )
}

/// The catalog, its schedule and the XMLTV file in a fresh temp dir.
fn catalog_dir() -> (TempDir, PathBuf) {
    let dir = TempDir::new("playlists");
    std::fs::create_dir_all(dir.path().join("epg")).expect("epg dir");
    dir.write("epg/news.yaml", &[NEWS_SCHEDULE.as_bytes()]);
    dir.write("guide.xml", &[guide_xml(Utc::now()).as_bytes()]);
    let catalog = dir.write("catalog.yaml", &[catalog_yaml().as_bytes()]);
    (dir, catalog)
}

fn start(args: &[&str]) -> Headend {
    let (dir, catalog) = catalog_dir();
    Headend::start_in(dir, &catalog, args)
}

// ---------------------------------------------------------------- a strict M3U reader

#[derive(Debug)]
struct Playlist {
    /// Attributes of the `#EXTM3U` line.
    header: Vec<(String, String)>,
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    attributes: Vec<(String, String)>,
    title: String,
    url: String,
}

impl Entry {
    fn attribute(&self, name: &str) -> Option<&str> {
        attribute(&self.attributes, name)
    }
}

fn attribute<'a>(attributes: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// ` name="value" name="value"` up to (not including) `end`, or the end of `text`;
/// returns the attributes and the rest after them. Panics on anything else.
fn attributes(mut text: &str) -> (Vec<(String, String)>, &str) {
    let mut found = Vec::new();
    while let Some(rest) = text.strip_prefix(' ') {
        let (name, rest) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("attribute without =\"…\" in {rest:?}"));
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
            "bad attribute name {name:?}"
        );
        let (value, rest) = rest
            .split_once('"')
            .unwrap_or_else(|| panic!("unterminated value of {name}"));
        assert!(
            found.iter().all(|(n, _)| n != name),
            "attribute {name} given twice"
        );
        found.push((name.to_owned(), value.to_owned()));
        text = rest;
    }
    (found, text)
}

/// `#EXTM3U [attrs]`, then for each channel `#EXTINF:-1 attrs,title` and a URL line;
/// nothing else, every line ended by `\n`.
fn parse_m3u(text: &str) -> Playlist {
    assert!(text.ends_with('\n'), "the playlist must end with a newline");
    let mut lines = text.lines();
    let first = lines.next().expect("a first line");
    let header = first
        .strip_prefix("#EXTM3U")
        .unwrap_or_else(|| panic!("first line {first:?} is not #EXTM3U"));
    let (header, rest) = attributes(header);
    assert_eq!(rest, "", "junk after the #EXTM3U attributes");
    let mut entries = Vec::new();
    while let Some(line) = lines.next() {
        let info = line
            .strip_prefix("#EXTINF:-1")
            .unwrap_or_else(|| panic!("{line:?} is not an #EXTINF:-1 line"));
        let (attributes, rest) = attributes(info);
        let title = rest
            .strip_prefix(',')
            .unwrap_or_else(|| panic!("no `,title` after the attributes in {line:?}"));
        assert!(!title.is_empty(), "empty title in {line:?}");
        let url = lines
            .next()
            .unwrap_or_else(|| panic!("no URL after {line:?}"));
        assert!(
            !url.is_empty() && !url.starts_with('#') && !url.contains(char::is_whitespace),
            "bad URL line {url:?}"
        );
        entries.push(Entry {
            attributes,
            title: title.to_owned(),
            url: url.to_owned(),
        });
    }
    Playlist { header, entries }
}

fn playlist(headend: &Headend, query: &str) -> Playlist {
    let response = headend.get(&format!("/playlist.m3u{query}"));
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("audio/x-mpegurl"));
    parse_m3u(&response.text())
}

/// A request written by hand, to choose the Host header (or leave it out).
fn raw_get(addr: SocketAddr, head: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(head.as_bytes()).expect("writes");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("reads");
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {answer:?}"));
    (head.to_owned(), body.to_owned())
}

// ---------------------------------------------------------------- the playlist

#[test]
fn the_playlist_agrees_with_the_catalog_for_every_transport() {
    let headend = start(&[]);
    let base = format!("http://{}", headend.addr());

    let hls = playlist(&headend, "");
    assert_eq!(
        hls.header,
        [("x-tvg-url".to_owned(), format!("{base}/epg.xml"))]
    );
    assert_eq!(hls.entries.len(), CHANNELS.len());
    for (entry, channel) in hls.entries.iter().zip(&CHANNELS) {
        let mut expected = vec![
            ("tvg-id", channel.id.to_owned()),
            ("tvg-chno", channel.number.to_string()),
            ("tvg-name", channel.m3u_name.to_owned()),
        ];
        if let Some(logo) = channel.logo {
            expected.push(("tvg-logo", logo.to_owned()));
        }
        expected.push(("group-title", channel.group.to_owned()));
        let attributes: Vec<(&str, String)> = entry
            .attributes
            .iter()
            .map(|(n, v)| (n.as_str(), v.clone()))
            .collect();
        assert_eq!(attributes, expected, "{}", channel.id);
        assert_eq!(entry.title, channel.m3u_name);
        assert_eq!(entry.url, format!("{base}/live/{}/master.m3u8", channel.id));
    }
    // `hls` is the default, said or not.
    let said = playlist(&headend, "?transport=hls");
    let urls = |p: &Playlist| p.entries.iter().map(|e| e.url.clone()).collect::<Vec<_>>();
    assert_eq!(urls(&said), urls(&hls));

    let http = playlist(&headend, "?transport=http");
    let expected: Vec<String> = CHANNELS
        .iter()
        .map(|c| format!("{base}/ts/{}", c.id))
        .collect();
    assert_eq!(urls(&http), expected);
    assert_eq!(http.header, hls.header);

    // Only the channels with a multicast feed, still by number.
    let multicast = playlist(&headend, "?transport=multicast");
    let expected: Vec<(&str, &str)> = CHANNELS
        .iter()
        .filter_map(|c| Some((c.id, c.multicast?)))
        .collect();
    let listed: Vec<(&str, &str)> = multicast
        .entries
        .iter()
        .map(|e| (e.attribute("tvg-id").unwrap_or_default(), e.url.as_str()))
        .collect();
    assert_eq!(listed, expected);

    // Every URL is absolute and parses.
    for entry in hls
        .entries
        .iter()
        .chain(&http.entries)
        .chain(&multicast.entries)
    {
        let url = url::Url::parse(&entry.url).unwrap_or_else(|e| panic!("{}: {e}", entry.url));
        assert!(url.has_host(), "{}", entry.url);
    }
}

#[test]
fn an_unknown_transport_is_a_bad_request() {
    let headend = start(&[]);
    for query in [
        "?transport=dash",
        "?transport=",
        "?transport=HLS",
        "?transport=hls&transport=http",
    ] {
        let response = headend.get(&format!("/playlist.m3u{query}"));
        assert_eq!(response.status, 400, "{query}: {}", response.text());
        assert_eq!(
            response.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "{query}"
        );
        assert!(
            response
                .text()
                .contains("hls (the default), http or multicast"),
            "{query}: {}",
            response.text()
        );
    }
    // Other parameters (cache busters) are ignored.
    assert_eq!(playlist(&headend, "?_=1234").entries.len(), CHANNELS.len());
}

#[test]
fn urls_follow_the_host_asked_for_or_the_address_reached() {
    let headend = start(&[]);
    let (head, body) = raw_get(
        headend.addr(),
        "GET /playlist.m3u HTTP/1.1\r\nHost: tv.example.net:8080\r\nConnection: close\r\n\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let playlist = parse_m3u(&body);
    assert_eq!(
        attribute(&playlist.header, "x-tvg-url"),
        Some("http://tv.example.net:8080/epg.xml")
    );
    assert_eq!(
        playlist.entries[0].url,
        "http://tv.example.net:8080/live/sport/master.m3u8"
    );
    // HTTP/1.0 without a Host: the address this connection reached.
    let (head, body) = raw_get(headend.addr(), "GET /playlist.m3u HTTP/1.0\r\n\r\n");
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    let playlist = parse_m3u(&body);
    assert_eq!(
        attribute(&playlist.header, "x-tvg-url"),
        Some(format!("http://{}/epg.xml", headend.addr()).as_str())
    );
    // A Host that could break out of an attribute is not used.
    let (_, body) = raw_get(
        headend.addr(),
        "GET /playlist.m3u HTTP/1.1\r\nHost: a\"b\r\nConnection: close\r\n\r\n",
    );
    let playlist = parse_m3u(&body);
    assert_eq!(
        playlist.entries[0].url,
        format!("http://{}/live/sport/master.m3u8", headend.addr())
    );
}

#[test]
fn a_public_url_is_the_base_of_every_url() {
    let headend = start(&["--public-url", "https://tv.example.com/iptv/"]);
    let playlist = playlist(&headend, "");
    assert_eq!(
        attribute(&playlist.header, "x-tvg-url"),
        Some("https://tv.example.com/iptv/epg.xml")
    );
    let urls: Vec<&str> = playlist.entries.iter().map(|e| e.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "https://tv.example.com/iptv/live/sport/master.m3u8",
            "https://tv.example.com/iptv/live/news/master.m3u8",
            "https://tv.example.com/iptv/live/radio/master.m3u8",
        ]
    );
}

#[test]
fn a_public_url_that_is_not_http_is_refused_at_start() {
    let (_dir, catalog) = catalog_dir();
    for bad in [
        "ftp://tv.example.com",
        "tv.example.com",
        "https://tv.example.com/?x=1",
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_headend"))
            .args(["run", "--listen", "127.0.0.1:0", "--public-url", bad])
            .arg(&catalog)
            .output()
            .expect("runs the headend");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{bad} was accepted");
        assert!(
            stderr.contains("invalid value") && stderr.contains("--public-url"),
            "{bad}: {stderr}"
        );
    }
}

// ---------------------------------------------------------------- the guide

/// `YYYYMMDDhhmmss +hhmm`, strictly.
fn parse_xmltv_time(text: &str) -> DateTime<FixedOffset> {
    assert_eq!(text.len(), 20, "{text:?} is not YYYYMMDDhhmmss +hhmm");
    DateTime::parse_from_str(text, "%Y%m%d%H%M%S %z")
        .unwrap_or_else(|e| panic!("{text:?} is not an XMLTV time: {e}"))
}

#[derive(Debug, Clone, PartialEq)]
struct Programme {
    channel: String,
    start: DateTime<FixedOffset>,
    stop: DateTime<FixedOffset>,
    title: String,
    desc: Option<String>,
    category: Option<String>,
}

struct Guide {
    /// `(id, display-name, icon src)` in document order.
    channels: Vec<(String, String, Option<String>)>,
    programmes: Vec<Programme>,
}

fn guide(headend: &Headend) -> Guide {
    let response = headend.get("/epg.xml");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.header("content-type"),
        Some("application/xml; charset=utf-8")
    );
    let text = response.text();
    assert!(
        text.contains("<!DOCTYPE tv SYSTEM \"xmltv.dtd\">"),
        "no XMLTV doctype:\n{text}"
    );
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    let document = roxmltree::Document::parse_with_options(&text, options)
        .unwrap_or_else(|e| panic!("not XML ({e}):\n{text}"));
    let tv = document.root_element();
    assert_eq!(tv.tag_name().name(), "tv");
    assert_eq!(tv.attribute("generator-info-name"), Some("headend"));
    let child_text = |node: roxmltree::Node, name: &str| {
        node.children()
            .find(|c| c.has_tag_name(name))
            .map(|c| c.text().unwrap_or_default().to_owned())
    };
    let mut channels = Vec::new();
    let mut programmes = Vec::new();
    for node in tv.children().filter(roxmltree::Node::is_element) {
        match node.tag_name().name() {
            "channel" => {
                assert!(programmes.is_empty(), "a <channel> after a <programme>");
                channels.push((
                    node.attribute("id").expect("a channel id").to_owned(),
                    child_text(node, "display-name").expect("a display-name"),
                    node.children()
                        .find(|c| c.has_tag_name("icon"))
                        .and_then(|c| c.attribute("src"))
                        .map(str::to_owned),
                ));
            }
            "programme" => {
                let programme = Programme {
                    channel: node.attribute("channel").expect("a channel").to_owned(),
                    start: parse_xmltv_time(node.attribute("start").expect("a start")),
                    stop: parse_xmltv_time(node.attribute("stop").expect("a stop")),
                    title: child_text(node, "title").expect("a title"),
                    desc: child_text(node, "desc"),
                    category: child_text(node, "category"),
                };
                assert!(programme.stop > programme.start, "{programme:?}");
                programmes.push(programme);
            }
            other => panic!("unexpected <{other}> in <tv>"),
        }
    }
    Guide {
        channels,
        programmes,
    }
}

#[test]
fn the_guide_matches_the_playlist_and_covers_now() {
    let headend = start(&[]);
    let guide = guide(&headend);
    let playlist = playlist(&headend, "");
    let tvg_ids: Vec<&str> = playlist
        .entries
        .iter()
        .filter_map(|e| e.attribute("tvg-id"))
        .collect();
    let channel_ids: Vec<&str> = guide
        .channels
        .iter()
        .map(|(id, _, _)| id.as_str())
        .collect();
    assert_eq!(channel_ids, tvg_ids);
    let expected: Vec<(String, String, Option<String>)> = CHANNELS
        .iter()
        .map(|c| {
            (
                c.id.to_owned(),
                c.name.to_owned(),
                c.logo.map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(guide.channels, expected);
    for programme in &guide.programmes {
        assert!(
            channel_ids.contains(&programme.channel.as_str()),
            "{programme:?}"
        );
    }

    // The daily schedule: from the start of yesterday (UTC) to seven days ahead, one
    // programme after another with no gap, in the schedule's offset, one covering now.
    let now = Utc::now();
    let news: Vec<&Programme> = guide
        .programmes
        .iter()
        .filter(|p| p.channel == "news")
        .collect();
    let yesterday = (now - TimeDelta::days(1))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    assert!(
        news.first().is_some_and(|p| p.start <= yesterday),
        "{news:?}"
    );
    assert!(
        news.last()
            .is_some_and(|p| p.stop >= now + TimeDelta::days(7)),
        "{news:?}"
    );
    for pair in news.windows(2) {
        assert_eq!(pair[0].stop, pair[1].start, "{pair:?}");
    }
    let offset = FixedOffset::east_opt(2 * 3600).expect("+02:00");
    assert!(news.iter().all(|p| p.start.offset() == &offset));
    let titles = ["Morning News", "Midday <Live>", "Evening News"];
    assert!(news.iter().all(|p| titles.contains(&p.title.as_str())));
    let current: Vec<&&Programme> = news
        .iter()
        .filter(|p| p.start <= now && now < p.stop)
        .collect();
    assert_eq!(current.len(), 1, "{news:?}");
    let morning = news
        .iter()
        .find(|p| p.title == "Morning News")
        .expect("a morning programme");
    assert_eq!(morning.desc.as_deref(), Some("Headlines & weather"));
    assert_eq!(morning.category.as_deref(), Some("News"));
    assert_eq!(
        morning.start.format("%H:%M").to_string(),
        "06:00",
        "{morning:?}"
    );

    // The XMLTV file's programmes of `sport.example.com` inside the window, as sport.
    let sport: Vec<(&str, Option<&str>)> = guide
        .programmes
        .iter()
        .filter(|p| p.channel == "sport")
        .map(|p| (p.title.as_str(), p.desc.as_deref()))
        .collect();
    assert_eq!(
        sport,
        [("Match & Highlights", Some("Live")), ("Studio", None)]
    );
    assert!(guide
        .programmes
        .iter()
        .filter(|p| p.channel == "sport")
        .any(|p| p.start <= now && now < p.stop));
    // No guide, no programmes; the channel is still listed.
    assert!(guide.programmes.iter().all(|p| p.channel != "radio"));
}

#[test]
fn a_broken_epg_file_is_skipped_and_the_rest_is_served() {
    let headend = start(&[]);
    let count = |guide: &Guide, channel: &str| {
        guide
            .programmes
            .iter()
            .filter(|p| p.channel == channel)
            .count()
    };
    let before = guide(&headend);
    assert!(count(&before, "news") > 0 && count(&before, "sport") > 0);

    // An operator saves a broken schedule while the headend runs.
    let schedule = headend.dir().path().join("epg/news.yaml");
    std::fs::write(
        &schedule,
        "daily:\n  - { start: \"06:00\", title: Morning\n",
    )
    .expect("edit");
    let broken = guide(&headend);
    assert_eq!(count(&broken, "news"), 0);
    assert_eq!(count(&broken, "sport"), count(&before, "sport"));
    assert_eq!(
        broken.channels, before.channels,
        "every channel is still listed"
    );
    let warned = headend
        .wait_until(Duration::from_secs(5), || {
            let log = headend.log_tail(200);
            log.contains("EPG file skipped").then_some(log)
        })
        .unwrap_or_else(|| headend.fail("no warning about the broken EPG file"));
    assert!(warned.contains("news.yaml"), "{warned}");

    // The XMLTV file disappears too; the schedule is mended.
    std::fs::remove_file(headend.dir().path().join("guide.xml")).expect("remove");
    std::fs::write(&schedule, NEWS_SCHEDULE).expect("mend");
    let mended = guide(&headend);
    assert_eq!(count(&mended, "news"), count(&before, "news"));
    assert_eq!(count(&mended, "sport"), 0);
    headend.assert_running();
}
