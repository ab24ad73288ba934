//! How far an ingest has come, as the command line shows it: a bar with the
//! percentage, the speed in multiples of real time and the time left, drawn on stderr
//! only when it is a terminal (indicatif hides it otherwise), so logs stay clean.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::pipeline::transcode::Progress;

/// Below this much wall-clock time the speed is too noisy to show.
const WARM_UP: Duration = Duration::from_millis(500);
/// The bar counts milliseconds of media.
const TEMPLATE: &str = "{prefix:.bold} [{bar:32}] {percent:>3}% {msg}";

/// Media seconds per wall-clock second.
pub fn speed(position: Duration, elapsed: Duration) -> Option<f64> {
    (elapsed >= WARM_UP && !position.is_zero())
        .then(|| position.as_secs_f64() / elapsed.as_secs_f64())
}

/// Wall-clock time left at `speed`.
pub fn eta(progress: Progress, speed: f64) -> Option<Duration> {
    let left = progress.duration?.saturating_sub(progress.position);
    (speed > 0.0).then(|| Duration::from_secs_f64(left.as_secs_f64() / speed))
}

/// `1:05`, `1:02:03`.
pub fn clock(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// What follows the bar: `3.2× real time, ETA 0:41`.
pub fn status(progress: Progress, elapsed: Duration) -> String {
    match speed(progress.position, elapsed) {
        Some(speed) => match eta(progress, speed) {
            Some(eta) => format!("{speed:.1}× real time, ETA {}", clock(eta)),
            None => format!("{speed:.1}× real time"),
        },
        None => "starting".to_owned(),
    }
}

/// The progress bar of one asset's ingest.
pub struct IngestBar {
    bar: ProgressBar,
    started: Instant,
}

impl IngestBar {
    /// A bar on stderr, or one that draws nothing when `visible` is false or stderr is
    /// not a terminal.
    pub fn new(asset: &str, visible: bool) -> Self {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        if let Ok(style) = ProgressStyle::with_template(TEMPLATE) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(asset.to_owned());
        bar.set_message("fingerprinting");
        Self {
            bar,
            started: Instant::now(),
        }
    }

    /// Whether anything is drawn.
    pub fn is_visible(&self) -> bool {
        !self.bar.is_hidden()
    }

    pub fn update(&self, progress: Progress) {
        if let Some(duration) = progress.duration {
            self.bar.set_length(duration.as_millis() as u64);
        }
        self.bar.set_position(progress.position.as_millis() as u64);
        self.bar
            .set_message(status(progress, self.started.elapsed()));
    }

    /// Removes the bar, so the one result line follows the command.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(position: u64, duration: Option<u64>) -> Progress {
        Progress {
            position: Duration::from_secs(position),
            duration: duration.map(Duration::from_secs),
        }
    }

    #[test]
    fn speed_and_time_left() {
        let ten = Duration::from_secs(10);
        assert_eq!(speed(Duration::from_secs(30), ten), Some(3.0));
        assert_eq!(speed(Duration::ZERO, ten), None);
        assert_eq!(
            speed(Duration::from_secs(1), Duration::from_millis(100)),
            None
        );
        assert_eq!(
            eta(progress(30, Some(120)), 3.0),
            Some(Duration::from_secs(30))
        );
        assert_eq!(eta(progress(30, None), 3.0), None);
        assert_eq!(eta(progress(130, Some(120)), 3.0), Some(Duration::ZERO));
    }

    #[test]
    fn status_line() {
        let ten = Duration::from_secs(10);
        assert_eq!(
            status(progress(32, Some(3600)), ten),
            "3.2× real time, ETA 18:35"
        );
        assert_eq!(status(progress(32, None), ten), "3.2× real time");
        assert_eq!(status(progress(0, Some(60)), ten), "starting");
        assert_eq!(clock(Duration::from_secs(3723)), "1:02:03");
        assert_eq!(clock(Duration::from_secs(65)), "1:05");
    }

    #[test]
    fn a_hidden_bar_draws_nothing() {
        let bar = IngestBar::new("film", false);
        assert!(!bar.is_visible());
        bar.update(progress(1, Some(2)));
        bar.finish();
    }
}
