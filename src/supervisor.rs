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
//!
//! A channel with failover (see `docs/architecture.md`, Failover) also watches its
//! run's decoded video: a stall, error or end of its input switches at once to the
//! next input (primary → backup → slate), and while it plays its backup or slate a
//! probe pipeline (`PrimaryProbe`) brings it back to the primary once that delivers again.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use gst::prelude::*;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::catalog::{Catalog, CatalogDiff, Channel, Failover, Ladder};
use crate::packager::Packager;
use crate::pipeline::{
    ChannelPipeline, Input, PipelineError, ProbePipeline, ServiceName, Watchdog, SOURCE_READY,
};
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
/// How often a channel with failover checks its watchdogs.
const WATCHDOG_TICK: Duration = Duration::from_millis(200);
/// A run's input may take this much longer than `stall_timeout` to deliver its first
/// picture: a network source waits for a keyframe, a decoder for its caps.
const STARTUP_GRACE: Duration = Duration::from_secs(3);

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

/// Which of a channel's inputs a run plays. Failover goes down the list, primary →
/// backup → slate; a probe of the primary brings it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Primary,
    Backup,
    Slate,
}

impl Role {
    /// The input to fail over to from this one, if any is left.
    fn next(self, failover: &Failover) -> Option<Role> {
        match self {
            Role::Primary if failover.backup.is_some() => Some(Role::Backup),
            Role::Primary | Role::Backup => Some(Role::Slate),
            Role::Slate => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Backup => "backup",
            Role::Slate => "slate",
        }
    }

    /// The state the run's first segment takes the channel to.
    fn on_air(self) -> ChannelState {
        match self {
            Role::Primary => ChannelState::Live,
            Role::Backup => ChannelState::Failover,
            Role::Slate => ChannelState::Slate,
        }
    }
}

/// How long a failed primary must deliver without a stall before the channel goes
/// back to it. It starts at twice the stall timeout and doubles (up to
/// [`MAX_BACKOFF`]) each time the primary fails again within [`HEALTHY_RUN`] of a
/// return, so a primary that comes and goes cannot make the channel flap.
#[derive(Debug, Default)]
struct Hold {
    /// Doublings since the primary last ran healthily.
    flaps: u32,
    /// When the channel last went back to its primary.
    returned_at: Option<Instant>,
}

impl Hold {
    fn duration(&self, failover: &Failover) -> Duration {
        let base = failover.stall_timeout * 2;
        (base * 2u32.saturating_pow(self.flaps)).min(MAX_BACKOFF.max(base))
    }

    /// The primary failed after running since `started`.
    fn primary_failed(&mut self, started: Instant) {
        match self.returned_at.take() {
            Some(at) if at.elapsed() < HEALTHY_RUN => self.flaps = self.flaps.saturating_add(1),
            _ if started.elapsed() >= HEALTHY_RUN => self.flaps = 0,
            _ => {}
        }
    }

    fn returned(&mut self) {
        self.returned_at = Some(Instant::now());
    }
}

/// What ended a pipeline run that did not fail.
enum Ended {
    /// The channel was stopped.
    Stop,
    /// The channel plays its backup or slate, and its primary delivers again.
    PrimaryBack,
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
    let mut input = Role::Primary;
    let mut hold = Hold::default();
    loop {
        let started = Instant::now();
        let run = run_pipeline(
            &setup,
            input,
            &hold,
            packager.clone(),
            &service_name,
            &mut desired,
        )
        .await;
        let next = match run {
            Ok(ended) => ended,
            Err(err) => {
                let failover = setup.channel.failover.as_ref();
                if let Some(next) = failover.and_then(|f| input.next(f)) {
                    // Straight on to the next input, without a backoff: the playlists
                    // should stall no longer than it takes to notice.
                    warn!(channel = %id, %err, from = input.as_str(), to = next.as_str(), "Channel input failed; failing over.");
                    status.run_failed(err.to_string());
                    status.count_failover();
                    if input == Role::Primary {
                        hold.primary_failed(started);
                    }
                    input = next;
                    packager.lock().unwrap_or_else(|e| e.into_inner()).restart();
                    continue;
                }
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
                        // With failover, the slate failed too: start over from the top.
                        input = Role::Primary;
                        status.count_restart();
                        packager.lock().unwrap_or_else(|e| e.into_inner()).restart();
                        continue;
                    }
                }
            }
        };
        match next {
            Ended::Stop => break,
            Ended::PrimaryBack => {
                info!(channel = %id, from = input.as_str(), "The primary source delivers again; switching back to it.");
                input = Role::Primary;
                hold.returned();
                packager.lock().unwrap_or_else(|e| e.into_inner()).restart();
            }
            Ended::Restart(new) => {
                setup = new;
                backoff = MIN_BACKOFF;
                input = Role::Primary;
                hold = Hold::default();
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
    #[error("the input delivered no video for {0:?}")]
    Stalled(Duration),
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
    role: Role,
    hold: &Hold,
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
    let failover = channel.failover.as_ref();
    let (input, label) = match (role, failover) {
        (
            Role::Backup,
            Some(Failover {
                backup: Some(backup),
                ..
            }),
        ) => (Input::Source(backup), backup.uri.clone()),
        (Role::Slate, Some(failover)) => (
            Input::Slate(failover.slate_image.as_deref()),
            match &failover.slate_image {
                Some(image) => format!("slate:{}", image.display()),
                None => "slate".to_owned(),
            },
        ),
        _ => (Input::Source(&channel.source), channel.source.uri.clone()),
    };
    let ladder = setup.catalog.ladder(channel);
    status.run_starting_as(&label, ladder.segment_duration, role.on_air());
    let built = ChannelPipeline::build(
        &setup.catalog,
        channel,
        input,
        packager,
        service_name.clone(),
    )?;
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
    info!(channel = %channel.id, source = %label, input = role.as_str(), "Channel started.");
    let mut warnings = WarningLog::default();
    // Only a channel with failover has a watchdog: without one a stalled source is
    // waited for, as it always was.
    let mut tick = tokio::time::interval(WATCHDOG_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut probe = match (role, failover) {
        (Role::Backup | Role::Slate, Some(failover)) => Some(PrimaryProbe::new(
            hold.duration(failover),
            failover.stall_timeout,
        )),
        _ => None,
    };
    loop {
        tokio::select! {
            _ = tick.tick(), if failover.is_some() => {
                if let Some(failover) = failover {
                    check_stall(&built.watchdog, failover.stall_timeout)?;
                }
                if let Some(probe) = probe.as_mut() {
                    if probe.primary_back(setup) {
                        return Ok(Ended::PrimaryBack);
                    }
                }
            }
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

/// `Err` once the run's input has delivered no video for `stall_timeout` (a little
/// longer before its first picture).
fn check_stall(watchdog: &Watchdog, stall_timeout: Duration) -> Result<(), RunError> {
    let limit = if watchdog.fed() {
        stall_timeout
    } else {
        stall_timeout + STARTUP_GRACE
    };
    let quiet = watchdog.quiet_for(Instant::now());
    if quiet >= limit {
        return Err(RunError::Stalled(quiet));
    }
    Ok(())
}

/// Watches a failed primary source while the channel plays its backup or slate: a
/// pipeline that only decodes it, started again a while after it fails. The primary
/// is back once it has delivered for the hold time with no gap of `stall_timeout`.
struct PrimaryProbe {
    hold: Duration,
    stall_timeout: Duration,
    running: Option<(StopOnDrop, Watchdog)>,
    /// When the next probe pipeline may start.
    retry_at: Instant,
    /// Since when the primary has delivered without a stall.
    delivering_since: Option<Instant>,
}

impl PrimaryProbe {
    fn new(hold: Duration, stall_timeout: Duration) -> Self {
        Self {
            hold,
            stall_timeout,
            running: None,
            // The primary just failed: give it a stall timeout before looking again.
            retry_at: Instant::now() + stall_timeout,
            delivering_since: None,
        }
    }

    /// Advances the probe; `true` once the primary is back.
    fn primary_back(&mut self, setup: &Setup) -> bool {
        let now = Instant::now();
        let channel = &setup.channel;
        let Some((pipeline, watchdog)) = &self.running else {
            if now >= self.retry_at {
                self.start(setup);
            }
            return false;
        };
        let failed = pipeline
            .0
            .bus()
            .and_then(|bus| bus.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Eos]));
        if let Some(message) = failed {
            let reason = match message.view() {
                gst::MessageView::Error(err) => err.error().to_string(),
                _ => "the source ended".to_owned(),
            };
            info!(channel = %channel.id, %reason, "The primary source is still failing.");
            self.stop(now);
            return false;
        }
        if watchdog.fed() && watchdog.quiet_for(now) < self.stall_timeout {
            let since = *self.delivering_since.get_or_insert(now);
            return now.duration_since(since) >= self.hold;
        }
        self.delivering_since = None;
        false
    }

    fn start(&mut self, setup: &Setup) {
        let channel = &setup.channel;
        let ladder = setup.catalog.ladder(channel);
        let probe = match ProbePipeline::build(channel, &channel.source, ladder) {
            Ok(probe) => probe,
            Err(err) => {
                warn!(channel = %channel.id, %err, "Could not build the primary source's probe.");
                self.retry_at = Instant::now() + self.hold;
                return;
            }
        };
        let pipeline = StopOnDrop(probe.pipeline);
        if let Err(err) = pipeline.0.set_state(gst::State::Playing) {
            warn!(channel = %channel.id, %err, "Could not start the primary source's probe.");
            self.retry_at = Instant::now() + self.hold;
            return;
        }
        self.running = Some((pipeline, probe.watchdog));
    }

    /// Ends a failed probe; another starts after the hold time.
    fn stop(&mut self, now: Instant) {
        self.running = None;
        self.delivering_since = None;
        self.retry_at = now + self.hold;
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
