//! Supervisor: one task per channel owns its pipeline and its bus, and restarts the
//! pipeline with capped exponential backoff when it fails. A channel is an island: its
//! failure never touches another channel or the origin.
//!
//! Each task has its own control channel (a `watch` of what it should run), so a
//! catalog reload stops, restarts or updates one channel without disturbing another:
//! [`Supervisor::apply`] takes a [`CatalogDiff`] and touches only the channels it
//! names. A restart for a new configuration keeps the channel's packager, so its media
//! sequence goes on with a discontinuity, as after a failure.
//!
//! Each task reports what its channel is doing into the channel's [`ChannelStatus`]:
//! starting when a run starts, error (with the message) when it fails, a restart when
//! it starts again after one, stopped when the channel is removed; the packager takes
//! it live at the run's first segment.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use gst::prelude::*;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::catalog::{Catalog, CatalogDiff, Channel, Ladder};
use crate::packager::Packager;
use crate::pipeline::{ChannelPipeline, PipelineError, ServiceName, SOURCE_READY};
use crate::status::{ChannelState, ChannelStatus, Registry};
use crate::store::{SegmentStore, AUDIO_TRACK};

/// First restart delay; doubles on each failure up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A pipeline that ran this long before failing starts the backoff over.
const HEALTHY_RUN: Duration = Duration::from_secs(60);
/// How long a stopping channel may take to set its pipeline to NULL before its URLs
/// are withdrawn anyway.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs every channel of a catalog.
pub struct Supervisor {
    store: Arc<SegmentStore>,
    status: Arc<Registry>,
    channels: BTreeMap<String, ChannelTask>,
}

/// One channel's task and the handles to steer it.
struct ChannelTask {
    desired: watch::Sender<Desired>,
    service_name: Arc<ServiceName>,
    /// The generation of the setup the task has taken (its old pipeline stopped, its
    /// packager set for the new one).
    taken: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

/// A channel of a catalog; the catalog resolves its ladder and encoder profile.
#[derive(Debug, Clone)]
struct Setup {
    catalog: Arc<Catalog>,
    channel: Channel,
    /// Counts the restarts asked for; a live update keeps it.
    generation: u64,
}

/// What a channel's task should do. Sending a new value wakes the task: `Run` with a
/// new setup restarts the pipeline with it. A live update replaces the value without
/// waking the task, so it is only read at the next (re)start.
#[derive(Debug, Clone)]
enum Desired {
    Run(Arc<Setup>),
    Stop,
}

impl Supervisor {
    /// Starts one task per channel that is published, each reporting into its status
    /// in `status`. Must be called within a tokio runtime.
    pub fn start(catalog: Arc<Catalog>, store: Arc<SegmentStore>, status: Arc<Registry>) -> Self {
        let mut supervisor = Self {
            store,
            status,
            channels: BTreeMap::new(),
        };
        for channel in &catalog.channels {
            supervisor.spawn(&catalog, channel);
        }
        supervisor
    }

    /// The channels running (or restarting), by id.
    pub fn channel_ids(&self) -> Vec<String> {
        self.channels.keys().cloned().collect()
    }

    /// Takes the running channels to `catalog`, which `diff` describes from the one
    /// applied before, in a fixed order: removed channels stop (their URLs then answer
    /// 404), changed channels restart with their new configuration, live fields update
    /// in place, added channels start. A channel the diff does not name is not touched.
    pub async fn apply(&mut self, catalog: &Arc<Catalog>, diff: &CatalogDiff) {
        let channel = |id: &String| catalog.channels.iter().find(|c| &c.id == id);
        let mut stopping: Vec<String> = diff.removed.clone();
        // A channel whose new configuration publishes nothing stops like a removed one.
        stopping.extend(
            diff.restarted
                .iter()
                .filter(|id| channel(id).is_some_and(|c| !c.outputs.hls))
                .cloned(),
        );
        self.stop(&stopping).await;
        let mut restarting = Vec::new();
        for id in &diff.restarted {
            let Some(channel) = channel(id).filter(|c| c.outputs.hls) else {
                continue;
            };
            match self.channels.get(id) {
                Some(task) => {
                    task.service_name.set(&channel.name);
                    let generation = generation(&task.desired) + 1;
                    task.desired.send_replace(Desired::Run(Arc::new(Setup {
                        catalog: catalog.clone(),
                        channel: channel.clone(),
                        generation,
                    })));
                    info!(channel = %id, "Channel restarting with its new configuration.");
                    restarting.push((id.clone(), task.taken.clone(), generation));
                }
                None => self.spawn(catalog, channel),
            }
        }
        // Each restarting channel stops its old pipeline on its own task, all at once;
        // the reload is done when every one has (its old tracks' URLs then answer
        // 404, and the new run is starting).
        let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
        for (id, mut taken, generation) in restarting {
            let wait = taken.wait_for(|taken| *taken >= generation);
            if tokio::time::timeout_at(deadline, wait).await.is_err() {
                warn!(channel = %id, timeout = ?STOP_TIMEOUT, "A channel did not take its new configuration in time; it will on its own.");
            }
        }
        for id in &diff.updated {
            let (Some(channel), Some(task)) = (channel(id), self.channels.get(id)) else {
                continue;
            };
            task.service_name.set(&channel.name);
            let setup = Arc::new(Setup {
                catalog: catalog.clone(),
                channel: channel.clone(),
                generation: generation(&task.desired),
            });
            // Replaced without waking the task: nothing restarts.
            task.desired.send_if_modified(|desired| {
                if matches!(desired, Desired::Run(_)) {
                    *desired = Desired::Run(setup);
                }
                false
            });
            info!(channel = %id, "Channel updated live.");
        }
        for id in &diff.added {
            if let Some(channel) = channel(id) {
                self.spawn(catalog, channel);
            }
        }
    }

    /// Stops every pipeline (state NULL) and waits for the channel tasks.
    pub async fn shutdown(mut self) {
        let ids = self.channel_ids();
        self.stop_tasks(&ids).await;
    }

    /// Starts a task for a channel that is published and not running yet. A channel
    /// that publishes nothing runs no pipeline and is listed as stopped.
    fn spawn(&mut self, catalog: &Arc<Catalog>, channel: &Channel) {
        if self.channels.contains_key(&channel.id) {
            return;
        }
        if !channel.outputs.hls {
            self.status.register(&channel.id, ChannelState::Stopped);
            return;
        }
        let status = self.status.register(&channel.id, ChannelState::Starting);
        let (desired, receiver) = watch::channel(Desired::Run(Arc::new(Setup {
            catalog: catalog.clone(),
            channel: channel.clone(),
            generation: 0,
        })));
        let (took, taken) = watch::channel(0);
        let service_name = ServiceName::new(&channel.name);
        let task = tokio::spawn(run_channel(
            channel.id.clone(),
            self.store.clone(),
            receiver,
            took,
            service_name.clone(),
            status,
        ));
        self.channels.insert(
            channel.id.clone(),
            ChannelTask {
                desired,
                service_name,
                taken,
                task,
            },
        );
    }

    /// Stops these channels together and withdraws them from the store.
    async fn stop(&mut self, ids: &[String]) {
        self.stop_tasks(ids).await;
        for id in ids {
            if self.store.remove(id).is_some() {
                info!(channel = %id, "Channel withdrawn; its URLs answer 404.");
            }
        }
    }

    /// Tells these channels' tasks to stop, then waits for each (at most
    /// [`STOP_TIMEOUT`] in all).
    async fn stop_tasks(&mut self, ids: &[String]) {
        let tasks: Vec<(String, ChannelTask)> = ids
            .iter()
            .filter_map(|id| Some((id.clone(), self.channels.remove(id)?)))
            .collect();
        for (_, task) in &tasks {
            task.desired.send_replace(Desired::Stop);
        }
        let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
        for (id, task) in tasks {
            let stopped = tokio::time::timeout_at(deadline, task.task).await;
            if let Some(status) = self.status.channel(&id) {
                status.stopped();
            }
            match stopped {
                Ok(Ok(())) => {}
                Ok(Err(err)) => warn!(channel = %id, %err, "A channel task ended abnormally."),
                Err(_) => warn!(
                    channel = %id,
                    timeout = ?STOP_TIMEOUT,
                    "A channel did not stop in time; it is left to finish on its own."
                ),
            }
        }
    }
}

/// The generation of a channel's current setup.
fn generation(desired: &watch::Sender<Desired>) -> u64 {
    match &*desired.borrow() {
        Desired::Run(setup) => setup.generation,
        Desired::Stop => 0,
    }
}

/// The packager's tracks for a ladder: the renditions in ladder order, then the audio.
fn track_names(ladder: &Ladder) -> impl Iterator<Item = String> + '_ {
    ladder
        .renditions
        .iter()
        .map(|r| r.name.clone())
        .chain([AUDIO_TRACK.to_owned()])
}

/// What ended a pipeline run that did not fail.
enum Ended {
    /// The channel was stopped.
    Stop,
    /// The channel is to run this new setup.
    Restart(Arc<Setup>),
}

/// What the task is told now, marking it seen.
fn take_desired(desired: &mut watch::Receiver<Desired>) -> Ended {
    match &*desired.borrow_and_update() {
        Desired::Run(setup) => Ended::Restart(setup.clone()),
        Desired::Stop => Ended::Stop,
    }
}

async fn run_channel(
    id: String,
    store: Arc<SegmentStore>,
    mut desired: watch::Receiver<Desired>,
    took: watch::Sender<u64>,
    service_name: Arc<ServiceName>,
    status: Arc<ChannelStatus>,
) {
    let Ended::Restart(mut setup) = take_desired(&mut desired) else {
        return;
    };
    let ladder = setup.catalog.ladder(&setup.channel);
    let live = store.channel_or_insert(&id, ladder.segment_duration);
    let packager = Arc::new(Mutex::new(Packager::new(
        live,
        track_names(ladder),
        ladder.segment_duration,
        ladder.window,
        status.clone(),
    )));
    let mut backoff = MIN_BACKOFF;
    loop {
        let started = Instant::now();
        let next = match run_pipeline(&setup, packager.clone(), &service_name, &mut desired).await {
            Ok(ended) => ended,
            Err(err) => {
                error!(channel = %id, %err, "Channel pipeline failed.");
                status.run_failed(err.to_string());
                if started.elapsed() >= HEALTHY_RUN {
                    backoff = MIN_BACKOFF;
                }
                info!(channel = %id, delay_ms = backoff.as_millis() as u64, "Restarting the channel.");
                let waited = tokio::select! {
                    _ = tokio::time::sleep(backoff) => None,
                    changed = desired.changed() => Some(match changed {
                        Ok(()) => take_desired(&mut desired),
                        Err(_) => Ended::Stop,
                    }),
                };
                backoff = (backoff * 2).min(MAX_BACKOFF);
                match waited {
                    Some(ended) => ended,
                    None => {
                        // A live update may have replaced the setup since this run
                        // started (same pipeline, new name or number).
                        if let Desired::Run(current) = &*desired.borrow() {
                            setup = current.clone();
                        }
                        status.count_restart();
                        packager.lock().unwrap_or_else(|e| e.into_inner()).restart();
                        continue;
                    }
                }
            }
        };
        match next {
            Ended::Stop => break,
            Ended::Restart(new) => {
                setup = new;
                backoff = MIN_BACKOFF;
                let ladder = setup.catalog.ladder(&setup.channel);
                packager
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .restart_with(track_names(ladder), ladder.segment_duration, ladder.window);
                took.send_replace(setup.generation);
            }
        }
    }
    info!(channel = %id, "Channel stopped.");
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

/// Runs one pipeline instance until it fails (`Err`), or the channel is stopped or
/// given a new setup (`Ok`).
async fn run_pipeline(
    setup: &Setup,
    packager: Arc<Mutex<Packager>>,
    service_name: &Arc<ServiceName>,
    desired: &mut watch::Receiver<Desired>,
) -> Result<Ended, RunError> {
    match desired.has_changed() {
        Ok(false) => {}
        Ok(true) => return Ok(take_desired(desired)),
        // The supervisor is gone: nobody will stop this channel any more.
        Err(_) => return Ok(Ended::Stop),
    }
    let channel = &setup.channel;
    let status = packager
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .status()
        .clone();
    status.run_starting(
        &channel.source.uri,
        setup.catalog.ladder(channel).segment_duration,
    );
    let built = ChannelPipeline::build(&setup.catalog, channel, packager, service_name.clone())?;
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
            changed = desired.changed() => {
                return Ok(match changed {
                    Ok(()) => take_desired(desired),
                    Err(_) => Ended::Stop,
                });
            }
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
