//! IPTV listings: the M3U channel playlist and the XMLTV programme guide that IPTV
//! apps (VLC, Kodi, TiviMate) and set-top boxes read.
//!
//! Pure format code, as the packager's playlists are: plain data in, text out (and
//! XMLTV text in, programmes out), so every rule is unit tested without a server.
//! `crate::catalog` reads schedule files into [`Programme`]s and checks operators'
//! XMLTV files with [`xmltv::read`]; `crate::origin` turns the running catalog into
//! `/playlist.m3u` and `/epg.xml` with these writers.

pub mod m3u;
pub mod xmltv;

use chrono::{DateTime, Days, FixedOffset, NaiveTime, Utc};

/// One programme of a channel's guide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Programme {
    /// In the offset it was written in (a schedule's `utc_offset`, an RFC 3339
    /// time's own offset, an XMLTV time's offset), which the XMLTV output keeps.
    pub start: DateTime<FixedOffset>,
    /// Later than `start`.
    pub stop: DateTime<FixedOffset>,
    pub title: String,
    pub description: Option<String>,
    pub category: Option<String>,
}

/// The span of time the guide covers: from the start of yesterday to the end of the
/// seventh day after today, in UTC. Both ends are midnights, so the guide's text (and
/// its ETag) changes once a day unless a schedule file changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuideWindow {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl GuideWindow {
    /// Whole days before today the guide keeps: what a viewer has just missed.
    pub const DAYS_BEFORE: u64 = 1;
    /// Whole days after today the guide lists.
    pub const DAYS_AFTER: u64 = 7;

    /// The window around `now`.
    pub fn around(now: DateTime<Utc>) -> GuideWindow {
        let today = now.date_naive();
        let midnight = |date: chrono::NaiveDate| date.and_time(NaiveTime::MIN).and_utc();
        let from = today
            .checked_sub_days(Days::new(Self::DAYS_BEFORE))
            .unwrap_or(today);
        let to = today
            .checked_add_days(Days::new(Self::DAYS_AFTER + 1))
            .unwrap_or(today);
        GuideWindow {
            from: midnight(from),
            to: midnight(to),
        }
    }

    /// Whether any part of `programme` falls inside the window.
    pub fn overlaps(&self, programme: &Programme) -> bool {
        programme.stop > self.from && programme.start < self.to
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("test time")
            .with_timezone(&Utc)
    }

    fn programme(start: &str, stop: &str) -> Programme {
        Programme {
            start: DateTime::parse_from_rfc3339(start).expect("test time"),
            stop: DateTime::parse_from_rfc3339(stop).expect("test time"),
            title: "t".to_owned(),
            description: None,
            category: None,
        }
    }

    #[test]
    fn the_window_runs_from_yesterday_to_a_week_after_today() {
        let window = GuideWindow::around(utc("2026-03-10T15:42:07Z"));
        assert_eq!(window.from, utc("2026-03-09T00:00:00Z"));
        assert_eq!(window.to, utc("2026-03-18T00:00:00Z"));
        // Across a month end and a year end.
        let window = GuideWindow::around(utc("2026-12-31T23:59:59Z"));
        assert_eq!(window.from, utc("2026-12-30T00:00:00Z"));
        assert_eq!(window.to, utc("2027-01-08T00:00:00Z"));
    }

    #[test]
    fn programmes_overlap_the_window_by_any_part() {
        let window = GuideWindow::around(utc("2026-03-10T12:00:00Z"));
        let inside = programme("2026-03-10T10:00:00Z", "2026-03-10T11:00:00Z");
        let straddles_start = programme("2026-03-08T23:00:00Z", "2026-03-09T01:00:00+00:00");
        let ends_at_start = programme("2026-03-08T23:00:00Z", "2026-03-09T00:00:00Z");
        let starts_at_end = programme("2026-03-18T00:00:00Z", "2026-03-18T01:00:00Z");
        // 2026-03-18T00:30+01:00 is 2026-03-17T23:30Z, inside.
        let offset_inside = programme("2026-03-18T00:30:00+01:00", "2026-03-18T02:00:00+01:00");
        assert!(window.overlaps(&inside));
        assert!(window.overlaps(&straddles_start));
        assert!(!window.overlaps(&ends_at_start));
        assert!(!window.overlaps(&starts_at_end));
        assert!(window.overlaps(&offset_inside));
    }
}
