//! EPG schedule files, and reading every channel's guide from its EPG file.
//!
//! A schedule file is YAML written so that a demo guide never goes stale:
//!
//! ```yaml
//! utc_offset: "+01:00"   # optional, default +00:00: the offset of the daily times
//! daily:                 # every day; each ends where the next begins, the last at the first of the next day
//!   - { start: "06:00", title: "Morning News", description: "…", category: News }
//!   - { start: "09:00", title: "…" }
//! programmes:            # one-off, RFC 3339 times; they take their time from the daily programmes
//!   - { start: 2026-12-24T20:00:00+01:00, stop: 2026-12-24T22:00:00+01:00, title: "…" }
//! ```
//!
//! A one-off programme replaces the daily programmes it overlaps for as long as it
//! lasts: a daily programme it covers entirely is left out, one it overlaps in part is
//! shortened to the part outside it (and split in two around a one-off inside it), so
//! the guide has no hole around the one-off. Offsets are fixed: a schedule in a place
//! with daylight saving time is written in one offset all year.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone};
use serde::Deserialize;

use super::document::null_as_empty;
use super::position::{NodePath, Position, Positions};
use super::{parse_problem, CatalogError, Channel, Epg, Problem};
use crate::iptv::{xmltv, GuideWindow, Programme};

/// Offsets in use anywhere on Earth run from UTC−12:00 to UTC+14:00.
const MIN_OFFSET_SECONDS: i32 = -12 * 3600;
const MAX_OFFSET_SECONDS: i32 = 14 * 3600;

/// A validated schedule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// The offset of the daily start times.
    pub utc_offset: FixedOffset,
    /// Start times strictly increasing within the day.
    pub daily: Vec<DailyProgramme>,
    /// One-off programmes, sorted by start, none overlapping another.
    pub programmes: Vec<Programme>,
}

/// A programme that starts at the same time every day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyProgramme {
    pub start: NaiveTime,
    pub title: String,
    pub description: Option<String>,
    pub category: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleSpec {
    #[serde(default)]
    utc_offset: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    daily: Vec<DailySpec>,
    #[serde(default, deserialize_with = "null_as_empty")]
    programmes: Vec<OneOffSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DailySpec {
    start: String,
    title: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    category: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OneOffSpec {
    start: String,
    stop: String,
    title: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    category: Option<String>,
}

/// A problem in a schedule file, placed where the parser or the position index can.
pub(super) type Placed = (Option<Position>, String);

impl Schedule {
    /// Reads and validates a schedule file; every problem is reported, each at its
    /// line and column in `path`.
    pub fn load(path: &Path) -> Result<Schedule, CatalogError> {
        let text = fs::read_to_string(path).map_err(|source| CatalogError::Io {
            path: path.to_owned(),
            source,
        })?;
        Schedule::parse(&text).map_err(|problems| {
            CatalogError::Invalid(
                problems
                    .into_iter()
                    .map(|(at, message)| Problem {
                        file: path.to_owned(),
                        line: at.map(|at| at.line),
                        column: at.map(|at| at.column),
                        message,
                    })
                    .collect(),
            )
        })
    }

    /// Parses and validates a schedule file's text. serde_yaml stops at the first
    /// syntax or type error; past that, every problem is reported, sorted by place.
    pub(super) fn parse(text: &str) -> Result<Schedule, Vec<Placed>> {
        let spec = serde_yaml::from_str::<Option<ScheduleSpec>>(text)
            .map_err(|error| vec![parse_problem(&error)])?
            .unwrap_or_default();
        let (positions, duplicates) = Positions::of_yaml(text);
        let mut problems: Vec<Placed> = duplicates
            .into_iter()
            .map(|d| {
                (
                    Some(d.again),
                    format!(
                        "duplicate key `{}`, first at line {} column {}",
                        d.key, d.first.line, d.first.column
                    ),
                )
            })
            .collect();
        let mut problem = |path: &NodePath, message: String| {
            problems.push((positions.value(path), message));
        };
        let root = NodePath::root();

        let utc_offset = match &spec.utc_offset {
            None => FixedOffset::east_opt(0),
            Some(text) => parse_utc_offset(text).or_else(|| {
                problem(
                    &root.key("utc_offset"),
                    format!(
                        "utc_offset must be a fixed offset from -12:00 to +14:00 such as \"+01:00\" or \"-05:30\", not `{text}`"
                    ),
                );
                None
            }),
        };

        let mut daily = Vec::with_capacity(spec.daily.len());
        let mut previous: Option<(NaiveTime, usize)> = None;
        for (index, item) in spec.daily.iter().enumerate() {
            let at = root.key("daily").index(index);
            check_title(&mut problem, &at, &item.title);
            let Some(start) = parse_time_of_day(&item.start) else {
                problem(
                    &at.key("start"),
                    format!(
                        "daily start must be a time of day such as \"06:00\" or \"21:30:00\", not `{}`",
                        item.start
                    ),
                );
                continue;
            };
            // Each daily programme ends where the next begins, so their order is
            // their times' order; a time out of order is almost always a typo.
            if let Some((before, before_index)) = previous.filter(|(before, _)| start <= *before) {
                problem(
                    &at.key("start"),
                    format!(
                        "daily start {} must be later than {} of daily[{before_index}]: list daily programmes in the order they start",
                        start.format("%H:%M:%S"),
                        before.format("%H:%M:%S")
                    ),
                );
            }
            previous = Some((start, index));
            daily.push(DailyProgramme {
                start,
                title: item.title.trim().to_owned(),
                description: item.description.clone(),
                category: item.category.clone(),
            });
        }

        let mut programmes: Vec<(usize, Programme)> = Vec::with_capacity(spec.programmes.len());
        for (index, item) in spec.programmes.iter().enumerate() {
            let at = root.key("programmes").index(index);
            check_title(&mut problem, &at, &item.title);
            let mut time = |field: &str, text: &str| {
                DateTime::parse_from_rfc3339(text.trim()).map_err(|_| {
                    problem(
                        &at.key(field),
                        format!(
                            "programme {field} must be an RFC 3339 time such as 2026-12-24T20:00:00+01:00, not `{text}`"
                        ),
                    );
                })
            };
            let (Ok(start), Ok(stop)) = (time("start", &item.start), time("stop", &item.stop))
            else {
                continue;
            };
            if stop <= start {
                problem(
                    &at.key("stop"),
                    format!(
                        "programme stop {} must be later than its start {}",
                        stop.to_rfc3339(),
                        start.to_rfc3339()
                    ),
                );
                continue;
            }
            programmes.push((
                index,
                Programme {
                    start,
                    stop,
                    title: item.title.trim().to_owned(),
                    description: item.description.clone(),
                    category: item.category.clone(),
                },
            ));
        }
        programmes.sort_by_key(|(_, p)| p.start);
        for pair in programmes.windows(2) {
            let [(before_index, before), (index, programme)] = pair else {
                continue;
            };
            if programme.start < before.stop {
                problem(
                    &root.key("programmes").index(*index).key("start"),
                    format!(
                        "programme starting {} overlaps programmes[{before_index}] ({} to {}): one-off programmes must not overlap",
                        programme.start.to_rfc3339(),
                        before.start.to_rfc3339(),
                        before.stop.to_rfc3339()
                    ),
                );
            }
        }

        match utc_offset {
            Some(utc_offset) if problems.is_empty() => Ok(Schedule {
                utc_offset,
                daily,
                programmes: programmes.into_iter().map(|(_, p)| p).collect(),
            }),
            _ => {
                problems.sort_by_key(|(at, _)| *at);
                Err(problems)
            }
        }
    }

    /// The programmes that fall at least partly inside `window`, sorted by start: the
    /// daily programmes of every day the window touches (and the day before, whose
    /// last programme runs past midnight), cut around the one-offs, and the one-offs.
    pub fn programmes(&self, window: &GuideWindow) -> Vec<Programme> {
        let one_offs: Vec<&Programme> = self
            .programmes
            .iter()
            .filter(|p| window.overlaps(p))
            .collect();
        let mut guide: Vec<Programme> = Vec::new();
        let local_date =
            |time: DateTime<chrono::Utc>| time.with_timezone(&self.utc_offset).date_naive();
        let mut day = local_date(window.from).pred_opt();
        let last_day = local_date(window.to);
        while let Some(date) = day.filter(|date| *date <= last_day) {
            for (index, item) in self.daily.iter().enumerate() {
                let stop = match self.daily.get(index + 1) {
                    Some(next) => self.at(date, next.start),
                    // The last programme of the day runs until the first of the next.
                    None => date
                        .succ_opt()
                        .and_then(|next_day| self.at(next_day, self.daily[0].start)),
                };
                let (Some(start), Some(stop)) = (self.at(date, item.start), stop) else {
                    continue;
                };
                let programme = Programme {
                    start,
                    stop,
                    title: item.title.clone(),
                    description: item.description.clone(),
                    category: item.category.clone(),
                };
                if window.overlaps(&programme) {
                    guide.extend(
                        cut_around(programme, &one_offs)
                            .into_iter()
                            .filter(|piece| window.overlaps(piece)),
                    );
                }
            }
            day = date.succ_opt();
        }
        guide.extend(one_offs.into_iter().cloned());
        guide.sort_by_key(|p| p.start);
        guide
    }

    /// A time of day on a date, in the schedule's offset.
    fn at(&self, date: NaiveDate, time: NaiveTime) -> Option<DateTime<FixedOffset>> {
        self.utc_offset
            .from_local_datetime(&date.and_time(time))
            .single()
    }
}

/// The parts of `programme` outside every one of `one_offs` (sorted by start, not
/// overlapping each other), in order, each in the daily programme's offset.
fn cut_around(programme: Programme, one_offs: &[&Programme]) -> Vec<Programme> {
    let offset = programme.start.timezone();
    let mut pieces = Vec::new();
    let mut from = programme.start;
    for one_off in one_offs
        .iter()
        .filter(|o| o.stop > programme.start && o.start < programme.stop)
    {
        if one_off.start > from {
            pieces.push(Programme {
                start: from,
                stop: one_off.start.with_timezone(&offset),
                ..programme.clone()
            });
        }
        from = from.max(one_off.stop.with_timezone(&offset));
    }
    if from < programme.stop {
        pieces.push(Programme {
            start: from,
            ..programme
        });
    }
    pieces
}

fn check_title(problem: &mut impl FnMut(&NodePath, String), at: &NodePath, title: &str) {
    if title.trim().is_empty() {
        problem(&at.key("title"), "title must not be empty".to_owned());
    }
}

/// `+01:00`, `-05:30`, `+00:00` (also `Z`), from −12:00 to +14:00.
fn parse_utc_offset(text: &str) -> Option<FixedOffset> {
    let text = text.trim();
    if text == "Z" {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (hours, minutes) = rest.split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let hours: i32 = digits(hours)?;
    let minutes: i32 = digits(minutes)?;
    let seconds = sign * (hours * 3600 + minutes * 60);
    (minutes < 60 && (MIN_OFFSET_SECONDS..=MAX_OFFSET_SECONDS).contains(&seconds))
        .then(|| FixedOffset::east_opt(seconds))
        .flatten()
}

/// `6:00`, `06:00` or `06:00:00`.
fn parse_time_of_day(text: &str) -> Option<NaiveTime> {
    let parts: Vec<&str> = text.trim().split(':').collect();
    let (hours, minutes, seconds) = match parts.as_slice() {
        [h, m] => (*h, *m, "00"),
        [h, m, s] => (*h, *m, *s),
        _ => return None,
    };
    if !(1..=2).contains(&hours.len()) || minutes.len() != 2 || seconds.len() != 2 {
        return None;
    }
    NaiveTime::from_hms_opt(digits(hours)?, digits(minutes)?, digits(seconds)?)
}

/// Plain decimal digits only: no sign, no spaces.
fn digits<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Every channel's guide as read from the EPG files now.
#[derive(Debug, Default)]
pub struct Guide {
    /// Programmes inside the window by channel id, each sorted by start. A channel
    /// with an EPG file that could be read is present, even with no programme.
    pub programmes: BTreeMap<String, Vec<Programme>>,
    /// The files that could not be read or are no longer valid. Their channels are
    /// left out of `programmes`; the other channels are not affected.
    pub failures: Vec<EpgFailure>,
}

/// An EPG file that failed, and the channels that lost their guide by it.
#[derive(Debug)]
pub struct EpgFailure {
    /// Channel ids.
    pub channels: Vec<String>,
    pub error: CatalogError,
}

/// Reads every EPG file of `channels` (each file once, however many channels share
/// it) and keeps the programmes inside `window`. The files are read now, not when the
/// catalog was loaded, so an operator's edits show without a reload. Blocking: run it
/// off the async runtime's threads.
pub fn guide(channels: &[Channel], window: &GuideWindow) -> Guide {
    let mut guide = Guide::default();
    // XMLTV file → (headend channel id, the file's channel id) pairs.
    let mut xmltv_files: BTreeMap<&Path, Vec<(&str, &str)>> = BTreeMap::new();
    for channel in channels {
        match &channel.epg {
            None => {}
            Some(Epg::Schedule { path }) => match Schedule::load(path) {
                Ok(schedule) => {
                    guide
                        .programmes
                        .insert(channel.id.clone(), schedule.programmes(window));
                }
                Err(error) => guide.failures.push(EpgFailure {
                    channels: vec![channel.id.clone()],
                    error,
                }),
            },
            Some(Epg::Xmltv { path, channel: id }) => {
                xmltv_files
                    .entry(path)
                    .or_default()
                    .push((&channel.id, id.as_str()));
            }
        }
    }
    for (path, users) in xmltv_files {
        let wanted: BTreeSet<&str> = users.iter().map(|(_, id)| *id).collect();
        match read_xmltv(path, &wanted) {
            Ok(mut programmes) => {
                for (channel, id) in users {
                    let mut list = programmes.remove(id).unwrap_or_default();
                    list.retain(|p| window.overlaps(p));
                    guide.programmes.insert(channel.to_owned(), list);
                }
            }
            Err(error) => guide.failures.push(EpgFailure {
                channels: users.iter().map(|(c, _)| (*c).to_owned()).collect(),
                error,
            }),
        }
    }
    guide
}

/// Reads an XMLTV file's programmes for the `wanted` channel ids. Two headend
/// channels may take the same XMLTV channel; each gets its own copy.
fn read_xmltv(
    path: &Path,
    wanted: &BTreeSet<&str>,
) -> Result<BTreeMap<String, Vec<Programme>>, CatalogError> {
    let text = fs::read_to_string(path).map_err(|source| CatalogError::Io {
        path: path.to_owned(),
        source,
    })?;
    xmltv::read(&text, wanted).map_err(|error| xmltv_problem(path.to_owned(), error))
}

/// An XMLTV reading error as a catalog problem in that file.
pub(super) fn xmltv_problem(file: PathBuf, error: xmltv::XmltvError) -> CatalogError {
    CatalogError::Invalid(vec![Problem {
        file,
        line: Some(error.line),
        column: Some(error.column),
        message: error.message,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn time(text: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(text).expect("test time")
    }

    fn window(now: &str) -> GuideWindow {
        GuideWindow::around(time(now).with_timezone(&Utc))
    }

    fn schedule(text: &str) -> Schedule {
        Schedule::parse(text).unwrap_or_else(|problems| panic!("{problems:?}"))
    }

    /// `(start, stop, title)` of each programme, times as RFC 3339.
    fn listing(programmes: &[Programme]) -> Vec<(String, String, String)> {
        programmes
            .iter()
            .map(|p| (p.start.to_rfc3339(), p.stop.to_rfc3339(), p.title.clone()))
            .collect()
    }

    fn problems(text: &str) -> Vec<String> {
        match Schedule::parse(text) {
            Ok(schedule) => panic!("expected problems, got {schedule:?}"),
            Err(problems) => problems
                .into_iter()
                .map(|(at, message)| match at {
                    Some(at) => format!("{}:{}: {message}", at.line, at.column),
                    None => message,
                })
                .collect(),
        }
    }

    #[test]
    fn daily_programmes_repeat_and_the_last_wraps_to_the_first_of_the_next_day() {
        let schedule = schedule(
            "daily:\n  - { start: \"06:00\", title: Morning }\n  - { start: \"18:30\", title: Evening }\n",
        );
        let guide = schedule.programmes(&window("2026-03-10T12:00:00Z"));
        // From the start of 9 March to the start of 18 March (UTC): nine days, and the
        // programme that began on 8 March at 18:30 and runs into the window.
        let listing = listing(&guide);
        assert_eq!(listing.len(), 1 + 2 * 9);
        assert_eq!(
            listing[..3],
            [
                (
                    "2026-03-08T18:30:00+00:00".to_owned(),
                    "2026-03-09T06:00:00+00:00".to_owned(),
                    "Evening".to_owned()
                ),
                (
                    "2026-03-09T06:00:00+00:00".to_owned(),
                    "2026-03-09T18:30:00+00:00".to_owned(),
                    "Morning".to_owned()
                ),
                (
                    "2026-03-09T18:30:00+00:00".to_owned(),
                    "2026-03-10T06:00:00+00:00".to_owned(),
                    "Evening".to_owned()
                ),
            ]
        );
        assert_eq!(
            listing.last(),
            Some(&(
                "2026-03-17T18:30:00+00:00".to_owned(),
                "2026-03-18T06:00:00+00:00".to_owned(),
                "Evening".to_owned()
            ))
        );
        // No gap, no overlap.
        for pair in guide.windows(2) {
            assert_eq!(pair[0].stop, pair[1].start);
        }
    }

    #[test]
    fn one_daily_programme_runs_all_day() {
        let schedule = schedule("daily: [{ start: \"00:00\", title: Loop }]\n");
        let guide = schedule.programmes(&window("2026-03-10T12:00:00Z"));
        assert_eq!(guide.len(), 9);
        for programme in &guide {
            assert_eq!(programme.stop - programme.start, chrono::TimeDelta::days(1));
        }
        assert_eq!(guide[0].start, time("2026-03-09T00:00:00Z"));
    }

    #[test]
    fn daily_times_are_in_the_schedules_fixed_offset() {
        let schedule = schedule(
            "utc_offset: \"+05:30\"\ndaily:\n  - { start: \"06:00\", title: A }\n  - { start: \"20:00\", title: B }\n",
        );
        let guide = schedule.programmes(&window("2026-07-01T12:00:00Z"));
        let a = guide
            .iter()
            .find(|p| {
                p.title == "A"
                    && p.start.date_naive() == NaiveDate::from_ymd_opt(2026, 7, 1).expect("date")
            })
            .expect("a programme on 1 July");
        assert_eq!(a.start.to_rfc3339(), "2026-07-01T06:00:00+05:30");
        assert_eq!(a.stop.to_rfc3339(), "2026-07-01T20:00:00+05:30");
        assert_eq!(a.start, time("2026-07-01T00:30:00Z"));
        // Fixed offsets have no DST: the same local time in winter and summer.
        let winter = schedule.programmes(&window("2026-01-15T12:00:00Z"));
        assert!(winter
            .iter()
            .any(|p| p.start.to_rfc3339() == "2026-01-15T06:00:00+05:30"));
        // A negative offset.
        let schedule =
            self::schedule("utc_offset: \"-05:00\"\ndaily: [{ start: \"23:00\", title: Late }]\n");
        let guide = schedule.programmes(&window("2026-07-01T12:00:00Z"));
        assert!(guide
            .iter()
            .any(|p| p.start == time("2026-07-02T04:00:00Z")));
    }

    #[test]
    fn a_one_off_replaces_what_it_overlaps() {
        let schedule = schedule(
            "utc_offset: \"+01:00\"
daily:
  - { start: \"06:00\", title: Morning }
  - { start: \"19:00\", title: News }
  - { start: \"21:00\", title: Film }
  - { start: \"23:00\", title: Night }
programmes:
  - { start: 2026-12-24T20:00:00+01:00, stop: 2026-12-24T22:00:00+01:00, title: Special }
  - { start: 2026-12-25T10:00:00Z, stop: 2026-12-25T11:00:00Z, title: Speech }
",
        );
        let guide = schedule.programmes(&window("2026-12-24T12:00:00Z"));
        let around: Vec<_> = listing(&guide)
            .into_iter()
            .filter(|(start, _, _)| {
                start.as_str() >= "2026-12-24T19" && start.as_str() < "2026-12-25T19"
            })
            .collect();
        let row = |start: &str, stop: &str, title: &str| {
            (start.to_owned(), stop.to_owned(), title.to_owned())
        };
        assert_eq!(
            around,
            [
                // Shortened to where the special starts.
                row(
                    "2026-12-24T19:00:00+01:00",
                    "2026-12-24T20:00:00+01:00",
                    "News"
                ),
                row(
                    "2026-12-24T20:00:00+01:00",
                    "2026-12-24T22:00:00+01:00",
                    "Special"
                ),
                // Starts where the special ends.
                row(
                    "2026-12-24T22:00:00+01:00",
                    "2026-12-24T23:00:00+01:00",
                    "Film"
                ),
                row(
                    "2026-12-24T23:00:00+01:00",
                    "2026-12-25T06:00:00+01:00",
                    "Night"
                ),
                // Split around a one-off inside it, in the daily offset.
                row(
                    "2026-12-25T06:00:00+01:00",
                    "2026-12-25T11:00:00+01:00",
                    "Morning"
                ),
                row(
                    "2026-12-25T10:00:00+00:00",
                    "2026-12-25T11:00:00+00:00",
                    "Speech"
                ),
                row(
                    "2026-12-25T12:00:00+01:00",
                    "2026-12-25T19:00:00+01:00",
                    "Morning"
                ),
            ]
        );
    }

    #[test]
    fn a_one_off_covering_a_daily_programme_leaves_it_out() {
        let schedule = schedule(
            "daily:\n  - { start: \"00:00\", title: A }\n  - { start: \"10:00\", title: B }\n  - { start: \"11:00\", title: C }\nprogrammes:\n  - { start: 2026-03-10T09:30:00Z, stop: 2026-03-10T12:00:00Z, title: X }\n",
        );
        let day: Vec<_> = listing(&schedule.programmes(&window("2026-03-10T12:00:00Z")))
            .into_iter()
            .filter(|(start, _, _)| start.starts_with("2026-03-10"))
            .map(|(start, stop, title)| format!("{} {} {title}", &start[11..16], &stop[11..16]))
            .collect();
        assert_eq!(day, ["00:00 09:30 A", "09:30 12:00 X", "12:00 00:00 C"]);
    }

    #[test]
    fn one_offs_outside_the_window_are_left_out_and_only_one_offs_need_no_daily() {
        let schedule = schedule(
            "programmes:\n  - { start: 2020-01-01T00:00:00Z, stop: 2020-01-01T01:00:00Z, title: Old }\n  - { start: 2026-03-11T00:00:00Z, stop: 2026-03-11T01:00:00Z, title: New, description: D, category: C }\n",
        );
        let guide = schedule.programmes(&window("2026-03-10T12:00:00Z"));
        assert_eq!(
            guide,
            [Programme {
                start: time("2026-03-11T00:00:00Z"),
                stop: time("2026-03-11T01:00:00Z"),
                title: "New".to_owned(),
                description: Some("D".to_owned()),
                category: Some("C".to_owned()),
            }]
        );
        assert_eq!(schedule.utc_offset, FixedOffset::east_opt(0).expect("UTC"));
        assert!(self::schedule("")
            .programmes(&window("2026-03-10T12:00:00Z"))
            .is_empty());
    }

    #[test]
    fn offsets_and_times_of_day_are_read_strictly() {
        for (text, seconds) in [
            ("+01:00", 3600),
            ("-05:30", -19800),
            ("+00:00", 0),
            ("Z", 0),
            ("+14:00", 50400),
            ("-12:00", -43200),
        ] {
            assert_eq!(
                parse_utc_offset(text),
                FixedOffset::east_opt(seconds),
                "{text}"
            );
        }
        for bad in [
            "01:00",
            "+1:00",
            "+0100",
            "+15:00",
            "-12:30",
            "+01:60",
            "CET",
            "",
            "+01:00:00",
        ] {
            assert_eq!(parse_utc_offset(bad), None, "{bad}");
        }
        for (text, expected) in [
            ("06:00", (6, 0, 0)),
            ("6:00", (6, 0, 0)),
            ("23:59:59", (23, 59, 59)),
            ("00:00", (0, 0, 0)),
        ] {
            let (h, m, s) = expected;
            assert_eq!(
                parse_time_of_day(text),
                NaiveTime::from_hms_opt(h, m, s),
                "{text}"
            );
        }
        for bad in [
            "24:00",
            "06:60",
            "6",
            "0600",
            "06:0",
            "-1:00",
            "06:00:00:00",
            "+6:00",
            "06h00",
        ] {
            assert_eq!(parse_time_of_day(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_problem_is_placed() {
        let text = "utc_offset: CET
daily:
  - { start: \"09:00\", title: A }
  - { start: \"08:00\", title: B }
  - { start: \"25:00\", title: \" \" }
programmes:
  - { start: 2026-12-24T20:00:00+01:00, stop: 2026-12-24T22:00:00+01:00, title: X }
  - { start: 2026-12-24T21:00:00+01:00, stop: 2026-12-24T23:00:00+01:00, title: Y }
  - { start: 2026-12-24T21:00:00+01:00, stop: 2026-12-24T20:00:00+01:00, title: Z }
  - { start: yesterday, stop: 2026-12-24T20:00:00+01:00, title: W }
";
        assert_eq!(
            problems(text),
            [
                "1:13: utc_offset must be a fixed offset from -12:00 to +14:00 such as \"+01:00\" or \"-05:30\", not `CET`",
                "4:14: daily start 08:00:00 must be later than 09:00:00 of daily[0]: list daily programmes in the order they start",
                "5:14: daily start must be a time of day such as \"06:00\" or \"21:30:00\", not `25:00`",
                "5:30: title must not be empty",
                "8:14: programme starting 2026-12-24T21:00:00+01:00 overlaps programmes[0] (2026-12-24T20:00:00+01:00 to 2026-12-24T22:00:00+01:00): one-off programmes must not overlap",
                "9:47: programme stop 2026-12-24T20:00:00+01:00 must be later than its start 2026-12-24T21:00:00+01:00",
                "10:14: programme start must be an RFC 3339 time such as 2026-12-24T20:00:00+01:00, not `yesterday`",
            ]
        );
    }

    #[test]
    fn syntax_errors_and_unknown_fields_stop_at_the_first() {
        assert_eq!(
            problems("daily:\n  - { start: \"06:00\", title: A, colour: red }\n"),
            ["2:33: daily[0]: unknown field `colour`, expected one of `start`, `title`, `description`, `category`"]
        );
        assert_eq!(
            problems("daily: [\n"),
            ["2:1: did not find expected node content, while parsing a flow node"]
        );
        assert_eq!(
            problems("daily:\n  - { start: \"06:00\", title: A }\ndaily: []\n"),
            ["1:1: duplicate field `daily`"]
        );
        // In a flow mapping too.
        assert_eq!(
            problems("daily:\n  - { start: \"06:00\", title: A, title: B }\n"),
            ["2:5: daily[0]: duplicate field `title`"]
        );
    }

    #[test]
    fn arbitrary_input_never_panics() {
        for text in [
            "~",
            "[]",
            "daily: 3",
            "daily: [~]",
            "programmes: [{}]",
            "'",
            "\u{0}",
            "utc_offset: +99:99",
        ] {
            let _ = Schedule::parse(text);
        }
    }
}
