//! An MPEG transport-stream checker for the tests, written from ISO/IEC 13818-1 (MPEG-2
//! Systems) and ETSI EN 300 468 (DVB SI), with the measurement rules of ETSI TR 101 290
//! where it has them. It shares no code with the product, so a misreading of the
//! standards there cannot hide itself here.
//!
//! [`analyze`] reads a byte stream of 188-byte packets (an HTTP body, a file);
//! [`analyze_datagrams`] reads captured UDP datagrams, plain (7 packets each) or RFC 2250
//! RTP, and also judges their sizes, RTP headers and arrival times. [`read_capture`]
//! reads what `tests/support/mcast_capture.py` records.
//!
//! # Time
//!
//! Every interval is measured on the stream's own clock, the PCRs of one PID (the first
//! program's PCR_PID), not on the arrival clock. A byte position is given a time by
//! linear interpolation between the two PCRs around it: a packet starting at byte `p`,
//! between PCRs carried by packets starting at `p0` and `p1`, is at
//! `pcr0 + (p - p0) / (p1 - p0) * (pcr1 - pcr0)`. Positions before a timeline's first PCR
//! or after its last are extrapolated at that timeline's mean rate. Every position is
//! the packet's first byte; the PCR really stamps a byte ten bytes further on, an offset
//! that cancels in every difference measured here. A table section is placed at the
//! packet it starts in.
//!
//! A PCR discontinuity (signalled by the discontinuity_indicator, or not: a step back, or
//! one forward by more than 100 ms, TR 101 290 2.3a) starts a new timeline. Intervals
//! are measured only between two events on the same timeline.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::path::Path;
use std::time::Duration;

/// ISO/IEC 13818-1 2.4.3.2.
pub const PACKET_SIZE: usize = 188;
pub const SYNC_BYTE: u8 = 0x47;
/// Null packets carry no data: CBR padding.
pub const NULL_PID: u16 = 0x1FFF;
const PAT_PID: u16 = 0x0000;
/// EN 300 468 5.1.3: SDT, BAT and ST.
const SDT_PID: u16 = 0x0011;

/// Seven packets fill a datagram that stays below a 1500-byte Ethernet MTU.
pub const PACKETS_PER_DATAGRAM: usize = 7;
pub const DATAGRAM_SIZE: usize = PACKETS_PER_DATAGRAM * PACKET_SIZE;
/// RFC 3550 5.1: the fixed RTP header, without CSRCs or an extension.
pub const RTP_HEADER_SIZE: usize = 12;
pub const RTP_DATAGRAM_SIZE: usize = RTP_HEADER_SIZE + DATAGRAM_SIZE;
/// RFC 3551: MP2T.
pub const RTP_PAYLOAD_TYPE_MP2T: u8 = 33;
/// The RTP clock for MP2T (RFC 2250 2).
pub const RTP_CLOCK_HZ: f64 = 90_000.0;

const TABLE_PAT: u8 = 0x00;
const TABLE_PMT: u8 = 0x02;
/// EN 300 468 5.1.3: service_description_section, actual transport stream.
const TABLE_SDT_ACTUAL: u8 = 0x42;
/// EN 300 468 6.2.33.
const DESCRIPTOR_SERVICE: u8 = 0x48;

/// ISO/IEC 13818-1 Table 2-34.
pub const STREAM_TYPE_H264: u8 = 0x1B;
pub const STREAM_TYPE_H265: u8 = 0x24;

/// The PCR ticks at 27 MHz and wraps after 2^33 * 300 ticks (2.4.2.2).
const PCR_HZ: f64 = 27_000_000.0;
const PCR_WRAP: u64 = (1 << 33) * 300;
/// TR 101 290 2.3a: consecutive PCRs more than 100 ms apart are a discontinuity.
const MAX_PCR_STEP: u64 = 2_700_000;
/// PTS and DTS are 33 bits of a 90 kHz clock.
const PTS_WRAP: i64 = 1 << 33;

/// The first PES of a PID is kept for the keyframe check up to this size.
const FIRST_PES_LIMIT: usize = 1 << 20;
/// The window in which [`InterArrival::max_burst`] counts datagrams.
pub const BURST_WINDOW: Duration = Duration::from_millis(1);

// ---------------------------------------------------------------- reports

/// What [`analyze`] found in a byte stream of transport-stream packets.
#[derive(Debug, Clone, Default)]
pub struct TsReport {
    /// Packets read (those lost to a sync loss are not counted).
    pub packets: u64,
    /// Times a packet did not start with 0x47 where one was expected. After each, the
    /// reader skips to the next two 0x47 bytes 188 apart.
    pub sync_losses: u64,
    /// Bytes skipped to find sync: at the start and after each sync loss.
    pub skipped_bytes: u64,
    /// Bytes after the last whole packet (a capture cut mid-packet).
    pub trailing_bytes: u64,
    /// Packets with the transport_error_indicator set; nothing else of them is read.
    pub transport_errors: u64,
    /// Packets with adaptation_field_control 00 or an adaptation field longer than the
    /// packet; nothing else of them is read.
    pub malformed_packets: u64,
    /// Per PID, every PID seen (0x1FFF included).
    pub pids: BTreeMap<u16, PidStats>,
    /// Sections whose CRC32/MPEG-2 is wrong, per PID.
    pub crc_errors: BTreeMap<u16, u64>,
    /// PSI/SI sections cut short, longer than their table allows, or whose loops
    /// overrun the section.
    pub malformed_sections: u64,
    /// The latest PAT (table 0x00 on PID 0).
    pub pat: Option<Pat>,
    /// The latest PMT of each program, by program_number.
    pub pmts: BTreeMap<u16, Pmt>,
    /// The latest SDT for the actual transport stream (table 0x42 on PID 0x11).
    pub sdt: Option<Sdt>,
    /// PAT sections (section_number 0) with a good CRC.
    pub pat_repetition: Repetition,
    /// PMT sections with a good CRC, by program_number.
    pub pmt_repetition: BTreeMap<u16, Repetition>,
    /// SDT-actual sections (section_number 0) with a good CRC.
    pub sdt_repetition: Repetition,
    pub pcr: PcrReport,
    /// The first PES that starts (payload_unit_start_indicator) on the first program's
    /// video stream (H.264 or H.265 in its PMT).
    pub first_video: Option<FirstVideo>,
}

/// Packet counts and continuity for one PID.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PidStats {
    pub packets: u64,
    /// Continuity-counter errors (2.4.3.3): the counter must step by one, modulo 16, on
    /// each packet with payload and stay put on a packet without. One duplicate of a
    /// packet with payload is allowed (same counter, same payload); a packet with the
    /// discontinuity_indicator may carry any value. Not counted on PID 0x1FFF.
    pub cc_errors: u64,
    /// Duplicate packets, allowed once each; their content is not read again.
    pub duplicates: u64,
    /// Packets carrying a PCR.
    pub pcrs: u64,
    /// PES packets started (payload_unit_start_indicator with the 00 00 01 prefix).
    pub pes_starts: u64,
    /// The lowest and highest PTS of these PES packets (90 kHz), unwrapped past 2^33
    /// from the first: a stream that wraps goes on above 2^33.
    pub pts_range: Option<(i64, i64)>,
}

/// Program association table (2.4.4.3).
#[derive(Debug, Clone, PartialEq)]
pub struct Pat {
    pub transport_stream_id: u16,
    pub version: u8,
    /// program_number → PMT PID. Program 0 is the network PID, below.
    pub programs: BTreeMap<u16, u16>,
    pub network_pid: Option<u16>,
}

/// Program map table (2.4.4.8).
#[derive(Debug, Clone, PartialEq)]
pub struct Pmt {
    pub program_number: u16,
    /// The PID the section was found on.
    pub pid: u16,
    pub version: u8,
    pub pcr_pid: u16,
    pub streams: Vec<ElementaryStream>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElementaryStream {
    /// Table 2-34: 0x1B H.264, 0x24 H.265, 0x0F AAC (ADTS), 0x03/0x04 MPEG audio...
    pub stream_type: u8,
    pub pid: u16,
}

/// Service description table, actual transport stream (EN 300 468 5.2.3).
#[derive(Debug, Clone, PartialEq)]
pub struct Sdt {
    pub transport_stream_id: u16,
    pub original_network_id: u16,
    pub version: u8,
    /// By service_id (which is the PMT's program_number).
    pub services: BTreeMap<u16, Service>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub service_id: u16,
    /// From the service descriptor (0x48): 0x01 digital television, 0x02 radio, 0x19
    /// advanced codec HD... `None` without one.
    pub service_type: Option<u8>,
    /// Decoded as [`dvb_text`] does.
    pub provider_name: String,
    pub service_name: String,
    /// 4 means running.
    pub running_status: u8,
    pub free_ca_mode: bool,
}

/// How often a table was seen, on the PCR timeline.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Repetition {
    /// Occurrences counted.
    pub count: u64,
    /// Seconds between consecutive occurrences on the same PCR timeline; `None` with
    /// fewer than two such occurrences or no PCR timeline.
    pub max_interval: Option<f64>,
    pub min_interval: Option<f64>,
}

/// The program clock of the stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PcrReport {
    /// The PID whose PCRs make the timeline: the first program's PCR_PID when it carries
    /// any, else the PID with the most.
    pub pid: Option<u16>,
    /// PCRs on that PID, and the seconds between consecutive ones (same timeline).
    pub repetition: Repetition,
    /// Bits per second from the PCRs: the bytes between each timeline's first and last
    /// PCR over the PCR time between them, summed over the timelines.
    pub bitrate: Option<f64>,
    /// The PCR accuracy check: on each timeline, a constant-rate line through the first
    /// and last PCR predicts every PCR from its byte position; this is the largest
    /// distance, in seconds, between a PCR and its prediction. A CBR stream with exact
    /// PCRs stays within a few tens of nanoseconds (the 27 MHz tick); TR 101 290 allows
    /// 500 ns.
    pub max_deviation: Option<f64>,
    /// Seconds of PCR time covered, summed over the timelines.
    pub duration: Option<f64>,
    /// PCRs in packets with the discontinuity_indicator (a new timeline, by design).
    pub signalled_discontinuities: u64,
    /// PCR steps back, or forward by more than 100 ms, without the discontinuity
    /// indicator (errors).
    pub unsignalled_discontinuities: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    H264,
    H265,
}

/// The first video access unit: the first PES to start on the video PID, up to the
/// next PES start. Anything on the PID before it (a PES joined mid-way) is not read.
#[derive(Debug, Clone, PartialEq)]
pub struct FirstVideo {
    pub pid: u16,
    pub codec: VideoCodec,
    /// NAL unit types in order (H.264: 5 IDR slice, 7 SPS, 8 PPS, 9 AUD, 1 non-IDR
    /// slice; H.265: 16..=21 IRAP, 32 VPS, 33 SPS, 34 PPS).
    pub nal_types: Vec<u8>,
    /// An IDR slice (H.264) or an IRAP picture (H.265).
    pub has_idr: bool,
    pub has_sps: bool,
    pub has_pps: bool,
    /// The random_access_indicator of the packet that starts the PES.
    pub random_access_indicator: bool,
    pub pts: Option<u64>,
}

impl FirstVideo {
    /// A decoder can start here: an IDR picture with its SPS and PPS.
    pub fn is_keyframe(&self) -> bool {
        self.has_idr && self.has_sps && self.has_pps
    }
}

impl TsReport {
    /// Continuity errors on all PIDs.
    pub fn cc_errors(&self) -> u64 {
        self.pids.values().map(|p| p.cc_errors).sum()
    }

    /// PIDs with continuity errors, and how many.
    pub fn cc_errors_by_pid(&self) -> BTreeMap<u16, u64> {
        self.pids
            .iter()
            .filter(|(_, p)| p.cc_errors > 0)
            .map(|(&pid, p)| (pid, p.cc_errors))
            .collect()
    }

    /// Sections with a bad CRC, on all PIDs.
    pub fn crc_error_count(&self) -> u64 {
        self.crc_errors.values().sum()
    }

    /// Share of null packets (PID 0x1FFF), 0 to 1.
    pub fn null_share(&self) -> f64 {
        let null = self.pids.get(&NULL_PID).map_or(0, |p| p.packets);
        if self.packets == 0 {
            0.0
        } else {
            null as f64 / self.packets as f64
        }
    }

    /// The PMT of the first program in the PAT (or, without a PAT, the lowest program
    /// number with a PMT).
    pub fn pmt(&self) -> Option<&Pmt> {
        let first = self
            .pat
            .as_ref()
            .and_then(|pat| pat.programs.keys().next().copied());
        match first {
            Some(program) => self.pmts.get(&program),
            None => self.pmts.values().next(),
        }
    }

    /// The SDT entry of a service.
    pub fn service(&self, service_id: u16) -> Option<&Service> {
        self.sdt.as_ref()?.services.get(&service_id)
    }

    /// Whether the first video access unit is a keyframe with its parameter sets
    /// ([`FirstVideo::is_keyframe`]); `None` if no video PES started.
    pub fn first_video_is_keyframe(&self) -> Option<bool> {
        self.first_video.as_ref().map(FirstVideo::is_keyframe)
    }
}

/// What [`analyze_datagrams`] found in the datagrams themselves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DatagramReport {
    pub datagrams: u64,
    /// Datagram size in bytes → how many (all 1316, or 1328 with RTP).
    pub sizes: BTreeMap<usize, u64>,
    /// `None` for plain UDP.
    pub rtp: Option<RtpReport>,
    /// `None` with fewer than two datagrams.
    pub inter_arrival: Option<InterArrival>,
    /// Transport-stream bits per second on the arrival clock: the TS bytes of every
    /// datagram but the first over the time from the first arrival to the last.
    pub arrival_bitrate: Option<f64>,
}

/// RTP headers (RFC 3550) of the datagrams, in arrival order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RtpReport {
    /// Datagrams too short for their RTP header, or not RTP version 2; their payload is
    /// not read.
    pub malformed: u64,
    pub payload_types: BTreeSet<u8>,
    /// All must be the same one.
    pub ssrcs: BTreeSet<u32>,
    /// Forward jumps of the sequence number by more than one (modulo 2^16).
    pub sequence_gaps: u64,
    /// Sequence numbers skipped by those jumps.
    pub lost: u64,
    /// Datagrams behind the highest sequence number seen so far (late or reordered).
    pub reordered: u64,
    /// Datagrams repeating the highest sequence number seen so far.
    pub duplicates: u64,
    /// In-order datagrams whose timestamp is behind the previous one (modulo 2^32).
    pub timestamp_regressions: u64,
    /// RTP timestamp ticks per second of arrival time over the in-order datagrams:
    /// about 90 000 for a sender that stamps in real time.
    pub timestamp_rate: Option<f64>,
}

/// How datagrams were spread in time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InterArrival {
    /// Between consecutive datagrams.
    pub mean: Duration,
    /// Nearest-rank percentiles of the gaps between consecutive datagrams.
    pub median: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// The most datagrams that arrived within any [`BURST_WINDOW`] (1 ms).
    pub max_burst: usize,
}

// ---------------------------------------------------------------- entry points

/// Reads a byte stream of transport-stream packets.
pub fn analyze(bytes: &[u8]) -> TsReport {
    let mut analyzer = Analyzer::default();
    let mut pos = 0;
    let mut in_sync = false;
    while pos + PACKET_SIZE <= bytes.len() {
        if in_sync {
            if bytes[pos] == SYNC_BYTE {
                analyzer.packet(pos as u64, &bytes[pos..pos + PACKET_SIZE]);
                pos += PACKET_SIZE;
                continue;
            }
            analyzer.report.sync_losses += 1;
            in_sync = false;
        }
        match find_sync(bytes, pos) {
            Some(found) => {
                analyzer.report.skipped_bytes += (found - pos) as u64;
                pos = found;
                in_sync = true;
            }
            None => break,
        }
    }
    let tail = bytes.len().saturating_sub(pos);
    if in_sync || tail < PACKET_SIZE {
        analyzer.report.trailing_bytes = tail as u64;
    } else {
        analyzer.report.skipped_bytes += tail as u64;
    }
    analyzer.finish()
}

/// The first position from `from` with a whole packet that starts with 0x47 and is
/// followed by another 0x47 188 bytes on (or by the end of the data).
fn find_sync(bytes: &[u8], from: usize) -> Option<usize> {
    (from..=bytes.len().checked_sub(PACKET_SIZE)?).find(|&p| {
        bytes[p] == SYNC_BYTE
            && bytes
                .get(p + PACKET_SIZE)
                .is_none_or(|&next| next == SYNC_BYTE)
    })
}

/// Reads captured UDP datagrams, each with its arrival time, in arrival order. With
/// `rtp`, each carries an RTP header before its packets. The transport stream is the
/// datagrams' payloads joined in arrival order, as a receiver would read them.
pub fn analyze_datagrams(
    datagrams: &[(Duration, Vec<u8>)],
    rtp: bool,
) -> (TsReport, DatagramReport) {
    let mut report = DatagramReport::default();
    let mut rtp_tracker = rtp.then(RtpTracker::default);
    let mut ts = Vec::new();
    let mut first_payload = 0;
    for (index, (arrival, datagram)) in datagrams.iter().enumerate() {
        report.datagrams += 1;
        *report.sizes.entry(datagram.len()).or_default() += 1;
        let payload = match rtp_tracker.as_mut() {
            Some(tracker) => match tracker.push(*arrival, datagram) {
                Some(payload) => payload,
                None => continue,
            },
            None => datagram.as_slice(),
        };
        if index == 0 {
            first_payload = payload.len();
        }
        ts.extend_from_slice(payload);
    }
    report.rtp = rtp_tracker.map(RtpTracker::finish);
    report.inter_arrival = inter_arrival(datagrams);
    if let [(first, _), .., (last, _)] = datagrams {
        let span = last.saturating_sub(*first).as_secs_f64();
        if span > 0.0 {
            report.arrival_bitrate = Some((ts.len() - first_payload) as f64 * 8.0 / span);
        }
    }
    (analyze(&ts), report)
}

/// Reads a capture written by `tests/support/mcast_capture.py`: records of a u64
/// big-endian arrival time in nanoseconds (monotonic clock), a u32 big-endian length,
/// and the datagram.
pub fn read_capture(path: impl AsRef<Path>) -> Vec<(Duration, Vec<u8>)> {
    let path = path.as_ref();
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut rest = bytes.as_slice();
    let mut records = Vec::new();
    while !rest.is_empty() {
        let offset = bytes.len() - rest.len();
        let Some((nanos, after)) = rest.split_first_chunk::<8>() else {
            panic!(
                "{}: a record header cut short at byte {offset}",
                path.display()
            );
        };
        let Some((length, after)) = after.split_first_chunk::<4>() else {
            panic!(
                "{}: a record header cut short at byte {offset}",
                path.display()
            );
        };
        let length = u32::from_be_bytes(*length) as usize;
        assert!(
            after.len() >= length,
            "{}: the record at byte {offset} holds {length} bytes, only {} are left",
            path.display(),
            after.len()
        );
        records.push((
            Duration::from_nanos(u64::from_be_bytes(*nanos)),
            after[..length].to_vec(),
        ));
        rest = &after[length..];
    }
    records
}

// ---------------------------------------------------------------- packets

#[derive(Default)]
struct Analyzer {
    report: TsReport,
    continuity: BTreeMap<u16, Continuity>,
    sections: BTreeMap<u16, SectionBuffer>,
    pmt_pids: BTreeSet<u16>,
    pcrs: BTreeMap<u16, Vec<PcrSample>>,
    pat_at: Vec<u64>,
    pmt_at: BTreeMap<u16, Vec<u64>>,
    sdt_at: Vec<u64>,
    first_pes: BTreeMap<u16, FirstPes>,
    /// Per PID, the last PTS unwrapped.
    last_pts: BTreeMap<u16, i64>,
}

struct Continuity {
    cc: u8,
    had_payload: bool,
    /// The last packet was a duplicate: a third copy is an error.
    duplicated: bool,
    payload: Vec<u8>,
}

#[derive(Default)]
struct SectionBuffer {
    /// Bytes of the section being assembled, and what follows it in its packet.
    data: Vec<u8>,
    /// Where the packet that started the section starts.
    pos: u64,
    active: bool,
}

struct PcrSample {
    pos: u64,
    pcr: u64,
    discontinuity: bool,
}

struct FirstPes {
    random_access: bool,
    data: Vec<u8>,
    complete: bool,
}

impl Analyzer {
    fn packet(&mut self, pos: u64, packet: &[u8]) {
        let transport_error = packet[1] & 0x80 != 0;
        let unit_start = packet[1] & 0x40 != 0;
        let pid = u16::from(packet[1] & 0x1F) << 8 | u16::from(packet[2]);
        let adaptation_control = (packet[3] >> 4) & 0x3;
        let cc = packet[3] & 0x0F;
        self.report.packets += 1;
        self.report.pids.entry(pid).or_default().packets += 1;
        if transport_error {
            self.report.transport_errors += 1;
            return;
        }
        if pid == NULL_PID {
            return;
        }
        // 2.4.3.5: the adaptation field fills 183 bytes when there is no payload, at
        // most 182 when there is.
        let (adaptation, payload): (&[u8], &[u8]) = match adaptation_control {
            0b01 => (&[], &packet[4..]),
            0b10 if usize::from(packet[4]) <= 183 => (&packet[5..5 + usize::from(packet[4])], &[]),
            0b11 if usize::from(packet[4]) <= 182 => {
                let end = 5 + usize::from(packet[4]);
                (&packet[5..end], &packet[end..])
            }
            _ => {
                self.report.malformed_packets += 1;
                return;
            }
        };
        let flags = adaptation.first().copied().unwrap_or(0);
        let discontinuity = flags & 0x80 != 0;
        let random_access = flags & 0x40 != 0;
        let has_payload = adaptation_control & 0b01 != 0;

        if !self.continuity(pid, cc, has_payload, discontinuity, payload) {
            return;
        }
        if flags & 0x10 != 0 && adaptation.len() >= 7 {
            let b = &adaptation[1..7];
            let base = u64::from(b[0]) << 25
                | u64::from(b[1]) << 17
                | u64::from(b[2]) << 9
                | u64::from(b[3]) << 1
                | u64::from(b[4]) >> 7;
            let extension = u64::from(b[4] & 0x01) << 8 | u64::from(b[5]);
            self.pcrs.entry(pid).or_default().push(PcrSample {
                pos,
                pcr: base * 300 + extension,
                discontinuity,
            });
            self.report.pids.entry(pid).or_default().pcrs += 1;
        }
        if payload.is_empty() {
            return;
        }
        if pid == PAT_PID || pid == SDT_PID || self.pmt_pids.contains(&pid) {
            self.psi(pid, pos, unit_start, payload);
        } else {
            self.pes(pid, unit_start, random_access, payload);
        }
    }

    /// Checks the continuity counter; false for a duplicate packet, which is not read
    /// again.
    fn continuity(
        &mut self,
        pid: u16,
        cc: u8,
        has_payload: bool,
        discontinuity: bool,
        payload: &[u8],
    ) -> bool {
        let Some(state) = self.continuity.get_mut(&pid) else {
            self.continuity.insert(
                pid,
                Continuity {
                    cc,
                    had_payload: has_payload,
                    duplicated: false,
                    payload: payload.to_vec(),
                },
            );
            return true;
        };
        let mut duplicate = false;
        let error = if discontinuity {
            false
        } else if has_payload {
            if cc == state.cc && state.had_payload {
                duplicate = !state.duplicated && state.payload == payload;
                !duplicate
            } else {
                cc != (state.cc + 1) & 0x0F
            }
        } else {
            cc != state.cc
        };
        state.cc = cc;
        state.had_payload = has_payload;
        state.duplicated = duplicate;
        if has_payload && !duplicate {
            state.payload.clear();
            state.payload.extend_from_slice(payload);
        }
        let stats = self.report.pids.entry(pid).or_default();
        if duplicate {
            stats.duplicates += 1;
            return false;
        }
        if error {
            stats.cc_errors += 1;
            // What was being assembled on this PID has a hole in it.
            if let Some(buffer) = self.sections.get_mut(&pid) {
                buffer.active = false;
                buffer.data.clear();
            }
            if let Some(pes) = self.first_pes.get_mut(&pid) {
                pes.complete = true;
            }
        }
        true
    }

    // ------------------------------------------------------------ PES

    fn pes(&mut self, pid: u16, unit_start: bool, random_access: bool, payload: &[u8]) {
        if !unit_start {
            if let Some(pes) = self.first_pes.get_mut(&pid) {
                if !pes.complete && pes.data.len() < FIRST_PES_LIMIT {
                    pes.data.extend_from_slice(payload);
                }
            }
            return;
        }
        if let Some(pes) = self.first_pes.get_mut(&pid) {
            pes.complete = true;
        }
        if !payload.starts_with(&[0, 0, 1]) || payload.len() < 6 {
            return;
        }
        let pts = pes_header(payload).and_then(|(pts, _)| pts);
        let stats = self.report.pids.entry(pid).or_default();
        stats.pes_starts += 1;
        if let Some(pts) = pts {
            let pts = i64::try_from(pts).unwrap_or(0);
            let unwrapped = match self.last_pts.get(&pid) {
                // The step from the last PTS, taken the short way round the 2^33 wrap.
                Some(&last) => {
                    let step = (pts - last).rem_euclid(PTS_WRAP);
                    last + if step >= PTS_WRAP / 2 {
                        step - PTS_WRAP
                    } else {
                        step
                    }
                }
                None => pts,
            };
            self.last_pts.insert(pid, unwrapped);
            stats.pts_range = Some(match stats.pts_range {
                Some((low, high)) => (low.min(unwrapped), high.max(unwrapped)),
                None => (unwrapped, unwrapped),
            });
        }
        self.first_pes.entry(pid).or_insert_with(|| FirstPes {
            random_access,
            data: payload.to_vec(),
            complete: false,
        });
    }

    // ------------------------------------------------------------ PSI

    fn psi(&mut self, pid: u16, pos: u64, unit_start: bool, payload: &[u8]) {
        let buffer = self.sections.entry(pid).or_default();
        let mut complete = Vec::new();
        let mut cut_short = 0;
        if unit_start {
            // 2.4.4.2: the pointer_field counts the bytes that end the previous section
            // before the first new one starts.
            let pointer = usize::from(payload[0]);
            let rest = &payload[1..];
            let Some((tail, head)) = (pointer <= rest.len()).then(|| rest.split_at(pointer)) else {
                self.report.malformed_sections += 1;
                buffer.active = false;
                buffer.data.clear();
                return;
            };
            if buffer.active {
                buffer.data.extend_from_slice(tail);
                complete.extend(buffer.take_sections());
                if buffer.active && !buffer.data.is_empty() {
                    cut_short += 1;
                }
            }
            buffer.data.clear();
            buffer.data.extend_from_slice(head);
            buffer.pos = pos;
            buffer.active = true;
            complete.extend(buffer.take_sections());
        } else if buffer.active {
            buffer.data.extend_from_slice(payload);
            complete.extend(buffer.take_sections());
        }
        self.report.malformed_sections += cut_short;
        for (at, section) in complete {
            self.section(pid, at, &section);
        }
    }

    fn section(&mut self, pid: u16, pos: u64, section: &[u8]) {
        let table_id = section[0];
        let syntax = section[1] & 0x80 != 0;
        if !syntax {
            // Only the stuffing and time tables of PID 0x11 are short-form, and none of
            // them is read here.
            if pid != SDT_PID {
                self.report.malformed_sections += 1;
            }
            return;
        }
        // Table id, two length bytes, five more header bytes, the CRC.
        if section.len() < 12 {
            self.report.malformed_sections += 1;
            return;
        }
        if crc32_mpeg2(section) != 0 {
            *self.report.crc_errors.entry(pid).or_default() += 1;
            return;
        }
        let header = LongHeader {
            table_id_extension: u16::from_be_bytes([section[3], section[4]]),
            version: (section[5] >> 1) & 0x1F,
            current: section[5] & 0x01 != 0,
            section_number: section[6],
        };
        if !header.current {
            return;
        }
        let body = &section[8..section.len() - 4];
        let parsed = match table_id {
            TABLE_PAT if pid == PAT_PID => self.pat(pos, &header, body),
            TABLE_PMT if self.pmt_pids.contains(&pid) => self.pmt(pid, pos, &header, body),
            TABLE_SDT_ACTUAL if pid == SDT_PID => self.sdt(pos, &header, body),
            _ => Some(()),
        };
        if parsed.is_none() {
            self.report.malformed_sections += 1;
        }
    }

    fn pat(&mut self, pos: u64, header: &LongHeader, body: &[u8]) -> Option<()> {
        if body.len() % 4 != 0 {
            return None;
        }
        let pat = match self.report.pat.take() {
            Some(pat) if pat.version == header.version => pat,
            _ => Pat {
                transport_stream_id: header.table_id_extension,
                version: header.version,
                programs: BTreeMap::new(),
                network_pid: None,
            },
        };
        let pat = self.report.pat.insert(pat);
        for entry in body.chunks_exact(4) {
            let program = u16::from_be_bytes([entry[0], entry[1]]);
            let pid = u16::from_be_bytes([entry[2], entry[3]]) & 0x1FFF;
            if program == 0 {
                pat.network_pid = Some(pid);
            } else {
                pat.programs.insert(program, pid);
                self.pmt_pids.insert(pid);
            }
        }
        if header.section_number == 0 {
            self.pat_at.push(pos);
        }
        Some(())
    }

    fn pmt(&mut self, pid: u16, pos: u64, header: &LongHeader, body: &[u8]) -> Option<()> {
        let pcr_pid = u16::from_be_bytes([*body.first()?, *body.get(1)?]) & 0x1FFF;
        let info_length = usize::from(u16::from_be_bytes([*body.get(2)?, *body.get(3)?]) & 0x0FFF);
        let mut rest = body.get(4 + info_length..)?;
        let mut streams = Vec::new();
        while !rest.is_empty() {
            let entry = rest.get(..5)?;
            let es_info_length = usize::from(u16::from_be_bytes([entry[3], entry[4]]) & 0x0FFF);
            streams.push(ElementaryStream {
                stream_type: entry[0],
                pid: u16::from_be_bytes([entry[1], entry[2]]) & 0x1FFF,
            });
            rest = rest.get(5 + es_info_length..)?;
        }
        let program_number = header.table_id_extension;
        self.report.pmts.insert(
            program_number,
            Pmt {
                program_number,
                pid,
                version: header.version,
                pcr_pid,
                streams,
            },
        );
        self.pmt_at.entry(program_number).or_default().push(pos);
        Some(())
    }

    fn sdt(&mut self, pos: u64, header: &LongHeader, body: &[u8]) -> Option<()> {
        let original_network_id = u16::from_be_bytes([*body.first()?, *body.get(1)?]);
        // One reserved_future_use byte, then the service loop.
        let mut rest = body.get(3..)?;
        let mut services = Vec::new();
        while !rest.is_empty() {
            let entry = rest.get(..5)?;
            let loop_length = usize::from(u16::from_be_bytes([entry[3], entry[4]]) & 0x0FFF);
            let descriptors = rest.get(5..5 + loop_length)?;
            let mut service = Service {
                service_id: u16::from_be_bytes([entry[0], entry[1]]),
                service_type: None,
                provider_name: String::new(),
                service_name: String::new(),
                running_status: entry[3] >> 5,
                free_ca_mode: entry[3] & 0x10 != 0,
            };
            for (tag, data) in descriptors_of(descriptors)? {
                if tag == DESCRIPTOR_SERVICE {
                    // EN 300 468 6.2.33: type, then two length-prefixed names.
                    let provider_length = usize::from(*data.get(1)?);
                    let provider = data.get(2..2 + provider_length)?;
                    let name_length = usize::from(*data.get(2 + provider_length)?);
                    let start = 3 + provider_length;
                    let name = data.get(start..start + name_length)?;
                    service.service_type = Some(data[0]);
                    service.provider_name = dvb_text(provider);
                    service.service_name = dvb_text(name);
                }
            }
            services.push(service);
            rest = &rest[5 + loop_length..];
        }
        let sdt = match self.report.sdt.take() {
            Some(sdt) if sdt.version == header.version => sdt,
            _ => Sdt {
                transport_stream_id: header.table_id_extension,
                original_network_id,
                version: header.version,
                services: BTreeMap::new(),
            },
        };
        let sdt = self.report.sdt.insert(sdt);
        for service in services {
            sdt.services.insert(service.service_id, service);
        }
        if header.section_number == 0 {
            self.sdt_at.push(pos);
        }
        Some(())
    }

    // ------------------------------------------------------------ the end

    fn finish(mut self) -> TsReport {
        let pcr_pid = self
            .report
            .pmt()
            .map(|pmt| pmt.pcr_pid)
            .filter(|pid| self.pcrs.contains_key(pid))
            .or_else(|| {
                self.pcrs
                    .iter()
                    .max_by_key(|(_, samples)| samples.len())
                    .map(|(&pid, _)| pid)
            });
        let samples = pcr_pid
            .and_then(|pid| self.pcrs.remove(&pid))
            .unwrap_or_default();
        let (timeline, mut pcr) = Timeline::new(&samples);
        pcr.pid = pcr_pid;
        self.report.pcr = pcr;
        self.report.pat_repetition = timeline.repetition(&self.pat_at);
        self.report.sdt_repetition = timeline.repetition(&self.sdt_at);
        self.report.pmt_repetition = self
            .pmt_at
            .iter()
            .map(|(&program, at)| (program, timeline.repetition(at)))
            .collect();

        let video = self.report.pmt().and_then(|pmt| {
            pmt.streams.iter().find_map(|s| match s.stream_type {
                STREAM_TYPE_H264 => Some((s.pid, VideoCodec::H264)),
                STREAM_TYPE_H265 => Some((s.pid, VideoCodec::H265)),
                _ => None,
            })
        });
        self.report.first_video = video.and_then(|(pid, codec)| {
            let pes = self.first_pes.get(&pid)?;
            let (pts, header_length) = pes_header(&pes.data)?;
            let nal_types = nal_unit_types(pes.data.get(header_length..)?, codec);
            let has =
                |types: std::ops::RangeInclusive<u8>| nal_types.iter().any(|t| types.contains(t));
            let (has_idr, has_sps, has_pps) = match codec {
                VideoCodec::H264 => (has(5..=5), has(7..=7), has(8..=8)),
                VideoCodec::H265 => (has(16..=21), has(33..=33), has(34..=34)),
            };
            Some(FirstVideo {
                pid,
                codec,
                nal_types,
                has_idr,
                has_sps,
                has_pps,
                random_access_indicator: pes.random_access,
                pts,
            })
        });
        self.report
    }
}

struct LongHeader {
    table_id_extension: u16,
    version: u8,
    current: bool,
    section_number: u8,
}

impl SectionBuffer {
    /// Takes the whole sections at the front of the buffer, each with where it started.
    /// Stuffing (0xFF where a table_id would be) ends the packet's sections.
    fn take_sections(&mut self) -> Vec<(u64, Vec<u8>)> {
        let mut sections = Vec::new();
        loop {
            match self.data.first() {
                None | Some(0xFF) => {
                    self.active = false;
                    self.data.clear();
                    break;
                }
                Some(_) if self.data.len() < 3 => break,
                Some(_) => {
                    let length =
                        3 + usize::from(u16::from_be_bytes([self.data[1], self.data[2]]) & 0x0FFF);
                    if self.data.len() < length {
                        break;
                    }
                    sections.push((self.pos, self.data.drain(..length).collect()));
                }
            }
        }
        sections
    }
}

/// The PTS, if any, and the length of the PES header (2.4.3.6).
fn pes_header(pes: &[u8]) -> Option<(Option<u64>, usize)> {
    if !pes.starts_with(&[0, 0, 1]) {
        return None;
    }
    let stream_id = *pes.get(3)?;
    // program_stream_map, padding, private_stream_2, ECM, EMM, directory, DSM-CC,
    // H.222.1 type E: no optional header.
    if matches!(
        stream_id,
        0xBC | 0xBE | 0xBF | 0xF0 | 0xF1 | 0xF2 | 0xF8 | 0xFF
    ) {
        return Some((None, 6));
    }
    let flags = *pes.get(7)?;
    let header_length = 9 + usize::from(*pes.get(8)?);
    let pts = if flags & 0x80 != 0 {
        let b = pes.get(9..14)?;
        Some(
            u64::from(b[0] >> 1 & 0x07) << 30
                | u64::from(b[1]) << 22
                | u64::from(b[2] >> 1) << 15
                | u64::from(b[3]) << 7
                | u64::from(b[4] >> 1),
        )
    } else {
        None
    };
    Some((pts, header_length))
}

/// The NAL unit types in an Annex B byte stream, in order. Emulation prevention keeps
/// 00 00 01 out of NAL payloads, so every one found starts a NAL unit.
fn nal_unit_types(stream: &[u8], codec: VideoCodec) -> Vec<u8> {
    let mut types = Vec::new();
    let mut i = 0;
    while i + 3 < stream.len() {
        if stream[i..i + 3] == [0, 0, 1] {
            let header = stream[i + 3];
            types.push(match codec {
                VideoCodec::H264 => header & 0x1F,
                VideoCodec::H265 => (header >> 1) & 0x3F,
            });
            i += 3;
        } else {
            i += 1;
        }
    }
    types
}

/// The (tag, data) of each descriptor in a loop; `None` if one overruns it.
fn descriptors_of(mut data: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut descriptors = Vec::new();
    while !data.is_empty() {
        let tag = data[0];
        let length = usize::from(*data.get(1)?);
        descriptors.push((tag, data.get(2..2 + length)?));
        data = &data[2 + length..];
    }
    Some(descriptors)
}

/// CRC32/MPEG-2 (Annex A): polynomial 0x04C11DB7, initial 0xFFFFFFFF, not reflected,
/// not inverted. A section with its CRC_32 included comes out 0.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFF_u32;
    for &byte in data {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Decodes a DVB text field (EN 300 468 Annex A). The first byte may select the
/// character table: 0x15 UTF-8, 0x11 UCS-2, 0x10 plus two bytes an ISO/IEC 8859 part,
/// 0x01..=0x0B ISO/IEC 8859-5 to -15, 0x1F an encoding_type_id. Without one (first byte
/// 0x20 or above) the default table applies, which is ASCII below 0x80. The single-byte
/// tables are read as Latin-1 above 0xA0 (exact for 8859-1, an approximation
/// otherwise) and their control codes 0x80..=0x9F dropped, but for 0x8A, a line break.
/// The multi-byte East Asian tables (0x12..=0x14) are not decoded: non-ASCII bytes come
/// out as U+FFFD.
pub fn dvb_text(bytes: &[u8]) -> String {
    match bytes {
        [] => String::new(),
        [0x15, rest @ ..] => String::from_utf8_lossy(rest)
            .chars()
            .filter_map(|c| control_code(c as u32).unwrap_or(Some(c)))
            .collect(),
        [0x11, rest @ ..] => {
            let units = rest
                .chunks_exact(2)
                .map(|u| u16::from_be_bytes([u[0], u[1]]));
            char::decode_utf16(units)
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .filter_map(|c| control_code(c as u32).unwrap_or(Some(c)))
                .collect()
        }
        [0x12..=0x14, rest @ ..] => rest
            .iter()
            .map(|&b| {
                if b.is_ascii() {
                    char::from(b)
                } else {
                    char::REPLACEMENT_CHARACTER
                }
            })
            .collect(),
        [0x10, _, _, rest @ ..] | [0x1F, _, rest @ ..] | [0x01..=0x0B, rest @ ..] => {
            single_byte_text(rest)
        }
        // A reserved selector, or one cut short.
        [0x00..=0x1F, rest @ ..] => single_byte_text(rest),
        _ => single_byte_text(bytes),
    }
}

fn single_byte_text(bytes: &[u8]) -> String {
    bytes
        .iter()
        .filter_map(|&b| control_code(u32::from(b)).unwrap_or(Some(char::from(b))))
        .collect()
}

/// `Some(replacement)` for a DVB control code (0x80..=0x9F), `None` for anything else.
fn control_code(code: u32) -> Option<Option<char>> {
    match code {
        0x8A => Some(Some('\n')),
        0x80..=0x9F => Some(None),
        _ => None,
    }
}

// ---------------------------------------------------------------- the PCR timeline

/// The PCRs of one PID, cut into timelines at every discontinuity, each PCR unwrapped
/// past 2^33 * 300 and paired with its byte position.
struct Timeline {
    segments: Vec<Vec<(u64, u64)>>,
}

impl Timeline {
    fn new(samples: &[PcrSample]) -> (Self, PcrReport) {
        let mut report = PcrReport::default();
        let mut segments: Vec<Vec<(u64, u64)>> = Vec::new();
        let mut last_raw = None;
        for sample in samples {
            report.repetition.count += 1;
            // Steps are taken modulo the wrap: a step back comes out huge.
            let step = last_raw.map(|last| (sample.pcr + PCR_WRAP - last) % PCR_WRAP);
            last_raw = Some(sample.pcr);
            let continues = !sample.discontinuity && step.is_some_and(|s| s <= MAX_PCR_STEP);
            if sample.discontinuity {
                report.signalled_discontinuities += 1;
            } else if step.is_some() && !continues {
                report.unsignalled_discontinuities += 1;
            }
            match (segments.last_mut(), step) {
                (Some(segment), Some(step)) if continues => {
                    let last = segment.last().map_or(0, |&(_, t)| t);
                    segment.push((sample.pos, last + step));
                }
                _ => segments.push(vec![(sample.pos, sample.pcr)]),
            }
        }
        let mut bytes = 0u64;
        let mut ticks = 0u64;
        let mut intervals = Intervals::default();
        let mut deviation: Option<f64> = None;
        for segment in &segments {
            for pair in segment.windows(2) {
                intervals.add((pair[1].1 - pair[0].1) as f64 / PCR_HZ);
            }
            let (Some(&(p0, t0)), Some(&(p1, t1))) = (segment.first(), segment.last()) else {
                continue;
            };
            if p1 <= p0 || t1 <= t0 {
                continue;
            }
            bytes += p1 - p0;
            ticks += t1 - t0;
            let slope = (t1 - t0) as f64 / (p1 - p0) as f64;
            for &(p, t) in segment {
                let predicted = t0 as f64 + (p - p0) as f64 * slope;
                let off = (t as f64 - predicted).abs() / PCR_HZ;
                deviation = Some(deviation.map_or(off, |d| d.max(off)));
            }
        }
        report.repetition.max_interval = intervals.max;
        report.repetition.min_interval = intervals.min;
        if ticks > 0 {
            report.bitrate = Some(bytes as f64 * 8.0 * PCR_HZ / ticks as f64);
            report.duration = Some(ticks as f64 / PCR_HZ);
            report.max_deviation = deviation;
        }
        (Self { segments }, report)
    }

    /// The timeline a byte position belongs to (the last one started at or before it,
    /// or the first) and its time there in seconds; `None` on a timeline with fewer
    /// than two PCRs.
    fn time_at(&self, pos: u64) -> Option<(usize, f64)> {
        let index = self
            .segments
            .partition_point(|s| s[0].0 <= pos)
            .saturating_sub(1);
        let segment = self.segments.get(index)?;
        let (&(p_first, t_first), &(p_last, t_last)) = (segment.first()?, segment.last()?);
        if segment.len() < 2 || p_last <= p_first {
            return None;
        }
        let mean_slope = (t_last - t_first) as f64 / (p_last - p_first) as f64;
        let ticks = if pos <= p_first {
            t_first as f64 - (p_first - pos) as f64 * mean_slope
        } else if pos >= p_last {
            t_last as f64 + (pos - p_last) as f64 * mean_slope
        } else {
            let after = segment.partition_point(|&(p, _)| p <= pos);
            let (p0, t0) = segment[after - 1];
            let (p1, t1) = segment[after];
            t0 as f64 + (pos - p0) as f64 * (t1 - t0) as f64 / (p1 - p0) as f64
        };
        Some((index, ticks / PCR_HZ))
    }

    fn repetition(&self, positions: &[u64]) -> Repetition {
        let mut intervals = Intervals::default();
        let times: Vec<_> = positions.iter().map(|&p| self.time_at(p)).collect();
        for pair in times.windows(2) {
            if let [Some((a, ta)), Some((b, tb))] = pair {
                if a == b {
                    intervals.add(tb - ta);
                }
            }
        }
        Repetition {
            count: positions.len() as u64,
            max_interval: intervals.max,
            min_interval: intervals.min,
        }
    }
}

#[derive(Default)]
struct Intervals {
    max: Option<f64>,
    min: Option<f64>,
}

impl Intervals {
    fn add(&mut self, seconds: f64) {
        self.max = Some(self.max.map_or(seconds, |m| m.max(seconds)));
        self.min = Some(self.min.map_or(seconds, |m| m.min(seconds)));
    }
}

// ---------------------------------------------------------------- datagrams

#[derive(Default)]
struct RtpTracker {
    report: RtpReport,
    /// Highest sequence number so far.
    sequence: Option<u16>,
    /// Timestamp of the last in-order datagram, and the ticks since the first one.
    timestamp: Option<(u32, i64)>,
    first_arrival: Option<Duration>,
    last_in_order: Option<Duration>,
}

impl RtpTracker {
    /// Reads one datagram's RTP header and returns its payload.
    fn push<'a>(&mut self, arrival: Duration, datagram: &'a [u8]) -> Option<&'a [u8]> {
        let Some((header, payload)) = rtp_payload(datagram) else {
            self.report.malformed += 1;
            return None;
        };
        self.report.payload_types.insert(header.payload_type);
        self.report.ssrcs.insert(header.ssrc);
        let in_order = match self.sequence {
            None => true,
            Some(highest) => {
                let step = header.sequence.wrapping_sub(highest);
                if step == 0 {
                    self.report.duplicates += 1;
                    false
                } else if step < 0x8000 {
                    if step > 1 {
                        self.report.sequence_gaps += 1;
                        self.report.lost += u64::from(step - 1);
                    }
                    true
                } else {
                    self.report.reordered += 1;
                    false
                }
            }
        };
        if in_order {
            self.sequence = Some(header.sequence);
            let ticks = match self.timestamp {
                None => {
                    self.first_arrival = Some(arrival);
                    0
                }
                Some((last, ticks)) => {
                    // Signed difference modulo 2^32.
                    let step = header.timestamp.wrapping_sub(last) as i32;
                    if step < 0 {
                        self.report.timestamp_regressions += 1;
                    }
                    ticks + i64::from(step)
                }
            };
            self.timestamp = Some((header.timestamp, ticks));
            self.last_in_order = Some(arrival);
        }
        Some(payload)
    }

    fn finish(mut self) -> RtpReport {
        if let (Some(first), Some(last), Some((_, ticks))) =
            (self.first_arrival, self.last_in_order, self.timestamp)
        {
            let span = last.saturating_sub(first).as_secs_f64();
            if span > 0.0 {
                self.report.timestamp_rate = Some(ticks as f64 / span);
            }
        }
        self.report
    }
}

struct RtpHeader {
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
}

/// RFC 3550 5.1: version 2, CSRCs, an extension and padding skipped.
fn rtp_payload(datagram: &[u8]) -> Option<(RtpHeader, &[u8])> {
    let fixed = datagram.get(..RTP_HEADER_SIZE)?;
    if fixed[0] >> 6 != 2 {
        return None;
    }
    let header = RtpHeader {
        payload_type: fixed[1] & 0x7F,
        sequence: u16::from_be_bytes([fixed[2], fixed[3]]),
        timestamp: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
        ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
    };
    let mut start = RTP_HEADER_SIZE + 4 * usize::from(fixed[0] & 0x0F);
    if fixed[0] & 0x10 != 0 {
        let extension = datagram.get(start..start + 4)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([extension[2], extension[3]]));
    }
    let mut end = datagram.len();
    if fixed[0] & 0x20 != 0 {
        end = end.checked_sub(usize::from(*datagram.last()?))?;
    }
    Some((header, datagram.get(start..end)?))
}

fn inter_arrival(datagrams: &[(Duration, Vec<u8>)]) -> Option<InterArrival> {
    if datagrams.len() < 2 {
        return None;
    }
    let arrivals: Vec<Duration> = datagrams.iter().map(|(t, _)| *t).collect();
    let mut gaps: Vec<Duration> = arrivals
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .collect();
    let total: Duration = gaps.iter().sum();
    let mean = total / u32::try_from(gaps.len()).unwrap_or(u32::MAX);
    gaps.sort_unstable();
    let rank = |fraction: f64| {
        let index = ((fraction * gaps.len() as f64).ceil() as usize).clamp(1, gaps.len()) - 1;
        gaps[index]
    };
    let mut max_burst = 0;
    let mut first = 0;
    for (last, &t) in arrivals.iter().enumerate() {
        while t.saturating_sub(arrivals[first]) >= BURST_WINDOW {
            first += 1;
        }
        max_burst = max_burst.max(last - first + 1);
    }
    Some(InterArrival {
        mean,
        median: rank(0.5),
        p99: rank(0.99),
        max: gaps[gaps.len() - 1],
        max_burst,
    })
}

// ---------------------------------------------------------------- summaries

fn seconds(value: Option<f64>) -> String {
    value.map_or("-".to_owned(), |s| format!("{:.1} ms", s * 1e3))
}

impl fmt::Display for Repetition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} times, every {}..{}",
            self.count,
            seconds(self.min_interval),
            seconds(self.max_interval)
        )
    }
}

impl fmt::Display for TsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} packets; {} sync losses, {} bytes skipped, {} trailing; {} transport errors, \
             {} malformed packets",
            self.packets,
            self.sync_losses,
            self.skipped_bytes,
            self.trailing_bytes,
            self.transport_errors,
            self.malformed_packets
        )?;
        for (pid, stats) in &self.pids {
            write!(f, "  PID 0x{pid:04X}: {} packets", stats.packets)?;
            if stats.cc_errors > 0 || stats.duplicates > 0 {
                write!(
                    f,
                    ", {} CC errors, {} duplicates",
                    stats.cc_errors, stats.duplicates
                )?;
            }
            if stats.pcrs > 0 {
                write!(f, ", {} PCRs", stats.pcrs)?;
            }
            if stats.pes_starts > 0 {
                write!(f, ", {} PES", stats.pes_starts)?;
            }
            if let Some((low, high)) = stats.pts_range {
                write!(f, ", PTS {low}..{high}")?;
            }
            writeln!(f)?;
        }
        writeln!(f, "  null share {:.1}%", self.null_share() * 100.0)?;
        match &self.pat {
            Some(pat) => writeln!(
                f,
                "PAT v{} ts_id {}: programs {:?} (program → PMT PID); {}",
                pat.version, pat.transport_stream_id, pat.programs, self.pat_repetition
            )?,
            None => writeln!(f, "no PAT")?,
        }
        for (program, pmt) in &self.pmts {
            let streams: Vec<String> = pmt
                .streams
                .iter()
                .map(|s| format!("type 0x{:02X} on 0x{:04X}", s.stream_type, s.pid))
                .collect();
            let repetition = self
                .pmt_repetition
                .get(program)
                .copied()
                .unwrap_or_default();
            writeln!(
                f,
                "PMT program {program} on PID 0x{:04X} v{}: PCR PID 0x{:04X}, {}; {repetition}",
                pmt.pid,
                pmt.version,
                pmt.pcr_pid,
                streams.join(", ")
            )?;
        }
        match &self.sdt {
            Some(sdt) => {
                writeln!(
                    f,
                    "SDT v{} ts_id {} onid {}; {}",
                    sdt.version,
                    sdt.transport_stream_id,
                    sdt.original_network_id,
                    self.sdt_repetition
                )?;
                for service in sdt.services.values() {
                    writeln!(
                        f,
                        "  service {}: {:?} from {:?}, type {:?}, running status {}",
                        service.service_id,
                        service.service_name,
                        service.provider_name,
                        service.service_type,
                        service.running_status
                    )?;
                }
            }
            None => writeln!(f, "no SDT")?,
        }
        writeln!(
            f,
            "CRC errors by PID {:?}; {} malformed sections",
            self.crc_errors, self.malformed_sections
        )?;
        let pcr = &self.pcr;
        writeln!(
            f,
            "PCR on {}: {}; {} over {}; max deviation {}; discontinuities {} signalled, {} not",
            pcr.pid.map_or("-".to_owned(), |p| format!("0x{p:04X}")),
            pcr.repetition,
            pcr.bitrate
                .map_or("-".to_owned(), |b| format!("{:.0} bit/s", b)),
            pcr.duration.map_or("-".to_owned(), |d| format!("{d:.3} s")),
            pcr.max_deviation
                .map_or("-".to_owned(), |d| format!("{:.0} ns", d * 1e9)),
            pcr.signalled_discontinuities,
            pcr.unsignalled_discontinuities
        )?;
        match &self.first_video {
            Some(video) => write!(
                f,
                "first video AU on 0x{:04X} ({:?}): NAL types {:?}, IDR {}, SPS {}, PPS {}, \
                 random_access_indicator {}",
                video.pid,
                video.codec,
                video.nal_types,
                video.has_idr,
                video.has_sps,
                video.has_pps,
                video.random_access_indicator
            ),
            None => write!(f, "no video PES started"),
        }
    }
}

impl fmt::Display for DatagramReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} datagrams, sizes {:?}", self.datagrams, self.sizes)?;
        if let Some(rate) = self.arrival_bitrate {
            write!(f, ", {rate:.0} bit/s on arrival")?;
        }
        writeln!(f)?;
        if let Some(rtp) = &self.rtp {
            writeln!(
                f,
                "RTP: payload types {:?}, SSRCs {:?}, {} gaps ({} lost), {} reordered, \
                 {} duplicates, {} timestamp regressions, {} malformed, timestamp rate {}",
                rtp.payload_types,
                rtp.ssrcs,
                rtp.sequence_gaps,
                rtp.lost,
                rtp.reordered,
                rtp.duplicates,
                rtp.timestamp_regressions,
                rtp.malformed,
                rtp.timestamp_rate
                    .map_or("-".to_owned(), |r| format!("{r:.0} Hz"))
            )?;
        }
        match &self.inter_arrival {
            Some(gaps) => write!(
                f,
                "inter-arrival: mean {:?}, median {:?}, p99 {:?}, max {:?}; \
                 at most {} datagrams within {:?}",
                gaps.mean, gaps.median, gaps.p99, gaps.max, gaps.max_burst, BURST_WINDOW
            ),
            None => write!(f, "inter-arrival: fewer than two datagrams"),
        }
    }
}
