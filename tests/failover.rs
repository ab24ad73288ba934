//! Failover end to end with real senders: a channel whose primary stops goes to its
//! backup, then to the slate when the backup stops too, and back to the primary when
//! it returns, each switch an EXT-X-DISCONTINUITY with the media sequence going on
//! without a hole; and one channel's failing source never delays another channel's
//! segments.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{http_get, parse_media, probe_video, Headend, TempDir, X264_ULTRAFAST};

const SEGMENT: Duration = Duration::from_secs(1);
/// Seconds, as written in the catalog.
const STALL_TIMEOUT: &str = "1.5";
/// Each step (a switch and two segments after it) must be done within this; it
/// bounds a wait, it is not a measurement.
const STEP_TIMEOUT: Duration = Duration::from_secs(40);
/// The longest the playlist may go without a new segment across a switch: the stall
/// timeout, a new pipeline's start and its first segment, with room for a loaded
/// two-core machine. A player holds three segments.
const MAX_SWITCH_GAP: Duration = Duration::from_secs(8);

fn ladder() -> String {
    format!(
        "{X264_ULTRAFAST}ladders:
  small:
    segment_duration: 1
    gop: 1
    window: 10
    renditions:
      - {{ name: 240p, width: 320, height: 240, bitrate: 300, profile: main, max_framerate: 15 }}
    audio: {{ codec: aac, bitrate: 64, channels: 2 }}
channels:
"
    )
}

/// A gst-launch MPEG-TS sender to `127.0.0.1:port`, in its own process group; dropping
/// it (or `kill`) kills the group.
struct Sender {
    child: Child,
    log: PathBuf,
}

impl Sender {
    fn spawn(dir: &TempDir, name: &str, port: u16, pattern: &str) -> Sender {
        let log = dir.path().join(format!("{name}.log"));
        let file = fs::File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let err = file.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let pipeline = format!(
            "videotestsrc is-live=true pattern={pattern} ! video/x-raw,width=352,height=288,framerate=25/1 \
             ! x264enc speed-preset=ultrafast tune=zerolatency key-int-max=25 bitrate=400 ! h264parse \
             ! mpegtsmux name=mux alignment=7 ! udpsink host=127.0.0.1 port={port} \
             audiotestsrc is-live=true freq=440 ! audio/x-raw,rate=44100,channels=1 ! audioconvert \
             ! avenc_aac ! aacparse ! mux."
        );
        let child = Command::new("gst-launch-1.0")
            .arg("-q")
            .args(pipeline.split_whitespace())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting the {name}: {e}"));
        Sender { child, log }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--"])
            .arg(format!("-{}", self.child.id()))
            .status();
        let _ = self.child.wait();
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|s| s.local_addr())
        .unwrap_or_else(|e| panic!("binding a UDP port: {e}"))
        .port()
}

/// Every segment of one track seen so far, by media sequence number: whether it was
/// marked as a discontinuity, the init segment it decodes with, its URI, and when it
/// was first seen.
#[derive(Default)]
struct Watch {
    segments: BTreeMap<u64, Seen>,
    /// The longest time between two new segments.
    longest_gap: Duration,
    last_new: Option<Instant>,
}

struct Seen {
    discontinuity: bool,
    init: String,
    uri: String,
}

impl Watch {
    /// Reads the playlist once; `false` if it did not answer.
    fn poll(&mut self, headend: &Headend, path: &str) -> bool {
        let Ok(response) = http_get(&headend.url(path)) else {
            return false;
        };
        if response.status != 200 {
            return false;
        }
        let playlist = parse_media(&response.body);
        let now = Instant::now();
        let mut init = String::new();
        for (i, segment) in playlist.segments.iter().enumerate() {
            if let Some(map) = &segment.map {
                init = map.uri.clone();
            }
            let sequence = playlist.media_sequence + i as u64;
            if self.segments.contains_key(&sequence) {
                continue;
            }
            self.segments.insert(
                sequence,
                Seen {
                    discontinuity: segment.discontinuity,
                    init: init.clone(),
                    uri: segment.uri.clone(),
                },
            );
            if let Some(last) = self.last_new {
                self.longest_gap = self.longest_gap.max(now - last);
            }
            self.last_new = Some(now);
        }
        true
    }

    fn newest(&self) -> Option<u64> {
        self.segments.keys().next_back().copied()
    }
}

/// The channel's state in the operations API.
fn state(headend: &Headend, id: &str) -> Option<(String, u64)> {
    let response = http_get(&headend.url(&format!("/api/v1/channels/{id}"))).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&response.body).ok()?;
    Some((
        value["state"].as_str()?.to_owned(),
        value["failovers"].as_u64()?,
    ))
}

/// Polls the playlist until the channel is in `wanted` and two segments more have
/// been listed since it got there.
fn step(headend: &Headend, watch: &mut Watch, id: &str, wanted: &str, senders: &[&Sender]) {
    let playlist = format!("/live/{id}/240p/index.m3u8");
    let mut reached: Option<u64> = None;
    let mut last_state = None;
    let done = headend.wait_until(STEP_TIMEOUT, || {
        watch.poll(headend, &playlist);
        let now = state(headend, id);
        if reached.is_none() && now.as_ref().is_some_and(|(s, _)| s == wanted) {
            reached = Some(watch.newest().unwrap_or(0));
        }
        last_state = now;
        let at = reached?;
        (watch.newest()? >= at + 2).then_some(())
    });
    if done.is_none() {
        let logs: String = senders
            .iter()
            .map(|s| format!("\n--- sender ---\n{}", s.log()))
            .collect();
        headend.fail(&format!(
            "channel {id} did not get to {wanted} with two segments after it within \
             {STEP_TIMEOUT:?}; last state {last_state:?}{logs}"
        ));
    }
}

fn start(catalog: &str) -> Headend {
    let dir = TempDir::new("failover");
    let file = dir.write("catalog.yaml", &[catalog.as_bytes()]);
    Headend::start_in(dir, &file, &["--public-api"])
}

#[test]
fn primary_to_backup_to_slate_and_back_to_primary() {
    let senders_dir = TempDir::new("failover-senders");
    let (primary_port, backup_port) = (free_udp_port(), free_udp_port());
    let primary = Sender::spawn(&senders_dir, "primary", primary_port, "ball");
    let backup = Sender::spawn(&senders_dir, "backup", backup_port, "snow");
    let catalog = format!(
        "{}  - {{ id: fo, number: 1, name: Failover, group: Test, ladder: small, \
         source: {{ uri: \"udp://127.0.0.1:{primary_port}\" }}, \
         backup: {{ uri: \"udp://127.0.0.1:{backup_port}\" }}, \
         stall_timeout: {STALL_TIMEOUT} }}\n",
        ladder()
    );
    let headend = start(&catalog);
    let mut watch = Watch::default();

    step(&headend, &mut watch, "fo", "live", &[&primary, &backup]);
    // Only switches count from here: the channel's start is not one.
    watch.longest_gap = Duration::ZERO;
    drop(primary);
    step(&headend, &mut watch, "fo", "failover", &[&backup]);
    drop(backup);
    step(&headend, &mut watch, "fo", "slate", &[]);

    // The slate's newest segment decodes as video at the ladder's size.
    let newest = watch.newest().unwrap_or_default();
    let seen = &watch.segments[&newest];
    let init = headend.get_ok(&format!("/live/fo/240p/{}", seen.init));
    let media = headend.get_ok(&format!("/live/fo/240p/{}", seen.uri));
    let file = headend.dir().write("slate.mp4", &[&init, &media]);
    let video = probe_video(&file);
    assert_eq!((video.width, video.height), (320, 240), "{video:?}");
    assert!(!video.frames.is_empty(), "the slate segment has no frames");

    let primary = Sender::spawn(&senders_dir, "primary-again", primary_port, "ball");
    step(&headend, &mut watch, "fo", "live", &[&primary]);

    let sequences: Vec<u64> = watch.segments.keys().copied().collect();
    let (first, last) = (sequences[0], sequences[sequences.len() - 1]);
    assert_eq!(
        sequences,
        (first..=last).collect::<Vec<_>>(),
        "the media sequence has a hole"
    );
    let switches: Vec<u64> = watch
        .segments
        .iter()
        .filter(|(_, s)| s.discontinuity)
        .map(|(sequence, _)| *sequence)
        .collect();
    assert_eq!(
        switches.len(),
        3,
        "one discontinuity per switch (backup, slate, primary), at {switches:?}"
    );
    assert!(
        watch.longest_gap <= MAX_SWITCH_GAP,
        "the playlist went {:?} without a new segment",
        watch.longest_gap
    );
    let (state, failovers) = state(&headend, "fo").unwrap_or_default();
    assert_eq!((state.as_str(), failovers), ("live", 2));
}

#[test]
fn a_failing_channel_does_not_delay_another() {
    let senders_dir = TempDir::new("failover-senders");
    let port = free_udp_port();
    let flaky_sender = Sender::spawn(&senders_dir, "flaky", port, "ball");
    let catalog = format!(
        "{}  - {{ id: steady, number: 1, name: Steady, group: Test, ladder: small, \
         source: {{ uri: \"test://\" }} }}\n  \
         - {{ id: flaky, number: 2, name: Flaky, group: Test, ladder: small, \
         source: {{ uri: \"udp://127.0.0.1:{port}\" }}, stall_timeout: {STALL_TIMEOUT} }}\n",
        ladder()
    );
    let headend = start(&catalog);
    let mut steady = Watch::default();
    let mut flaky = Watch::default();
    step(&headend, &mut flaky, "flaky", "live", &[&flaky_sender]);
    steady.poll(&headend, "/live/steady/240p/index.m3u8");
    steady.longest_gap = Duration::ZERO;
    let (seen_before, killed) = (steady.segments.len(), Instant::now());
    drop(flaky_sender);
    // The flaky channel stalls, tears its pipeline down and builds the slate's, while
    // the steady one is read as often as a player would.
    let done = headend.wait_until(STEP_TIMEOUT, || {
        steady.poll(&headend, "/live/steady/240p/index.m3u8");
        flaky.poll(&headend, "/live/flaky/240p/index.m3u8");
        let slate = flaky
            .segments
            .iter()
            .rev()
            .take_while(|(_, s)| !s.discontinuity)
            .count();
        let switched = flaky.segments.values().any(|s| s.discontinuity);
        (switched && slate >= 2).then_some(())
    });
    if done.is_none() {
        headend.fail("the flaky channel did not switch to its slate");
    }
    // The gaps between new segments, and the time since the last one: a channel that
    // stopped for good shows there.
    let now = Instant::now();
    let since_last = steady.last_new.map_or(now - killed, |last| now - last);
    let limit = SEGMENT.mul_f64(1.5);
    assert!(
        steady.longest_gap.max(since_last) <= limit,
        "the steady channel went {:?} without a new segment (limit {limit:?})",
        steady.longest_gap.max(since_last)
    );
    let (state, _) = state(&headend, "steady").unwrap_or_default();
    assert_eq!(state, "live");
    // One per segment duration while the flaky channel failed over, less one for the
    // segment in progress when the source was killed.
    let expected = (now - killed).as_secs_f64() / SEGMENT.as_secs_f64() - 1.0;
    let new = steady.segments.len() - seen_before;
    assert!(
        new as f64 >= expected.floor() && new >= 2,
        "the steady channel published {new} segments in the {:?} after the kill",
        now - killed
    );
}
