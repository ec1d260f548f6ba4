"""The browser the UI tests and benchmarks drive, and the page hooks they share."""

import io
import re
import threading
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import librosa
import numpy as np
import soundfile as sf

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
WAIT_MS = 120_000  # a busy 2-core machine; every wait ends as soon as its element appears
SCREENSHOTS_ENV = "NSYNTH_SCREENSHOTS"  # a folder for the walk-through's screenshots (else the test's tmp folder)
ERROR_BADGES = ".toast-body.error, .error-container, .error-bubble"

# The current sound's strip naming a blend ("Blend of ..."; its first words before any click also speak of "the blend
# of the nearest three", so the match is case-sensitive and from the start).
BLEND_NAMED = re.compile(r"^\s*Blend of ")
# Whether the voices' sum on its way to the loudspeakers holds any sample above -80 dBFS now.
SOUNDING = """() => {
  const {analyser} = window.nsynthPlay;
  const samples = new Float32Array(analyser.fftSize);
  analyser.getFloatTimeDomainData(samples);
  return samples.some((s) => Math.abs(s) > 1e-4);
}"""
# The analyser's window, 32 768 samples, is full of what sounds this long after a change, by the page's audio
# clock: on a loaded machine that clock may stall and catch up, so wall time would not tell.
HEARD_SECONDS = 2.1
# What the loudspeakers receive now: the analyser's last 32 768 samples and the context's sample rate.
ANALYSER_SAMPLES = """() => {
  const {analyser, context} = window.nsynthPlay;
  analyser.fftSize = 32768;
  const samples = new Float32Array(analyser.fftSize);
  analyser.getFloatTimeDomainData(samples);
  return {samples: Array.from(samples), rate: context.sampleRate};
}"""
# The pixel of the map's plot area nearest its centre that plotly cannot take for a press on a note: plotly hovers
# (and so clicks) a note up to its hoverdistance, 20 px, from the marker's edge, and a marker's radius is 5 px.
# The map is scrolled into view first: a press outside the window reaches nothing.
EMPTY_SPOT = """() => {
  const HOVER_DISTANCE = 20, NOTE_RADIUS = 5;
  const plot = document.querySelector('.js-plotly-plot');
  plot.scrollIntoView({block: 'nearest'});
  const area = plot.querySelector('.nsewdrag').getBoundingClientRect();
  const notes = [...plot.querySelectorAll('.scatterlayer .points path')].map((point) => {
    const box = point.getBoundingClientRect();
    return [box.x + box.width / 2, box.y + box.height / 2];
  });
  const centre = [area.left + area.width / 2, area.top + area.height / 2];
  let best = null;
  for (let x = area.left + 20; x < area.right - 20; x += 5) {
    for (let y = area.top + 20; y < area.bottom - 20; y += 5) {
      const free = Math.min(...notes.map(([nx, ny]) => Math.hypot(nx - x, ny - y))) - NOTE_RADIUS;
      const off = Math.hypot(x - centre[0], y - centre[1]);
      if (free >= HOVER_DISTANCE + 5 && (best === null || off < best.off)) best = {x: x, y: y, off: off};
    }
  }
  return best;
}"""
# Arms a timer on the next press: window.clickToAudio resolves when the Explore player offers a new sound, to the
# ms from press to audio (null if none came within 30 s). Kept on window: evaluate would wait for the promise.
ARM_CLICK_TIMER = """() => { window.clickToAudio = new Promise((resolve) => {
  // the strip's player, or the one that holds a sound the page has already played itself (map_sound.js)
  const link = () => [...document.querySelectorAll('#selected-player a[download], #heard-in-page a[download]')]
    .map((anchor) => anchor.href).join(' ');
  const before = link();
  document.addEventListener('pointerdown', () => {
    const pressed = performance.now();
    const poll = () => (link() && link() !== before) ? resolve(performance.now() - pressed)
                       : performance.now() - pressed > 30000 ? resolve(null) : setTimeout(poll, 10);
    poll();
  }, {capture: true, once: true});
}); }"""


def downloaded_audio(page, player):
    """The audio a player offers for download, fetched the way the browser would."""
    href = player.locator("a[download]").first.get_attribute("href")
    response = page.request.get(href if href.startswith("http") else page.url.rstrip("/") + "/" + href.lstrip("/"))
    assert response.ok
    audio, rate = sf.read(io.BytesIO(response.body()))
    return audio, rate


@contextmanager
def static_server(directory):
    """A quiet HTTP server on a free loopback port serving `directory` (ES modules, worklets and weights need a
    real origin, not file://); yields its URL, ending in /."""
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

# Whether the map's legend holds more entries than its room, so that some scroll out of sight (plotly then draws
# its scroll bar).
LEGEND_SCROLLS = """() => { const bar = document.querySelector('#map .legend .scrollbar');
  return Boolean(bar) && bar.getBoundingClientRect().height > 0; }"""
# Every visible element that reaches past the window's right edge, or past the right edge of a box that clips it
# (a keyboard cut by its box), unless it sits in a box that scrolls sideways; one line per element, empty when the
# page fits. Gradio's own hidden measuring copies (.visually-hidden) are not seen by anyone and are skipped, and so
# is what a plot clips to its axes with an SVG clip-path (the data beyond a zoomed-in range is drawn, never shown).
OVERFLOWING = r"""() => {
  const width = document.documentElement.clientWidth;
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (typeof el.className === 'string' && el.className ? '.' + el.className.trim().split(/\s+/).slice(0, 2).join('.') : '');
  const path = (el) => { const parts = []; for (let a = el; a && a !== document.body && parts.length < 4; a = a.parentElement) parts.unshift(name(a)); return parts.join(' > '); };
  const scrollsSideways = (el) => { const s = getComputedStyle(el); return (s.overflowX === 'auto' || s.overflowX === 'scroll'); };
  const offenders = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || el.closest('.visually-hidden, .sr-only, svg [clip-path]')) continue;
    if (el instanceof SVGGElement) continue;  // a group draws nothing itself; what it holds is checked
    let right = width, ancestor = el.parentElement, inScroller = false;
    for (; ancestor && ancestor !== document.body; ancestor = ancestor.parentElement) {
      if (scrollsSideways(ancestor)) { inScroller = true; break; }
      const s = getComputedStyle(ancestor);
      if (s.overflowX === 'hidden' || s.overflowX === 'clip') { right = Math.min(right, ancestor.getBoundingClientRect().right); }
    }
    if (inScroller) continue;
    if (box.right > right + 1 && box.left < right) offenders.push(`${path(el)} right=${Math.round(box.right)} limit=${Math.round(right)}`);
  }
  return offenders;
}"""


def median_pitch(audio, rate):
    f0, voiced, _ = librosa.pyin(audio, sr=rate, fmin=librosa.note_to_hz("C2"), fmax=librosa.note_to_hz("C7"),
                                 frame_length=2048)
    return float(np.median(librosa.hz_to_midi(f0[voiced])))


@contextmanager
def app_in_chromium(directory, *chromium_args):
    """`python app.py` over tiny random checkpoints written to `directory`, and Debian's Chromium to open it:
    yields (the app's address, the browser, the app's log)."""
    from playwright.sync_api import sync_playwright

    from tests.app_helpers import running_app, write_tiny_checkpoints

    write_tiny_checkpoints(directory)
    with running_app(directory, directory / "app.log") as url, sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *chromium_args])
        yield url, browser, directory / "app.log"
        browser.close()
