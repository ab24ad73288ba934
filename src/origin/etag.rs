//! Strong entity tags and the conditional headers that compare them (RFC 9110 §8.8.3,
//! §13.1.2, §13.1.5).
//!
//! Tags are FNV-1a hashes ([`content_hash`]), the same whatever toolchain built the
//! origin: two origins behind one load balancer must give the same tag for the same
//! bytes, or every revalidation misses.

use crate::store::{content_hash, fnv1a, FNV_OFFSET};

/// Tag for content that can change under the same URL (playlists, an init segment
/// replaced after a restart): a hash of the bytes themselves.
pub(crate) fn for_content(content: &[u8]) -> String {
    for_hash(content_hash(content), content.len())
}

/// [`for_content`] of bytes whose [`content_hash`] is `hash`, already taken (a
/// published playlist's).
pub(crate) fn for_hash(hash: u64, len: usize) -> String {
    format!("\"{hash:016x}-{len:x}\"")
}

/// Tag for a media segment. A segment's URL names it for ever (the packager never
/// reuses a sequence number within a channel), so the tag is derived from the name and
/// length instead of hashing megabytes on every request.
pub(crate) fn for_segment(channel: &str, track: &str, sequence: u64, len: usize) -> String {
    let mut hash = fnv1a(FNV_OFFSET, channel.as_bytes());
    // The separator keeps ("ab", "c") and ("a", "bc") apart.
    hash = fnv1a(hash, &[0]);
    hash = fnv1a(hash, track.as_bytes());
    hash = fnv1a(hash, &[0]);
    hash = fnv1a(hash, &sequence.to_be_bytes());
    format!("\"{hash:016x}-{sequence:x}-{len:x}\"")
}

/// Tag for a file of a published VOD version. A version folder is written once and
/// never changed (a re-ingest publishes a new one), so the tag is derived from the
/// version's name, the file's path in it and its length rather than from megabytes of
/// content read on every request.
pub(crate) fn for_file(version: &str, path: &str, len: u64) -> String {
    let mut hash = fnv1a(FNV_OFFSET, version.as_bytes());
    hash = fnv1a(hash, &[0]);
    hash = fnv1a(hash, path.as_bytes());
    format!("\"{hash:016x}-{len:x}\"")
}

/// Whether any `If-None-Match` header value matches `etag` (a quoted strong tag), using
/// the weak comparison the header calls for. `*` matches any current representation.
/// A value that does not parse matches nothing, so the client gets the full response.
pub(crate) fn none_match<'a>(values: impl IntoIterator<Item = &'a [u8]>, etag: &str) -> bool {
    let opaque = etag.as_bytes();
    values.into_iter().any(|value| {
        let mut rest = value;
        loop {
            rest = trim_list_separators(rest);
            if rest.is_empty() {
                return false;
            }
            if rest[0] == b'*' {
                return true;
            }
            let Some((tag, tail)) = entity_tag(rest) else {
                return false;
            };
            if tag.opaque == opaque {
                return true;
            }
            rest = tail;
        }
    })
}

/// Whether an `If-Range` value lets a Range request through: only an identical strong
/// tag does (RFC 9110 §13.1.5). We send no Last-Modified, so a date never matches.
pub(crate) fn if_range_matches(value: &[u8], etag: &str) -> bool {
    let value = trim_whitespace(value);
    match entity_tag(value) {
        Some((tag, tail)) => !tag.weak && tail.is_empty() && tag.opaque == etag.as_bytes(),
        None => false,
    }
}

struct EntityTag<'a> {
    weak: bool,
    /// The quoted part, quotes included, as our tags are stored.
    opaque: &'a [u8],
}

/// Parses one `entity-tag` at the start of `input`, returning it and what follows.
fn entity_tag(input: &[u8]) -> Option<(EntityTag<'_>, &[u8])> {
    let (weak, quoted) = match input.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, input),
    };
    if quoted.first() != Some(&b'"') {
        return None;
    }
    let close = 1 + quoted[1..].iter().position(|b| *b == b'"')?;
    // etagc = %x21 / %x23-7E / obs-text
    if !quoted[1..close]
        .iter()
        .all(|b| *b == 0x21 || *b >= 0x23 && *b != 0x7f)
    {
        return None;
    }
    let (opaque, tail) = quoted.split_at(close + 1);
    Some((EntityTag { weak, opaque }, tail))
}

fn trim_list_separators(input: &[u8]) -> &[u8] {
    let start = input
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b','))
        .unwrap_or(input.len());
    &input[start..]
}

fn trim_whitespace(input: &[u8]) -> &[u8] {
    let start = input
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(input.len());
    let end = input
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &input[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: &str = "\"abc-1\"";

    fn matches(values: &[&str]) -> bool {
        none_match(values.iter().map(|v| v.as_bytes()), TAG)
    }

    #[test]
    fn content_tags_are_stable_strong_and_change_with_the_bytes() {
        // FNV-1a 64 of the empty input is the offset basis; of "a" a published vector.
        assert_eq!(for_content(b""), "\"cbf29ce484222325-0\"");
        assert_eq!(for_content(b"a"), "\"af63dc4c8601ec8c-1\"");
        assert_ne!(for_content(b"#EXTM3U\n1"), for_content(b"#EXTM3U\n2"));
    }

    #[test]
    fn segment_tags_name_the_segment() {
        let tag = for_segment("news", "720p", 42, 1000);
        assert!(tag.starts_with('"') && tag.ends_with("-2a-3e8\""), "{tag}");
        assert_eq!(tag, for_segment("news", "720p", 42, 1000));
        assert_ne!(tag, for_segment("news", "720p", 43, 1000));
        assert_ne!(tag, for_segment("news", "480p", 42, 1000));
        assert_ne!(tag, for_segment("sport", "720p", 42, 1000));
        assert_ne!(tag, for_segment("news", "720p", 42, 1001));
        assert_ne!(for_segment("ab", "c", 1, 1), for_segment("a", "bc", 1, 1));
    }

    #[test]
    fn file_tags_follow_the_version_and_the_path() {
        let tag = for_file("film.abc.1", "720p/3.m4s", 1000);
        assert!(tag.starts_with('"') && tag.ends_with("-3e8\""), "{tag}");
        assert_eq!(tag, for_file("film.abc.1", "720p/3.m4s", 1000));
        assert_ne!(tag, for_file("film.abc.2", "720p/3.m4s", 1000));
        assert_ne!(tag, for_file("film.abc.1", "720p/4.m4s", 1000));
        assert_ne!(tag, for_file("film.abc.1", "720p/3.m4s", 1001));
    }

    #[test]
    fn if_none_match_lists_weak_tags_and_star() {
        assert!(matches(&["\"abc-1\""]));
        assert!(matches(&["W/\"abc-1\""]));
        assert!(matches(&["\"x\", \"abc-1\""]));
        assert!(matches(&["\"x\",W/\"abc-1\" ,\"y\""]));
        assert!(matches(&["\"x\"", "\"abc-1\""]));
        assert!(matches(&["*"]));
        assert!(matches(&[" * "]));
        assert!(!matches(&["\"abc-2\""]));
        assert!(!matches(&["\"abc-1"]));
        assert!(!matches(&["abc-1"]));
        assert!(!matches(&["w/\"abc-1\""]));
        assert!(!matches(&[""]));
        assert!(!matches(&[]));
        // A value that stops parsing matches nothing after the break.
        assert!(!matches(&["garbage, \"abc-1\""]));
    }

    #[test]
    fn if_range_needs_the_identical_strong_tag() {
        assert!(if_range_matches(b"\"abc-1\"", TAG));
        assert!(if_range_matches(b" \"abc-1\" ", TAG));
        assert!(!if_range_matches(b"W/\"abc-1\"", TAG));
        assert!(!if_range_matches(b"\"abc-2\"", TAG));
        assert!(!if_range_matches(b"\"abc-1\", \"x\"", TAG));
        assert!(!if_range_matches(b"Sat, 01 Jan 2000 00:00:00 GMT", TAG));
        assert!(!if_range_matches(b"", TAG));
    }
}
