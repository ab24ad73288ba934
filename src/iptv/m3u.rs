//! The extended M3U channel playlist IPTV apps read (`#EXTM3U` with `tvg-*`
//! attributes, as VLC, Kodi's PVR IPTV Simple client and TiviMate take it).
//!
//! ```text
//! #EXTM3U x-tvg-url="http://tv.example.com/epg.xml"
//! #EXTINF:-1 tvg-id="news" tvg-chno="1" tvg-name="Newsroom" tvg-logo="http://…/news.png" group-title="News",Newsroom
//! http://tv.example.com/live/news/master.m3u8
//! ```
//!
//! The format has no escape mechanism: an attribute value runs to the next `"`, and a
//! line break ends the entry. So every value is sanitised rather than escaped: in text
//! values a `"` becomes `'` and control characters (line breaks, tabs) become spaces;
//! in URL values `"`, spaces and control characters are percent-encoded, which leaves
//! the URL meaning the same. The title after the comma is sanitised like text.

use std::fmt::Write as _;

/// One channel line of the playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// `tvg-id`: the channel id, equal to the XMLTV `<channel id>`.
    pub id: &'a str,
    /// `tvg-chno`.
    pub number: u32,
    /// `tvg-name` and the title after the comma.
    pub name: &'a str,
    /// `tvg-logo`, left out when `None`.
    pub logo: Option<&'a str>,
    /// `group-title`.
    pub group: &'a str,
    /// Where the player fetches the channel.
    pub url: &'a str,
}

/// The playlist text: the header (with `x-tvg-url` when a guide URL is given), then
/// one `#EXTINF` line and one URL line per entry, in the order given.
pub fn render(guide_url: Option<&str>, entries: &[Entry<'_>]) -> String {
    let mut text = String::from("#EXTM3U");
    if let Some(url) = guide_url {
        // Writing into a String cannot fail.
        let _ = write!(text, " x-tvg-url=\"{}\"", url_value(url));
    }
    text.push('\n');
    for entry in entries {
        let _ = write!(
            text,
            "#EXTINF:-1 tvg-id=\"{}\" tvg-chno=\"{}\" tvg-name=\"{}\"",
            text_value(entry.id),
            entry.number,
            text_value(entry.name)
        );
        if let Some(logo) = entry.logo.filter(|logo| !logo.trim().is_empty()) {
            let _ = write!(text, " tvg-logo=\"{}\"", url_value(logo.trim()));
        }
        let _ = writeln!(
            text,
            " group-title=\"{}\",{}",
            text_value(entry.group),
            text_value(entry.name)
        );
        let _ = writeln!(text, "{}", url_value(entry.url));
    }
    text
}

/// A text attribute value (or the title): no `"`, no line break or other control
/// character, no space at either end.
fn text_value(value: &str) -> String {
    value
        .chars()
        .map(|c| match c {
            '"' => '\'',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// A URL value: `"`, spaces and control characters percent-encoded (RFC 3986 §2.1),
/// which a URL parser reads back as the same characters.
fn url_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c == '"' || c == ' ' || c.is_control() {
            let mut buffer = [0; 4];
            for byte in c.encode_utf8(&mut buffer).bytes() {
                let _ = write!(out, "%{byte:02X}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(id: &'a str, number: u32, name: &'a str, logo: Option<&'a str>) -> Entry<'a> {
        Entry {
            id,
            number,
            name,
            logo,
            group: "News",
            url: "http://tv.example.com/live/news/master.m3u8",
        }
    }

    #[test]
    fn the_exact_playlist() {
        let entries = [
            entry(
                "news",
                1,
                "Newsroom",
                Some("https://static.example.com/news.png"),
            ),
            Entry {
                group: "Sport & Live",
                url: "udp://@239.255.1.2:5000",
                ..entry("sport", 12, "Sport, Live", None)
            },
        ];
        assert_eq!(
            render(Some("http://tv.example.com/epg.xml"), &entries),
            "#EXTM3U x-tvg-url=\"http://tv.example.com/epg.xml\"\n\
             #EXTINF:-1 tvg-id=\"news\" tvg-chno=\"1\" tvg-name=\"Newsroom\" tvg-logo=\"https://static.example.com/news.png\" group-title=\"News\",Newsroom\n\
             http://tv.example.com/live/news/master.m3u8\n\
             #EXTINF:-1 tvg-id=\"sport\" tvg-chno=\"12\" tvg-name=\"Sport, Live\" group-title=\"Sport & Live\",Sport, Live\n\
             udp://@239.255.1.2:5000\n"
        );
    }

    #[test]
    fn an_empty_playlist_is_only_the_header() {
        assert_eq!(render(None, &[]), "#EXTM3U\n");
    }

    #[test]
    fn quotes_and_line_breaks_cannot_break_a_line() {
        let hostile = "Bad \"News\"\n#EXTINF:-1,Injected\r\nhttp://evil.example.com/\tx";
        let entries = [Entry {
            group: "A\"B\nC",
            ..entry(
                "news",
                1,
                hostile,
                Some("http://x.example.com/a\"b c\n.png"),
            )
        }];
        let text = render(Some("http://h/epg.xml?a=\"b\""), &entries);
        assert_eq!(
            text,
            "#EXTM3U x-tvg-url=\"http://h/epg.xml?a=%22b%22\"\n\
             #EXTINF:-1 tvg-id=\"news\" tvg-chno=\"1\" tvg-name=\"Bad 'News' #EXTINF:-1,Injected  http://evil.example.com/ x\" \
             tvg-logo=\"http://x.example.com/a%22b%20c%0A.png\" group-title=\"A'B C\",\
             Bad 'News' #EXTINF:-1,Injected  http://evil.example.com/ x\n\
             http://tv.example.com/live/news/master.m3u8\n"
        );
        // Exactly the header, one #EXTINF line and one URL line.
        assert_eq!(text.lines().count(), 3);
        assert_eq!(text.lines().filter(|l| l.starts_with("#EXTINF")).count(), 1);
    }

    #[test]
    fn a_blank_logo_is_left_out_and_names_are_trimmed() {
        let text = render(None, &[entry("news", 1, "  Newsroom \t", Some("  "))]);
        assert_eq!(
            text.lines().nth(1),
            Some("#EXTINF:-1 tvg-id=\"news\" tvg-chno=\"1\" tvg-name=\"Newsroom\" group-title=\"News\",Newsroom")
        );
    }

    #[test]
    fn non_ascii_names_are_kept() {
        let text = render(None, &[entry("fr", 3, "Télé Île-de-France", None)]);
        assert!(text.contains("tvg-name=\"Télé Île-de-France\""), "{text}");
        assert!(text.contains(",Télé Île-de-France\n"), "{text}");
    }
}
