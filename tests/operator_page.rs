//! The operator page in a real browser (headless Chromium, see `common/browser.rs`),
//! against the real binary: the page lists the catalog's channels by number and its
//! VOD asset, follows their states without being reloaded (channels from starting to
//! live, the asset from pending to published), shows each channel's thumbnail as a
//! JPEG the browser decodes, and a click opens the player page, where hls.js plays the
//! channel: the video has a picture and its `currentTime` advances.
//!
//! No catalog here has a multicast block: nothing is sent outside the machine.

mod common;

use std::process::Command;
use std::time::Duration;

use common::browser::Browser;
use common::{Headend, TempDir, X264_ULTRAFAST};

/// Channels starting and the VOD asset ingesting, on a loaded two-core machine.
const LIVE_TIMEOUT: Duration = Duration::from_secs(90);
/// hls.js loading the playlists and the first segments.
const PLAY_TIMEOUT: Duration = Duration::from_secs(60);
/// How far the player must get past its first frame.
const PLAYED: f64 = 3.0;

/// The catalog with these channel lines.
fn catalog(channels: &str) -> String {
    format!(
        "{X264_ULTRAFAST}\
ladders:
  small:
    segment_duration: 1
    gop: 1
    window: 6
    renditions:
      - {{ name: 240p, width: 320, height: 240, bitrate: 300, profile: main, max_framerate: 25 }}
    audio: {{ codec: aac, bitrate: 64, channels: 2 }}
channels:
{channels}\
assets:
  - {{ id: clip, title: \"A Clip\", source: clip.mp4, ladder: small }}
"
    )
}

/// A 3 s clip for the VOD asset, made by ffmpeg.
const BARS: &str =
    "  - { id: bars, number: 4, name: \"Bars & Tone\", group: Test, source: { uri: \"test://\" }, ladder: small }\n";
const SECOND: &str =
    "  - { id: second, number: 9, name: \"Second <Channel>\", group: Test, source: { uri: \"test://\" }, ladder: small }\n";

fn make_clip(dir: &TempDir) {
    let clip = dir.path().join("clip.mp4");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc=size=320x240:rate=25")
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args([
            "-t",
            "3",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac", "-shortest"])
        .arg(&clip)
        .status()
        .expect("running ffmpeg");
    assert!(status.success(), "ffmpeg could not make {}", clip.display());
}

/// The page's rows of one table as `[id, text of each cell…]`.
fn rows(browser: &Browser, table: &str) -> Vec<Vec<String>> {
    let value = browser.eval(&format!(
        "return [...document.querySelectorAll('#{table} tbody tr')].map((row) =>
           [row.dataset.id, ...[...row.cells].map((cell) => cell.textContent.trim())]);"
    ));
    serde_json::from_value(value).expect("rows of strings")
}

#[test]
fn the_operator_page_follows_the_channels_and_plays_one() {
    let dir = TempDir::new("page");
    make_clip(&dir);
    let file = dir.write("catalog.yaml", &[catalog(BARS).as_bytes()]);
    let data = dir.path().join("data");
    let data = data.to_string_lossy().into_owned();
    let headend = Headend::start_in(dir, &file, &["--data", &data]);
    let browser = Browser::start();

    browser.open(&headend.url("/"));
    assert_eq!(browser.eval("return document.title"), "headend");
    browser.eval("window.loadedOnce = true; return null");
    assert_eq!(
        rows(&browser, "channels")
            .iter()
            .map(|row| (row[0].as_str(), row[1].as_str(), row[3].as_str()))
            .collect::<Vec<_>>(),
        [("bars", "4", "Bars & Tone")]
    );
    // A channel added while the page is open (listed first in the file, ninth by
    // number) appears after `bars` and goes live without the page being loaded again.
    common::replace_file(&file, &catalog(&format!("{SECOND}{BARS}")));

    // The page reloads its tables by itself: both channels go live, each thumbnail
    // is a 320×180 JPEG the browser has decoded, and the asset is published.
    let settled = browser.wait_for(
        "const states = [...document.querySelectorAll('#channels .state')].map((c) => c.textContent);
         const thumbs = [...document.querySelectorAll('#channels img.thumb')]
           .filter((img) => img.complete && img.naturalWidth === 320 && img.naturalHeight === 180);
         const vod = document.querySelector('#vod tr[data-id=clip] .state').textContent;
         const ids = [...document.querySelectorAll('#channels tbody tr')].map((r) => r.dataset.id);
         return ids.join() === 'bars,second' && states.every((s) => s === 'live')
           && thumbs.length === 2 && vod === 'published' && window.loadedOnce === true;",
        LIVE_TIMEOUT,
    );
    if settled.is_none() {
        headend.fail(&format!(
            "the page did not show both channels live with thumbnails and the asset \
             published: channels {:?}, vod {:?}",
            rows(&browser, "channels"),
            rows(&browser, "vod")
        ));
    }
    // A later picture replaces the first: the thumbnails are live.
    let thumbnail = "document.querySelector('#channels tr[data-id=bars] img').src";
    let first = browser.eval(&format!("return {thumbnail};"));
    assert!(
        browser
            .wait_for(&format!("return {thumbnail} !== {first};"), LIVE_TIMEOUT)
            .is_some(),
        "the thumbnail stayed {first}"
    );

    // A click opens the player, which plays the channel.
    browser.click("#channels tr[data-id=bars] td:nth-child(3) a");
    browser
        .wait_for(
            "return location.pathname === '/watch/live/bars' && document.readyState === 'complete';",
            PLAY_TIMEOUT,
        )
        .expect("the player page opened");
    let started = browser.wait_for(
        "const v = document.getElementById('player');
         return v.currentTime > 0 && v.videoWidth === 320 ? v.currentTime : null;",
        PLAY_TIMEOUT,
    );
    let Some(started) = started.and_then(|t| t.as_f64()) else {
        headend.fail(&format!(
            "the player did not start: {}; ChromeDriver log {}",
            browser.eval(
                "const v = document.getElementById('player');
                 return JSON.stringify({ t: v.currentTime, w: v.videoWidth, error: v.error && v.error.message,
                   status: document.getElementById('status').textContent });"
            ),
            browser.log_path().display()
        ));
    };
    let advanced = browser.wait_for(
        &format!(
            "const v = document.getElementById('player');
             return v.currentTime >= {started} + {PLAYED} && !v.paused ? v.currentTime : null;"
        ),
        PLAY_TIMEOUT,
    );
    assert!(
        advanced.is_some(),
        "the player stalled after {started} s: {}",
        browser.eval(
            "const v = document.getElementById('player');
             return JSON.stringify({ t: v.currentTime, paused: v.paused, ready: v.readyState,
               status: document.getElementById('status').textContent });"
        )
    );
    assert_eq!(
        browser.eval("return document.getElementById('status').textContent"),
        "",
        "the player reported an error"
    );
}
