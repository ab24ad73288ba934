// The player page: hls.js where the browser has Media Source Extensions, the
// browser's own HLS (Safari, iOS) otherwise. Muted so that autoplay is allowed.
'use strict';

const video = document.getElementById('player');
const status = document.getElementById('status');
const source = video.dataset.src;

function say(text) { status.textContent = text; }

if (window.Hls && Hls.isSupported()) {
  const hls = new Hls();
  hls.on(Hls.Events.ERROR, (_event, data) => {
    if (!data.fatal) return;
    say(`Playback error: ${data.type} (${data.details}); retrying.`);
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
      hls.recoverMediaError();
    } else {
      setTimeout(() => hls.startLoad(), 2000);
    }
  });
  hls.on(Hls.Events.FRAG_BUFFERED, () => say(''));
  hls.loadSource(source);
  hls.attachMedia(video);
  window.headendPlayer = hls;
} else if (video.canPlayType('application/vnd.apple.mpegurl')) {
  video.src = source;
} else {
  say('This browser plays neither HLS nor Media Source Extensions.');
}

video.play().catch(() => say('Press play to start.'));
