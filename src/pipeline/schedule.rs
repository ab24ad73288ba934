//! The shared keyframe and segment schedule of a channel, on the wall clock.
//!
//! One probe sits on the decoded video before the tee. When a frame reaches the next
//! multiple of the GOP (in wall-clock time) it sends a downstream force-key-unit event
//! ahead of that frame, which every rendition's encoder obeys for the same frame,
//! whatever the encoder element. Ahead of time it asks every `cmafmux` (video and
//! audio) to split at each multiple of the segment duration with the
//! `split-at-running-time` action signal (gst-plugin-fmp4 0.14).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::prelude::*;
use tracing::debug;

/// How far ahead of the video the split requests are made: the audio branch may run
/// ahead of the video, and a request for a time a muxer has passed is ignored. A live
/// pipeline runs in real time; a file is decoded as fast as it goes, with the audio up
/// to its queue ahead.
const SPLIT_LOOKAHEAD_SEGMENTS: u64 = 2;
const MEDIA_SPLIT_LOOKAHEAD_SEGMENTS: u64 = 16;

/// Which timeline the schedule counts multiples on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeline {
    /// Running time plus base time: the wall clock (live channels).
    WallClock,
    /// Running time alone: the media's own time from its start (VOD files).
    Media,
}

#[derive(Clone)]
pub struct Schedule {
    timeline: Timeline,
    gop: u64,
    segment: u64,
    muxers: Arc<Mutex<Vec<gst::glib::WeakRef<gst::Element>>>>,
    state: Arc<Mutex<State>>,
}

/// Progress through the schedule, in wall-clock nanoseconds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct State {
    next_keyframe: Option<u64>,
    requested_until: Option<u64>,
    last_frame: Option<u64>,
}

/// What to do for one frame at wall-clock time `now`.
#[derive(Debug, PartialEq, Eq)]
struct Step {
    force_keyframe: bool,
    /// Wall-clock times at which every muxer should split.
    splits: Vec<u64>,
}

impl Schedule {
    pub fn new(timeline: Timeline, gop: Duration, segment: Duration) -> Self {
        Self {
            timeline,
            gop: (gop.as_nanos() as u64).max(1),
            segment: (segment.as_nanos() as u64).max(1),
            muxers: Arc::default(),
            state: Arc::default(),
        }
    }

    pub fn add_muxer(&self, mux: &gst::Element) {
        self.muxers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(mux.downgrade());
    }

    /// Installs the probe on the pad that feeds the video tee.
    pub fn attach(&self, pad: &gst::Pad) {
        let schedule = self.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let Some(buffer) = info.buffer() else {
                return gst::PadProbeReturn::Ok;
            };
            let base = match schedule.timeline {
                Timeline::WallClock => pad.parent_element().and_then(|e| e.base_time()),
                Timeline::Media => Some(gst::ClockTime::ZERO),
            };
            let (Some(pts), Some(base)) = (buffer.pts(), base) else {
                return gst::PadProbeReturn::Ok;
            };
            let Some(running_time) = super::running_time(pad, pts) else {
                return gst::PadProbeReturn::Ok;
            };
            let now = (base + running_time).nseconds();
            let step = {
                let mut state = schedule.state.lock().unwrap_or_else(|e| e.into_inner());
                schedule.step(&mut state, now)
            };
            if step.force_keyframe {
                let event = gst_video::DownstreamForceKeyUnitEvent::builder()
                    .running_time(running_time)
                    .all_headers(true)
                    .build();
                pad.push_event(event);
            }
            if !step.splits.is_empty() {
                schedule.request_splits(base, &step.splits);
            }
            gst::PadProbeReturn::Ok
        });
    }

    fn request_splits(&self, base: gst::ClockTime, splits: &[u64]) {
        let muxers = self.muxers.lock().unwrap_or_else(|e| e.into_inner());
        for wall in splits {
            let Some(running_time) = wall.checked_sub(base.nseconds()) else {
                continue;
            };
            let running_time = gst::ClockTime::from_nseconds(running_time);
            debug!(%running_time, "Requesting a segment split.");
            for mux in muxers.iter().filter_map(|m| m.upgrade()) {
                mux.emit_by_name::<()>("split-at-running-time", &[&running_time]);
            }
        }
    }

    fn step(&self, state: &mut State, now: u64) -> Step {
        // Time going backwards (a flushing seek restarted the running time): start over.
        if state.last_frame.is_some_and(|last| now + self.gop < last) {
            *state = State::default();
        }
        state.last_frame = Some(now);
        let force_keyframe = match state.next_keyframe {
            // The first frame of a stream is a keyframe anyway.
            None => false,
            Some(next) => now >= next,
        };
        if state.next_keyframe.is_none_or(|next| now >= next) {
            state.next_keyframe = Some(next_multiple_after(now, self.gop));
        }
        let lookahead = match self.timeline {
            Timeline::WallClock => SPLIT_LOOKAHEAD_SEGMENTS,
            Timeline::Media => MEDIA_SPLIT_LOOKAHEAD_SEGMENTS,
        };
        let horizon = now + lookahead * self.segment;
        let mut splits = Vec::new();
        let mut boundary = match state.requested_until {
            Some(done) => done + self.segment,
            None => next_multiple_after(now, self.segment),
        };
        while boundary <= horizon {
            splits.push(boundary);
            state.requested_until = Some(boundary);
            boundary += self.segment;
        }
        Step {
            force_keyframe,
            splits,
        }
    }
}

/// The smallest multiple of `step` strictly greater than `t`.
fn next_multiple_after(t: u64, step: u64) -> u64 {
    (t / step + 1) * step
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn schedule() -> Schedule {
        Schedule::new(
            Timeline::WallClock,
            Duration::from_secs(1),
            Duration::from_secs(2),
        )
    }

    #[test]
    fn keyframes_fall_on_gop_multiples_of_the_wall_clock() {
        let sched = schedule();
        let mut state = State::default();
        // 25 fps from t = 100.32 s, so a frame lands exactly on each second.
        let frames: Vec<u64> = (0..100)
            .map(|i| 100 * S + 320_000_000 + i * 40_000_000)
            .collect();
        let forced: Vec<u64> = frames
            .iter()
            .copied()
            .filter(|&t| sched.step(&mut state, t).force_keyframe)
            .collect();
        assert_eq!(forced, [101 * S, 102 * S, 103 * S, 104 * S]);
    }

    #[test]
    fn splits_are_requested_ahead_once_each() {
        let sched = schedule();
        let mut state = State::default();
        let first = sched.step(&mut state, 100 * S + 300_000_000);
        assert_eq!(first.splits, [102 * S, 104 * S]);
        assert!(sched
            .step(&mut state, 100 * S + 340_000_000)
            .splits
            .is_empty());
        let later = sched.step(&mut state, 102 * S + 500_000_000);
        assert_eq!(later.splits, [106 * S]);
    }

    #[test]
    fn time_going_backwards_starts_the_schedule_over() {
        let sched = schedule();
        let mut state = State::default();
        sched.step(&mut state, 500 * S);
        let step = sched.step(&mut state, 10 * S);
        assert!(!step.force_keyframe);
        assert_eq!(step.splits, [12 * S, 14 * S]);
    }
}
