//! The DVB Service Description Table (ETSI EN 300 468, 5.2.3): what a set-top box
//! shows as the channel's name and provider. `mpegtsmux` 1.22 writes none unless sent
//! a section through the GstMpegts library, so the headend writes its own, in place
//! of the constant-rate stream's null packets.

use std::time::Duration;

use super::{crc32_mpeg2, header, parse_pat, NULL_PID, PACKET, PAT_PID, SDT_PID, SYNC};

/// `service_type` 0x01: digital television service.
const DIGITAL_TV: u8 = 0x01;
/// Names longer than this are cut (at a character boundary) so the table fits a packet.
const MAX_NAME_BYTES: usize = 64;
/// A constant-rate stream with no null packet for this many intervals (a mux rate too
/// low for its content) gets the table added anyway: a box must learn the name.
const OVERDUE_FACTOR: u32 = 4;
/// Before the muxer's PAT gives the transport stream id.
const DEFAULT_TSID: u16 = 1;
/// `original_network_id` 0xFF01..=0xFFFF are for temporary private use.
const PRIVATE_NETWORK_ID: u16 = 0xFF01;

/// What the SDT says about the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdt {
    /// The program number: the channel number.
    pub service_id: u16,
    pub provider: String,
    pub name: String,
}

impl Sdt {
    /// The table as one TS packet on PID 0x11; `version` is the 5-bit
    /// `version_number`.
    fn packet(&self, transport_stream_id: u16, continuity: u8, version: u8) -> [u8; PACKET] {
        let provider = dvb_text(&self.provider);
        let name = dvb_text(&self.name);
        let mut descriptor = vec![0x48, 0, DIGITAL_TV, provider.len() as u8];
        descriptor.extend(&provider);
        descriptor.push(name.len() as u8);
        descriptor.extend(&name);
        descriptor[1] = (descriptor.len() - 2) as u8;

        let mut section = vec![0x42, 0, 0];
        section.extend(transport_stream_id.to_be_bytes());
        // reserved '11', version_number, current_next_indicator 1; section 0 of 0.
        section.extend([0xC1 | ((version & 0x1F) << 1), 0x00, 0x00]);
        section.extend(PRIVATE_NETWORK_ID.to_be_bytes());
        section.push(0xFF);
        section.extend(self.service_id.to_be_bytes());
        // reserved '111111', no EIT schedule or present/following.
        section.push(0xFC);
        // running_status 4 (running), free_CA_mode 0, descriptors_loop_length.
        let loop_length = descriptor.len() as u16;
        section.extend((0x8000 | loop_length).to_be_bytes());
        section.extend(&descriptor);
        // section_syntax_indicator 1, reserved_future_use 1, reserved '11'.
        let length = (section.len() - 3 + 4) as u16;
        section[1..3].copy_from_slice(&(0xF000 | length).to_be_bytes());
        let crc = crc32_mpeg2(&section);
        section.extend(crc.to_be_bytes());

        let mut packet = [0xFF; PACKET];
        packet[0] = SYNC;
        packet[1] = 0x40 | (SDT_PID >> 8) as u8;
        packet[2] = SDT_PID as u8;
        packet[3] = 0x10 | (continuity & 0x0F);
        packet[4] = 0; // pointer_field
        packet[5..5 + section.len()].copy_from_slice(&section);
        packet
    }
}

/// DVB text: plain ASCII as is, anything else as UTF-8 behind the 0x15 selector.
fn dvb_text(text: &str) -> Vec<u8> {
    let mut end = text.len().min(MAX_NAME_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let text = &text[..end];
    if text.is_ascii() {
        text.as_bytes().to_vec()
    } else {
        let mut bytes = vec![0x15];
        bytes.extend(text.as_bytes());
        bytes
    }
}

/// Puts an SDT into the stream at least every `interval`, in place of a null packet
/// (a constant-rate stream keeps its rate), or added to the buffer when the stream has
/// no null packets (a variable-rate stream for HTTP only).
pub struct SdtInserter {
    sdt: Sdt,
    interval: Duration,
    replace_nulls: bool,
    transport_stream_id: u16,
    continuity: u8,
    /// EN 300 468 5.1.5: incremented (modulo 32) each time the table changes, so a
    /// receiver reads it again.
    version: u8,
    last: Option<Duration>,
}

impl SdtInserter {
    /// `replace_nulls`: the stream is constant-rate and must keep its size.
    pub fn new(sdt: Sdt, interval: Duration, replace_nulls: bool) -> Self {
        Self {
            sdt,
            interval,
            replace_nulls,
            transport_stream_id: DEFAULT_TSID,
            continuity: 0,
            version: 0,
            last: None,
        }
    }

    /// Renames the service while the stream runs (a catalog reload): the next table
    /// carries the new name under the next version number, and goes out at once.
    pub fn set_name(&mut self, name: &str) {
        if self.sdt.name == name {
            return;
        }
        name.clone_into(&mut self.sdt.name);
        self.version = (self.version + 1) & 0x1F;
        self.last = None;
    }

    /// Processes one muxer buffer stamped `time`, in place; returns packets to append.
    pub fn process(&mut self, time: Duration, data: &mut [u8]) -> Option<[u8; PACKET]> {
        // Time going backwards is a new pipeline run: start over.
        let due = self
            .last
            .is_none_or(|last| time < last || time - last >= self.interval);
        let mut replaced = false;
        for start in (0..data.len() / PACKET).map(|i| i * PACKET) {
            let packet = &mut data[start..start + PACKET];
            let Some(h) = header(packet) else { continue };
            if h.pid == PAT_PID {
                if let Some((tsid, _)) = parse_pat(packet) {
                    self.transport_stream_id = tsid;
                }
            } else if h.pid == NULL_PID && due && !replaced && self.replace_nulls {
                packet.copy_from_slice(&self.next_packet());
                replaced = true;
            }
        }
        if !due || replaced {
            if replaced {
                self.last = Some(time);
            }
            return None;
        }
        let overdue = self
            .last
            .is_some_and(|last| time.saturating_sub(last) >= self.interval * OVERDUE_FACTOR);
        if self.replace_nulls && !overdue {
            // No null packet in this buffer: try the next one.
            return None;
        }
        self.last = Some(time);
        Some(self.next_packet())
    }

    fn next_packet(&mut self) -> [u8; PACKET] {
        let packet = self
            .sdt
            .packet(self.transport_stream_id, self.continuity, self.version);
        self.continuity = (self.continuity + 1) & 0x0F;
        packet
    }
}

/// Counts the SDT packets of a buffer.
#[cfg(test)]
fn count_sdt(data: &[u8]) -> usize {
    super::packets(data)
        .filter(|p| header(p).is_some_and(|h| h.pid == SDT_PID))
        .count()
}

#[cfg(test)]
mod tests {
    use super::super::tests::pat_packet;
    use super::super::{payload, section};
    use super::*;

    fn sdt() -> Sdt {
        Sdt {
            service_id: 7,
            provider: "headend".into(),
            name: "Café TV".into(),
        }
    }

    #[test]
    fn the_table_carries_the_service_and_a_valid_crc() {
        let packet = sdt().packet(0x1234, 3, 0);
        assert_eq!(
            header(&packet).map(|h| (h.pid, h.continuity)),
            Some((SDT_PID, 3))
        );
        let section = section(&packet).expect("a whole section");
        assert_eq!(section[0], 0x42);
        assert_eq!(
            crc32_mpeg2(section),
            0,
            "CRC over a section with its CRC is 0"
        );
        assert_eq!(&section[3..5], &[0x12, 0x34]);
        assert_eq!(&section[11..13], &[0x00, 0x07]);
        let descriptor = &section[16..section.len() - 4];
        assert_eq!(descriptor[0], 0x48);
        let provider_len = usize::from(descriptor[3]);
        assert_eq!(&descriptor[4..4 + provider_len], b"headend");
        let name = &descriptor[5 + provider_len..];
        assert_eq!(usize::from(descriptor[4 + provider_len]), name.len());
        assert_eq!(name[0], 0x15, "non-ASCII names are UTF-8");
        assert_eq!(&name[1..], "Café TV".as_bytes());
        assert!(payload(&packet).is_some());
    }

    #[test]
    fn long_names_are_cut_at_a_character_boundary() {
        let text = dvb_text(&"é".repeat(100));
        assert_eq!(text.len(), 1 + MAX_NAME_BYTES);
        assert!(std::str::from_utf8(&text[1..]).is_ok());
    }

    fn null_packet() -> [u8; PACKET] {
        let mut packet = [0xFF; PACKET];
        packet[..4].copy_from_slice(&[SYNC, 0x1F, 0xFF, 0x10]);
        packet
    }

    #[test]
    fn nulls_are_replaced_once_per_interval_and_the_tsid_follows_the_pat() {
        let mut inserter = SdtInserter::new(sdt(), Duration::from_millis(100), true);
        let mut buffer = [pat_packet(0), null_packet(), null_packet()].concat();
        assert_eq!(inserter.process(Duration::ZERO, &mut buffer), None);
        assert_eq!(count_sdt(&buffer), 1);
        let sdt_packet = &buffer[PACKET..2 * PACKET];
        assert_eq!(section(sdt_packet).map(|s| [s[3], s[4]]), Some([0, 1]));
        let mut next = [null_packet(), null_packet()].concat();
        inserter.process(Duration::from_millis(50), &mut next);
        assert_eq!(count_sdt(&next), 0, "not due yet");
        inserter.process(Duration::from_millis(100), &mut next);
        assert_eq!(count_sdt(&next), 1);
        assert_eq!(header(&next).map(|h| h.continuity), Some(1));
    }

    #[test]
    fn a_new_name_goes_out_at_once_under_the_next_version() {
        let mut inserter = SdtInserter::new(sdt(), Duration::from_millis(100), false);
        let mut buffer = pat_packet(0).to_vec();
        let first = inserter
            .process(Duration::ZERO, &mut buffer)
            .expect("added");
        let version = |packet: &[u8; PACKET]| section(packet).map(|s| (s[5] >> 1) & 0x1F);
        assert_eq!(version(&first), Some(0));
        inserter.set_name("Café TV");
        assert_eq!(
            inserter.process(Duration::from_millis(10), &mut buffer),
            None,
            "the same name changes nothing"
        );
        inserter.set_name("News 24");
        let renamed = inserter
            .process(Duration::from_millis(20), &mut buffer)
            .expect("sent at once");
        assert_eq!(version(&renamed), Some(1));
        assert_eq!(header(&renamed).map(|h| h.continuity), Some(1));
        let section = section(&renamed).expect("a whole section");
        assert_eq!(crc32_mpeg2(section), 0);
        assert!(section.windows(b"News 24".len()).any(|w| w == b"News 24"));
    }

    #[test]
    fn a_stream_without_nulls_gets_the_table_added() {
        let mut inserter = SdtInserter::new(sdt(), Duration::from_millis(100), false);
        let mut buffer = pat_packet(0).to_vec();
        let added = inserter
            .process(Duration::ZERO, &mut buffer)
            .expect("added");
        assert_eq!(count_sdt(&added), 1);
        assert_eq!(
            inserter.process(Duration::from_millis(10), &mut buffer),
            None
        );
    }
}
