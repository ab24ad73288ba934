//! File transcoding for VOD: a file in, the ladder's CMAF tracks out, as fast as the
//! machine can go. The same branches as live (decode once, one encode per rendition,
//! AAC once, keyframes on one shared schedule), but on the file's own timeline: no
//! wall clock, no pacing. What to do with the fragments is the caller's (`MediaSink`).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gst::prelude::*;
use tracing::info;

use super::{
    attach_appsink, build_audio_branch, build_video_branches, capsfilter, clock_time, make,
    make_deinterlace, normalised_video_caps, source, Branch, PipelineError, Queueing, Schedule,
    Timeline, TrackOutput,
};
use crate::catalog::{EncoderProfile, Ladder};
use crate::packager::TrackMedia;

/// Receives a transcode's output. Called from GStreamer streaming threads, one call at
/// a time (the transcoder holds the sink behind a mutex).
pub trait MediaSink: Send + 'static {
    /// A track's init segment, once, before its first fragment. `track` indexes
    /// `track_names(ladder)`.
    fn init(&mut self, track: usize, init: Bytes, media: TrackMedia);
    /// One CMAF fragment (`moof` + `mdat`). Video fragments each start with a keyframe
    /// and span one GOP; keyframes fall on multiples of the GOP from the start of the
    /// file in every rendition. `start` is the presentation time of its first sample
    /// from the start of the file; fragments of a track arrive in order and abut.
    fn fragment(&mut self, track: usize, data: Bytes, start: Duration, duration: Duration);
}

/// How far a transcode has come.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Media time transcoded so far.
    pub position: Duration,
    /// The source's duration, when the demuxer knows it.
    pub duration: Option<Duration>,
}

/// What a finished transcode measured.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscodeReport {
    /// Duration of the source that was transcoded.
    pub media_duration: Duration,
    /// Wall-clock time the transcode took.
    pub elapsed: Duration,
    /// Whether the source had an audio stream (when not, no audio track is made).
    pub has_audio: bool,
}

/// The tracks a transcode makes, in the order `MediaSink` indexes them: the ladder's
/// renditions in order, then the audio track (`store::AUDIO_TRACK`).
pub fn track_names(ladder: &Ladder) -> Vec<String> {
    ladder
        .renditions
        .iter()
        .map(|r| r.name.clone())
        .chain([crate::store::AUDIO_TRACK.to_owned()])
        .collect()
}

/// Transcodes `source` (a local file) with `ladder` and `encoder`, blocking until the
/// end of the file. `progress` is called now and then from this thread. Returns the
/// sink with everything it was given. A missing, unreadable or corrupt file is a
/// `PipelineError::Source` naming the file.
pub fn transcode<S: MediaSink>(
    source: &Path,
    ladder: &Ladder,
    encoder: &EncoderProfile,
    sink: S,
    mut progress: impl FnMut(Progress),
) -> Result<(S, TranscodeReport), PipelineError> {
    let started = Instant::now();
    let fail = |what: String| PipelineError::Source(format!("{}: {what}", source.display()));
    if !source.is_file() {
        return Err(fail("not a readable file".into()));
    }
    let sink = Arc::new(Mutex::new(sink));
    let done_until = Arc::new(AtomicU64::new(0));
    let output: Arc<dyn TrackOutput> = Arc::new(VodOutput {
        sink: sink.clone(),
        done_until: done_until.clone(),
    });
    let Built {
        pipeline,
        has_audio,
    } = build(source, ladder, encoder, &output)?;
    let bus = pipeline
        .bus()
        .ok_or_else(|| PipelineError::Config("the pipeline has no bus".into()))?;
    pipeline.set_state(gst::State::Playing)?;
    let mut moved = (0, Instant::now());
    let result = (|| loop {
        let message = bus.timed_pop(gst::ClockTime::from_mseconds(PROGRESS_INTERVAL_MS));
        let duration = pipeline
            .query_duration::<gst::ClockTime>()
            .map(|d| Duration::from_nanos(d.nseconds()));
        let position = done_until.load(Ordering::SeqCst);
        progress(Progress {
            position: Duration::from_nanos(position),
            duration,
        });
        if position != moved.0 {
            moved = (position, Instant::now());
        } else if moved.1.elapsed() > STALL_LIMIT {
            return Err(fail(format!("no progress for {} s", STALL_LIMIT.as_secs())));
        }
        let Some(message) = message else { continue };
        match message.view() {
            gst::MessageView::Eos(_) => return Ok(duration),
            gst::MessageView::Error(err) => {
                let detail = err.debug().map(|d| format!(" ({d})")).unwrap_or_default();
                return Err(fail(format!("{}{detail}", err.error())));
            }
            gst::MessageView::Application(app)
                if app.structure().is_some_and(|s| s.name() == NO_VIDEO) =>
            {
                return Err(fail("no video stream".into()));
            }
            _ => {}
        }
    })();
    let _ = pipeline.set_state(gst::State::Null);
    // The appsinks' callbacks hold the sink: free them before taking it back.
    drop(bus);
    drop(pipeline);
    drop(output);
    let duration = result?;
    let has_audio = has_audio.load(Ordering::SeqCst);
    let sink = Arc::try_unwrap(sink)
        .map_err(|_| PipelineError::Config("the sink is still in use".into()))?
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    let report = TranscodeReport {
        media_duration: duration.unwrap_or_default(),
        elapsed: started.elapsed(),
        has_audio,
    };
    info!(source = %source.display(), media_s = report.media_duration.as_secs_f64(),
        elapsed_s = report.elapsed.as_secs_f64(), has_audio, "Transcoded.");
    Ok((sink, report))
}

/// A transcode whose muxers put out nothing for this long has stalled (a source the
/// demuxer waits on for ever without an error): it fails, so the assets queued after
/// it still get their turn. Every muxer puts out a fragment per GOP, seconds of media.
const STALL_LIMIT: Duration = Duration::from_secs(30);

/// How often the transcoder reports progress.
const PROGRESS_INTERVAL_MS: u64 = 250;

/// Application message posted when the file turns out to have no video stream.
const NO_VIDEO: &str = "headend-no-video";

struct VodOutput<S> {
    sink: Arc<Mutex<S>>,
    /// End of the furthest fragment out of any muxer, in nanoseconds: how far the
    /// transcode really is (the demuxer's position runs ahead of the encoders).
    done_until: Arc<AtomicU64>,
}

impl<S: MediaSink> TrackOutput for VodOutput<S> {
    fn init(&self, track: usize, init: Bytes, media: TrackMedia) {
        self.sink
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .init(track, init, media);
    }

    fn fragment(&self, track: usize, data: Bytes, start: u64, duration: Duration) {
        let end = start.saturating_add(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
        self.done_until.fetch_max(end, Ordering::SeqCst);
        self.sink
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fragment(track, data, Duration::from_nanos(start), duration);
    }
}

struct Built {
    pipeline: gst::Pipeline,
    has_audio: Arc<AtomicBool>,
}

fn build(
    source: &Path,
    ladder: &Ladder,
    encoder: &EncoderProfile,
    output: &Arc<dyn TrackOutput>,
) -> Result<Built, PipelineError> {
    let pipeline = gst::Pipeline::with_name("vod");
    let uri = gst::glib::filename_to_uri(source, None)
        .map_err(|e| PipelineError::Source(format!("{}: {e}", source.display())))?;
    let decode = make("uridecodebin")?;
    decode.set_property("uri", uri.as_str());
    let video_convert = make("videoconvert")?;
    let deinterlace = make_deinterlace(ladder)?;
    let video_caps = capsfilter(normalised_video_caps())?;
    let audio_convert = make("audioconvert")?;
    let audio_resample = make("audioresample")?;
    let audio_caps = capsfilter(
        gst::Caps::builder("audio/x-raw")
            .field("rate", ladder.audio.sample_rate as i32)
            .field("channels", ladder.audio.channels as i32)
            .build(),
    )?;
    pipeline.add_many([
        &decode,
        &video_convert,
        &deinterlace,
        &video_caps,
        &audio_convert,
        &audio_resample,
        &audio_caps,
    ])?;
    gst::Element::link_many([&video_convert, &deinterlace, &video_caps])?;
    gst::Element::link_many([&audio_convert, &audio_resample, &audio_caps])?;
    source::link_decoded_pads(&decode, &video_convert, &audio_convert);

    // Once every stream is known: a file without audio ends its audio branch at once
    // (no audio track is made); one without video cannot be a VOD asset.
    let has_audio = Arc::new(AtomicBool::new(false));
    let (video_sink, audio_sink) = (
        video_convert.static_pad("sink"),
        audio_convert.static_pad("sink"),
    );
    let audio_flag = has_audio.clone();
    decode.connect_no_more_pads(move |decode| {
        if !video_sink.as_ref().is_some_and(|p| p.is_linked()) {
            let message = gst::message::Application::builder(gst::Structure::new_empty(NO_VIDEO))
                .src(decode)
                .build();
            let _ = decode.post_message(message);
        }
        match &audio_sink {
            Some(pad) if pad.is_linked() => audio_flag.store(true, Ordering::SeqCst),
            Some(pad) => {
                pad.send_event(gst::event::StreamStart::new("no-audio"));
                pad.send_event(gst::event::Segment::new(&gst::FormattedSegment::<
                    gst::ClockTime,
                >::new()));
                pad.send_event(gst::event::Eos::new());
            }
            None => {}
        }
    });

    let schedule = Schedule::new(Timeline::Media, ladder.gop, ladder.segment_duration);
    let tee = make("tee")?;
    pipeline.add(&tee)?;
    video_caps.link(&tee)?;
    let video_src = video_caps
        .static_pad("src")
        .ok_or_else(|| PipelineError::Config("video output has no src pad".into()))?;
    schedule.attach(&video_src);
    let tracks = track_names(ladder);
    let branches =
        build_video_branches(&pipeline, &tee, ladder, encoder, &schedule, Queueing::File)?;
    for (track, Branch { mux, .. }) in branches.into_iter().enumerate() {
        configure_vod_mux(&mux, ladder);
        schedule.add_muxer(&mux);
        attach_appsink(&pipeline, &mux, output, track, Timeline::Media, "vod")?;
    }
    let audio_mux = build_audio_branch(&pipeline, &audio_caps, ladder, Queueing::File)?.mux;
    configure_vod_mux(&audio_mux, ladder);
    // Audio has no keyframes to cut at: it is split at every segment boundary, so its
    // segments end where the video's do.
    schedule.add_muxer(&audio_mux);
    attach_appsink(
        &pipeline,
        &audio_mux,
        output,
        tracks.len() - 1,
        Timeline::Media,
        "vod",
    )?;
    Ok(Built {
        pipeline,
        has_audio,
    })
}

/// A VOD muxer makes one fragment per GOP, so every video fragment starts with a
/// keyframe: the I-frame playlists address them, and the writer joins them into
/// segments.
fn configure_vod_mux(mux: &gst::Element, ladder: &Ladder) {
    mux.set_property("fragment-duration", clock_time(ladder.gop));
}
