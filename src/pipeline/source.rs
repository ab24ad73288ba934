//! Sources: everything up to decoded, normalised raw video and audio.
//!
//! Each source ends in two elements whose src pads give progressive I420 video
//! (interlaced sources are deinterlaced, see `super::make_deinterlace`; generated
//! pictures are made at the ladder's top size and frame rate) and audio at the
//! ladder's rate and channel count. What is in front of them depends on the URI
//! scheme.
//!
//! The input bitrate a channel reports is counted here, as the bytes leaving the
//! source element (see [`meter_source`]): the transport stream, RTP packets, FLV, RTSP's
//! RTP or the file's bytes as they are read; for an HLS pull the segments its
//! adaptive demuxer hands on; for `test://` the raw pictures and samples the
//! generators make, since nothing compressed enters that pipeline.

use std::sync::Arc;

use gst::prelude::*;
use tracing::{debug, warn};

use super::{make, Input, PipelineError};
use std::path::Path;

use crate::catalog::{Channel, Ladder, Source, SourceScheme};
use crate::status::ChannelStatus;

/// Application message a file source posts once its decoded pads are linked.
pub const SOURCE_READY: &str = "headend-source-ready";

/// The two raw outputs of a source, already in the pipeline.
pub struct SourceOutputs {
    pub video: gst::Element,
    pub audio: gst::Element,
    /// For a file: the pad to push looping seeks from (upstream to the demuxer).
    pub loop_pad: Option<gst::Pad>,
}

/// Builds `input`, one of `channel`'s inputs; the bytes it takes in are counted in
/// `status`.
pub fn build(
    pipeline: &gst::Pipeline,
    channel: &Channel,
    input: Input<'_>,
    ladder: &Ladder,
    status: &Arc<ChannelStatus>,
) -> Result<SourceOutputs, PipelineError> {
    let video_caps = super::normalised_video_caps();
    let audio_caps = gst::Caps::builder("audio/x-raw")
        .field("rate", ladder.audio.sample_rate as i32)
        .field("channels", ladder.audio.channels as i32)
        .build();

    // The common tail: convert to what the encoders take, progressive (decoded pads
    // link to `video_convert`; `deinterlace` follows it).
    let video_convert = make("videoconvert")?;
    let deinterlace = super::make_deinterlace(ladder)?;
    let video_out = make_capsfilter(&video_caps)?;
    let audio_convert = make("audioconvert")?;
    let audio_resample = make("audioresample")?;
    let audio_out = make_capsfilter(&audio_caps)?;
    pipeline.add_many([
        &video_convert,
        &deinterlace,
        &video_out,
        &audio_convert,
        &audio_resample,
        &audio_out,
    ])?;

    let source = match input {
        Input::Source(source) => source,
        Input::Slate(image) => {
            gst::Element::link_many([&video_convert, &deinterlace, &video_out])?;
            gst::Element::link_many([&audio_convert, &audio_resample, &audio_out])?;
            build_slate(pipeline, ladder, image, &video_convert, &audio_convert)?;
            return Ok(SourceOutputs {
                video: video_out,
                audio: audio_out,
                loop_pad: None,
            });
        }
    };
    let scheme = source.scheme();
    let loop_pad = matches!(scheme, SourceScheme::File)
        .then(|| video_convert.static_pad("sink"))
        .flatten();
    // Sources that are not live (a file, an HLS pull that downloads ahead, an RTMP pull:
    // rtmp2src in GStreamer 1.22 is not a live source) are paced to the clock so the
    // channel runs in real time and timestamps map to the wall clock. Without it an
    // RTMP pipeline prerolls before PLAYING and the schedule, reading the base time
    // during preroll, requests splits the muxers never reach.
    let paced = matches!(
        scheme,
        SourceScheme::File | SourceScheme::Hls | SourceScheme::Rtmp
    );
    if paced {
        let video_sync = make("clocksync")?;
        let audio_sync = make("clocksync")?;
        pipeline.add_many([&video_sync, &audio_sync])?;
        gst::Element::link_many([&video_convert, &deinterlace, &video_sync, &video_out])?;
        gst::Element::link_many([&audio_convert, &audio_resample, &audio_sync, &audio_out])?;
    } else {
        gst::Element::link_many([&video_convert, &deinterlace, &video_out])?;
        gst::Element::link_many([&audio_convert, &audio_resample, &audio_out])?;
    }

    match scheme {
        SourceScheme::Test => {
            build_test(
                pipeline,
                channel,
                source,
                ladder,
                &video_convert,
                &audio_convert,
                status,
            )?;
        }
        SourceScheme::Rtp => {
            let udpsrc = make("udpsrc")?;
            let url = source
                .url()
                .ok_or_else(|| PipelineError::Config(format!("unparsable URI {}", source.uri)))?;
            // udpsrc takes udp:// URIs; the RTP framing is in the caps.
            let mut udp = url.clone();
            let _ = udp.set_scheme("udp");
            udp.set_query(None);
            udpsrc.set_property("uri", udp.as_str());
            udpsrc.set_property(
                "caps",
                gst::Caps::builder("application/x-rtp")
                    .field("media", "video")
                    .field("clock-rate", 90000i32)
                    .field("encoding-name", "MP2T")
                    .build(),
            );
            apply_options(&udpsrc, &channel.id, source);
            meter_source(&udpsrc, status);
            let jitter = make("rtpjitterbuffer")?;
            let depay = make("rtpmp2tdepay")?;
            let decode = make("decodebin")?;
            pipeline.add_many([&udpsrc, &jitter, &depay, &decode])?;
            gst::Element::link_many([&udpsrc, &jitter, &depay, &decode])?;
            link_decoded_pads(&decode, &video_convert, &audio_convert);
        }
        SourceScheme::File => {
            let path = source
                .file_path()
                .ok_or_else(|| PipelineError::Config(format!("no file path in {}", source.uri)))?;
            if !path.is_file() {
                return Err(PipelineError::Source(format!(
                    "{} is not a readable file",
                    path.display()
                )));
            }
            let uri = gst::glib::filename_to_uri(path, None)
                .map_err(|e| PipelineError::Source(e.to_string()))?;
            let decode = make("uridecodebin")?;
            decode.set_property("uri", uri.as_str());
            let meter = status.clone();
            decode.connect("source-setup", false, move |args| {
                if let Some(Ok(element)) = args.get(1).map(|v| v.get::<gst::Element>()) {
                    meter_source(&element, &meter);
                }
                None
            });
            pipeline.add(&decode)?;
            link_decoded_pads(&decode, &video_convert, &audio_convert);
            // The supervisor seeks once the decoded streams exist (see SOURCE_READY).
            decode.connect_no_more_pads(|decode| {
                let message =
                    gst::message::Application::builder(gst::Structure::new_empty(SOURCE_READY))
                        .src(decode)
                        .build();
                let _ = decode.post_message(message);
            });
        }
        SourceScheme::Udp
        | SourceScheme::Srt
        | SourceScheme::Rtmp
        | SourceScheme::Rtsp
        | SourceScheme::Hls => {
            let decode = make("uridecodebin")?;
            decode.set_property("uri", source.uri.as_str());
            let (id, options) = (channel.id.clone(), source.clone());
            let meter = status.clone();
            decode.connect("source-setup", false, move |args| {
                if let Some(Ok(element)) = args.get(1).map(|v| v.get::<gst::Element>()) {
                    apply_options(&element, &id, &options);
                    meter_source(&element, &meter);
                }
                None
            });
            if let (SourceScheme::Hls, Some(bin)) = (scheme, decode.downcast_ref::<gst::Bin>()) {
                // The source element fetches only the playlist; the adaptive demuxer
                // downloads the segments and hands them on from its own pads.
                let meter = status.clone();
                bin.connect_deep_element_added(move |_, _, element| {
                    let adaptive = element
                        .factory()
                        .is_some_and(|f| f.klass().contains("Demuxer/Adaptive"));
                    if adaptive {
                        meter_source(element, &meter);
                    }
                });
            }
            pipeline.add(&decode)?;
            link_decoded_pads(&decode, &video_convert, &audio_convert);
        }
    }

    Ok(SourceOutputs {
        video: video_out,
        audio: audio_out,
        loop_pad,
    })
}

/// A test pattern with the wall clock burnt in, and a tone: proves at a glance that a
/// channel is live and how far behind the live edge a player is.
fn build_test(
    pipeline: &gst::Pipeline,
    channel: &Channel,
    source: &Source,
    ladder: &Ladder,
    video_in: &gst::Element,
    audio_in: &gst::Element,
    status: &Arc<ChannelStatus>,
) -> Result<(), PipelineError> {
    let top = ladder
        .renditions
        .first()
        .ok_or_else(|| PipelineError::Config("the ladder has no renditions".into()))?;
    let query: std::collections::BTreeMap<String, String> = source
        .url()
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default();
    let videotestsrc = make("videotestsrc")?;
    videotestsrc.set_property("is-live", true);
    set_from_str(
        &videotestsrc,
        "pattern",
        query.get("pattern").map_or("smpte", |s| s),
    );
    let caps = make_capsfilter(
        &gst::Caps::builder("video/x-raw")
            .field("width", top.width as i32)
            .field("height", top.height as i32)
            .field("framerate", gst::Fraction::new(top.max_framerate as i32, 1))
            .build(),
    )?;
    let clock = make("clockoverlay")?;
    // The overlay's text is Pango markup: a name like "News & Weather" is escaped.
    clock.set_property(
        "text",
        gst::glib::markup_escape_text(&channel.name).as_str(),
    );
    clock.set_property("time-format", "%Y-%m-%d %H:%M:%S");
    clock.set_property("shaded-background", true);
    set_from_str(&clock, "halignment", "center");
    set_from_str(&clock, "valignment", "center");
    clock.set_property("font-desc", "Sans Bold 36");

    let audiotestsrc = make("audiotestsrc")?;
    audiotestsrc.set_property("is-live", true);
    set_from_str(
        &audiotestsrc,
        "wave",
        query.get("wave").map_or("sine", |s| s),
    );
    let freq = query
        .get("freq")
        .and_then(|f| f.parse::<f64>().ok())
        .unwrap_or(1000.0);
    audiotestsrc.set_property("freq", freq);
    audiotestsrc.set_property("volume", 0.2f64);

    // `?duration=SECONDS` ends the source after that much content: a source that ends
    // on its own, for testing supervision.
    if let Some(seconds) = query.get("duration").and_then(|d| d.parse::<u32>().ok()) {
        let frames = seconds.saturating_mul(top.max_framerate);
        videotestsrc.set_property("num-buffers", i32::try_from(frames).unwrap_or(i32::MAX));
        // At the ladder's sample rate (the caps below), 1024 samples a buffer.
        let buffers = u64::from(seconds) * u64::from(ladder.audio.sample_rate) / 1024;
        audiotestsrc.set_property("samplesperbuffer", 1024i32);
        audiotestsrc.set_property("num-buffers", i32::try_from(buffers).unwrap_or(i32::MAX));
    }
    let audio_caps = make_capsfilter(
        &gst::Caps::builder("audio/x-raw")
            .field("rate", ladder.audio.sample_rate as i32)
            .build(),
    )?;

    meter_source(&videotestsrc, status);
    meter_source(&audiotestsrc, status);
    pipeline.add_many([&videotestsrc, &caps, &clock, &audiotestsrc, &audio_caps])?;
    gst::Element::link_many([&videotestsrc, &caps, &clock, video_in])?;
    gst::Element::link_many([&audiotestsrc, &audio_caps, audio_in])?;
    Ok(())
}

/// The text the generated slate shows.
const SLATE_TEXT: &str = "Off air";

/// The slate: an operator's still image (`slate: { image: }`), or a black card with
/// "Off air" on it, with silence. Generated on the pipeline's clock, so it never
/// stalls; it has no input bytes to count.
fn build_slate(
    pipeline: &gst::Pipeline,
    ladder: &Ladder,
    image: Option<&Path>,
    video_in: &gst::Element,
    audio_in: &gst::Element,
) -> Result<(), PipelineError> {
    let top = ladder
        .renditions
        .first()
        .ok_or_else(|| PipelineError::Config("the ladder has no renditions".into()))?;
    let frame_rate = gst::Fraction::new(top.max_framerate as i32, 1);
    match image {
        Some(path) => {
            if !path.is_file() {
                return Err(PipelineError::Source(format!(
                    "slate image {} is not a readable file",
                    path.display()
                )));
            }
            let file = make("filesrc")?;
            file.set_property("location", path);
            let decode = make("decodebin")?;
            let convert = make("videoconvert")?;
            let scale = make("videoscale")?;
            // imagefreeze repeats the one decoded picture; live, it stamps each copy
            // with the clock's running time like the generated sources.
            let freeze = make("imagefreeze")?;
            freeze.set_property("is-live", true);
            let caps = make_capsfilter(
                &gst::Caps::builder("video/x-raw")
                    .field("width", top.width as i32)
                    .field("height", top.height as i32)
                    .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
                    .field("framerate", frame_rate)
                    .build(),
            )?;
            pipeline.add_many([&file, &decode, &convert, &scale, &freeze, &caps])?;
            file.link(&decode)?;
            gst::Element::link_many([&convert, &scale, &freeze, &caps, video_in])?;
            let convert_sink = convert.static_pad("sink");
            decode.connect_pad_added(move |_, pad| {
                let Some(sink) = convert_sink.as_ref().filter(|s| !s.is_linked()) else {
                    return;
                };
                if let Err(err) = pad.link(sink) {
                    warn!(pad = %pad.name(), ?err, "Could not link the slate image.");
                }
            });
        }
        None => {
            let card = make("videotestsrc")?;
            card.set_property("is-live", true);
            set_from_str(&card, "pattern", "black");
            let caps = make_capsfilter(
                &gst::Caps::builder("video/x-raw")
                    .field("width", top.width as i32)
                    .field("height", top.height as i32)
                    .field("framerate", frame_rate)
                    .build(),
            )?;
            let text = make("textoverlay")?;
            text.set_property("text", SLATE_TEXT);
            set_from_str(&text, "halignment", "center");
            set_from_str(&text, "valignment", "center");
            text.set_property("font-desc", "Sans Bold 36");
            pipeline.add_many([&card, &caps, &text])?;
            gst::Element::link_many([&card, &caps, &text, video_in])?;
        }
    }
    let silence = make("audiotestsrc")?;
    silence.set_property("is-live", true);
    set_from_str(&silence, "wave", "silence");
    let audio_caps = make_capsfilter(
        &gst::Caps::builder("audio/x-raw")
            .field("rate", ladder.audio.sample_rate as i32)
            .build(),
    )?;
    pipeline.add_many([&silence, &audio_caps])?;
    gst::Element::link_many([&silence, &audio_caps, audio_in])?;
    Ok(())
}

/// Counts the bytes of every buffer leaving `element`'s src pads, those it has and
/// those it adds later (rtspsrc's and a demuxer's come and go with the streams), into
/// the channel's input bitrate. A probe without a scheduling mode runs in pull mode
/// too, so a file's bytes count as the demuxer reads them.
fn meter_source(element: &gst::Element, status: &Arc<ChannelStatus>) {
    let meter = |pad: &gst::Pad, status: Arc<ChannelStatus>| {
        if pad.direction() != gst::PadDirection::Src {
            return;
        }
        pad.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
            move |_, info| {
                let bytes = match &info.data {
                    Some(gst::PadProbeData::Buffer(buffer)) => buffer.size(),
                    Some(gst::PadProbeData::BufferList(list)) => list.calculate_size(),
                    _ => 0,
                };
                status.input_bytes(bytes as u64);
                gst::PadProbeReturn::Ok
            },
        );
    };
    for pad in element.src_pads() {
        meter(&pad, status.clone());
    }
    let status = status.clone();
    element.connect_pad_added(move |_, pad| meter(pad, status.clone()));
}

/// Links a decodebin's raw pads to the video and audio inputs as they appear. The first
/// video and the first audio stream are used; others are left unlinked.
pub(super) fn link_decoded_pads(
    decode: &gst::Element,
    video_in: &gst::Element,
    audio_in: &gst::Element,
) {
    let video_sink = video_in.static_pad("sink");
    let audio_sink = audio_in.static_pad("sink");
    decode.connect_pad_added(move |_, pad| {
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let Some(name) = caps.structure(0).map(|s| s.name().to_string()) else {
            return;
        };
        let target = if name.starts_with("video/") {
            video_sink.as_ref()
        } else if name.starts_with("audio/") {
            audio_sink.as_ref()
        } else {
            None
        };
        match target {
            Some(sink) if !sink.is_linked() => {
                if let Err(err) = pad.link(sink) {
                    warn!(pad = %pad.name(), caps = %name, ?err, "Could not link a decoded stream.");
                }
            }
            _ => debug!(pad = %pad.name(), caps = %name, "Ignoring an extra decoded stream."),
        }
    });
}

/// Source options are GStreamer properties of the source element (`multicast-iface`,
/// `latency`, `mode`, ...). Unknown names are logged and skipped, never fatal.
fn apply_options(element: &gst::Element, channel: &str, source: &Source) {
    for (key, value) in &source.options {
        // `interface` is the catalog's name for the interface that joins a multicast
        // group, whatever the element calls it.
        let key = match key.as_str() {
            "interface" if element.find_property("multicast-iface").is_some() => "multicast-iface",
            other => other,
        };
        if element.find_property(key).is_some() {
            set_from_str(element, key, value);
        } else {
            warn!(channel, element = %element.name(), option = %key,
                "The source element has no such property; option ignored.");
        }
    }
}

fn set_from_str(element: &gst::Element, name: &str, value: &str) {
    if let Err(err) = catch_set(element, name, value) {
        warn!(element = %element.name(), property = name, value, %err, "Could not set a property.");
    }
}

/// glib panics on a property that does not exist, is read-only or out of range;
/// check each first, since the names and values come from an operator's YAML.
fn catch_set(element: &gst::Element, name: &str, value: &str) -> Result<(), String> {
    let pspec = element
        .find_property(name)
        .ok_or_else(|| format!("no property {name}"))?;
    if !pspec.flags().contains(gst::glib::ParamFlags::WRITABLE) {
        return Err(format!("{name} is read-only"));
    }
    let parsed = gst::glib::Value::deserialize(value, pspec.value_type())
        .map_err(|_| format!("cannot parse {value:?} as {}", pspec.value_type()))?;
    if !pspec.value_is_valid(&parsed) {
        return Err(format!("{value:?} is out of range"));
    }
    element.set_property_from_value(name, &parsed);
    Ok(())
}

pub(super) fn set_property_checked(
    element: &gst::Element,
    name: &str,
    value: &str,
) -> Result<(), PipelineError> {
    catch_set(element, name, value)
        .map_err(|msg| PipelineError::Config(format!("{} property {name}: {msg}", element.name())))
}

fn make_capsfilter(caps: &gst::Caps) -> Result<gst::Element, PipelineError> {
    gst::ElementFactory::make("capsfilter")
        .property("caps", caps)
        .build()
        .map_err(|_| PipelineError::MissingElement("capsfilter".into()))
}
