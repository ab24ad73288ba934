//! The transport-stream checker in `tests/common/ts.rs`, tried on a CBR stream ffmpeg
//! makes, on copies of it corrupted on purpose, on synthetic datagram captures, and with
//! the capture script `tests/support/mcast_capture.py` receiving for real.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use common::ts::{
    self, ElementaryStream, DATAGRAM_SIZE, PACKET_SIZE, RTP_DATAGRAM_SIZE, RTP_PAYLOAD_TYPE_MP2T,
    STREAM_TYPE_H264,
};
use common::{run_with_timeout, TempDir};

/// What the clean stream is asked for.
const SERVICE_ID: u16 = 7;
const SERVICE_NAME: &str = "Foo";
const PROVIDER_NAME: &str = "Bar";
const MUXRATE: f64 = 2_000_000.0;
const PCR_PERIOD: f64 = 0.020;
const PAT_PERIOD: f64 = 0.1;
const SDT_PERIOD: f64 = 0.1;
const SECONDS: u32 = 2;
/// The keyframe interval in frames (25 fps: one a second).
const GOP: usize = 25;
/// ffmpeg's defaults: the PMT of the first program, then the elementary streams.
const PMT_PID: u16 = 0x1000;
const VIDEO_PID: u16 = 0x0100;
const AUDIO_PID: u16 = 0x0101;
const STREAM_TYPE_AAC_ADTS: u8 = 0x0F;
/// ffmpeg writes its tables when a frame's DTS passes the period, so one can come up to
/// a frame (40 ms) late, a little more with the audio frames in between.
const TABLE_SLACK: f64 = 0.050;

/// Two seconds of H.264 and AAC, muxed at a constant 2 Mbit/s by ffmpeg, made once.
fn clean_stream() -> &'static [u8] {
    static STREAM: OnceLock<Vec<u8>> = OnceLock::new();
    STREAM.get_or_init(|| {
        let mut command = Command::new("ffmpeg");
        command
            .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
            .args(["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000"])
            .args(["-t", &SECONDS.to_string(), "-map", "0:v", "-map", "1:a"])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
            ])
            .args(["-g", &GOP.to_string(), "-sc_threshold", "0"])
            .args(["-c:a", "aac", "-b:a", "64k"])
            .args(["-f", "mpegts", "-muxrate", &format!("{}", MUXRATE as u64)])
            .args(["-pcr_period", &format!("{}", (PCR_PERIOD * 1e3) as u32)])
            .args(["-pat_period", &PAT_PERIOD.to_string()])
            .args(["-sdt_period", &SDT_PERIOD.to_string()])
            .args(["-mpegts_service_id", &SERVICE_ID.to_string()])
            .args(["-metadata", &format!("service_name={SERVICE_NAME}")])
            .args(["-metadata", &format!("service_provider={PROVIDER_NAME}")])
            .arg("-");
        let output = run_with_timeout(&mut command, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("{command:?} timed out"));
        assert!(
            output.status.success() && !output.stdout.is_empty(),
            "{command:?} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    })
}

fn clean_report() -> &'static ts::TsReport {
    static REPORT: OnceLock<ts::TsReport> = OnceLock::new();
    REPORT.get_or_init(|| ts::analyze(clean_stream()))
}

fn pid_of(packet: &[u8]) -> u16 {
    u16::from(packet[1] & 0x1F) << 8 | u16::from(packet[2])
}

fn unit_start(packet: &[u8]) -> bool {
    packet[1] & 0x40 != 0
}

fn has_payload(packet: &[u8]) -> bool {
    packet[3] & 0x10 != 0
}

/// Indices of the packets that start a PES on `pid`.
fn pes_starts(stream: &[u8], pid: u16) -> Vec<usize> {
    stream
        .chunks_exact(PACKET_SIZE)
        .enumerate()
        .filter(|(_, p)| pid_of(p) == pid && unit_start(p))
        .map(|(i, _)| i)
        .collect()
}

fn within(value: Option<f64>, low: f64, high: f64) -> bool {
    value.is_some_and(|v| (low..=high).contains(&v))
}

// ---------------------------------------------------------------- a clean stream

#[test]
fn a_clean_cbr_stream_passes_with_its_service_tables_and_timing() {
    let report = clean_report();
    assert_eq!(report.packets as usize * PACKET_SIZE, clean_stream().len());
    assert_eq!(
        (
            report.sync_losses,
            report.skipped_bytes,
            report.trailing_bytes,
            report.transport_errors,
            report.malformed_packets,
            report.malformed_sections
        ),
        (0, 0, 0, 0, 0, 0),
        "{report}"
    );
    assert_eq!(report.cc_errors_by_pid(), BTreeMap::new(), "{report}");
    assert_eq!(report.crc_errors, BTreeMap::new(), "{report}");
    assert_eq!(
        report.pids.keys().copied().collect::<Vec<_>>(),
        [0x0000, 0x0011, VIDEO_PID, AUDIO_PID, PMT_PID, ts::NULL_PID],
        "{report}"
    );
    // A 2 Mbit/s mux of a small picture is mostly padding.
    assert!(report.null_share() > 0.2, "{report}");

    let pat = report.pat.as_ref().expect("a PAT");
    assert_eq!(pat.programs, BTreeMap::from([(SERVICE_ID, PMT_PID)]));
    let pmt = report.pmt().expect("a PMT");
    assert_eq!(
        (pmt.program_number, pmt.pid, pmt.pcr_pid),
        (SERVICE_ID, PMT_PID, VIDEO_PID)
    );
    assert_eq!(
        pmt.streams,
        [
            ElementaryStream {
                stream_type: STREAM_TYPE_H264,
                pid: VIDEO_PID
            },
            ElementaryStream {
                stream_type: STREAM_TYPE_AAC_ADTS,
                pid: AUDIO_PID
            },
        ]
    );
    let service = report.service(SERVICE_ID).expect("the service in the SDT");
    assert_eq!(
        (
            service.service_name.as_str(),
            service.provider_name.as_str(),
            service.service_type
        ),
        (SERVICE_NAME, PROVIDER_NAME, Some(0x01)),
        "{report}"
    );

    // Intervals on the PCR timeline, close to what ffmpeg was asked for.
    assert!(
        within(
            report.pat_repetition.max_interval,
            PAT_PERIOD * 0.9,
            PAT_PERIOD + TABLE_SLACK
        ),
        "PAT every {PAT_PERIOD} s asked:\n{report}"
    );
    let pmt_repetition = report.pmt_repetition[&SERVICE_ID];
    assert!(
        within(
            pmt_repetition.max_interval,
            PAT_PERIOD * 0.9,
            PAT_PERIOD + TABLE_SLACK
        ),
        "PMT every {PAT_PERIOD} s asked:\n{report}"
    );
    assert!(
        within(
            report.sdt_repetition.max_interval,
            SDT_PERIOD * 0.9,
            SDT_PERIOD + TABLE_SLACK
        ),
        "SDT every {SDT_PERIOD} s asked:\n{report}"
    );
    let expected_tables = f64::from(SECONDS) / PAT_PERIOD;
    assert!(
        (expected_tables * 0.6..=expected_tables * 1.2)
            .contains(&(report.pat_repetition.count as f64)),
        "{report}"
    );
    let pcr = &report.pcr;
    assert_eq!(pcr.pid, Some(VIDEO_PID));
    assert!(
        within(
            pcr.repetition.max_interval,
            PCR_PERIOD * 0.9,
            PCR_PERIOD * 1.25
        ),
        "PCR every {PCR_PERIOD} s asked:\n{report}"
    );
    assert!(
        within(pcr.bitrate, MUXRATE * 0.999, MUXRATE * 1.001),
        "muxrate {MUXRATE}:\n{report}"
    );
    // ffmpeg computes each PCR from the packet's position at the muxrate: exact to
    // the 27 MHz tick.
    assert!(within(pcr.max_deviation, 0.0, 100e-9), "{report}");
    assert_eq!(
        (
            pcr.signalled_discontinuities,
            pcr.unsignalled_discontinuities
        ),
        (0, 0)
    );
    assert!(within(pcr.duration, 1.8, 2.2), "{report}");

    assert_eq!(report.first_video_is_keyframe(), Some(true), "{report}");
    let video = report.first_video.as_ref().expect("a first video AU");
    assert!(video.random_access_indicator, "{report}");
    let video_pid = &report.pids[&VIDEO_PID];
    assert_eq!(video_pid.pes_starts, 50, "25 fps for 2 s:\n{report}");
    // 49 frame durations of 3600 ticks between the first and last PTS.
    let (low, high) = video_pid.pts_range.expect("video PTS");
    assert_eq!(high - low, 49 * 3600, "{report}");
    assert_eq!(video.pts, Some(low as u64), "{report}");
}

/// A second muxer, the one the headend builds on: GStreamer's mpegtsmux, CBR.
#[test]
fn a_gstreamer_cbr_stream_passes_too() {
    const BITRATE: f64 = 1_500_000.0;
    let dir = TempDir::new("ts-gst");
    let file = dir.path().join("gst.ts");
    let pipeline = format!(
        "videotestsrc num-buffers=50 ! video/x-raw,width=320,height=240,framerate=25/1 \
         ! x264enc speed-preset=ultrafast key-int-max=25 bitrate=500 ! h264parse \
         ! mpegtsmux name=mux bitrate={} alignment=7 ! filesink location={} \
         audiotestsrc num-buffers=94 ! audio/x-raw,rate=48000 ! avenc_aac ! aacparse ! mux.",
        BITRATE as u64,
        file.display()
    );
    let mut command = Command::new("gst-launch-1.0");
    command.arg("-q").args(pipeline.split_whitespace());
    let output = run_with_timeout(&mut command, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("{command:?} timed out"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report = ts::analyze(&fs::read(&file).expect("the GStreamer stream"));
    assert_eq!(
        (
            report.sync_losses,
            report.cc_errors(),
            report.crc_error_count(),
            report.malformed_packets,
            report.malformed_sections
        ),
        (0, 0, 0, 0, 0),
        "{report}"
    );
    let pmt = report.pmt().expect("a PMT");
    let video = pmt
        .streams
        .iter()
        .find(|s| s.stream_type == STREAM_TYPE_H264)
        .expect("an H.264 stream");
    assert_eq!(report.pcr.pid, Some(pmt.pcr_pid));
    // mpegtsmux's defaults: PAT and PMT every 100 ms, a PCR every 40 ms.
    assert!(
        within(report.pat_repetition.max_interval, 0.09, 0.11),
        "{report}"
    );
    assert!(
        within(report.pcr.repetition.max_interval, 0.0, 0.041),
        "{report}"
    );
    assert!(
        within(report.pcr.bitrate, BITRATE * 0.999, BITRATE * 1.001),
        "{report}"
    );
    assert!(within(report.pcr.max_deviation, 0.0, 100e-9), "{report}");
    assert_eq!(report.first_video_is_keyframe(), Some(true), "{report}");
    assert_eq!(report.pids[&video.pid].pes_starts, 50, "{report}");
}

#[test]
fn dvb_text_honours_the_character_table_prefix() {
    // The default table, with the emphasis control codes (0x86, 0x87) dropped.
    assert_eq!(ts::dvb_text(b"News \x86HD\x87"), "News HD");
    assert_eq!(ts::dvb_text(b"\x15Caf\xC3\xA9"), "Café");
    assert_eq!(ts::dvb_text(b"\x10\x00\x01Caf\xE9"), "Café");
    assert_eq!(ts::dvb_text(b"\x11\x00C\x00a\x00f\x00\xE9"), "Café");
    assert_eq!(ts::dvb_text(b"\x05Caf\xE9"), "Café");
    assert_eq!(ts::dvb_text(b""), "");
}

// ---------------------------------------------------------------- corrupt copies

#[test]
fn a_packet_dropped_in_the_middle_is_one_continuity_error_on_its_pid() {
    let stream = clean_stream();
    let packets = stream.len() / PACKET_SIZE;
    let dropped = (packets / 2..packets)
        .find(|&i| {
            let packet = &stream[i * PACKET_SIZE..(i + 1) * PACKET_SIZE];
            pid_of(packet) == VIDEO_PID && has_payload(packet) && !unit_start(packet)
        })
        .expect("a video packet in the second half");
    let corrupt = [
        &stream[..dropped * PACKET_SIZE],
        &stream[(dropped + 1) * PACKET_SIZE..],
    ]
    .concat();
    let report = ts::analyze(&corrupt);
    assert_eq!(
        report.cc_errors_by_pid(),
        BTreeMap::from([(VIDEO_PID, 1)]),
        "{report}"
    );
    assert_eq!(report.packets, clean_report().packets - 1);
    assert_eq!(report.sync_losses, 0, "{report}");
}

#[test]
fn a_duplicated_packet_is_allowed_once_and_a_third_copy_is_not() {
    let stream = clean_stream();
    let index = (stream.len() / PACKET_SIZE / 2..)
        .find(|&i| {
            let packet = &stream[i * PACKET_SIZE..(i + 1) * PACKET_SIZE];
            pid_of(packet) == AUDIO_PID && has_payload(packet)
        })
        .expect("an audio packet in the second half");
    let packet = &stream[index * PACKET_SIZE..(index + 1) * PACKET_SIZE];
    let with_copies = |copies: usize| {
        let mut corrupt = stream[..(index + 1) * PACKET_SIZE].to_vec();
        for _ in 0..copies {
            corrupt.extend_from_slice(packet);
        }
        corrupt.extend_from_slice(&stream[(index + 1) * PACKET_SIZE..]);
        ts::analyze(&corrupt)
    };
    let report = with_copies(1);
    let audio = &report.pids[&AUDIO_PID];
    assert_eq!((audio.duplicates, report.cc_errors()), (1, 0), "{report}");
    // The duplicate's payload is not read twice.
    assert_eq!(audio.pes_starts, clean_report().pids[&AUDIO_PID].pes_starts);
    let report = with_copies(2);
    assert_eq!(
        report.cc_errors_by_pid(),
        BTreeMap::from([(AUDIO_PID, 1)]),
        "{report}"
    );
}

#[test]
fn a_flipped_sync_byte_is_a_sync_loss_and_the_reader_finds_sync_again() {
    let stream = clean_stream();
    let mut corrupt = stream.to_vec();
    let flipped = stream.len() / PACKET_SIZE / 2;
    corrupt[flipped * PACKET_SIZE] ^= 0xFF;
    let report = ts::analyze(&corrupt);
    assert_eq!(
        (report.sync_losses, report.skipped_bytes, report.packets),
        (1, PACKET_SIZE as u64, clean_report().packets - 1),
        "{report}"
    );
    // The packet went with its sync byte: a continuity error if it carried payload.
    let lost = &stream[flipped * PACKET_SIZE..(flipped + 1) * PACKET_SIZE];
    let expected_cc = match pid_of(lost) {
        ts::NULL_PID => BTreeMap::new(),
        pid if has_payload(lost) => BTreeMap::from([(pid, 1)]),
        _ => BTreeMap::new(),
    };
    assert_eq!(report.cc_errors_by_pid(), expected_cc, "{report}");
    // Everything after the loss is still read.
    assert_eq!(report.pat, clean_report().pat);
    assert_eq!(
        report.pcr.repetition.count,
        clean_report().pcr.repetition.count
    );
}

#[test]
fn a_stream_cut_to_start_mid_gop_does_not_start_on_a_keyframe() {
    let stream = clean_stream();
    let starts = pes_starts(stream, VIDEO_PID);
    // The second frame: a P frame.
    let report = ts::analyze(&stream[starts[1] * PACKET_SIZE..]);
    assert_eq!(report.first_video_is_keyframe(), Some(false), "{report}");
    let video = report.first_video.as_ref().expect("a first video AU");
    assert!(
        !video.has_idr && video.nal_types.contains(&1),
        "a non-IDR slice expected:\n{report}"
    );
    assert!(!video.random_access_indicator, "{report}");

    // Cut at the next keyframe instead, and it does.
    let report = ts::analyze(&stream[starts[GOP] * PACKET_SIZE..]);
    assert_eq!(report.first_video_is_keyframe(), Some(true), "{report}");
}

#[test]
fn a_corrupted_pat_crc_is_reported() {
    let stream = clean_stream();
    let mut corrupt = stream.to_vec();
    let index = stream
        .chunks_exact(PACKET_SIZE)
        .position(|p| pid_of(p) == 0 && unit_start(p))
        .expect("a PAT packet");
    let packet = &mut corrupt[index * PACKET_SIZE..(index + 1) * PACKET_SIZE];
    let section = 5 + usize::from(packet[4]);
    let length = usize::from(packet[section + 1] & 0x0F) << 8 | usize::from(packet[section + 2]);
    packet[section + 3 + length - 1] ^= 0x01;
    let report = ts::analyze(&corrupt);
    assert_eq!(report.crc_errors, BTreeMap::from([(0, 1)]), "{report}");
    assert_eq!(
        report.pat_repetition.count,
        clean_report().pat_repetition.count - 1,
        "{report}"
    );
    assert_eq!(report.cc_errors(), 0, "{report}");
}

/// The first packet of `stream` from `from` on that carries a PCR.
fn first_pcr_packet(stream: &[u8], from: usize) -> usize {
    (from..stream.len() / PACKET_SIZE)
        .find(|&i| {
            let packet = &stream[i * PACKET_SIZE..];
            packet[3] & 0x20 != 0 && packet[4] > 0 && packet[5] & 0x10 != 0
        })
        .expect("a PCR")
}

#[test]
fn a_pcr_stepping_back_is_a_discontinuity_unless_signalled() {
    // The stream twice over: the clock steps back two seconds at the join.
    let stream = clean_stream();
    let mut twice = [stream, stream].concat();
    let report = ts::analyze(&twice);
    let clean = clean_report();
    assert_eq!(
        (
            report.pcr.signalled_discontinuities,
            report.pcr.unsignalled_discontinuities
        ),
        (0, 1),
        "{report}"
    );
    // Each copy is its own timeline: the rate and the intervals are those of one.
    assert!(
        within(report.pcr.bitrate, MUXRATE * 0.999, MUXRATE * 1.001),
        "{report}"
    );
    assert!(
        within(
            report.pcr.duration,
            clean.pcr.duration.unwrap_or(0.0) * 2.0 - 1e-6,
            clean.pcr.duration.unwrap_or(0.0) * 2.0 + 1e-6
        ),
        "{report}"
    );
    assert_eq!(
        report.pat_repetition.max_interval,
        clean.pat_repetition.max_interval
    );
    assert_eq!(
        report.pcr.repetition.max_interval,
        clean.pcr.repetition.max_interval
    );

    // Signalled by the discontinuity_indicator on the first PCR of the second copy.
    let packets = stream.len() / PACKET_SIZE;
    let marked = first_pcr_packet(&twice, packets);
    twice[marked * PACKET_SIZE + 5] |= 0x80;
    let report = ts::analyze(&twice);
    assert_eq!(
        (
            report.pcr.signalled_discontinuities,
            report.pcr.unsignalled_discontinuities
        ),
        (1, 0),
        "{report}"
    );
}

// ---------------------------------------------------------------- datagrams

/// The clean stream's packets, seven to a datagram.
fn chunks(count: usize) -> Vec<&'static [u8]> {
    let chunks: Vec<&[u8]> = clean_stream().chunks_exact(DATAGRAM_SIZE).collect();
    assert!(chunks.len() >= count, "the clean stream is too short");
    chunks[..count].to_vec()
}

fn rtp(sequence: u16, timestamp: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut datagram = vec![0x80, RTP_PAYLOAD_TYPE_MP2T];
    datagram.extend_from_slice(&sequence.to_be_bytes());
    datagram.extend_from_slice(&timestamp.to_be_bytes());
    datagram.extend_from_slice(&ssrc.to_be_bytes());
    datagram.extend_from_slice(payload);
    datagram
}

/// `count` RTP datagrams from `first_sequence` and `first_timestamp`, 1 ms (90 ticks)
/// apart, of the clean stream.
fn rtp_capture(
    count: usize,
    first_sequence: u16,
    first_timestamp: u32,
) -> Vec<(Duration, Vec<u8>)> {
    chunks(count)
        .into_iter()
        .enumerate()
        .map(|(i, payload)| {
            let i16 = u16::try_from(i).expect("few datagrams");
            let i32 = u32::try_from(i).expect("few datagrams");
            (
                Duration::from_millis(u64::from(i32)),
                rtp(
                    first_sequence.wrapping_add(i16),
                    first_timestamp.wrapping_add(90 * i32),
                    0x1234_5678,
                    payload,
                ),
            )
        })
        .collect()
}

#[test]
fn an_rtp_sequence_gap_is_counted_and_shows_in_the_stream() {
    let mut capture = rtp_capture(40, 100, 5000);
    capture.drain(20..22);
    let (stream, report) = ts::analyze_datagrams(&capture, true);
    let rtp = report.rtp.as_ref().expect("an RTP report");
    assert_eq!(
        (rtp.sequence_gaps, rtp.lost, rtp.reordered, rtp.duplicates),
        (1, 2, 0, 0),
        "{report}"
    );
    assert_eq!(rtp.payload_types, BTreeSet::from([RTP_PAYLOAD_TYPE_MP2T]));
    assert_eq!(rtp.ssrcs.len(), 1, "{report}");
    assert_eq!(report.sizes, BTreeMap::from([(RTP_DATAGRAM_SIZE, 38)]));
    // Fourteen packets went with the two datagrams.
    assert!(stream.cc_errors() > 0, "{stream}");
    assert_eq!(stream.sync_losses, 0, "{stream}");
}

#[test]
fn rtp_sequence_numbers_and_timestamps_wrap_without_a_gap() {
    // Sequence numbers 65530..=65535, 0..=13; timestamps across 2^32.
    let capture = rtp_capture(20, 65530, u32::MAX - 500);
    let (stream, report) = ts::analyze_datagrams(&capture, true);
    let rtp = report.rtp.as_ref().expect("an RTP report");
    assert_eq!(
        (
            rtp.sequence_gaps,
            rtp.lost,
            rtp.reordered,
            rtp.duplicates,
            rtp.timestamp_regressions,
            rtp.malformed
        ),
        (0, 0, 0, 0, 0, 0),
        "{report}"
    );
    // 90 ticks a millisecond.
    assert!(
        rtp.timestamp_rate
            .is_some_and(|r| (r - ts::RTP_CLOCK_HZ).abs() < 1.0),
        "{report}"
    );
    assert_eq!(stream.cc_errors(), 0, "{stream}");
    assert_eq!(stream.packets, 20 * 7);
}

#[test]
fn reordered_duplicated_and_foreign_rtp_datagrams_are_reported() {
    let mut capture = rtp_capture(10, 1, 0);
    capture.swap(4, 5);
    let duplicate = capture[7].clone();
    capture.insert(8, duplicate);
    // Another source, and a timestamp going back.
    capture[2].1[8..12].copy_from_slice(&0xDEAD_BEEF_u32.to_be_bytes());
    capture[9].1[4..8].copy_from_slice(&0u32.to_be_bytes());
    let (_, report) = ts::analyze_datagrams(&capture, true);
    let rtp = report.rtp.as_ref().expect("an RTP report");
    // 1 2 3 4 6 5 7 8 8 9 10: 6 skips 5 (a gap) and 5 comes late.
    assert_eq!(
        (
            rtp.sequence_gaps,
            rtp.lost,
            rtp.reordered,
            rtp.duplicates,
            rtp.timestamp_regressions
        ),
        (1, 1, 1, 1, 1),
        "{report}"
    );
    assert_eq!(rtp.ssrcs, BTreeSet::from([0x1234_5678, 0xDEAD_BEEF]));
}

/// Plain UDP datagrams of the clean stream arriving at `arrivals`.
fn udp_capture(arrivals: &[Duration]) -> Vec<(Duration, Vec<u8>)> {
    arrivals
        .iter()
        .zip(chunks(arrivals.len()))
        .map(|(&t, payload)| (t, payload.to_vec()))
        .collect()
}

#[test]
fn evenly_spaced_datagrams_have_no_burst() {
    let arrivals: Vec<Duration> = (0..100).map(|i| Duration::from_millis(2 * i)).collect();
    let (stream, report) = ts::analyze_datagrams(&udp_capture(&arrivals), false);
    let gaps = report.inter_arrival.expect("inter-arrival statistics");
    let two_ms = Duration::from_millis(2);
    assert_eq!(
        (gaps.mean, gaps.median, gaps.p99, gaps.max, gaps.max_burst),
        (two_ms, two_ms, two_ms, two_ms, 1),
        "{report}"
    );
    assert_eq!(report.sizes, BTreeMap::from([(DATAGRAM_SIZE, 100)]));
    assert_eq!(report.rtp, None);
    // 99 datagrams after the first in 198 ms.
    let expected = 99.0 * DATAGRAM_SIZE as f64 * 8.0 / 0.198;
    assert!(
        report
            .arrival_bitrate
            .is_some_and(|b| (b - expected).abs() < 1.0),
        "{report}"
    );
    assert_eq!(stream.cc_errors(), 0, "{stream}");
}

#[test]
fn bursty_datagrams_show_their_burst_and_their_gaps() {
    // Twenty bursts of five datagrams 100 µs apart, a burst every 10 ms.
    let arrivals: Vec<Duration> = (0..20u64)
        .flat_map(|burst| (0..5u64).map(move |i| Duration::from_micros(burst * 10_000 + i * 100)))
        .collect();
    let (_, report) = ts::analyze_datagrams(&udp_capture(&arrivals), false);
    let gaps = report.inter_arrival.expect("inter-arrival statistics");
    // 99 gaps: 80 of 100 µs inside the bursts, 19 of 9.6 ms between them.
    assert_eq!(
        (gaps.median, gaps.p99, gaps.max, gaps.max_burst),
        (
            Duration::from_micros(100),
            Duration::from_micros(9600),
            Duration::from_micros(9600),
            5
        ),
        "{report}"
    );
    assert_eq!(gaps.mean, Duration::from_micros(190_400) / 99, "{report}");
}

// ---------------------------------------------------------------- the capture script

fn capture_script() -> &'static Path {
    static SCRIPT: OnceLock<std::path::PathBuf> = OnceLock::new();
    SCRIPT.get_or_init(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/mcast_capture.py")
    })
}

fn free_udp_port() -> u16 {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|s| s.local_addr())
        .unwrap_or_else(|e| panic!("binding a UDP port on 127.0.0.1: {e}"))
        .port()
}

#[test]
fn the_capture_script_records_unicast_datagrams_with_their_arrival_times() {
    const COUNT: usize = 60;
    const SPACING: Duration = Duration::from_millis(2);
    let dir = TempDir::new("ts-capture");
    let output = dir.path().join("capture.bin");
    let ready = dir.path().join("ready");
    let port = free_udp_port();
    let mut capture = Command::new("python3")
        .arg(capture_script())
        .args(["--group", "127.0.0.1", "--port", &port.to_string()])
        .args(["--count", &COUNT.to_string(), "--duration", "20"])
        .arg("--ready-file")
        .arg(&ready)
        .arg("--output")
        .arg(&output)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", capture_script().display()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready.exists() {
        if let Ok(Some(status)) = capture.try_wait() {
            panic!("the capture script exited with {status} before it was ready");
        }
        assert!(
            Instant::now() < deadline,
            "the capture script was not ready in 10 s"
        );
        thread::sleep(Duration::from_millis(20));
    }

    let sender = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("a sending socket");
    let start = Instant::now();
    for (i, (_, datagram)) in rtp_capture(COUNT, 65500, 0).iter().enumerate() {
        let due = start + SPACING * u32::try_from(i).expect("few datagrams");
        thread::sleep(due.saturating_duration_since(Instant::now()));
        sender
            .send_to(datagram, (Ipv4Addr::LOCALHOST, port))
            .expect("sending a datagram");
    }
    let result = capture
        .wait_with_output()
        .expect("waiting for the capture script");
    assert!(
        result.status.success() && result.stdout.is_empty() && result.stderr.is_empty(),
        "the capture script failed ({}): {}{}",
        result.status,
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );

    let records = ts::read_capture(&output);
    assert_eq!(records.len(), COUNT);
    assert!(
        records.windows(2).all(|w| w[0].0 <= w[1].0),
        "arrival times go back"
    );
    let (stream, report) = ts::analyze_datagrams(&records, true);
    let rtp = report.rtp.as_ref().expect("an RTP report");
    assert_eq!(
        (rtp.sequence_gaps, rtp.reordered, rtp.duplicates),
        (0, 0, 0),
        "{report}"
    );
    assert_eq!(
        report.sizes,
        BTreeMap::from([(RTP_DATAGRAM_SIZE, COUNT as u64)])
    );
    assert_eq!((stream.cc_errors(), stream.sync_losses), (0, 0), "{stream}");
    // Sent at least SPACING apart: the kernel's stamps cannot be closer overall.
    let span = records[COUNT - 1].0 - records[0].0;
    let sent = SPACING * u32::try_from(COUNT - 1).expect("few datagrams");
    assert!(
        span >= sent.mul_f64(0.9),
        "{COUNT} datagrams sent over {sent:?} arrived over {span:?}\n{report}"
    );
}

#[test]
fn the_capture_script_fails_when_nothing_arrives() {
    let dir = TempDir::new("ts-capture-none");
    let output = dir.path().join("capture.bin");
    let mut command = Command::new("python3");
    command
        .arg(capture_script())
        .args([
            "--group",
            "127.0.0.1",
            "--port",
            &free_udp_port().to_string(),
        ])
        .args(["--duration", "0.2", "--output"])
        .arg(&output);
    let result = run_with_timeout(&mut command, Duration::from_secs(20))
        .expect("the capture script timed out");
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        !result.status.success() && stderr.contains("no datagram arrived"),
        "{}: {stderr}",
        result.status
    );
    assert!(!output.exists());
}

/// RTP from ffmpeg to a multicast group, received by the capture script joined on
/// loopback, both inside a private network namespace so nothing leaves the machine.
#[test]
fn the_capture_script_joins_a_multicast_group_in_a_private_network_namespace() {
    const GROUP: &str = "239.255.0.2";
    // A fresh namespace: nothing else can hold it.
    const PORT: u16 = 5000;
    const COUNT: usize = 40;
    let dir = TempDir::new("ts-capture-mcast");
    let input = dir.write("clean.ts", &[clean_stream()]);
    let output = dir.path().join("capture.bin");
    let ready = dir.path().join("ready");
    let script = format!(
        "set -e
ip link set lo up
ip link set lo multicast on
ip route add 239.0.0.0/8 dev lo
python3 {capture} --group {GROUP} --port {PORT} --iface-addr 127.0.0.1 --count {COUNT} \
  --duration 15 --ready-file {ready} --output {output} &
capture=$!
tries=0
while [ ! -e {ready} ]; do
  tries=$((tries + 1)); [ $tries -lt 200 ] || {{ echo 'the capture script was not ready' >&2; exit 1; }}
  sleep 0.05
done
ffmpeg -hide_banner -loglevel error -nostdin -re -i {input} -t 1 -map 0 -c copy \
  -f rtp_mpegts 'rtp://{GROUP}:{PORT}?ttl=0&localaddr=127.0.0.1'
wait $capture",
        capture = capture_script().display(),
        ready = ready.display(),
        output = output.display(),
        input = input.display(),
    );
    let mut command = common::in_network_namespace();
    command.args(["sh", "-c", &script]);
    let result = run_with_timeout(&mut command, Duration::from_secs(30))
        .expect("the multicast capture timed out");
    assert!(
        result.status.success(),
        "the multicast capture failed ({}):\n{}",
        result.status,
        String::from_utf8_lossy(&result.stderr)
    );

    let records = ts::read_capture(&output);
    assert_eq!(records.len(), COUNT);
    let (stream, report) = ts::analyze_datagrams(&records, true);
    let rtp = report.rtp.as_ref().expect("an RTP report");
    assert_eq!(
        (
            rtp.sequence_gaps,
            rtp.reordered,
            rtp.malformed,
            rtp.ssrcs.len()
        ),
        (0, 0, 0, 1),
        "{report}"
    );
    assert_eq!(rtp.payload_types, BTreeSet::from([RTP_PAYLOAD_TYPE_MP2T]));
    assert_eq!(
        report.sizes,
        BTreeMap::from([(RTP_DATAGRAM_SIZE, COUNT as u64)])
    );
    assert_eq!((stream.sync_losses, stream.cc_errors()), (0, 0), "{stream}");
    // ffmpeg remuxed the stream with its own service numbering.
    assert_eq!(
        stream.pat.as_ref().map(|pat| pat.programs.len()),
        Some(1),
        "{stream}"
    );
    assert_eq!(stream.first_video_is_keyframe(), Some(true), "{stream}");
}

#[test]
fn a_capture_file_reads_back_record_by_record() {
    let dir = TempDir::new("ts-capture-file");
    let mut bytes = Vec::new();
    for (nanos, payload) in [(5_u64, &b"abc"[..]), (1_000_000_007, &b""[..])] {
        bytes.extend_from_slice(&nanos.to_be_bytes());
        bytes.extend_from_slice(&u32::try_from(payload.len()).expect("short").to_be_bytes());
        bytes.extend_from_slice(payload);
    }
    let path = dir.write("capture.bin", &[&bytes]);
    assert_eq!(
        ts::read_capture(&path),
        [
            (Duration::from_nanos(5), b"abc".to_vec()),
            (Duration::from_nanos(1_000_000_007), Vec::new())
        ]
    );
    fs::write(&path, &bytes[..bytes.len() - 1]).expect("rewriting the capture");
    let cut = std::panic::catch_unwind(|| ts::read_capture(&path));
    assert!(cut.is_err(), "a record cut short must fail");
}
