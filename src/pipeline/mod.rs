//! The GStreamer pipeline of one channel: source → decode once → tee → scale and
//! encode per rendition → cmafmux → appsink → packager; audio encoded once.
//!
//! All renditions and the audio share one schedule on the wall clock: keyframes at
//! every multiple of the GOP, fragment splits at every multiple of the segment
//! duration. Players switching renditions depend on that alignment, and it lets the
//! packager give the same segment number to the same moment in every track.

mod schedule;
mod source;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use gst::prelude::*;
use tracing::{debug, error};

use crate::catalog::{BitrateUnit, Catalog, Channel, EncoderProfile, Ladder, Rendition};
use crate::packager::{codecs, Fragment, Packager, TrackId, TrackMedia};
use crate::store::AUDIO_TRACK;
pub use schedule::Schedule;
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

/// Initialises GStreamer once per process: registers `cmafmux` statically and makes
/// the system clock the wall clock, so running time + base time is a UNIX time.
pub fn init() -> Result<(), PipelineError> {
    gst::init()?;
    gstfmp4::plugin_register_static()?;
    gst::SystemClock::obtain().set_property("clock-type", gst::ClockType::Realtime);
    Ok(())
}

/// A built, not yet started, channel pipeline.
pub struct ChannelPipeline {
    pub pipeline: gst::Pipeline,
    /// For a file source: the decoded video input, where the looping seeks are sent
    /// upstream so the demuxer gets exactly one of each.
    pub loop_pad: Option<gst::Pad>,
}

impl ChannelPipeline {
    pub fn build(
        catalog: &Catalog,
        channel: &Channel,
        packager: Arc<Mutex<Packager>>,
    ) -> Result<Self, PipelineError> {
        let ladder = catalog.ladder(channel);
        let encoder = catalog.encoder(ladder);
        let pipeline = gst::Pipeline::with_name(&channel.id);
        pipeline.use_clock(Some(&gst::SystemClock::obtain()));

        let source = source::build(&pipeline, channel, ladder)?;
        let schedule = Schedule::new(ladder.gop, ladder.segment_duration);

        let video_tee = make("tee")?;
        pipeline.add(&video_tee)?;
        source.video.link(&video_tee)?;
        let video_src = source
            .video
            .static_pad("src")
            .ok_or_else(|| PipelineError::Config("video output has no src pad".into()))?;
        schedule.attach(&video_src);

        for rendition in &ladder.renditions {
            let track = track_id(&packager, &rendition.name)?;
            let mux = build_video_branch(&pipeline, &video_tee, rendition, ladder, encoder)?;
            schedule.add_muxer(&mux);
            attach_appsink(&pipeline, &mux, packager.clone(), track, &channel.id)?;
        }

        let audio_mux = build_audio_branch(&pipeline, &source.audio, ladder)?;
        schedule.add_muxer(&audio_mux);
        let track = track_id(&packager, AUDIO_TRACK)?;
        attach_appsink(&pipeline, &audio_mux, packager, track, &channel.id)?;

        Ok(Self {
            pipeline,
            loop_pad: source.loop_pad,
        })
    }
}

fn track_id(packager: &Arc<Mutex<Packager>>, name: &str) -> Result<TrackId, PipelineError> {
    packager
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .track_id(name)
        .ok_or_else(|| PipelineError::Config(format!("the packager has no track {name}")))
}

fn build_video_branch(
    pipeline: &gst::Pipeline,
    tee: &gst::Element,
    rendition: &Rendition,
    ladder: &Ladder,
    profile: &EncoderProfile,
) -> Result<gst::Element, PipelineError> {
    let queue = make_queue()?;
    let scale = make("videoscale")?;
    let rate = make("videorate")?;
    rate.set_property("drop-only", true);
    rate.set_property("max-rate", rendition.max_framerate as i32);
    let raw_caps = capsfilter(
        gst::Caps::builder("video/x-raw")
            .field("width", rendition.width as i32)
            .field("height", rendition.height as i32)
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build(),
    )?;
    let encoder = make(&profile.element)?;
    configure_encoder(&encoder, rendition, ladder, profile)?;
    let h264_caps = capsfilter(
        gst::Caps::builder("video/x-h264")
            .field("profile", rendition.profile.as_str())
            .build(),
    )?;
    let parse = make("h264parse")?;
    let mux = make_cmafmux(ladder)?;
    pipeline.add_many([
        &queue, &scale, &rate, &raw_caps, &encoder, &h264_caps, &parse, &mux,
    ])?;
    gst::Element::link_many([
        tee, &queue, &scale, &rate, &raw_caps, &encoder, &h264_caps, &parse, &mux,
    ])?;
    Ok(mux)
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

fn build_audio_branch(
    pipeline: &gst::Pipeline,
    audio: &gst::Element,
    ladder: &Ladder,
) -> Result<gst::Element, PipelineError> {
    let queue = make_queue()?;
    let encoder = make("avenc_aac")?;
    encoder.set_property(
        "bitrate",
        i32::try_from(ladder.audio.bitrate * 1000).unwrap_or(128_000),
    );
    let parse = make("aacparse")?;
    let mux = make_cmafmux(ladder)?;
    pipeline.add_many([&queue, &encoder, &parse, &mux])?;
    gst::Element::link_many([audio, &queue, &encoder, &parse, &mux])?;
    Ok(mux)
}

fn make_cmafmux(ladder: &Ladder) -> Result<gst::Element, PipelineError> {
    let mux = make("cmafmux")?;
    // Splits come from the schedule (`split-at-running-time`), which always asks for an
    // end no later than this, so a fragment is one segment.
    mux.set_property(
        "fragment-duration",
        gst::ClockTime::from_nseconds(ladder.segment_duration.as_nanos() as u64),
    );
    // Keyframes are forced by the schedule for all renditions at once.
    mux.set_property("send-force-keyunit", false);
    // In a live pipeline the aggregator drains on timeout; with no latency of its own it
    // times out before a GOP is complete. One segment of latency lets it wait for whole
    // GOPs. Output is not delayed by it: the appsinks do not sync to the clock.
    mux.set_property(
        "latency",
        gst::ClockTime::from_nseconds(ladder.segment_duration.as_nanos() as u64),
    );
    Ok(mux)
}

fn make_queue() -> Result<gst::Element, PipelineError> {
    let queue = make("queue")?;
    // Room for a slow encoder to catch up without blocking the other renditions.
    queue.set_property("max-size-buffers", 0u32);
    queue.set_property("max-size-bytes", 0u32);
    queue.set_property("max-size-time", 3_000_000_000u64);
    Ok(queue)
}

fn attach_appsink(
    pipeline: &gst::Pipeline,
    mux: &gst::Element,
    packager: Arc<Mutex<Packager>>,
    track: TrackId,
    channel_id: &str,
) -> Result<(), PipelineError> {
    let appsink = gst_app::AppSink::builder()
        .sync(false)
        .buffer_list(true)
        .max_buffers(0)
        .build();
    pipeline.add(&appsink)?;
    mux.link(&appsink)?;
    let mux_weak = mux.downgrade();
    let channel_id = channel_id.to_owned();
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let Some(mux) = mux_weak.upgrade() else {
                    return Err(gst::FlowError::Flushing);
                };
                on_sample(sink, &mux, &packager, track).inspect_err(|err| {
                    error!(channel = %channel_id, track, %err, "Packaging failed.");
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

/// One appsink sample from cmafmux is `[init]? moof+mdat-header data...`: the init
/// segment is flagged `DISCONT | HEADER`, the fragment header `HEADER` with the
/// fragment's PTS and duration (gst-plugin-fmp4 0.14 `drain_buffers`).
fn on_sample(
    sink: &gst_app::AppSink,
    mux: &gst::Element,
    packager: &Mutex<Packager>,
    track: TrackId,
) -> Result<(), SampleError> {
    let sample = sink.pull_sample().map_err(|_| SampleError::Empty)?;
    let segment = sample
        .segment()
        .and_then(|s| s.downcast_ref::<gst::ClockTime>().cloned())
        .ok_or(SampleError::NoTimestamp)?;
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
            packager
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_init(track, init, media);
            rest = &rest[1..];
        }
    }
    let header = rest.first().ok_or(SampleError::Empty)?;
    let pts = header.pts().ok_or(SampleError::NoTimestamp)?;
    let running_time = segment
        .to_running_time(pts)
        .ok_or(SampleError::NoTimestamp)?;
    let base_time = sink.base_time().ok_or(SampleError::NoTimestamp)?;
    let start =
        SystemTime::UNIX_EPOCH + Duration::from_nanos((base_time + running_time).nseconds());
    let duration = Duration::from_nanos(header.duration().map_or(0, |d| d.nseconds()));
    let fragment = Fragment {
        data: to_bytes(rest),
        start,
        duration,
    };
    let sequence = packager
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push_fragment(track, fragment);
    debug!(track, ?sequence, ?duration, "Segment.");
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

pub(crate) fn make(factory: &str) -> Result<gst::Element, PipelineError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| PipelineError::MissingElement(factory.to_owned()))
}

fn capsfilter(caps: gst::Caps) -> Result<gst::Element, PipelineError> {
    gst::ElementFactory::make("capsfilter")
        .property("caps", caps)
        .build()
        .map_err(|_| PipelineError::MissingElement("capsfilter".into()))
}
