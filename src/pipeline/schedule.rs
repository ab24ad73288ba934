//! The shared keyframe and segment schedule of a channel, on the wall clock.
//!
//! Keyframes fall on multiples of the GOP and segments end on multiples of the
//! segment duration, counted on one timeline for every rendition.
//!
//! - Each rendition forces its own keyframes, on its own frames after its frame rate
//!   cap: the first frame at or past each GOP multiple gets a downstream
//!   force-key-unit event right ahead of it. A full-rate rendition keys the very frame
//!   the source has at the boundary; a capped one keys its first frame past it. (One
//!   event sent before `videorate` would reach the encoder while `videorate` still holds
//!   frames from before the boundary, and a capped rendition could miss it.)
//! - One probe ahead of the tee asks every `cmafmux` (video and audio) to split at each
//!   multiple of the segment duration, ahead of time, with the `split-at-running-time`
//!   action signal (gst-plugin-fmp4 0.14).

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
    splits: Arc<Mutex<SplitState>>,
}

/// Progress through the split requests, in timeline nanoseconds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct SplitState {
    requested_until: Option<u64>,
    last_frame: Option<u64>,
}

/// Progress of one rendition's keyframes, in timeline nanoseconds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct KeyframeState {
    next_keyframe: Option<u64>,
    last_frame: Option<u64>,
}

impl Schedule {
    pub fn new(timeline: Timeline, gop: Duration, segment: Duration) -> Self {
        Self {
            timeline,
            gop: (gop.as_nanos() as u64).max(1),
            segment: (segment.as_nanos() as u64).max(1),
            muxers: Arc::default(),
            splits: Arc::default(),
        }
    }

    pub fn add_muxer(&self, mux: &gst::Element) {
        self.muxers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(mux.downgrade());
    }

    /// Installs the split probe on the pad that feeds the video tee.
    pub fn attach(&self, pad: &gst::Pad) {
        let schedule = self.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            if let Some((base, _, now)) = schedule.frame_time(pad, info) {
                let splits = {
                    let mut state = schedule.splits.lock().unwrap_or_else(|e| e.into_inner());
                    schedule.split_step(&mut state, now)
                };
                if !splits.is_empty() {
                    schedule.request_splits(base, &splits);
                }
            }
            gst::PadProbeReturn::Ok
        });
    }

    /// Installs one rendition's keyframe probe on the raw video its encoder takes in.
    pub fn force_keyframes(&self, pad: &gst::Pad) {
        let schedule = self.clone();
        let state = Mutex::new(KeyframeState::default());
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            if let Some((_, running_time, now)) = schedule.frame_time(pad, info) {
                let force = {
                    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                    schedule.keyframe_step(&mut state, now)
                };
                if force {
                    let event = gst_video::DownstreamForceKeyUnitEvent::builder()
                        .running_time(running_time)
                        .all_headers(true)
                        .build();
                    pad.push_event(event);
                }
            }
            gst::PadProbeReturn::Ok
        });
    }

    /// The base time, running time and timeline time of the buffer in a probe.
    fn frame_time(
        &self,
        pad: &gst::Pad,
        info: &gst::PadProbeInfo,
    ) -> Option<(gst::ClockTime, gst::ClockTime, u64)> {
        let pts = info.buffer()?.pts()?;
        let base = match self.timeline {
            Timeline::WallClock => pad.parent_element().and_then(|e| e.base_time())?,
            Timeline::Media => gst::ClockTime::ZERO,
        };
        let running_time = super::running_time(pad, pts)?;
        Some((base, running_time, (base + running_time).nseconds()))
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

    /// Whether the frame at `now` is a rendition's first at or past a GOP multiple.
    fn keyframe_step(&self, state: &mut KeyframeState, now: u64) -> bool {
        // Time going backwards (a flushing seek restarted the running time): start over.
        if state.last_frame.is_some_and(|last| now + self.gop < last) {
            *state = KeyframeState::default();
        }
        state.last_frame = Some(now);
        let force = match state.next_keyframe {
            // The first frame of a stream is a keyframe anyway.
            None => false,
            Some(next) => now >= next,
        };
        if state.next_keyframe.is_none_or(|next| now >= next) {
            state.next_keyframe = Some(next_multiple_after(now, self.gop));
        }
        force
    }

    /// The segment boundaries to request now, for a frame at `now`.
    fn split_step(&self, state: &mut SplitState, now: u64) -> Vec<u64> {
        if state.last_frame.is_some_and(|last| now + self.gop < last) {
            *state = SplitState::default();
        }
        state.last_frame = Some(now);
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
        splits
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
        let mut state = KeyframeState::default();
        // 25 fps from t = 100.32 s, so a frame lands exactly on each second.
        let frames: Vec<u64> = (0..100)
            .map(|i| 100 * S + 320_000_000 + i * 40_000_000)
            .collect();
        let forced: Vec<u64> = frames
            .iter()
            .copied()
            .filter(|&t| sched.keyframe_step(&mut state, t))
            .collect();
        assert_eq!(forced, [101 * S, 102 * S, 103 * S, 104 * S]);
    }

    #[test]
    fn a_capped_rendition_keys_its_first_frame_past_each_multiple() {
        let sched = schedule();
        let mut state = KeyframeState::default();
        // 15 fps from t = 100.02 s: no frame falls on a whole second.
        let frames: Vec<u64> = (0..60).map(|i| 100 * S + 20_000_000 + i * S / 15).collect();
        let forced: Vec<u64> = frames
            .iter()
            .copied()
            .filter(|&t| sched.keyframe_step(&mut state, t))
            .collect();
        assert_eq!(forced.len(), 3);
        for (key, second) in forced.iter().zip(101..) {
            assert!((second * S..second * S + S / 15).contains(key), "{key}");
        }
    }

    #[test]
    fn splits_are_requested_ahead_once_each() {
        let sched = schedule();
        let mut state = SplitState::default();
        let first = sched.split_step(&mut state, 100 * S + 300_000_000);
        assert_eq!(first, [102 * S, 104 * S]);
        assert!(sched
            .split_step(&mut state, 100 * S + 340_000_000)
            .is_empty());
        let later = sched.split_step(&mut state, 102 * S + 500_000_000);
        assert_eq!(later, [106 * S]);
    }

    #[test]
    fn time_going_backwards_starts_the_schedule_over() {
        let sched = schedule();
        let mut splits = SplitState::default();
        sched.split_step(&mut splits, 500 * S);
        assert_eq!(sched.split_step(&mut splits, 10 * S), [12 * S, 14 * S]);
        let mut keys = KeyframeState::default();
        sched.keyframe_step(&mut keys, 500 * S);
        assert!(!sched.keyframe_step(&mut keys, 10 * S));
        assert!(sched.keyframe_step(&mut keys, 11 * S));
    }
}
