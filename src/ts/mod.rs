//! A channel's MPEG transport stream: the IPTV half of the output.
//!
//! The pipeline muxes one rendition's H.264 and the shared AAC into MPEG-TS (no
//! second encode), at a constant bit rate when the channel has a multicast feed. This
//! module works on the muxer's output, 188-byte packet by packet:
//! - [`SdtInserter`] adds the DVB Service Description Table that `mpegtsmux` 1.22 does
//!   not write (channel name and provider), in place of null packets;
//! - [`TsHub`] fans the stream out to HTTP clients (`GET /ts/{channel}`), starting each
//!   one with PAT, PMT and the GOP cache for an instant picture.

mod hub;
mod sdt;

pub use hub::{Subscription, TooSlow, TsHub};
pub use sdt::{Sdt, SdtInserter};

/// Size of a transport-stream packet.
pub const PACKET: usize = 188;
/// Packets per UDP datagram (1316 bytes, under a 1500-byte MTU with IP, UDP and RTP).
pub const PACKETS_PER_DATAGRAM: usize = 7;
const SYNC: u8 = 0x47;
pub const NULL_PID: u16 = 0x1FFF;
const PAT_PID: u16 = 0;
pub const SDT_PID: u16 = 0x11;

/// Elementary stream PIDs the pipeline requests from `mpegtsmux` (its pad names).
pub const VIDEO_PID: u16 = 256;
pub const AUDIO_PID: u16 = 257;

/// One 188-byte packet's header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    pid: u16,
    payload_unit_start: bool,
    continuity: u8,
    has_adaptation: bool,
    has_payload: bool,
}

fn header(packet: &[u8]) -> Option<Header> {
    if packet.len() < PACKET || packet[0] != SYNC {
        return None;
    }
    Some(Header {
        pid: (u16::from(packet[1] & 0x1F) << 8) | u16::from(packet[2]),
        payload_unit_start: packet[1] & 0x40 != 0,
        continuity: packet[3] & 0x0F,
        has_adaptation: packet[3] & 0x20 != 0,
        has_payload: packet[3] & 0x10 != 0,
    })
}

/// The payload of a packet (after the adaptation field), if it has one.
fn payload(packet: &[u8]) -> Option<&[u8]> {
    let header = header(packet)?;
    if !header.has_payload {
        return None;
    }
    let start = if header.has_adaptation {
        5 + usize::from(packet[4])
    } else {
        4
    };
    packet.get(start..PACKET)
}

/// The section a PSI packet starts (after the pointer field), for single-packet tables.
fn section(packet: &[u8]) -> Option<&[u8]> {
    let header = header(packet)?;
    if !header.payload_unit_start {
        return None;
    }
    let payload = payload(packet)?;
    let pointer = usize::from(*payload.first()?);
    let section = payload.get(1 + pointer..)?;
    let length = (usize::from(*section.get(1)? & 0x0F) << 8) | usize::from(*section.get(2)?);
    section.get(..3 + length)
}

/// The PMT PIDs a PAT lists (program number 0, the network PID, left out), and its
/// transport stream id.
fn parse_pat(packet: &[u8]) -> Option<(u16, Vec<u16>)> {
    let section = section(packet)?;
    if section.first() != Some(&0x00) || section.len() < 12 {
        return None;
    }
    let tsid = u16::from_be_bytes([section[3], section[4]]);
    let programs = section[8..section.len() - 4]
        .chunks_exact(4)
        .filter(|p| u16::from_be_bytes([p[0], p[1]]) != 0)
        .map(|p| (u16::from(p[2] & 0x1F) << 8) | u16::from(p[3]))
        .collect();
    Some((tsid, programs))
}

/// The (stream type, PID) pairs a PMT lists, and its program number.
fn parse_pmt(packet: &[u8]) -> Option<(u16, Vec<(u8, u16)>)> {
    let section = section(packet)?;
    if section.first() != Some(&0x02) || section.len() < 16 {
        return None;
    }
    let program = u16::from_be_bytes([section[3], section[4]]);
    let info_length = (usize::from(section[10] & 0x0F) << 8) | usize::from(section[11]);
    let mut rest = section.get(12 + info_length..section.len() - 4)?;
    let mut streams = Vec::new();
    while rest.len() >= 5 {
        let pid = (u16::from(rest[1] & 0x1F) << 8) | u16::from(rest[2]);
        let es_info = (usize::from(rest[3] & 0x0F) << 8) | usize::from(rest[4]);
        streams.push((rest[0], pid));
        rest = rest.get(5 + es_info..)?;
    }
    Some((program, streams))
}

/// CRC-32/MPEG-2 of a PSI section (polynomial 0x04C11DB7, no reflection, no final xor).
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

/// Iterates over the whole packets of a buffer.
fn packets(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.chunks_exact(PACKET)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_mpeg2_check_value() {
        // The catalogue check value of CRC-32/MPEG-2 over "123456789".
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_E6E7);
    }

    /// A PAT as mpegtsmux writes it: TSID 1, program 7 on PMT PID 0x20.
    pub(super) fn pat_packet(continuity: u8) -> [u8; PACKET] {
        let mut section = vec![0x00, 0xB0, 13, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00, 0x07];
        section.extend([0xE0, 0x20]);
        let crc = crc32_mpeg2(&section);
        section.extend(crc.to_be_bytes());
        psi_packet(PAT_PID, continuity, &section)
    }

    pub(super) fn psi_packet(pid: u16, continuity: u8, section: &[u8]) -> [u8; PACKET] {
        let mut packet = [0xFF; PACKET];
        packet[0] = SYNC;
        packet[1] = 0x40 | (pid >> 8) as u8;
        packet[2] = pid as u8;
        packet[3] = 0x10 | continuity;
        packet[4] = 0;
        packet[5..5 + section.len()].copy_from_slice(section);
        packet
    }

    #[test]
    fn pat_and_pmt_are_read() {
        assert_eq!(parse_pat(&pat_packet(0)), Some((1, vec![0x20])));
        let mut pmt = vec![
            0x02, 0xB0, 0, 0x00, 0x07, 0xC1, 0x00, 0x00, 0xE1, 0x00, 0xF0, 0x00,
        ];
        pmt.extend([0x1B, 0xE1, 0x00, 0xF0, 0x00, 0x0F, 0xE1, 0x01, 0xF0, 0x00]);
        pmt[2] = (pmt.len() + 4 - 3) as u8;
        let crc = crc32_mpeg2(&pmt);
        pmt.extend(crc.to_be_bytes());
        let packet = psi_packet(0x20, 0, &pmt);
        assert_eq!(
            parse_pmt(&packet),
            Some((7, vec![(0x1B, VIDEO_PID), (0x0F, AUDIO_PID)]))
        );
    }
}
