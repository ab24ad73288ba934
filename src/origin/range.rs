//! Single byte ranges (RFC 9110 §14).
//!
//! Players ask for one range at a time (byte-range segments, resumed downloads), so
//! only a single range is honoured. A request for several ranges gets the whole
//! representation with 200, which RFC 9110 §14.2 allows ("a server MAY ignore the Range
//! header field") and which spares us multipart/byteranges. A Range header we cannot
//! parse is ignored the same way.

/// What to send for a representation of a known length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ByteRange {
    /// No usable Range header: send everything with 200.
    Full,
    /// Send bytes `start..=end` with 206.
    Partial { start: u64, end: u64 },
    /// The one range asked for lies outside the representation: 416.
    Unsatisfiable,
}

/// Evaluates a Range header value against a representation of `len` bytes.
pub(crate) fn evaluate(header: &[u8], len: u64) -> ByteRange {
    let Ok(header) = std::str::from_utf8(header) else {
        return ByteRange::Full;
    };
    let Some((unit, set)) = header.trim().split_once('=') else {
        return ByteRange::Full;
    };
    // Range units are case-insensitive (RFC 9110 §14.1); unknown units are ignored.
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return ByteRange::Full;
    }
    let Some((first, last)) = set.trim().split_once('-') else {
        return ByteRange::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // suffix-range: the last `n` bytes.
        let Some(suffix) = parse_position(last) else {
            return ByteRange::Full;
        };
        if suffix == 0 || len == 0 {
            return ByteRange::Unsatisfiable;
        }
        return ByteRange::Partial {
            start: len.saturating_sub(suffix),
            end: len - 1,
        };
    }
    let Some(start) = parse_position(first) else {
        return ByteRange::Full;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match parse_position(last) {
            // last-pos < first-pos makes the range-spec invalid, not unsatisfiable.
            Some(end) if end >= start => end,
            _ => return ByteRange::Full,
        }
    };
    if start >= len {
        return ByteRange::Unsatisfiable;
    }
    ByteRange::Partial {
        start,
        end: end.min(len - 1),
    }
}

/// A decimal position; one too large for u64 is as good as infinite.
fn parse_position(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(header: &str, len: u64) -> ByteRange {
        evaluate(header.as_bytes(), len)
    }

    fn partial(start: u64, end: u64) -> ByteRange {
        ByteRange::Partial { start, end }
    }

    #[test]
    fn closed_ranges_are_clamped_to_the_representation() {
        assert_eq!(eval("bytes=0-99", 1000), partial(0, 99));
        assert_eq!(eval("bytes=10-10", 1000), partial(10, 10));
        assert_eq!(eval("bytes=900-5000", 1000), partial(900, 999));
        assert_eq!(
            eval("bytes=0-99999999999999999999999", 1000),
            partial(0, 999)
        );
        assert_eq!(eval("BYTES = 5 - 9 ", 1000), partial(5, 9));
    }

    #[test]
    fn open_and_suffix_ranges() {
        assert_eq!(eval("bytes=100-", 1000), partial(100, 999));
        assert_eq!(eval("bytes=0-", 1000), partial(0, 999));
        assert_eq!(eval("bytes=-100", 1000), partial(900, 999));
        assert_eq!(eval("bytes=-5000", 1000), partial(0, 999));
        assert_eq!(eval("bytes=-99999999999999999999999", 10), partial(0, 9));
    }

    #[test]
    fn ranges_outside_the_representation_are_unsatisfiable() {
        assert_eq!(eval("bytes=1000-", 1000), ByteRange::Unsatisfiable);
        assert_eq!(eval("bytes=1000-2000", 1000), ByteRange::Unsatisfiable);
        assert_eq!(
            eval("bytes=99999999999999999999999-", 1000),
            ByteRange::Unsatisfiable
        );
        assert_eq!(eval("bytes=-0", 1000), ByteRange::Unsatisfiable);
        assert_eq!(eval("bytes=0-", 0), ByteRange::Unsatisfiable);
        assert_eq!(eval("bytes=-1", 0), ByteRange::Unsatisfiable);
    }

    #[test]
    fn invalid_or_multiple_ranges_fall_back_to_the_whole_representation() {
        for header in [
            "bytes=0-10,20-30",
            "bytes=0-10, 20-30",
            "bytes=10-5",
            "bytes=",
            "bytes=-",
            "bytes=abc-",
            "bytes=1-x",
            "bytes=+1-2",
            "bytes=--1",
            "bytes 0-10",
            "items=0-10",
            "",
        ] {
            assert_eq!(eval(header, 1000), ByteRange::Full, "{header:?}");
        }
        assert_eq!(evaluate(b"bytes=\xff-1", 1000), ByteRange::Full);
    }
}
