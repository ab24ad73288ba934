//! File transcoding for VOD: a file in, the ladder's CMAF tracks out, as fast as the
//! machine can go. The same branches as live (decode once, one encode per rendition,
//! AAC once, keyframes on one shared schedule), but on the file's own timeline: no
//! wall clock, no pacing. What to do with the fragments is the caller's (`MediaSink`).

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;

use super::PipelineError;
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
    progress: impl FnMut(Progress),
) -> Result<(S, TranscodeReport), PipelineError> {
    let _ = (source, ladder, encoder, sink, progress);
    Err(PipelineError::Config("VOD transcoding is not written yet".into()))
}
