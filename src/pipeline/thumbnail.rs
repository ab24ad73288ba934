//! A still picture of the channel every few seconds, for the operator page.
//!
//! A branch off the decoded video takes one frame per [`INTERVAL`], scales it to a
//! small JPEG and publishes it in the store. Frames are dropped before the branch's
//! queue, so the scaler and the JPEG encoder see one frame in a hundred or so, and the
//! queue leaks rather than blocks: a slow thumbnail never holds up the encoders.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use gst::prelude::*;
use tracing::debug;

use super::{capsfilter, make, PipelineError, DROP_BUFFER};
use crate::store::{LiveChannel, THUMBNAIL_INTERVAL as INTERVAL};

/// 16:9 at a size a table row can show; other shapes are letterboxed.
const WIDTH: i32 = 320;
const HEIGHT: i32 = 180;
const JPEG_QUALITY: i32 = 80;

/// Adds the thumbnail branch to `tee`, the channel's decoded video.
pub(super) fn build(
    pipeline: &gst::Pipeline,
    tee: &gst::Element,
    channel: Arc<LiveChannel>,
) -> Result<(), PipelineError> {
    let queue = make("queue")?;
    queue.set_property_from_str("leaky", "downstream");
    queue.set_property("max-size-buffers", 1u32);
    queue.set_property("max-size-bytes", 0u32);
    queue.set_property("max-size-time", 0u64);
    let scale = make("videoscale")?;
    let caps = capsfilter(
        gst::Caps::builder("video/x-raw")
            .field("width", WIDTH)
            .field("height", HEIGHT)
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build(),
    )?;
    let jpeg = make("jpegenc")?;
    jpeg.set_property("quality", JPEG_QUALITY);
    let sink = gst_app::AppSink::builder()
        .sync(false)
        .max_buffers(1)
        .drop(true)
        .build();
    pipeline.add_many([&queue, &scale, &caps, &jpeg, sink.upcast_ref()])?;
    gst::Element::link_many([tee, &queue, &scale, &caps, &jpeg, sink.upcast_ref()])?;

    let input = queue
        .static_pad("sink")
        .ok_or_else(|| PipelineError::Config("queue has no sink pad".into()))?;
    let taken = Mutex::new(None::<Instant>);
    input.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        let now = Instant::now();
        let mut taken = taken.lock().unwrap_or_else(|e| e.into_inner());
        if taken.is_some_and(|at| now.duration_since(at) < INTERVAL) {
            return DROP_BUFFER;
        }
        *taken = Some(now);
        gst::PadProbeReturn::Ok
    });

    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                // A picture that cannot be read is skipped: the page shows the last one.
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                match sample.buffer().map(|b| b.map_readable()) {
                    Some(Ok(map)) => channel.publish_thumbnail(Bytes::copy_from_slice(&map)),
                    _ => debug!("Skipping an unreadable thumbnail."),
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(())
}
