//! The GStreamer pipeline of one channel: source → decode once → tee → scale and
//! encode per rendition → cmafmux → appsink → packager; audio encoded once.
//!
//! All renditions and the audio share one schedule on the wall clock: keyframes at
//! every multiple of the GOP, fragment splits at every multiple of the segment
//! duration. Players switching renditions depend on that alignment, and it lets the
//! packager give the same segment number to the same moment in every track.

mod scale;
mod schedule;
mod source;
mod swscale;
mod thumbnail;
pub mod transcode;
mod ts_output;

pub use ts_output::{MulticastFeed, ServiceName, TsSettings};

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use gst::prelude::*;
use tracing::{debug, error};

use crate::catalog::{
    BitrateUnit, Catalog, Channel, EncoderProfile, Ladder, MulticastProtocol, Rendition, Source,
};
use crate::packager::{codecs, Fragment, Packager, TrackId, TrackMedia};
use crate::status::ChannelStatus;
use crate::store::AUDIO_TRACK;
pub use schedule::{Schedule, Timeline};
pub use source::SOURCE_READY;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("GStreamer element {0} is not installed")]
    MissingElement(String),
    #[error("invalid pipeline configuration: {0}")]
    Config(String),
    #[error("source: {0}")]
    Source(String),
    #[error(transparent)]
    Glib(#[from] gst::glib::BoolError),
    #[error("GStreamer initialisation: {0}")]
    Init(#[from] gst::glib::Error),
    #[error("linking elements: {0}")]
    Link(#[from] gst::PadLinkError),
    #[error("state change failed: {0}")]
    StateChange(#[from] gst::StateChangeError),
}

/// Initialises GStreamer once per process: registers `cmafmux` and `headendscale`
/// (the ladder's scaler, `scale.rs`) statically and makes the system clock the wall
/// clock, so running time + base time is a UNIX time.
pub fn init() -> Result<(), PipelineError> {
    gst::init()?;
    gstfmp4::plugin_register_static()?;
    scale::register()?;
    gst::SystemClock::obtain().set_property("clock-type", gst::ClockType::Realtime);
    Ok(())
}

/// What one pipeline run of a channel takes its pictures and sound from.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// The channel's source or its backup.
    Source(&'a Source),
    /// The slate: this still image, or the generated "Off air" card.
    Slate(Option<&'a Path>),
}

/// When the decoded video last moved, written from the streaming thread and read by
/// the supervisor to notice a source that stopped delivering.
#[derive(Debug, Clone)]
pub struct Watchdog {
    origin: Instant,
    /// Milliseconds from `origin` to the last video buffer; `NEVER` before the first.
    last: Arc<AtomicU64>,
}

impl Watchdog {
    const NEVER: u64 = u64::MAX;

    fn new() -> Watchdog {
        Watchdog {
            origin: Instant::now(),
            last: Arc::new(AtomicU64::new(Self::NEVER)),
        }
    }

    /// Feeds the watchdog with every buffer through `pad`.
    fn watch(&self, pad: &gst::Pad) {
        let watchdog = self.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            let millis = watchdog.origin.elapsed().as_millis();
            watchdog.last.store(
                u64::try_from(millis).unwrap_or(Self::NEVER - 1),
                Ordering::Relaxed,
            );
            gst::PadProbeReturn::Ok
        });
    }

    /// Whether any video has come through.
    pub fn fed(&self) -> bool {
        self.last.load(Ordering::Relaxed) != Self::NEVER
    }

    /// How long no video has come through at `now`: since the last buffer, or since
    /// the pipeline was built if none came yet.
    pub fn quiet_for(&self, now: Instant) -> Duration {
        let last = match self.last.load(Ordering::Relaxed) {
            Self::NEVER => self.origin,
            millis => self.origin + Duration::from_millis(millis),
        };
        now.saturating_duration_since(last)
    }
}

/// A built, not yet started, channel pipeline.
pub struct ChannelPipeline {
    pub pipeline: gst::Pipeline,
    /// For a file source: the decoded video input, where the looping seeks are sent
    /// upstream so the demuxer gets exactly one of each.
    pub loop_pad: Option<gst::Pad>,
    /// Fed by the decoded video of the input.
    pub watchdog: Watchdog,
}

/// A pipeline that only decodes a source into fakesinks, to learn whether it
/// delivers (the supervisor watches a failed primary with one while the channel
/// plays its backup or slate). Nothing it reads reaches the channel's numbers.
pub struct ProbePipeline {
    pub pipeline: gst::Pipeline,
    pub watchdog: Watchdog,
}

impl ProbePipeline {
    pub fn build(
        channel: &Channel,
        source: &Source,
        ladder: &Ladder,
    ) -> Result<Self, PipelineError> {
        let pipeline = gst::Pipeline::with_name(&format!("{}-probe", channel.id));
        pipeline.use_clock(Some(&gst::SystemClock::obtain()));
        let status = ChannelStatus::detached(&channel.id);
        let outputs = source::build(&pipeline, channel, Input::Source(source), ladder, &status)?;
        for output in [&outputs.video, &outputs.audio] {
            let sink = make("fakesink")?;
            sink.set_property("sync", false);
            sink.set_property("async", false);
            pipeline.add(&sink)?;
            output.link(&sink)?;
        }
        let watchdog = Watchdog::new();
        let pad = outputs
            .video
            .static_pad("src")
            .ok_or_else(|| PipelineError::Config("video output has no src pad".into()))?;
        watchdog.watch(&pad);
        Ok(Self { pipeline, watchdog })
    }
}

impl ChannelPipeline {
    /// `service_name` is the channel's name for its transport stream's SDT, which a
    /// catalog reload may change while the pipeline runs.
    pub fn build(
        catalog: &Catalog,
        channel: &Channel,
        input: Input<'_>,
        packager: Arc<Mutex<Packager>>,
        service_name: Arc<ServiceName>,
    ) -> Result<Self, PipelineError> {
        let ladder = catalog.ladder(channel);
        let encoder = catalog.encoder(ladder);
        let pipeline = gst::Pipeline::with_name(&channel.id);
        pipeline.use_clock(Some(&gst::SystemClock::obtain()));

        let status = packager
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .status()
            .clone();
        let source = source::build(&pipeline, channel, input, ladder, &status)?;
        let schedule = Schedule::new(Timeline::WallClock, ladder.gop, ladder.segment_duration);
        let output: Arc<dyn TrackOutput> = Arc::new(LiveOutput(packager.clone()));

        let video_tee = make("tee")?;
        pipeline.add(&video_tee)?;
        source.video.link(&video_tee)?;
        let video_src = source
            .video
            .static_pad("src")
            .ok_or_else(|| PipelineError::Config("video output has no src pad".into()))?;
        schedule.attach(&video_src);
        let watchdog = Watchdog::new();
        watchdog.watch(&video_src);

        let ts = ts_settings(channel, ladder);
        let mut ts_video = None;
        let branches = build_video_branches(
            &pipeline,
            &video_tee,
            ladder,
            encoder,
            &schedule,
            Queueing::Live,
        )?;
        for (rendition, Branch { mux, tee, .. }) in ladder.renditions.iter().zip(branches) {
            let track = track_id(&packager, &rendition.name)?;
            if rendition.name == ts.rendition {
                ts_video = Some(tee);
            }
            configure_live_mux(&mux, ladder);
            schedule.add_muxer(&mux);
            attach_appsink(
                &pipeline,
                &mux,
                &output,
                track,
                Timeline::WallClock,
                &channel.id,
            )?;
        }

        let Branch {
            mux: audio_mux,
            tee: ts_audio,
            ..
        } = build_audio_branch(&pipeline, &source.audio, ladder, Queueing::Live)?;
        configure_live_mux(&audio_mux, ladder);
        schedule.add_muxer(&audio_mux);
        let track = track_id(&packager, AUDIO_TRACK)?;
        attach_appsink(
            &pipeline,
            &audio_mux,
            &output,
            track,
            Timeline::WallClock,
            &channel.id,
        )?;

        let ts_video = ts_video.ok_or_else(|| {
            PipelineError::Config(format!("the ladder has no rendition {}", ts.rendition))
        })?;
        let live = packager
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .channel()
            .clone();
        ts_output::build(
            &pipeline,
            &ts_video,
            &ts_audio,
            &ts,
            service_name,
            live.ts(),
        )?;
        thumbnail::build(&pipeline, &video_tee, live)?;

        Ok(Self {
            pipeline,
            loop_pad: source.loop_pad,
            watchdog,
        })
    }
}

/// The channel's transport stream: the catalog's multicast rendition, else the
/// ladder's highest-bitrate one.
fn ts_settings(channel: &Channel, ladder: &Ladder) -> TsSettings {
    let top = ladder.renditions.iter().max_by_key(|r| r.bitrate);
    let rendition = match &channel.multicast {
        Some(multicast) => multicast.rendition.clone(),
        None => top.map(|r| r.name.clone()).unwrap_or_default(),
    };
    let video = ladder
        .renditions
        .iter()
        .find(|r| r.name == rendition)
        .map_or(0, |r| u64::from(r.bitrate));
    TsSettings {
        rendition,
        // The catalog keeps channel numbers within 1..=65535.
        program: u16::try_from(channel.number).unwrap_or(u16::MAX),
        // Kilobits to bits, with a third more for peaks and the muxing overhead.
        expected_rate: (video + u64::from(ladder.audio.bitrate)) * 1300,
        multicast: channel.multicast.as_ref().map(|m| MulticastFeed {
            group: m.group,
            port: m.port,
            rtp: m.protocol == MulticastProtocol::Rtp,
            interface: m.interface.clone(),
            ttl: m.ttl,
            mux_rate: m.mux_rate,
        }),
    }
}

fn track_id(packager: &Arc<Mutex<Packager>>, name: &str) -> Result<TrackId, PipelineError> {
    packager
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .track_id(name)
        .ok_or_else(|| PipelineError::Config(format!("the packager has no track {name}")))
}

/// How much a branch's queue holds before it blocks the branch's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queueing {
    /// A live source: up to 3 s, so a slow encoder catches up without holding up the
    /// other renditions or dropping what the source sent.
    Live,
    /// A file: a few frames. The decoder runs ahead of the encoders, so long queues
    /// would only fill with raw pictures (3 s of 1080p is 280 MB) and wait.
    File,
}

/// A branch per rendition of `ladder`, in its order, each scaling from `decoded`.
///
/// Every rendition is scaled from the decoded picture, as ffmpeg's `split` does, not
/// in steps from a larger rendition: a second bilinear pass costs about 3 dB of PSNR
/// (1080p → 720p → 480p → 360p ends 4.5 dB below 1080p → 360p), and with swscale the
/// steps saved little CPU.
fn build_video_branches(
    pipeline: &gst::Pipeline,
    decoded: &gst::Element,
    ladder: &Ladder,
    profile: &EncoderProfile,
    schedule: &Schedule,
    queueing: Queueing,
) -> Result<Vec<Branch>, PipelineError> {
    ladder
        .renditions
        .iter()
        .map(|rendition| {
            build_video_branch(
                pipeline, decoded, rendition, ladder, profile, schedule, queueing,
            )
        })
        .collect()
}

/// One rendition: `input` (decoded pictures) → scale (`headendscale`) → queue →
/// frame-rate cap → encoder → muxer. Scaling runs in the thread that feeds `input`,
/// so the queue holds scaled pictures; the queue puts each encoder in its own thread,
/// so a picture reaches the other renditions without waiting for this one's encoder.
fn build_video_branch(
    pipeline: &gst::Pipeline,
    input: &gst::Element,
    rendition: &Rendition,
    ladder: &Ladder,
    profile: &EncoderProfile,
    schedule: &Schedule,
    queueing: Queueing,
) -> Result<Branch, PipelineError> {
    let queue = make_queue(queueing)?;
    let scale = make(scale::FACTORY)?;
    let size_caps = capsfilter(
        gst::Caps::builder("video/x-raw")
            .field("width", rendition.width as i32)
            .field("height", rendition.height as i32)
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build(),
    )?;
    // `max_framerate` caps the rate: videorate fixates to the source's rate when it is
    // within the range and to the cap when the source is faster, then drops frames to
    // that rate. `skip-to-first` keeps it from filling the time before the first frame;
    // duplicates only bridge gaps shorter than a GOP (a stalled source is not hidden).
    let rate = make("videorate")?;
    rate.set_property("skip-to-first", true);
    rate.set_property(
        "max-duplication-time",
        u64::try_from(ladder.gop.as_nanos()).unwrap_or(u64::MAX),
    );
    let raw_caps = capsfilter(
        gst::Caps::builder("video/x-raw")
            .field(
                "framerate",
                gst::FractionRange::new(
                    gst::Fraction::new(0, 1),
                    gst::Fraction::new(rendition.max_framerate as i32, 1),
                ),
            )
            .build(),
    )?;
    let encoder = make(&profile.element)?;
    configure_encoder(&encoder, rendition, ladder, profile)?;
    let h264_caps = capsfilter(
        gst::Caps::builder("video/x-h264")
            .field("profile", rendition.profile.as_str())
            .build(),
    )?;
    // The encoded video, for the transport stream's branch.
    let encoded = make("tee")?;
    let parse = make("h264parse")?;
    let mux = make_cmafmux()?;
    pipeline.add_many([
        &scale, &size_caps, &queue, &rate, &raw_caps, &encoder, &h264_caps, &encoded, &parse, &mux,
    ])?;
    gst::Element::link_many([
        input, &scale, &size_caps, &queue, &rate, &raw_caps, &encoder, &h264_caps, &encoded,
        &parse, &mux,
    ])?;
    let raw = raw_caps
        .static_pad("src")
        .ok_or_else(|| PipelineError::Config("capsfilter has no src pad".into()))?;
    schedule.force_keyframes(&raw);
    Ok(Branch { mux, tee: encoded })
}

fn configure_encoder(
    encoder: &gst::Element,
    rendition: &Rendition,
    ladder: &Ladder,
    profile: &EncoderProfile,
) -> Result<(), PipelineError> {
    for (name, value) in &profile.properties {
        source::set_property_checked(encoder, name, value)?;
    }
    let bitrate = match profile.bitrate_unit {
        BitrateUnit::Kbps => rendition.bitrate,
        BitrateUnit::Bps => rendition.bitrate.saturating_mul(1000),
    };
    source::set_property_checked(encoder, &profile.bitrate_property, &bitrate.to_string())?;
    if let Some(gop_property) = &profile.gop_property {
        // The schedule forces every keyframe; the encoder's own interval is only a
        // backstop, set long enough never to fire between two forced ones.
        let frames = (ladder.gop.as_secs_f64() * f64::from(rendition.max_framerate)).ceil() as u32;
        source::set_property_checked(encoder, gop_property, &(frames * 2).to_string())?;
    }
    Ok(())
}

/// One encoded track: its CMAF muxer and a tee with the encoded stream for more outputs.
struct Branch {
    mux: gst::Element,
    tee: gst::Element,
}

fn build_audio_branch(
    pipeline: &gst::Pipeline,
    audio: &gst::Element,
    ladder: &Ladder,
    queueing: Queueing,
) -> Result<Branch, PipelineError> {
    let queue = make_queue(queueing)?;
    let encoder = make("avenc_aac")?;
    encoder.set_property(
        "bitrate",
        i32::try_from(ladder.audio.bitrate * 1000).unwrap_or(128_000),
    );
    let parse = make("aacparse")?;
    let encoded = make("tee")?;
    let mux = make_cmafmux()?;
    pipeline.add_many([&queue, &encoder, &parse, &encoded, &mux])?;
    gst::Element::link_many([audio, &queue, &encoder, &parse, &encoded, &mux])?;
    if let Some(pad) = parse.static_pad("src") {
        drop_overlapping_frames(&pad);
    }
    Ok(Branch { mux, tee: encoded })
}

/// Drops encoded audio frames that start before the end of the frames already sent.
/// After a file loop's segment seek the audio restarts up to a frame early (qtdemux's
/// accumulated base leaves out the clip's AAC priming) and the encoder drains a last
/// padded frame on the new segment, so two frames would share a timestamp. At most one
/// frame (about 21 ms) is lost per loop; a live source never overlaps.
fn drop_overlapping_frames(pad: &gst::Pad) {
    /// Timestamps within this of each other are continuous.
    const SLACK_NS: u64 = 1_000_000;
    let sent_until = std::sync::Mutex::new(None::<u64>);
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let running_time = buffer.pts().and_then(|pts| running_time(pad, pts));
        let Some(start) = running_time.map(|t| t.nseconds()) else {
            return gst::PadProbeReturn::Ok;
        };
        let end = start + buffer.duration().map_or(0, |d| d.nseconds());
        let mut sent = sent_until.lock().unwrap_or_else(|e| e.into_inner());
        if sent.is_some_and(|until| start + SLACK_NS < until) {
            debug!(start, "Dropping audio that overlaps the previous loop.");
            return DROP_BUFFER;
        }
        *sent = Some(end);
        gst::PadProbeReturn::Ok
    });
}

/// What a buffer probe returns to drop its buffer. With `PadProbeReturn::Drop`,
/// GStreamer 1.22 unrefs the buffer that gstreamer-rs 0.24 has already taken out of the
/// probe info, logging `gst_mini_object_unref: assertion 'mini_object != NULL' failed`
/// for every buffer dropped (core fixed it in 1.24.8). With `Handled` the core leaves
/// the buffer to the probe, and the binding drops it.
pub(crate) const DROP_BUFFER: gst::PadProbeReturn = gst::PadProbeReturn::Handled;

fn make_cmafmux() -> Result<gst::Element, PipelineError> {
    let mux = make("cmafmux")?;
    // Keyframes are forced by the schedule, on the same multiples in every rendition.
    mux.set_property("send-force-keyunit", false);
    Ok(mux)
}

fn clock_time(duration: Duration) -> gst::ClockTime {
    gst::ClockTime::from_nseconds(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX))
}

/// A live muxer makes one fragment per segment.
fn configure_live_mux(mux: &gst::Element, ladder: &Ladder) {
    // Splits come from the schedule (`split-at-running-time`), which always asks for an
    // end no later than this, so a fragment is one segment.
    mux.set_property("fragment-duration", clock_time(ladder.segment_duration));
    // In a live pipeline the aggregator drains on timeout; with no latency of its own it
    // times out before a GOP is complete. One segment of latency lets it wait for whole
    // GOPs. Output is not delayed by it: the appsinks do not sync to the clock.
    mux.set_property("latency", clock_time(ladder.segment_duration));
}

/// Where a pipeline's CMAF output goes: the live packager, or a VOD asset writer.
/// Called from the appsinks' streaming threads.
trait TrackOutput: Send + Sync {
    fn init(&self, track: TrackId, init: Bytes, media: TrackMedia);
    /// `start` is nanoseconds on the pipeline's timeline (see `stamp_time`).
    fn fragment(&self, track: TrackId, data: Bytes, start: u64, duration: Duration);
}

struct LiveOutput(Arc<Mutex<Packager>>);

impl TrackOutput for LiveOutput {
    fn init(&self, track: TrackId, init: Bytes, media: TrackMedia) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_init(track, init, media);
    }

    fn fragment(&self, track: TrackId, data: Bytes, start: u64, duration: Duration) {
        let fragment = Fragment {
            data,
            start: SystemTime::UNIX_EPOCH + Duration::from_nanos(start),
            duration,
        };
        let sequence = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_fragment(track, fragment);
        debug!(track, ?sequence, ?duration, "Fragment.");
    }
}

fn make_queue(queueing: Queueing) -> Result<gst::Element, PipelineError> {
    /// A file's queues: enough for the encoders' threads to pick up the next pictures.
    const FILE_BUFFERS: u32 = 4;
    let queue = make("queue")?;
    queue.set_property("max-size-bytes", 0u32);
    match queueing {
        Queueing::Live => {
            queue.set_property("max-size-buffers", 0u32);
            queue.set_property("max-size-time", 3_000_000_000u64);
        }
        Queueing::File => {
            queue.set_property("max-size-buffers", FILE_BUFFERS);
            queue.set_property("max-size-time", 0u64);
        }
    }
    Ok(queue)
}

fn attach_appsink(
    pipeline: &gst::Pipeline,
    mux: &gst::Element,
    output: &Arc<dyn TrackOutput>,
    track: TrackId,
    timeline: Timeline,
    label: &str,
) -> Result<(), PipelineError> {
    let appsink = gst_app::AppSink::builder()
        .sync(false)
        .buffer_list(true)
        .max_buffers(0)
        .build();
    pipeline.add(&appsink)?;
    mux.link(&appsink)?;
    for pad in mux.sink_pads() {
        stamp_time(&pad, timeline);
    }
    let mux_weak = mux.downgrade();
    let label = label.to_owned();
    let output = output.clone();
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let Some(mux) = mux_weak.upgrade() else {
                    return Err(gst::FlowError::Flushing);
                };
                on_sample(sink, &mux, output.as_ref(), track).inspect_err(|err| {
                    error!(pipeline = %label, track, %err, "Packaging failed.");
                    gst::element_error!(
                        sink,
                        gst::StreamError::Failed,
                        ("Packaging failed: {err}")
                    );
                })?;
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(())
}

/// Caps of the reference timestamps the muxer inputs are stamped with.
const STAMP: &str = "timestamp/x-headend";

/// Stamps every buffer entering a muxer with the time of its PTS on `timeline` (the
/// wall clock, or the media's running time), computed from the segment it arrived in.
/// The muxer outputs the very same buffers, so the packager reads each fragment's time
/// from its samples. The muxer's own output timestamps are not usable for this:
/// cmafmux forwards each new input segment verbatim, so a fragment drained after a
/// file loop's segment seek would be converted with the new segment's base
/// (gst-plugin-fmp4 0.14).
fn stamp_time(pad: &gst::Pad, timeline: Timeline) {
    let caps = gst::Caps::new_empty_simple(STAMP);
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() else {
            return gst::PadProbeReturn::Ok;
        };
        let base = match timeline {
            Timeline::WallClock => pad.parent_element().and_then(|e| e.base_time()),
            Timeline::Media => Some(gst::ClockTime::ZERO),
        };
        let running_time = buffer.pts().and_then(|pts| running_time(pad, pts));
        if let (Some(base), Some(running_time)) = (base, running_time) {
            gst::ReferenceTimestampMeta::add(buffer.make_mut(), &caps, base + running_time, None);
        }
        gst::PadProbeReturn::Ok
    });
}

/// The span of a fragment's samples on the stamped timeline, in nanoseconds: the
/// earliest start and latest end, so B-frames (decode order differs from presentation
/// order) are handled.
fn sample_span(buffers: &[gst::Buffer]) -> Option<(u64, Duration)> {
    let caps = gst::Caps::new_empty_simple(STAMP);
    let mut start: Option<u64> = None;
    let mut end: Option<u64> = None;
    for buffer in buffers {
        let Some(meta) = buffer
            .iter_meta::<gst::ReferenceTimestampMeta>()
            .find(|m| m.reference().is_subset(&caps))
        else {
            continue;
        };
        let at = meta.timestamp().nseconds();
        let until = at + buffer.duration().map_or(0, |d| d.nseconds());
        start = Some(start.map_or(at, |s| s.min(at)));
        end = Some(end.map_or(until, |e| e.max(until)));
    }
    let (start, end) = (start?, end?);
    Some((start, Duration::from_nanos(end.saturating_sub(start))))
}

#[derive(Debug, thiserror::Error)]
enum SampleError {
    #[error("the sample has no buffers")]
    Empty,
    #[error("the fragment has no timestamp")]
    NoTimestamp,
    #[error("the muxer input has no usable caps: {0}")]
    Caps(String),
}

impl From<SampleError> for gst::FlowError {
    fn from(_: SampleError) -> Self {
        gst::FlowError::Error
    }
}

/// One appsink sample from cmafmux is `[init]? moof+mdat-header samples...`: the init
/// segment is flagged `DISCONT | HEADER` (gst-plugin-fmp4 0.14 `drain_one_chunk`).
fn on_sample(
    sink: &gst_app::AppSink,
    mux: &gst::Element,
    output: &dyn TrackOutput,
    track: TrackId,
) -> Result<(), SampleError> {
    let sample = sink.pull_sample().map_err(|_| SampleError::Empty)?;
    let buffers: Vec<gst::Buffer> = match (sample.buffer_list(), sample.buffer()) {
        (Some(list), _) => list.iter_owned().collect(),
        (None, Some(buffer)) => vec![buffer.to_owned()],
        (None, None) => return Err(SampleError::Empty),
    };
    let mut rest = buffers.as_slice();
    if let Some(first) = rest.first() {
        if first
            .flags()
            .contains(gst::BufferFlags::DISCONT | gst::BufferFlags::HEADER)
        {
            let media = track_media(mux)?;
            let init = to_bytes(std::slice::from_ref(first));
            output.init(track, init, media);
            rest = &rest[1..];
        }
    }
    // `rest` is the fragment header (moof + mdat header), then the samples.
    let samples = rest.get(1..).ok_or(SampleError::Empty)?;
    let (start, duration) = sample_span(samples).ok_or(SampleError::NoTimestamp)?;
    output.fragment(track, to_bytes(rest), start, duration);
    Ok(())
}

fn to_bytes(buffers: &[gst::Buffer]) -> Bytes {
    let size = buffers.iter().map(|b| b.size()).sum();
    let mut out = BytesMut::with_capacity(size);
    for buffer in buffers {
        if let Ok(map) = buffer.map_readable() {
            out.extend_from_slice(map.as_slice());
        }
    }
    out.freeze()
}

/// What a muxer's input carries, read from its negotiated caps.
fn track_media(mux: &gst::Element) -> Result<TrackMedia, SampleError> {
    let caps = mux
        .sink_pads()
        .first()
        .and_then(|p| p.current_caps())
        .ok_or_else(|| SampleError::Caps("not negotiated".into()))?;
    let s = caps
        .structure(0)
        .ok_or_else(|| SampleError::Caps("empty caps".into()))?;
    let codec_data = s
        .get::<gst::Buffer>("codec_data")
        .map_err(|_| SampleError::Caps(format!("no codec_data in {s}")))?;
    let codec_data = codec_data
        .map_readable()
        .map_err(|_| SampleError::Caps("unreadable codec_data".into()))?;
    let int = |name: &str| s.get::<i32>(name).ok().and_then(|v| u32::try_from(v).ok());
    if s.name() == "video/x-h264" {
        let codecs = codecs::h264(codec_data.as_slice())
            .ok_or_else(|| SampleError::Caps("bad avcC".into()))?;
        let frame_rate = s
            .get::<gst::Fraction>("framerate")
            .ok()
            .filter(|f| f.denom() != 0)
            .map_or(0.0, |f| f64::from(f.numer()) / f64::from(f.denom()));
        Ok(TrackMedia::Video {
            codecs,
            width: int("width").unwrap_or(0),
            height: int("height").unwrap_or(0),
            frame_rate,
        })
    } else {
        let codecs = codecs::aac(codec_data.as_slice())
            .ok_or_else(|| SampleError::Caps("bad AudioSpecificConfig".into()))?;
        Ok(TrackMedia::Audio {
            codecs,
            channels: int("channels").unwrap_or(2),
        })
    }
}

/// The running time of `pts` in the segment that `pad` last received.
pub(crate) fn running_time(pad: &gst::Pad, pts: gst::ClockTime) -> Option<gst::ClockTime> {
    let event = pad.sticky_event::<gst::event::Segment>(0)?;
    event
        .segment()
        .downcast_ref::<gst::ClockTime>()?
        .to_running_time(pts)
}

pub(crate) fn make(factory: &str) -> Result<gst::Element, PipelineError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| PipelineError::MissingElement(factory.to_owned()))
}

/// Pictures fit for the ladder: I420 and progressive. Broadcast sources are often
/// interlaced (1080i, 576i), which neither the scaler nor an OTT player handles: a
/// `deinterlace` step with YADIF turns them progressive, one picture per frame (50i →
/// 25p, ffmpeg's yadif default), or per field (50i → 50p) when the ladder runs at 50
/// frames per second or more. Progressive pictures pass through untouched.
pub(crate) fn normalised_video_caps() -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("interlace-mode", "progressive")
        .build()
}

/// The deinterlacer of [`normalised_video_caps`], for `ladder`.
pub(crate) fn make_deinterlace(ladder: &Ladder) -> Result<gst::Element, PipelineError> {
    let fastest = ladder
        .renditions
        .iter()
        .map(|r| r.max_framerate)
        .max()
        .unwrap_or(0);
    let fields = if fastest >= 50 { "all" } else { "top" };
    let deinterlace = make("deinterlace")?;
    for (name, value) in [("method", "yadif"), ("fields", fields)] {
        source::set_property_checked(&deinterlace, name, value)?;
    }
    Ok(deinterlace)
}

/// [`make`] with a name, unique in its pipeline.
pub(crate) fn make_named(factory: &str, name: &str) -> Result<gst::Element, PipelineError> {
    gst::ElementFactory::make(factory)
        .name(name)
        .build()
        .map_err(|_| PipelineError::MissingElement(factory.to_owned()))
}

fn capsfilter(caps: gst::Caps) -> Result<gst::Element, PipelineError> {
    gst::ElementFactory::make("capsfilter")
        .property("caps", caps)
        .build()
        .map_err(|_| PipelineError::MissingElement("capsfilter".into()))
}
