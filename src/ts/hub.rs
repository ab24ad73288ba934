//! MPEG-TS over HTTP: one channel's transport stream fanned out to many clients, each
//! started at once from a GOP cache.
//!
//! The hub keeps the packets since the latest keyframe, and the PAT, PMT and SDT as
//! they were just before it. A new client gets those tables, then the cached GOP,
//! then the live stream: its first video access unit is a keyframe, so a player shows
//! a picture straight away instead of waiting up to a GOP for the next one. Each
//! client has a bounded queue; one that fills (a client that stopped reading) is
//! dropped, and nobody else notices. A dropped client's stream fails at once instead of
//! ending, so the origin aborts its connection: the client sees a cut, not a clean end
//! with seconds of stale stream before it. Null packets (constant-rate stuffing) are
//! left out: HTTP has no use for them.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{debug, info};

use super::{header, packets, parse_pat, parse_pmt, payload, NULL_PID, PACKET};
use super::{PAT_PID, SDT_PID};

/// H.264 in a PMT.
const STREAM_TYPE_H264: u8 = 0x1B;
/// A GOP cache larger than this is dropped (a source with no keyframes for long).
const MAX_GOP_BYTES: usize = 16 << 20;
/// Queue length of a client, in muxer buffers, until the pipeline sets one.
const DEFAULT_QUEUE: usize = 1024;
/// A client's socket send buffer, until the pipeline sets one from the stream's rate.
const DEFAULT_SEND_BUFFER: usize = 256 << 10;
/// The least send buffer asked for, whatever the rate: enough for full-sized packets.
const MIN_SEND_BUFFER: usize = 64 << 10;

/// One channel's transport-stream fan-out.
pub struct TsHub {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    clients: Vec<Client>,
    queue: usize,
    send_buffer: usize,
    pmt_pid: Option<u16>,
    video_pid: Option<u16>,
    /// The latest packet of each table, by PID.
    tables: BTreeMap<u16, [u8; PACKET]>,
    /// The tables as they were when the cached GOP began.
    preamble: Vec<u8>,
    /// Packets from the latest keyframe on; empty until there is one.
    gop: Vec<u8>,
}

struct Client {
    queue: mpsc::Sender<Bytes>,
    /// Set when the client is dropped as too slow; its stream then fails.
    too_slow: Arc<AtomicBool>,
    /// Waiting for a keyframe: it joined before the hub had one.
    waiting: bool,
}

/// A client's stream of transport-stream bytes. It ends after what is queued when the
/// stream is ended ([`TsHub::end_streams`]), and fails at once with [`TooSlow`] when
/// the client is dropped for not keeping up.
pub struct Subscription {
    queue: mpsc::Receiver<Bytes>,
    too_slow: Arc<AtomicBool>,
    send_buffer: usize,
}

impl Subscription {
    /// The socket send buffer this client should have, in bytes: about a second of the
    /// stream. The kernel's own buffer would otherwise grow to megabytes, which at a
    /// low rate is a minute of stream held before the client's queue even starts to
    /// fill, so a stalled client would be noticed a minute late.
    pub fn send_buffer(&self) -> usize {
        self.send_buffer
    }
}

/// The hub dropped a client that did not keep up with the live stream.
#[derive(Debug, thiserror::Error)]
#[error("the client did not keep up with the live stream and was dropped")]
pub struct TooSlow;

impl futures_util::Stream for Subscription {
    type Item = Result<Bytes, TooSlow>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // What is still queued for a dropped client is stale; it goes unsent.
        if self.too_slow.load(Ordering::Acquire) {
            return Poll::Ready(Some(Err(TooSlow)));
        }
        match self.queue.poll_recv(cx) {
            Poll::Ready(None) if self.too_slow.load(Ordering::Acquire) => {
                Poll::Ready(Some(Err(TooSlow)))
            }
            polled => polled.map(|item| item.map(Ok)),
        }
    }
}

impl Default for TsHub {
    fn default() -> Self {
        Self::new()
    }
}

impl TsHub {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State {
                queue: DEFAULT_QUEUE,
                send_buffer: DEFAULT_SEND_BUFFER,
                ..State::default()
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets how many muxer buffers a client's queue holds (for clients joining later).
    pub fn set_queue(&self, buffers: usize) {
        self.state().queue = buffers.max(16);
    }

    /// Sets the socket send buffer of clients joining later, in bytes (see
    /// [`Subscription::send_buffer`]).
    pub fn set_send_buffer(&self, bytes: usize) {
        self.state().send_buffer = bytes.max(MIN_SEND_BUFFER);
    }

    /// A new pipeline run: the cached GOP and tables belong to the old one.
    pub fn reset(&self) {
        let mut state = self.state();
        state.pmt_pid = None;
        state.video_pid = None;
        state.tables.clear();
        state.preamble.clear();
        state.gop.clear();
    }

    /// Whether a client would start at once: the hub holds a keyframe.
    pub fn ready(&self) -> bool {
        !self.state().gop.is_empty()
    }

    /// Ends every client's stream (each sees its end after what is queued for it);
    /// later clients may join again.
    pub fn end_streams(&self) {
        let ended = std::mem::take(&mut self.state().clients).len();
        if ended > 0 {
            debug!(clients = ended, "TS client streams ended.");
        }
    }

    /// How many clients are connected.
    pub fn clients(&self) -> usize {
        self.state().clients.len()
    }

    /// A new client: the tables and the cached GOP first, then the live stream.
    pub fn subscribe(&self) -> Subscription {
        let mut state = self.state();
        let (queue, receiver) = mpsc::channel(state.queue);
        let waiting = state.gop.is_empty();
        if !waiting {
            let mut start = Vec::with_capacity(state.preamble.len() + state.gop.len());
            start.extend(&state.preamble);
            start.extend(&state.gop);
            // A fresh queue always has room for its first item.
            let _ = queue.try_send(Bytes::from(start));
        }
        let too_slow = Arc::new(AtomicBool::new(false));
        state.clients.push(Client {
            queue,
            too_slow: Arc::clone(&too_slow),
            waiting,
        });
        debug!(
            clients = state.clients.len(),
            waiting, "A TS client joined."
        );
        Subscription {
            queue: receiver,
            too_slow,
            send_buffer: state.send_buffer,
        }
    }

    /// Takes one buffer of the muxer's output (whole packets).
    pub fn push(&self, data: &[u8]) {
        let mut state = self.state();
        let mut chunk = Vec::with_capacity(data.len());
        // Where in `chunk` a keyframe starts, for clients waiting for one.
        let mut keyframe_at = None;
        for packet in packets(data) {
            let Some(h) = header(packet) else { continue };
            if h.pid == NULL_PID {
                continue;
            }
            state.read_tables(h.pid, packet);
            if Some(h.pid) == state.video_pid && h.payload_unit_start && is_keyframe(packet) {
                keyframe_at.get_or_insert(chunk.len());
                state.preamble = state.preamble_now();
                state.gop.clear();
            }
            if !state.preamble.is_empty() {
                state.gop.extend_from_slice(packet);
            }
            chunk.extend_from_slice(packet);
        }
        if state.gop.len() > MAX_GOP_BYTES {
            info!(
                bytes = state.gop.len(),
                "No keyframe for long; dropping the GOP cache."
            );
            state.gop.clear();
            state.preamble.clear();
        }
        if chunk.is_empty() {
            return;
        }
        let chunk = Bytes::from(chunk);
        // What a client waiting for a keyframe gets: the tables, then the chunk from it.
        let start = keyframe_at
            .filter(|_| state.clients.iter().any(|c| c.waiting))
            .map(|at| Bytes::from([state.preamble.as_slice(), &chunk[at..]].concat()));
        state.clients.retain_mut(|client| {
            let item = if client.waiting {
                let Some(start) = &start else {
                    return !client.queue.is_closed();
                };
                client.waiting = false;
                start.clone()
            } else {
                chunk.clone()
            };
            match client.queue.try_send(item) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    info!("A TS client is too slow; dropping it.");
                    client.too_slow.store(true, Ordering::Release);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    debug!("A TS client left.");
                    false
                }
            }
        });
    }
}

impl State {
    /// The latest PAT, then the PMT, then the other tables (the SDT).
    fn preamble_now(&self) -> Vec<u8> {
        let rank = |pid: u16| match pid {
            PAT_PID => 0,
            pid if Some(pid) == self.pmt_pid => 1,
            _ => 2,
        };
        let mut tables: Vec<(u16, &[u8; PACKET])> = self
            .tables
            .iter()
            .map(|(pid, packet)| (*pid, packet))
            .collect();
        tables.sort_by_key(|(pid, _)| (rank(*pid), *pid));
        tables
            .into_iter()
            .flat_map(|(_, packet)| packet.iter().copied())
            .collect()
    }

    /// Follows PAT → PMT → video PID, and keeps the latest copy of each table.
    fn read_tables(&mut self, pid: u16, packet: &[u8]) {
        let is_table = pid == PAT_PID || pid == SDT_PID || Some(pid) == self.pmt_pid;
        if !is_table || !header(packet).is_some_and(|h| h.payload_unit_start) {
            return;
        }
        if pid == PAT_PID {
            if let Some((_, pmts)) = parse_pat(packet) {
                self.pmt_pid = pmts.first().copied();
            }
        } else if Some(pid) == self.pmt_pid {
            if let Some((_, streams)) = parse_pmt(packet) {
                self.video_pid = streams
                    .iter()
                    .find(|(stream_type, _)| *stream_type == STREAM_TYPE_H264)
                    .map(|(_, pid)| *pid);
            }
        }
        if let Ok(copy) = packet.try_into() {
            self.tables.insert(pid, copy);
        }
    }
}

/// Whether a video packet starting a PES begins a keyframe: the muxer's
/// `random_access_indicator` (the pipeline flags every access unit without an IDR
/// slice as a delta unit, so only IDRs get it), or an IDR slice in the packet. An SPS
/// alone is not enough: `h264parse` also puts SPS and PPS before the first frame after
/// a file loop's seek, which is a P frame.
fn is_keyframe(packet: &[u8]) -> bool {
    let random_access =
        header(packet).is_some_and(|h| h.has_adaptation) && packet[4] > 0 && packet[5] & 0x40 != 0;
    if random_access {
        return true;
    }
    let Some(pes) = payload(packet) else {
        return false;
    };
    // PES header: start code (3), stream id, length (2), flags (2), header length.
    let Some(&header_length) = pes.get(8) else {
        return false;
    };
    let Some(es) = pes.get(9 + usize::from(header_length)..) else {
        return false;
    };
    es.windows(4)
        .filter(|w| w[..3] == [0, 0, 1])
        .any(|w| w[3] & 0x1F == 5)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{pat_packet, psi_packet};
    use super::super::{crc32_mpeg2, VIDEO_PID};
    use super::*;
    use futures_util::StreamExt;

    fn pmt_packet(continuity: u8) -> [u8; PACKET] {
        let mut pmt = vec![
            0x02, 0xB0, 0, 0x00, 0x07, 0xC1, 0x00, 0x00, 0xE1, 0x00, 0xF0, 0x00,
        ];
        pmt.extend([0x1B, 0xE1, 0x00, 0xF0, 0x00]);
        pmt[2] = (pmt.len() + 4 - 3) as u8;
        let crc = crc32_mpeg2(&pmt);
        pmt.extend(crc.to_be_bytes());
        psi_packet(0x20, continuity, &pmt)
    }

    /// A video packet: a PES start carrying an IDR or a P slice, or a continuation.
    fn video(continuity: u8, start: Option<bool>) -> [u8; PACKET] {
        let mut packet = [0u8; PACKET];
        packet[..4].copy_from_slice(&[0x47, 0x01, 0x00, 0x10 | continuity]);
        if let Some(idr) = start {
            packet[1] |= 0x40;
            let nal = if idr { 0x65 } else { 0x41 };
            packet[4..17].copy_from_slice(&[0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 0, 0, 0, 1, nal]);
        }
        packet
    }

    fn null() -> [u8; PACKET] {
        let mut packet = [0xFF; PACKET];
        packet[..4].copy_from_slice(&[0x47, 0x1F, 0xFF, 0x10]);
        packet
    }

    fn pids(bytes: &[u8]) -> Vec<(u16, u8)> {
        packets(bytes)
            .filter_map(header)
            .map(|h| (h.pid, h.continuity))
            .collect()
    }

    #[tokio::test]
    async fn ended_streams_end_after_what_was_queued() {
        let hub = TsHub::new();
        hub.push(&[pat_packet(0), pmt_packet(0), video(0, Some(true))].concat());
        let mut client = hub.subscribe();
        hub.push(&video(1, Some(false)));
        hub.end_streams();
        assert_eq!(hub.clients(), 0);
        assert!(
            matches!(client.next().await, Some(Ok(_))),
            "the cached start"
        );
        assert!(
            matches!(client.next().await, Some(Ok(_))),
            "the packet pushed before the end"
        );
        assert!(client.next().await.is_none(), "then the end");
        // A later client joins as before.
        let mut later = hub.subscribe();
        assert!(matches!(later.next().await, Some(Ok(_))));
    }

    #[tokio::test]
    async fn a_client_starts_with_the_tables_and_the_latest_keyframe() {
        let hub = TsHub::new();
        hub.push(&[pat_packet(0), pmt_packet(0), video(0, Some(true)), null()].concat());
        hub.push(&[video(1, Some(false)), pat_packet(1), pmt_packet(1)].concat());
        hub.push(&[video(2, Some(true)), video(3, None)].concat());
        let mut client = hub.subscribe();
        let first = client
            .next()
            .await
            .and_then(Result::ok)
            .expect("the cached start");
        // PAT and PMT as they were before the keyframe, so their continuity counters
        // run on into the live stream.
        assert_eq!(
            pids(&first),
            [(0, 1), (0x20, 1), (VIDEO_PID, 2), (VIDEO_PID, 3)]
        );
        hub.push(&[null(), video(4, None)].concat());
        let live = client.next().await.and_then(Result::ok).expect("live");
        assert_eq!(pids(&live), [(VIDEO_PID, 4)], "no null packets over HTTP");
        assert_eq!(VIDEO_PID, 256);
    }

    #[tokio::test]
    async fn an_early_client_waits_for_a_keyframe() {
        let hub = TsHub::new();
        let mut client = hub.subscribe();
        hub.push(&[pat_packet(0), pmt_packet(0), video(0, Some(false))].concat());
        hub.push(&[video(1, None), video(2, Some(true)), video(3, None)].concat());
        let first = client
            .next()
            .await
            .and_then(Result::ok)
            .expect("from the keyframe");
        assert_eq!(
            pids(&first),
            [(0, 0), (0x20, 0), (VIDEO_PID, 2), (VIDEO_PID, 3)]
        );
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_dropped_and_others_go_on() {
        let hub = TsHub::new();
        hub.set_queue(16);
        hub.push(&[pat_packet(0), pmt_packet(0), video(0, Some(true))].concat());
        let mut stalled = hub.subscribe();
        let mut reader = hub.subscribe();
        for i in 0..40u8 {
            hub.push(&video(i % 16, None));
            assert!(matches!(reader.next().await, Some(Ok(_))));
        }
        assert_eq!(hub.clients(), 1, "the stalled client is dropped");
        assert!(
            matches!(stalled.next().await, Some(Err(TooSlow))),
            "the stalled client's stream fails at once, its stale queue unsent"
        );
    }

    #[tokio::test]
    async fn clients_are_told_the_send_buffer_of_their_stream() {
        let hub = TsHub::new();
        assert_eq!(hub.subscribe().send_buffer(), DEFAULT_SEND_BUFFER);
        hub.set_send_buffer(500_000);
        assert_eq!(hub.subscribe().send_buffer(), 500_000);
        hub.set_send_buffer(1);
        assert_eq!(hub.subscribe().send_buffer(), MIN_SEND_BUFFER);
    }

    #[test]
    fn keyframes_are_found_without_the_random_access_flag() {
        assert!(is_keyframe(&video(0, Some(true))));
        assert!(!is_keyframe(&video(0, Some(false))));
    }

    #[test]
    fn an_sps_before_a_p_frame_is_no_keyframe() {
        let mut packet = video(0, Some(false));
        // AUD, SPS, PPS, then a P slice.
        packet[13..30].copy_from_slice(&[
            0x09, 0xF0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1E, 0, 0, 1, 0x68, 0xCE, 0, 0, 1,
        ]);
        packet[30] = 0x41;
        assert!(!is_keyframe(&packet));
        // The muxer's random access flag (set only at IDRs) is taken as it is.
        packet[3] |= 0x20;
        packet[4] = 1;
        packet[5] = 0x40;
        assert!(is_keyframe(&packet));
    }
}
