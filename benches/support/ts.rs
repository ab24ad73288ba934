//! A transport-stream reader as a set-top box starts one, written apart from the
//! headend's own `ts` module so a benchmark does not take the code it measures on
//! trust: PAT (with its CRC) → PMT (with its CRC) → the H.264 PID (stream type 0x1B),
//! then whole video PES packets, each one access unit, from one PES start to the next
//! on that PID. Only what follows a PMT counts, as for a real receiver.

use std::collections::HashMap;

pub const PACKET: usize = 188;
const SYNC: u8 = 0x47;
const NULL_PID: u16 = 0x1FFF;
pub const PAT_PID: u16 = 0;
/// The DVB Service Description Table.
pub const SDT_PID: u16 = 0x11;
/// H.264 video in a PMT (ISO/IEC 13818-1 table 2-34).
const STREAM_TYPE_H264: u8 = 0x1B;
/// H.264 NAL unit types (ITU-T H.264 table 7-1) a decoder needs to start.
const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;

/// One whole video access unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessUnit {
    /// Carries SPS, PPS and an IDR slice: a decoder can start here.
    pub keyframe: bool,
    /// Its first packet sets `random_access_indicator`: the muxer says a decoder can
    /// start here.
    pub random_access: bool,
}

#[derive(Default)]
pub struct Reader {
    /// The PID of the PMT, once a PAT named it.
    pub pmt_pid: Option<u16>,
    /// Bytes of a packet split across two reads.
    partial: Vec<u8>,
    video_pid: Option<u16>,
    /// The video PES being collected: its elementary stream and whether its first
    /// packet sets `random_access_indicator`.
    pes: Option<(Vec<u8>, bool)>,
    continuity: HashMap<u16, u8>,
    /// The PIDs of the first three packets.
    pub first_pids: Vec<u16>,
    pub packets: usize,
    pub null_packets: usize,
    /// Packets whose continuity counter skipped (a lost or reordered packet).
    pub continuity_errors: usize,
    /// Times the reader had to look for the next sync byte.
    pub sync_losses: usize,
}

impl Reader {
    /// Reads a piece of the stream; returns the access units it completed.
    pub fn feed(&mut self, data: &[u8]) -> Vec<AccessUnit> {
        let mut units = Vec::new();
        let mut buffer = std::mem::take(&mut self.partial);
        buffer.extend_from_slice(data);
        let mut at = 0;
        while buffer.len() - at >= PACKET {
            if buffer[at] != SYNC {
                self.sync_losses += 1;
                match buffer[at + 1..].iter().position(|&b| b == SYNC) {
                    Some(skip) => at += 1 + skip,
                    None => at = buffer.len(),
                }
                continue;
            }
            if let Some(unit) = self.packet(&buffer[at..at + PACKET]) {
                units.push(unit);
            }
            at += PACKET;
        }
        self.partial = buffer.split_off(at);
        units
    }

    fn packet(&mut self, packet: &[u8]) -> Option<AccessUnit> {
        self.packets += 1;
        let pid = (u16::from(packet[1] & 0x1F) << 8) | u16::from(packet[2]);
        if self.first_pids.len() < 3 {
            self.first_pids.push(pid);
        }
        if pid == NULL_PID {
            self.null_packets += 1;
            return None;
        }
        let unit_start = packet[1] & 0x40 != 0;
        let has_adaptation = packet[3] & 0x20 != 0;
        let has_payload = packet[3] & 0x10 != 0;
        let discontinuity = has_adaptation && packet[4] > 0 && packet[5] & 0x80 != 0;
        let random_access = has_adaptation && packet[4] > 0 && packet[5] & 0x40 != 0;
        if has_payload {
            // The counter goes up by one per packet with a payload; one repeat is allowed.
            let counter = packet[3] & 0x0F;
            if let Some(last) = self.continuity.insert(pid, counter) {
                if !discontinuity && counter != last && counter != (last + 1) & 0x0F {
                    self.continuity_errors += 1;
                }
            }
        }
        let start = if has_adaptation {
            5 + usize::from(packet[4])
        } else {
            4
        };
        let payload = packet.get(start..).filter(|_| has_payload)?;
        if pid == PAT_PID && unit_start {
            if let Some(pmt) = section(payload, 0x00).and_then(pat_first_program) {
                self.pmt_pid = Some(pmt);
            }
        } else if Some(pid) == self.pmt_pid && unit_start {
            if let Some(video) = section(payload, 0x02).and_then(pmt_video_pid) {
                self.video_pid = Some(video);
            }
        } else if Some(pid) == self.video_pid {
            if unit_start {
                let finished = self.pes.take().map(|(es, random_access)| AccessUnit {
                    keyframe: is_keyframe(&es),
                    random_access,
                });
                self.pes = pes_payload(payload).map(|es| (es.to_vec(), random_access));
                return finished;
            }
            if let Some((es, _)) = &mut self.pes {
                es.extend_from_slice(payload);
            }
        }
        None
    }
}

/// A whole PSI section with table id `table` (after the pointer field), CRC checked;
/// tables here fit one packet.
fn section(payload: &[u8], table: u8) -> Option<&[u8]> {
    let pointer = usize::from(*payload.first()?);
    let section = payload.get(1 + pointer..)?;
    if *section.first()? != table {
        return None;
    }
    let length = (usize::from(*section.get(1)? & 0x0F) << 8) | usize::from(*section.get(2)?);
    let section = section.get(..3 + length)?;
    (length >= 9 && crc32_mpeg2(section) == 0).then_some(section)
}

/// The PMT PID of the PAT's first program (program 0, the network PID, left out).
fn pat_first_program(section: &[u8]) -> Option<u16> {
    section[8..section.len() - 4]
        .chunks_exact(4)
        .find(|p| u16::from_be_bytes([p[0], p[1]]) != 0)
        .map(|p| (u16::from(p[2] & 0x1F) << 8) | u16::from(p[3]))
}

/// The PID of the PMT's first H.264 stream.
fn pmt_video_pid(section: &[u8]) -> Option<u16> {
    let info_length = (usize::from(*section.get(10)? & 0x0F) << 8) | usize::from(*section.get(11)?);
    let mut rest = section.get(12 + info_length..section.len() - 4)?;
    while rest.len() >= 5 {
        let pid = (u16::from(rest[1] & 0x1F) << 8) | u16::from(rest[2]);
        if rest[0] == STREAM_TYPE_H264 {
            return Some(pid);
        }
        let es_info = (usize::from(rest[3] & 0x0F) << 8) | usize::from(rest[4]);
        rest = rest.get(5 + es_info..)?;
    }
    None
}

/// The elementary-stream bytes of a PES packet's first TS packet.
fn pes_payload(payload: &[u8]) -> Option<&[u8]> {
    // Start code (3), stream id, length (2), flags (2), header data length.
    if payload.get(..3)? != [0, 0, 1] {
        return None;
    }
    payload.get(9 + usize::from(*payload.get(8)?)..)
}

/// Whether an Annex B access unit holds an SPS, a PPS and an IDR slice.
fn is_keyframe(es: &[u8]) -> bool {
    let mut seen = [false; 3];
    for window in es.windows(4).filter(|w| w[..3] == [0, 0, 1]) {
        match window[3] & 0x1F {
            NAL_SPS => seen[0] = true,
            NAL_PPS => seen[1] = true,
            NAL_IDR => seen[2] = true,
            _ => {}
        }
    }
    seen == [true; 3]
}

/// CRC-32/MPEG-2; over a whole section including its CRC it is 0.
fn crc32_mpeg2(data: &[u8]) -> u32 {
    data.iter().fold(0xFFFF_FFFF, |mut crc: u32, &byte| {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
        crc
    })
}

/// The transport-stream bytes of a multicast datagram: as is for plain UDP, after the
/// RTP header (RFC 3550: 12 bytes, CSRCs, an optional extension) for RTP.
pub fn datagram_payload(datagram: &[u8]) -> &[u8] {
    if datagram.first() == Some(&SYNC) || datagram.len() < 12 || datagram[0] >> 6 != 2 {
        return datagram;
    }
    let mut start = 12 + 4 * usize::from(datagram[0] & 0x0F);
    if datagram[0] & 0x10 != 0 {
        let words = datagram
            .get(start + 2..start + 4)
            .map_or(0, |w| usize::from(u16::from_be_bytes([w[0], w[1]])));
        start += 4 + 4 * words;
    }
    datagram.get(start..).unwrap_or(&[])
}
