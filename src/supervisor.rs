//! Supervisor: one task per channel owns its pipeline and its bus, and restarts the
//! pipeline with capped exponential backoff when it fails. A channel is an island: its
//! failure never touches another channel or the origin.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use gst::prelude::*;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::catalog::{Catalog, Channel};
use crate::packager::Packager;
use crate::pipeline::{ChannelPipeline, PipelineError, SOURCE_READY};
use crate::store::{SegmentStore, AUDIO_TRACK};

/// First restart delay; doubles on each failure up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A pipeline that ran this long before failing starts the backoff over.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// Runs every channel of a catalog.
pub struct Supervisor {
    stop: watch::Sender<bool>,
    tasks: BTreeMap<String, JoinHandle<()>>,
}

impl Supervisor {
    /// Starts one task per channel. Must be called within a tokio runtime.
    pub fn start(catalog: Arc<Catalog>, store: Arc<SegmentStore>) -> Self {
        let (stop, _) = watch::channel(false);
        let tasks = catalog
            .channels
            .iter()
            .filter(|c| c.outputs.hls)
            .map(|channel| {
                let task = tokio::spawn(run_channel(
                    catalog.clone(),
                    channel.clone(),
                    store.clone(),
                    stop.subscribe(),
                ));
                (channel.id.clone(), task)
            })
            .collect();
        Self { stop, tasks }
    }

    /// Stops every pipeline (state NULL) and waits for the channel tasks.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for (id, task) in self.tasks {
            if let Err(err) = task.await {
                warn!(channel = %id, %err, "A channel task ended abnormally.");
            }
        }
    }
}

async fn run_channel(
    catalog: Arc<Catalog>,
    channel: Channel,
    store: Arc<SegmentStore>,
    mut stop: watch::Receiver<bool>,
) {
    let ladder = catalog.ladder(&channel);
    let live = store.channel_or_insert(&channel.id, ladder.segment_duration);
    let tracks = ladder
        .renditions
        .iter()
        .map(|r| r.name.clone())
        .chain([AUDIO_TRACK.to_owned()]);
    let packager = Arc::new(Mutex::new(Packager::new(
        live,
        tracks,
        ladder.segment_duration,
        ladder.window,
    )));
    let mut backoff = MIN_BACKOFF;
    loop {
        let started = Instant::now();
        match run_pipeline(&catalog, &channel, packager.clone(), &mut stop).await {
            Ok(()) => break,
            Err(err) => error!(channel = %channel.id, %err, "Channel pipeline failed."),
        }
        if started.elapsed() >= HEALTHY_RUN {
            backoff = MIN_BACKOFF;
        }
        info!(channel = %channel.id, delay_ms = backoff.as_millis() as u64, "Restarting the channel.");
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => break,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
        packager.lock().unwrap_or_else(|e| e.into_inner()).restart();
    }
    info!(channel = %channel.id, "Channel stopped.");
}

#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error(transparent)]
    Build(#[from] PipelineError),
    #[error("{message} ({debug})")]
    Pipeline { message: String, debug: String },
    #[error("the source ended")]
    EndOfStream,
    #[error("the pipeline has no bus")]
    NoBus,
}

/// Sets the pipeline to NULL however `run_pipeline` returns.
struct StopOnDrop(gst::Pipeline);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

/// Runs one pipeline instance until it fails (`Err`) or the channel is stopped (`Ok`).
async fn run_pipeline(
    catalog: &Catalog,
    channel: &Channel,
    packager: Arc<Mutex<Packager>>,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), RunError> {
    if *stop.borrow() {
        return Ok(());
    }
    let built = ChannelPipeline::build(catalog, channel, packager)?;
    let bus = built.pipeline.bus().ok_or(RunError::NoBus)?;
    let mut messages = bus.stream();
    let pipeline = StopOnDrop(built.pipeline.clone());
    // A file plays as a live channel. In PAUSED the clocksync elements hold the decoded
    // data before any encoder; once the decoder's streams exist, one flushing segment
    // seek to the start, then PLAYING; at each end a non-flushing segment seek. Running
    // time keeps growing across loops, so timestamps stay continuous.
    let first_state = if built.loop_pad.is_some() {
        gst::State::Paused
    } else {
        gst::State::Playing
    };
    pipeline
        .0
        .set_state(first_state)
        .map_err(PipelineError::from)?;
    info!(channel = %channel.id, source = %channel.source.uri, "Channel started.");
    let mut warnings = WarningLog::default();
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else { return Err(RunError::NoBus) };
                use gst::MessageView;
                match message.view() {
                    MessageView::Error(err) => {
                        return Err(RunError::Pipeline {
                            message: format!("{}: {}", err.src().map(|s| s.path_string()).unwrap_or_default(), err.error()),
                            debug: err.debug().map(|d| d.to_string()).unwrap_or_default(),
                        });
                    }
                    MessageView::Eos(_) => return Err(RunError::EndOfStream),
                    MessageView::Warning(w) => {
                        let element = w.src().map(|s| s.path_string().to_string()).unwrap_or_default();
                        let warning = w.error().to_string();
                        if let Some(repeats) = warnings.admit(&element, &warning, Instant::now()) {
                            warn!(channel = %channel.id, %element, %warning, repeats, "Pipeline warning.");
                        }
                    }
                    MessageView::Application(app)
                        if app.structure().is_some_and(|s| s.name() == SOURCE_READY) =>
                    {
                        if let Some(pad) = &built.loop_pad {
                            seek_to_start(pad, gst::SeekFlags::FLUSH, &channel.id);
                            pipeline
                                .0
                                .set_state(gst::State::Playing)
                                .map_err(PipelineError::from)?;
                        }
                    }
                    MessageView::SegmentDone(_) => {
                        if let Some(pad) = &built.loop_pad {
                            seek_to_start(pad, gst::SeekFlags::empty(), &channel.id);
                        }
                    }
                    _ => {}
                }
            }
            _ = stop.changed() => return Ok(()),
        }
    }
}

fn seek_to_start(pad: &gst::Pad, flags: gst::SeekFlags, channel: &str) {
    let seek = gst::event::Seek::new(
        1.0,
        flags | gst::SeekFlags::SEGMENT | gst::SeekFlags::ACCURATE,
        gst::SeekType::Set,
        gst::ClockTime::ZERO,
        gst::SeekType::None,
        gst::ClockTime::NONE,
    );
    if !pad.push_event(seek) {
        warn!(channel, "The source refused to loop.");
    }
}

/// Pipeline warnings, each logged once per interval: an element may warn for every
/// buffer (a UDP sink with no route sends a hundred a second).
#[derive(Default)]
struct WarningLog {
    /// (element, message) → when it was last logged, and repeats since.
    seen: HashMap<(String, String), (Instant, u64)>,
}

impl WarningLog {
    const INTERVAL: Duration = Duration::from_secs(60);

    /// Whether to log this warning now, and how many repeats it stands for.
    fn admit(&mut self, element: &str, message: &str, now: Instant) -> Option<u64> {
        let key = (element.to_owned(), message.to_owned());
        match self.seen.get_mut(&key) {
            Some((last, repeats)) if now.duration_since(*last) < Self::INTERVAL => {
                *repeats += 1;
                None
            }
            Some((last, repeats)) => {
                let logged = *repeats + 1;
                *last = now;
                *repeats = 0;
                Some(logged)
            }
            None => {
                self.seen.insert(key, (now, 0));
                Some(1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_warning_is_logged_once_per_interval_with_its_count() {
        let mut log = WarningLog::default();
        let start = Instant::now();
        assert_eq!(log.admit("sink", "no route", start), Some(1));
        for i in 1..=99 {
            let at = start + Duration::from_millis(10 * i);
            assert_eq!(log.admit("sink", "no route", at), None);
        }
        assert_eq!(log.admit("other", "no route", start), Some(1));
        let later = start + WarningLog::INTERVAL;
        assert_eq!(log.admit("sink", "no route", later), Some(100));
        assert_eq!(log.admit("sink", "no route", later), None);
    }
}
