//! XMLTV (the `xmltv.dtd` format IPTV apps read a programme guide in): the guide the
//! origin serves at `/epg.xml`, and the reader for operators' own XMLTV files.
//!
//! ```xml
//! <?xml version="1.0" encoding="UTF-8"?>
//! <!DOCTYPE tv SYSTEM "xmltv.dtd">
//! <tv generator-info-name="headend">
//!   <channel id="news"><display-name>Newsroom</display-name><icon src="…"/></channel>
//!   <programme start="20261224200000 +0100" stop="20261224220000 +0100" channel="news">
//!     <title>…</title><desc>…</desc><category>…</category>
//!   </programme>
//! </tv>
//! ```
//!
//! The DTD wants every `<channel>` before the first `<programme>`, and inside a
//! programme `<title>` before `<desc>` before `<category>`. Text and attribute values
//! are escaped by quick-xml's writer; characters XML 1.0 cannot carry at all (most C0
//! controls, U+FFFE, U+FFFF) are dropped first, since no escape makes them legal.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesDecl, BytesStart, BytesText, Event};
use quick_xml::{Reader, Writer, XmlVersion};

use super::Programme;

/// The `generator-info-name` of the guide.
pub const GENERATOR: &str = "headend";

/// One channel of the guide and its programmes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelGuide<'a> {
    /// `<channel id>` and each programme's `channel`: the M3U `tvg-id`.
    pub id: &'a str,
    /// `<display-name>`.
    pub name: &'a str,
    /// `<icon src>`, left out when `None`.
    pub icon: Option<&'a str>,
    /// Written in this order.
    pub programmes: &'a [Programme],
}

/// The guide as XMLTV text: every channel, then every channel's programmes, in the
/// order given.
pub fn render(channels: &[ChannelGuide<'_>]) -> String {
    let mut writer = Writer::new_with_indent(Vec::with_capacity(16 * 1024), b' ', 2);
    // Writing into a Vec cannot fail.
    let _ = write_guide(&mut writer, channels);
    let mut text = String::from_utf8_lossy(&writer.into_inner()).into_owned();
    text.push('\n');
    text
}

/// `YYYYMMDDhhmmss +hhmm`, the XMLTV date format, in the time's own offset.
pub fn format_time(time: &DateTime<FixedOffset>) -> String {
    time.format("%Y%m%d%H%M%S %z").to_string()
}

/// Reads an XMLTV time: `YYYYMMDD`, `YYYYMMDDhh`, `YYYYMMDDhhmm` or `YYYYMMDDhhmmss`
/// (the DTD allows leaving off the end; missing fields are 0), then optionally a
/// space and an offset, `+hhmm`/`-hhmm` or `UTC`/`GMT`/`Z`. No offset means UTC, as
/// the DTD says. Other time zone names are refused: their offsets are ambiguous.
pub fn parse_time(text: &str) -> Option<DateTime<FixedOffset>> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (stamp, zone) = text.split_at(digits);
    if !matches!(digits, 8 | 10 | 12 | 14) {
        return None;
    }
    let field = |range: std::ops::Range<usize>| -> Option<u32> {
        stamp.get(range).map_or(Some(0), |s| s.parse().ok())
    };
    let date = NaiveDate::from_ymd_opt(stamp[..4].parse().ok()?, field(4..6)?, field(6..8)?)?;
    let time = NaiveTime::from_hms_opt(field(8..10)?, field(10..12)?, field(12..14)?)?;
    let offset = match zone.trim_start() {
        "" | "UTC" | "GMT" | "Z" => FixedOffset::east_opt(0)?,
        zone => parse_offset(zone)?,
    };
    offset
        .from_local_datetime(&NaiveDateTime::new(date, time))
        .single()
}

/// `+hhmm` or `-hhmm`.
fn parse_offset(zone: &str) -> Option<FixedOffset> {
    let (sign, digits) = match zone.as_bytes().first()? {
        b'+' => (1, &zone[1..]),
        b'-' => (-1, &zone[1..]),
        _ => return None,
    };
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = digits[2..].parse().ok()?;
    if minutes >= 60 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

type XmlWriter = Writer<Vec<u8>>;

fn write_guide(w: &mut XmlWriter, channels: &[ChannelGuide<'_>]) -> io::Result<()> {
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    w.write_event(Event::DocType(BytesText::from_escaped(
        "tv SYSTEM \"xmltv.dtd\"",
    )))?;
    w.create_element("tv")
        .with_attribute(("generator-info-name", GENERATOR))
        .write_inner_content(|w| {
            for channel in channels {
                write_channel(w, channel)?;
            }
            for channel in channels {
                for programme in channel.programmes {
                    write_programme(w, channel.id, programme)?;
                }
            }
            Ok(())
        })?;
    Ok(())
}

fn write_channel(w: &mut XmlWriter, channel: &ChannelGuide<'_>) -> io::Result<()> {
    let id = attribute_text(channel.id);
    w.create_element("channel")
        .with_attribute(("id", id.as_str()))
        .write_inner_content(|w| {
            w.create_element("display-name")
                .write_text_content(BytesText::new(&element_text(channel.name)))?;
            if let Some(icon) = channel.icon.filter(|icon| !icon.trim().is_empty()) {
                let src = attribute_text(icon.trim());
                w.create_element("icon")
                    .with_attribute(("src", src.as_str()))
                    .write_empty()?;
            }
            Ok(())
        })?;
    Ok(())
}

fn write_programme(w: &mut XmlWriter, channel: &str, programme: &Programme) -> io::Result<()> {
    let start = format_time(&programme.start);
    let stop = format_time(&programme.stop);
    let channel = attribute_text(channel);
    w.create_element("programme")
        .with_attributes([
            ("start", start.as_str()),
            ("stop", stop.as_str()),
            ("channel", channel.as_str()),
        ])
        .write_inner_content(|w| {
            w.create_element("title")
                .write_text_content(BytesText::new(&element_text(&programme.title)))?;
            if let Some(description) = &programme.description {
                w.create_element("desc")
                    .write_text_content(BytesText::new(&element_text(description)))?;
            }
            if let Some(category) = &programme.category {
                w.create_element("category")
                    .write_text_content(BytesText::new(&element_text(category)))?;
            }
            Ok(())
        })?;
    Ok(())
}

/// XML 1.0 §2.2 `Char`: what a document may contain at all, escaped or not.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

/// Element content: characters XML cannot carry dropped. The writer escapes the rest.
fn element_text(text: &str) -> String {
    text.chars().filter(|c| is_xml_char(*c)).collect()
}

/// Attribute values: as element content, and line breaks and tabs made spaces, which
/// is what a parser's attribute-value normalisation would make of them anyway.
fn attribute_text(text: &str) -> String {
    text.chars()
        .filter(|c| is_xml_char(*c))
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .collect()
}

/// Why an XMLTV file could not be read, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line} column {column}: {message}")]
pub struct XmltvError {
    /// Counted from 1.
    pub line: usize,
    /// Counted from 1, in characters.
    pub column: usize,
    pub message: String,
}

/// The programmes of the channels in `wanted` (matched against each programme's
/// `channel` attribute), each channel's sorted by start. Channels with no programme
/// are absent from the map.
///
/// The whole file must be well-formed XML with a `<tv>` root. Programmes of other
/// channels are skipped unread; a wanted one must have a valid `start`, a `<title>`,
/// and a `stop` later than its start. A programme without `stop` ends where the
/// channel's next one starts (common in grabbers' output), and the last such one is
/// left out: nothing says when it ends. The first `<title>`, `<desc>` and
/// `<category>` of a programme are kept (XMLTV repeats them per language).
pub fn read(
    text: &str,
    wanted: &BTreeSet<&str>,
) -> Result<BTreeMap<String, Vec<Programme>>, XmltvError> {
    let mut reader = Reader::from_str(text);
    let at = |offset: u64, message: String| {
        let (line, column) = line_column(text, offset);
        XmltvError {
            line,
            column,
            message,
        }
    };
    let mut depth = 0usize;
    let mut root_seen = false;
    let mut current: Option<Partial> = None;
    let mut field: Option<(Field, String)> = None;
    let mut found: BTreeMap<String, Vec<(u64, Partial)>> = BTreeMap::new();
    loop {
        let before = reader.buffer_position();
        let event = reader.read_event().map_err(|error| {
            at(
                reader.error_position(),
                format!("not well-formed XML: {error}"),
            )
        })?;
        match event {
            Event::Start(start) | Event::Empty(start)
                if depth == 0 && start.local_name().as_ref() != "tv" =>
            {
                let name = start.name().as_ref().to_owned();
                return Err(at(
                    before,
                    format!("the root element is <{name}>, not <tv>: this is not an XMLTV file"),
                ));
            }
            Event::Start(start) => {
                root_seen = true;
                depth += 1;
                match depth {
                    2 if start.local_name().as_ref() == "programme" => {
                        current = programme(&start, before, wanted).map_err(|m| at(before, m))?;
                    }
                    3 if current.is_some() => field = Field::of(&start).map(|f| (f, String::new())),
                    _ => {}
                }
            }
            Event::Empty(start) => {
                root_seen = true;
                if depth == 1 && start.local_name().as_ref() == "programme" {
                    if let Some(partial) =
                        programme(&start, before, wanted).map_err(|m| at(before, m))?
                    {
                        // No children, so no title.
                        return Err(at(before, missing_title(&partial.channel)));
                    }
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                match depth {
                    1 => {
                        if let Some(partial) = current.take() {
                            if partial.title.is_none() {
                                return Err(at(partial.offset, missing_title(&partial.channel)));
                            }
                            found
                                .entry(partial.channel.clone())
                                .or_default()
                                .push((partial.offset, partial));
                        }
                    }
                    2 => {
                        if let (Some(partial), Some((name, value))) = (&mut current, field.take()) {
                            partial.keep(name, value);
                        }
                    }
                    _ => {}
                }
            }
            Event::Text(content) => {
                if let Some((_, value)) = &mut field {
                    value.push_str(&content.xml10_content());
                }
            }
            Event::CData(content) => {
                if let Some((_, value)) = &mut field {
                    value.push_str(&content.xml10_content());
                }
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(c)) => Some(c.to_string()),
                    Ok(None) => resolve_predefined_entity(&reference).map(str::to_owned),
                    Err(_) => None,
                };
                let Some(resolved) = resolved else {
                    return Err(at(
                        before,
                        format!("unknown entity reference `&{};`", &*reference),
                    ));
                };
                if let Some((_, value)) = &mut field {
                    value.push_str(&resolved);
                }
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if depth > 0 || !root_seen {
        let message = if root_seen {
            "the file ends inside an element: it is cut short"
        } else {
            "no <tv> element: this is not an XMLTV file"
        };
        return Err(at(text.len() as u64, message.to_owned()));
    }
    let mut guide = BTreeMap::new();
    for (channel, mut partials) in found {
        partials.sort_by_key(|(_, partial)| partial.start);
        let mut programmes = Vec::with_capacity(partials.len());
        let next_starts: Vec<Option<DateTime<FixedOffset>>> = partials
            .iter()
            .skip(1)
            .map(|(_, p)| Some(p.start))
            .chain([None])
            .collect();
        for ((offset, partial), next) in partials.into_iter().zip(next_starts) {
            let Some(stop) = partial.stop.or(next) else {
                continue;
            };
            if stop <= partial.start {
                return Err(at(
                    offset,
                    format!(
                        "programme of channel `{channel}` stops at {} before it starts at {}",
                        format_time(&stop),
                        format_time(&partial.start)
                    ),
                ));
            }
            programmes.push(Programme {
                start: partial.start,
                stop,
                // Checked above.
                title: partial.title.unwrap_or_default(),
                description: partial.description,
                category: partial.category,
            });
        }
        if !programmes.is_empty() {
            guide.insert(channel, programmes);
        }
    }
    Ok(guide)
}

fn missing_title(channel: &str) -> String {
    format!("programme of channel `{channel}` has no <title>")
}

/// A programme of a wanted channel while it is read.
#[derive(Debug)]
struct Partial {
    offset: u64,
    channel: String,
    start: DateTime<FixedOffset>,
    stop: Option<DateTime<FixedOffset>>,
    title: Option<String>,
    description: Option<String>,
    category: Option<String>,
}

impl Partial {
    fn keep(&mut self, field: Field, value: String) {
        let slot = match field {
            Field::Title => &mut self.title,
            Field::Description => &mut self.description,
            Field::Category => &mut self.category,
        };
        let value = value.trim();
        if slot.is_none() && !value.is_empty() {
            *slot = Some(value.to_owned());
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Title,
    Description,
    Category,
}

impl Field {
    fn of(start: &BytesStart<'_>) -> Option<Field> {
        match start.local_name().as_ref() {
            "title" => Some(Field::Title),
            "desc" => Some(Field::Description),
            "category" => Some(Field::Category),
            _ => None,
        }
    }
}

/// The `<programme>` element's attributes, if its channel is wanted.
/// `offset` is where the element starts in the file.
fn programme(
    start: &BytesStart<'_>,
    offset: u64,
    wanted: &BTreeSet<&str>,
) -> Result<Option<Partial>, String> {
    let mut channel = None;
    let mut times = [None, None];
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| format!("not well-formed XML: {e}"))?;
        let value = attribute
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| format!("not well-formed XML: {e}"))?;
        match attribute.key.local_name().as_ref() {
            "channel" => channel = Some(value.into_owned()),
            "start" => times[0] = Some(value.into_owned()),
            "stop" => times[1] = Some(value.into_owned()),
            _ => {}
        }
    }
    let Some(channel) = channel.filter(|c| wanted.contains(c.as_str())) else {
        return Ok(None);
    };
    let [start, stop] = times;
    let parse = |name: &str, value: &str| {
        parse_time(value).ok_or_else(|| {
            format!(
                "programme of channel `{channel}` has {name}=\"{value}\", not an XMLTV time such as \"20261224200000 +0100\""
            )
        })
    };
    let start = match start {
        Some(start) => parse("start", &start)?,
        None => return Err(format!("programme of channel `{channel}` has no start")),
    };
    let stop = stop.map(|stop| parse("stop", &stop)).transpose()?;
    Ok(Some(Partial {
        offset,
        channel,
        start,
        stop,
        title: None,
        description: None,
        category: None,
    }))
}

/// 1-based line and column (in characters) of a byte offset into `text`.
fn line_column(text: &str, offset: u64) -> (usize, usize) {
    let offset = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(text.len());
    // An offset inside a character counts from that character's start.
    let offset = (0..=offset)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(text: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(text).expect("test time")
    }

    fn programme(start: &str, stop: &str, title: &str) -> Programme {
        Programme {
            start: time(start),
            stop: time(stop),
            title: title.to_owned(),
            description: None,
            category: None,
        }
    }

    #[test]
    fn times_are_written_in_their_own_offset() {
        assert_eq!(
            format_time(&time("2026-12-24T20:00:00+01:00")),
            "20261224200000 +0100"
        );
        assert_eq!(
            format_time(&time("2026-01-02T03:04:05-05:30")),
            "20260102030405 -0530"
        );
        assert_eq!(
            format_time(&time("2026-01-02T03:04:05Z")),
            "20260102030405 +0000"
        );
    }

    #[test]
    fn times_are_read_in_every_form_the_dtd_allows() {
        let cases = [
            ("20261224200000 +0100", "2026-12-24T20:00:00+01:00"),
            ("20261224200000 -0530", "2026-12-24T20:00:00-05:30"),
            ("20261224200000+0100", "2026-12-24T20:00:00+01:00"),
            ("20261224200000", "2026-12-24T20:00:00Z"),
            ("20261224200000 UTC", "2026-12-24T20:00:00Z"),
            ("202612242000 +0000", "2026-12-24T20:00:00Z"),
            ("2026122420", "2026-12-24T20:00:00Z"),
            ("20261224", "2026-12-24T00:00:00Z"),
            (" 20261224200000 +0100 ", "2026-12-24T20:00:00+01:00"),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_time(text), Some(time(expected)), "{text}");
        }
        for bad in [
            "",
            "2026122420000",
            "20261324200000",
            "20261224250000",
            "20261224200000 CET",
            "20261224200000 +01:00",
            "20261224200000 +0160",
            "2026-12-24T20:00:00Z",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        // What is written reads back.
        let written = time("2026-06-30T23:30:00+05:45");
        assert_eq!(parse_time(&format_time(&written)), Some(written));
    }

    #[test]
    fn the_exact_guide() {
        let news = [Programme {
            description: Some("Headlines".to_owned()),
            category: Some("News".to_owned()),
            ..programme(
                "2026-12-24T06:00:00+01:00",
                "2026-12-24T09:00:00+01:00",
                "Morning News",
            )
        }];
        let channels = [
            ChannelGuide {
                id: "news",
                name: "Newsroom",
                icon: Some("https://static.example.com/news.png"),
                programmes: &news,
            },
            ChannelGuide {
                id: "bars",
                name: "Colour Bars",
                icon: None,
                programmes: &[],
            },
        ];
        assert_eq!(
            render(&channels),
            r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE tv SYSTEM "xmltv.dtd">
<tv generator-info-name="headend">
  <channel id="news">
    <display-name>Newsroom</display-name>
    <icon src="https://static.example.com/news.png"/>
  </channel>
  <channel id="bars">
    <display-name>Colour Bars</display-name>
  </channel>
  <programme start="20261224060000 +0100" stop="20261224090000 +0100" channel="news">
    <title>Morning News</title>
    <desc>Headlines</desc>
    <category>News</category>
  </programme>
</tv>
"#
        );
    }

    #[test]
    fn text_is_escaped_and_characters_xml_cannot_carry_are_dropped() {
        let hostile = "Tom & \"Jerry\" <script>it's</script>\u{1}\u{b}\u{FFFF}";
        let programmes = [Programme {
            description: Some("line one\nline two ]]> &amp;".to_owned()),
            ..programme("2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z", hostile)
        }];
        let channels = [ChannelGuide {
            id: "news",
            name: hostile,
            icon: Some("http://x.example.com/a.png?a=1&b=\"2\"\n"),
            programmes: &programmes,
        }];
        let text = render(&channels);
        let options = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..roxmltree::ParsingOptions::default()
        };
        let document = roxmltree::Document::parse_with_options(&text, options)
            .unwrap_or_else(|e| panic!("not well-formed ({e}):\n{text}"));
        let root = document.root_element();
        let expected = "Tom & \"Jerry\" <script>it's</script>";
        let name = root
            .descendants()
            .find(|n| n.has_tag_name("display-name"))
            .and_then(|n| n.text());
        assert_eq!(name, Some(expected));
        let icon = root
            .descendants()
            .find(|n| n.has_tag_name("icon"))
            .and_then(|n| n.attribute("src"));
        assert_eq!(icon, Some("http://x.example.com/a.png?a=1&b=\"2\""));
        let title = root
            .descendants()
            .find(|n| n.has_tag_name("title"))
            .and_then(|n| n.text());
        assert_eq!(title, Some(expected));
        let desc = root
            .descendants()
            .find(|n| n.has_tag_name("desc"))
            .and_then(|n| n.text());
        assert_eq!(desc, Some("line one\nline two ]]> &amp;"));
    }

    fn wanted<'a>(ids: &[&'a str]) -> BTreeSet<&'a str> {
        ids.iter().copied().collect()
    }

    const GUIDE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE tv SYSTEM "xmltv.dtd">
<tv source-info-name="operator">
  <channel id="news.example.com"><display-name>News</display-name></channel>
  <programme start="20261224090000 +0100" stop="20261224120000 +0100" channel="news.example.com">
    <title lang="en">Late &amp; Live</title>
    <title lang="fr">En direct</title>
    <desc lang="en">All the <![CDATA[<news>]]> &#x2014; live</desc>
    <category>News</category>
    <category>Live</category>
  </programme>
  <programme start="20261224060000 +0100" stop="20261224090000 +0100" channel="news.example.com">
    <title>Morning</title>
  </programme>
  <programme start="bad" channel="other.example.com"><title>Not ours</title></programme>
  <programme start="20261224120000 +0100" channel="news.example.com"><title>No stop</title></programme>
  <programme start="20261224130000 +0100" channel="news.example.com"><title>Last, no stop</title></programme>
</tv>
"#;

    #[test]
    fn an_operators_guide_gives_the_wanted_channels_programmes_in_order() {
        let guide = read(GUIDE, &wanted(&["news.example.com", "absent"])).expect("reads");
        assert_eq!(guide.keys().collect::<Vec<_>>(), ["news.example.com"]);
        let programmes = &guide["news.example.com"];
        assert_eq!(
            programmes,
            &[
                programme(
                    "2026-12-24T06:00:00+01:00",
                    "2026-12-24T09:00:00+01:00",
                    "Morning"
                ),
                Programme {
                    description: Some("All the <news> \u{2014} live".to_owned()),
                    category: Some("News".to_owned()),
                    ..programme(
                        "2026-12-24T09:00:00+01:00",
                        "2026-12-24T12:00:00+01:00",
                        "Late & Live"
                    )
                },
                // No stop: it ends where the next one starts; the last one is left out.
                programme(
                    "2026-12-24T12:00:00+01:00",
                    "2026-12-24T13:00:00+01:00",
                    "No stop"
                ),
            ]
        );
        // Nothing wanted, nothing read (the bad time of another channel is not looked at).
        assert_eq!(read(GUIDE, &wanted(&[])), Ok(BTreeMap::new()));
    }

    fn error(text: &str) -> String {
        read(text, &wanted(&["a"]))
            .map(|guide| format!("no error: {guide:?}"))
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn broken_files_are_placed() {
        assert_eq!(
            error("<tv>\n  <programme start=\"20260101000000\" channel=\"a\">\n    <title>x</titel>\n</tv>"),
            "line 3 column 13: not well-formed XML: ill-formed document: expected `</title>`, but `</titel>` was found"
        );
        assert_eq!(
            error("<tv>\n  <programme start=\"2026\" stop=\"20260101010000\" channel=\"a\"><title>x</title></programme>\n</tv>"),
            "line 2 column 3: programme of channel `a` has start=\"2026\", not an XMLTV time such as \"20261224200000 +0100\""
        );
        assert_eq!(
            error("<tv>\n<programme stop=\"20260101010000\" channel=\"a\"><title>x</title></programme></tv>"),
            "line 2 column 1: programme of channel `a` has no start"
        );
        assert_eq!(
            error("<tv><programme start=\"20260101000000\" stop=\"20260101010000\" channel=\"a\"><desc>x</desc></programme></tv>"),
            "line 1 column 5: programme of channel `a` has no <title>"
        );
        assert_eq!(
            error("<tv><programme start=\"20260101000000\" stop=\"20260101010000\" channel=\"a\"/></tv>"),
            "line 1 column 5: programme of channel `a` has no <title>"
        );
        assert_eq!(
            error("<tv>\n<programme start=\"20260101020000\" stop=\"20260101010000\" channel=\"a\"><title>x</title></programme></tv>"),
            "line 2 column 1: programme of channel `a` stops at 20260101010000 +0000 before it starts at 20260101020000 +0000"
        );
        assert_eq!(
            error("<tv><programme channel=\"a\" start=\"20260101000000\" stop=\"20260101010000\"><title>&nbsp;</title></programme></tv>"),
            "line 1 column 80: unknown entity reference `&nbsp;`"
        );
        assert_eq!(
            error("<?xml version=\"1.0\"?>\n<html><tv/></html>"),
            "line 2 column 1: the root element is <html>, not <tv>: this is not an XMLTV file"
        );
        assert_eq!(
            error("<tv>\n<programme"),
            "line 2 column 1: not well-formed XML: syntax error: tag not closed: `>` not found before end of input"
        );
        assert_eq!(
            error("<tv>\n<channel id=\"a\">"),
            "line 2 column 17: the file ends inside an element: it is cut short"
        );
        assert_eq!(
            error(""),
            "line 1 column 1: no <tv> element: this is not an XMLTV file"
        );
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        assert_eq!(line_column("é\nàb", 5), (2, 2));
        assert_eq!(line_column("ab", 99), (1, 3));
        // Inside a character: that character's column.
        assert_eq!(line_column("é", 1), (1, 1));
    }
}
