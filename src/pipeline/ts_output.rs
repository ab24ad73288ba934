//! A channel's MPEG-TS output: one rendition's H.264 and the shared AAC, muxed once,
//! for the HTTP clients of `/ts/{channel}` and, when the catalog asks, a multicast
//! feed for set-top boxes. Nothing is encoded twice: the branches tap the encoders'
//! output.
//!
//! ```text
//! rendition tee ─► queue ─► h264parse (SPS/PPS at every IDR) ─┐
//! audio tee ─────► queue ─────────────────────────────────────┴─► mpegtsmux (CBR)
//!   ─► identity [SDT] ─► tee ─┬─► queue ─► appsink ─► TsHub (HTTP)
//!                             └─► queue ─► [rtpmp2tpay] ─► udpsink (paced by the clock)
//! ```
//!
//! With a multicast feed the muxer runs at the constant `mux_rate`, stuffing with null
//! packets, and stamps each 7-packet buffer with its time at that rate; the UDP sink
//! syncs on those stamps, so datagrams leave evenly spaced rather than in a burst per
//! video frame. Without one, the stream is variable-rate (HTTP only).

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::prelude::*;
use tracing::{info, warn};

use super::{clock_time, make, make_named, PipelineError};
use crate::ts::{Sdt, SdtInserter, TsHub, AUDIO_PID, PACKET, PACKETS_PER_DATAGRAM, VIDEO_PID};

/// PCR at most every 40 ms, PAT and PMT at most every 100 ms (90 kHz ticks), with
/// room for the muxer writing them at the first packet after the interval.
const PCR_INTERVAL_TICKS: u32 = 2_700;
const PSI_INTERVAL_TICKS: u32 = 7_200;
const SDT_INTERVAL: Duration = Duration::from_millis(80);
/// How far behind the muxer's timestamps the datagrams are sent: the muxer outputs a
/// video frame's packets when the frame is encoded, up to a frame late.
const SEND_DELAY: Duration = Duration::from_millis(100);
/// A client's queue holds this much of the stream before it is dropped as too slow.
const CLIENT_QUEUE: Duration = Duration::from_secs(4);
/// A client's socket send buffer holds about this much of the stream (the kernel
/// doubles it for its bookkeeping): enough to keep the stream flowing over a path with
/// a round trip of up to a second or so, little enough that a stalled client fills its
/// queue soon after it stops reading.
const CLIENT_SEND_BUFFER: Duration = Duration::from_secs(1);
/// The provider named in the SDT.
pub const PROVIDER: &str = "headend";

/// What the transport stream of one channel carries and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsSettings {
    /// The rendition muxed with the audio.
    pub rendition: String,
    /// Program number and SDT service id.
    pub program: u16,
    /// Bits per second the stream is expected to need (sizes the client queues).
    pub expected_rate: u64,
    pub multicast: Option<MulticastFeed>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MulticastFeed {
    pub group: Ipv4Addr,
    pub port: u16,
    pub rtp: bool,
    pub interface: Option<String>,
    pub ttl: u32,
    /// Constant mux rate, bits per second.
    pub mux_rate: u64,
}

/// The channel's name as its SDT carries it: one per channel, kept by the channel's
/// task across pipeline runs. A catalog reload renames the channel here, and the
/// running pipeline's SDT takes the new name with its next table, without a restart.
#[derive(Debug)]
pub struct ServiceName {
    name: Mutex<String>,
    /// Bumped on every change, so the SDT probe checks one atomic per buffer.
    generation: AtomicU64,
}

impl ServiceName {
    pub fn new(name: &str) -> Arc<ServiceName> {
        Arc::new(ServiceName {
            name: Mutex::new(name.to_owned()),
            generation: AtomicU64::new(0),
        })
    }

    pub fn get(&self) -> String {
        self.name.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, name: &str) {
        let mut current = self.name.lock().unwrap_or_else(|e| e.into_inner());
        if *current != name {
            name.clone_into(&mut current);
            self.generation.fetch_add(1, Ordering::Release);
        }
    }

    /// The name and its generation, read together.
    fn snapshot(&self) -> (String, u64) {
        let name = self.name.lock().unwrap_or_else(|e| e.into_inner());
        (name.clone(), self.generation.load(Ordering::Acquire))
    }

    /// The name, if it changed since generation `seen` (which it then updates).
    fn changed_since(&self, seen: &mut u64) -> Option<String> {
        if self.generation.load(Ordering::Acquire) == *seen {
            return None;
        }
        let (name, generation) = self.snapshot();
        *seen = generation;
        Some(name)
    }
}

/// Builds the TS output from the two tees and connects it to `hub`.
pub(super) fn build(
    pipeline: &gst::Pipeline,
    video_tee: &gst::Element,
    audio_tee: &gst::Element,
    settings: &TsSettings,
    service_name: Arc<ServiceName>,
    hub: Arc<TsHub>,
) -> Result<(), PipelineError> {
    let mux = make_named("mpegtsmux", "ts-mux")?;
    mux.set_property("alignment", PACKETS_PER_DATAGRAM as i32);
    mux.set_property("pcr-interval", PCR_INTERVAL_TICKS);
    mux.set_property("pat-interval", PSI_INTERVAL_TICKS);
    mux.set_property("pmt-interval", PSI_INTERVAL_TICKS);
    let constant_rate = settings.multicast.as_ref().map(|m| m.mux_rate);
    if let Some(rate) = constant_rate {
        mux.set_property("bitrate", rate);
    }
    let video_pad = format!("sink_{VIDEO_PID}");
    let audio_pad = format!("sink_{AUDIO_PID}");
    mux.set_property(
        "prog-map",
        gst::Structure::builder("program_map")
            .field(&video_pad, i32::from(settings.program))
            .field(&audio_pad, i32::from(settings.program))
            .build(),
    );

    let video_queue = leaky_queue("ts-vqueue")?;
    let parse = make("h264parse")?;
    // SPS and PPS ahead of every IDR: a receiver can start at any keyframe.
    parse.set_property("config-interval", -1i32);
    let video_caps = super::capsfilter(
        gst::Caps::builder("video/x-h264")
            .field("stream-format", "byte-stream")
            .field("alignment", "au")
            .build(),
    )?;
    let audio_queue = leaky_queue("ts-aqueue")?;
    // The muxer pushes buffer lists; a base transform passes them on one buffer at a
    // time, so the SDT probe sees every buffer and the UDP sink syncs on each one
    // (it would send a whole list at once).
    let split = make("identity")?;
    let out_tee = make("tee")?;
    pipeline.add_many([
        &mux,
        &video_queue,
        &parse,
        &video_caps,
        &audio_queue,
        &split,
        &out_tee,
    ])?;
    gst::Element::link_many([video_tee, &video_queue, &parse, &video_caps])?;
    if let Some(pad) = video_caps.static_pad("src") {
        mark_delta_units(&pad);
    }
    audio_tee.link(&audio_queue)?;
    link_to_pad(&video_caps, &mux, &video_pad)?;
    link_to_pad(&audio_queue, &mux, &audio_pad)?;
    gst::Element::link_many([&mux, &split, &out_tee])?;

    let split_src = split
        .static_pad("src")
        .ok_or_else(|| PipelineError::Config("identity has no src pad".into()))?;
    insert_sdt(&split_src, settings, service_name, constant_rate.is_some());

    let rate = constant_rate.unwrap_or(settings.expected_rate).max(1);
    let buffers_per_second = rate as f64 / (8 * PACKET * PACKETS_PER_DATAGRAM) as f64;
    hub.set_queue((CLIENT_QUEUE.as_secs_f64() * buffers_per_second).ceil() as usize);
    hub.set_send_buffer((CLIENT_SEND_BUFFER.as_secs_f64() * rate as f64 / 8.0).ceil() as usize);
    hub.reset();
    attach_hub(pipeline, &out_tee, hub)?;
    if let Some(feed) = &settings.multicast {
        attach_multicast(pipeline, &out_tee, feed)?;
    }
    Ok(())
}

fn link_to_pad(
    upstream: &gst::Element,
    mux: &gst::Element,
    name: &str,
) -> Result<(), PipelineError> {
    let pad = mux
        .request_pad_simple(name)
        .ok_or_else(|| PipelineError::Config(format!("mpegtsmux gave no pad {name}")))?;
    let src = upstream
        .static_pad("src")
        .ok_or_else(|| PipelineError::Config("no src pad to link to mpegtsmux".into()))?;
    src.link(&pad)
        .map_err(|err| PipelineError::Config(format!("cannot link to mpegtsmux {name}: {err}")))?;
    Ok(())
}

/// A queue that drops the oldest data rather than block: the TS output must never
/// hold up the encoders, and through them the HLS and DASH output.
///
/// The TS branch's elements that own a streaming thread are named `ts-…`, and GStreamer
/// names each thread after its element and pad (`ts-mux:src`), so the branch's CPU time
/// can be told apart from the encoders' (`benches/iptv.rs` does).
fn leaky_queue(name: &str) -> Result<gst::Element, PipelineError> {
    let queue = make_named("queue", name)?;
    queue.set_property("max-size-buffers", 0u32);
    queue.set_property("max-size-bytes", 0u32);
    queue.set_property("max-size-time", 2_000_000_000u64);
    queue.set_property_from_str("leaky", "downstream");
    Ok(queue)
}

/// Flags every access unit without an IDR slice as a delta unit. `mpegtsmux` sets
/// `random_access_indicator` on every buffer not so flagged, and the first frame after
/// a file loop's seek reaches it unflagged: a set-top box starting there would show a
/// broken picture until the next IDR.
fn mark_delta_units(pad: &gst::Pad) {
    pad.add_probe(gst::PadProbeType::BUFFER, |_, info| {
        let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() else {
            return gst::PadProbeReturn::Ok;
        };
        if buffer.flags().contains(gst::BufferFlags::DELTA_UNIT) {
            return gst::PadProbeReturn::Ok;
        }
        let idr = buffer
            .map_readable()
            .is_ok_and(|map| has_idr_slice(map.as_slice()));
        if !idr {
            buffer.make_mut().set_flags(gst::BufferFlags::DELTA_UNIT);
        }
        gst::PadProbeReturn::Ok
    });
}

/// Whether an H.264 byte-stream access unit holds an IDR slice (NAL type 5).
fn has_idr_slice(access_unit: &[u8]) -> bool {
    access_unit
        .windows(4)
        .filter(|w| w[..3] == [0, 0, 1])
        .any(|w| w[3] & 0x1F == 5)
}

/// Writes the SDT into the muxer's output, on its streaming thread, with the name
/// `service_name` has at each buffer.
fn insert_sdt(
    pad: &gst::Pad,
    settings: &TsSettings,
    service_name: Arc<ServiceName>,
    constant_rate: bool,
) {
    let (name, seen) = service_name.snapshot();
    let sdt = Sdt {
        service_id: settings.program,
        provider: PROVIDER.to_owned(),
        name,
    };
    // The inserter and the name generation it carries.
    let inserter = Mutex::new((SdtInserter::new(sdt, SDT_INTERVAL, constant_rate), seen));
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() else {
            return gst::PadProbeReturn::Ok;
        };
        let time = Duration::from_nanos(buffer.pts().map_or(0, |t| t.nseconds()));
        let buffer = buffer.make_mut();
        let Ok(mut map) = buffer.map_writable() else {
            return gst::PadProbeReturn::Ok;
        };
        let mut guard = inserter.lock().unwrap_or_else(|e| e.into_inner());
        let (inserter, seen) = &mut *guard;
        if let Some(name) = service_name.changed_since(seen) {
            inserter.set_name(&name);
        }
        let added = inserter.process(time, map.as_mut_slice());
        drop(guard);
        drop(map);
        if let Some(packet) = added {
            buffer.append_memory(gst::Memory::from_slice(packet));
        }
        gst::PadProbeReturn::Ok
    });
}

fn attach_hub(
    pipeline: &gst::Pipeline,
    tee: &gst::Element,
    hub: Arc<TsHub>,
) -> Result<(), PipelineError> {
    let queue = leaky_queue("ts-hubqueue")?;
    let appsink = gst_app::AppSink::builder().sync(false).build();
    pipeline.add_many([&queue, appsink.upcast_ref()])?;
    gst::Element::link_many([tee, &queue, appsink.upcast_ref()])?;
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(buffer) = sample.buffer() {
                    if let Ok(map) = buffer.map_readable() {
                        hub.push(map.as_slice());
                    }
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(())
}

fn attach_multicast(
    pipeline: &gst::Pipeline,
    tee: &gst::Element,
    feed: &MulticastFeed,
) -> Result<(), PipelineError> {
    if let Some(interface) = &feed.interface {
        if !Path::new("/sys/class/net").join(interface).exists() {
            warn!(%interface, group = %feed.group, "No such network interface; the multicast feed is off.");
            return Ok(());
        }
    }
    let queue = leaky_queue("ts-mcqueue")?;
    let sink = make("udpsink")?;
    sink.set_property("host", feed.group.to_string());
    sink.set_property("port", i32::from(feed.port));
    sink.set_property("ttl-mc", i32::try_from(feed.ttl).unwrap_or(0));
    // A sender need not join the group (joining fails where no route to it exists).
    sink.set_property("auto-multicast", false);
    if let Some(interface) = &feed.interface {
        sink.set_property("multicast-iface", interface);
    }
    // Paced by the muxer's constant-rate timestamps, a little behind them.
    sink.set_property("sync", true);
    sink.set_property("async", false);
    sink.set_property("ts-offset", clock_time(SEND_DELAY).nseconds() as i64);
    pipeline.add_many([&queue, &sink])?;
    if feed.rtp {
        // RFC 2250: payload type 33, a 90 kHz timestamp, 7 packets per datagram.
        let pay = make("rtpmp2tpay")?;
        pay.set_property("pt", 33u32);
        pay.set_property("mtu", (12 + PACKET * PACKETS_PER_DATAGRAM) as u32);
        pipeline.add(&pay)?;
        gst::Element::link_many([tee, &queue, &pay, &sink])?;
    } else {
        gst::Element::link_many([tee, &queue, &sink])?;
    }
    info!(group = %feed.group, port = feed.port, rtp = feed.rtp, ttl = feed.ttl, mux_rate = feed.mux_rate, "Multicast feed.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renamed_service_is_seen_once() {
        let name = ServiceName::new("News");
        let (first, mut seen) = name.snapshot();
        assert_eq!(first, "News");
        assert_eq!(name.changed_since(&mut seen), None);
        name.set("News");
        assert_eq!(name.changed_since(&mut seen), None, "the same name");
        name.set("News 24");
        assert_eq!(name.changed_since(&mut seen).as_deref(), Some("News 24"));
        assert_eq!(name.changed_since(&mut seen), None);
        assert_eq!(name.get(), "News 24");
    }

    #[test]
    fn only_an_idr_slice_makes_a_keyframe() {
        let idr = [
            0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x65, 0x88,
        ];
        let p_frame = [0, 0, 0, 1, 0x09, 0x30, 0, 0, 1, 0x41, 0x9A, 0x05];
        assert!(has_idr_slice(&idr));
        assert!(!has_idr_slice(&p_frame));
    }
}
