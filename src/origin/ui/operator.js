// The operator page reloads its own tables every few seconds: states, thumbnails and
// progress come from the same server-rendered page, so nothing is described twice.
// A changed thumbnail is loaded before it replaces the old one, so rows never flash.
'use strict';

const refreshMs = Number(document.body.dataset.refreshMs) || 4000;

function sameRows(current, next) {
  const ids = (body) => [...body.rows].map((row) => row.dataset.id).join(' ');
  return ids(current) === ids(next);
}

function updateRow(current, next) {
  [...next.cells].forEach((cell, i) => {
    const old = current.cells[i];
    const img = cell.querySelector('img');
    const oldImg = old.querySelector('img');
    if (img && oldImg) {
      if (img.getAttribute('src') !== oldImg.getAttribute('src')) {
        const preload = new Image();
        preload.onload = () => { oldImg.src = preload.src; };
        preload.src = img.getAttribute('src');
      }
    } else if (old.innerHTML !== cell.innerHTML) {
      old.replaceWith(cell.cloneNode(true));
    }
  });
}

async function refresh() {
  try {
    const response = await fetch(location.pathname, { cache: 'no-store' });
    if (response.ok) {
      const next = new DOMParser().parseFromString(await response.text(), 'text/html');
      for (const table of document.querySelectorAll('table[id]')) {
        const fresh = next.getElementById(table.id);
        if (!fresh) continue;
        if (!sameRows(table.tBodies[0], fresh.tBodies[0])) {
          table.tBodies[0].replaceWith(fresh.tBodies[0]);
          continue;
        }
        [...fresh.tBodies[0].rows].forEach((row, i) => updateRow(table.tBodies[0].rows[i], row));
      }
      document.getElementById('updated').textContent = new Date().toLocaleTimeString();
    }
  } catch (err) {
    // The headend restarting or the network gone: keep the last tables, try again.
    console.warn('refresh failed', err);
  }
  setTimeout(refresh, refreshMs);
}

setTimeout(refresh, refreshMs);
