"""From a click between notes on the map to its sound, as a visitor's browser sees it: from the page itself
(assets/map_sound.js, when the chosen models are the shipped ones) and from the server's decode in the strip.

Launches `python app.py` with the shipped checkpoints (or --checkpoint DIR) on a loopback port, opens the Explore tab
in Debian's chromium and clicks the empty spot of the map nearest its centre (the pointer resting there first, as a
hand does), once at each of several MIDI pitches (so no sound comes from a cache). The page's latency runs from the
press to the first non-silent sample of its synthesiser at the loudspeakers (the worklet's onset frame through the
context's output timestamp); the server's from the press to the moment the strip's player offers its decode. It
waits for the start-up warm-up (examples encoded, decoders timed) first, so the clicks only decode; the first click
is printed apart all the same. Prints the load average beside the figures.

    python -m benchmarks.map_click                  # shipped checkpoints, default decoder, 8 pitches
    python -m benchmarks.map_click --pitches 48 60 72
"""

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.app_helpers import running_app, wait_for_warm_up
from tests.browser_helpers import ARM_CLICK_TIMER, CHROMIUM, CHROMIUM_ARGS, EMPTY_SPOT

REPO = Path(__file__).resolve().parent.parent
POINTER_REST_MS = 200  # a press sooner after a move waits up to 70 ms for plotly's hover (assets/map_click.js)
# Milliseconds from the last press to the newest onset of the page's map synthesiser at the loudspeakers, or null.
PAGE_SOUND = """async () => {
  const {context} = window.nsynthPlay, frames = (await window.nsynthMap.synth.stats(true)).onsets.map((o) => o.frame);
  if (!frames.length) return null;
  const stamp = context.getOutputTimestamp();
  return stamp.performanceTime + (Math.max(...frames) / context.sampleRate - stamp.contextTime) * 1000 - window.pressedAt;
}"""
RECORD_PRESS = "document.addEventListener('pointerdown', (event) => { window.pressedAt = event.timeStamp; }, true);"


def click_latencies(url: str, pitches: list[int]) -> tuple[list[float], list[float | None]]:
    """Milliseconds from press to the server's sound, and to the page's own (None where it played none), for one
    click at each pitch, in order."""
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(300_000)
        page.add_init_script(RECORD_PRESS)
        page.goto(url)
        page.get_by_role("tab", name="Explore").click()
        page.wait_for_selector(".js-plotly-plot .scatterlayer .points path")
        page.get_by_text("Settings: models, pitch, octave").click()  # the closed panel that holds the pitch
        pitch = page.get_by_label("Pitch (MIDI) of every decoded sound")
        latencies, in_page = [], []
        page.hover("#map .js-plotly-plot")  # the page readies the map's own sound once the pointer is over it
        page.wait_for_function("window.nsynthMap && (window.nsynthMap.synth || window.nsynthMap.error)")
        for midi in pitches:
            pitch.fill(str(midi))
            pitch.press("Enter")
            spot = page.evaluate(EMPTY_SPOT)  # now: setting the pitch may have scrolled the page
            page.mouse.move(spot["x"], spot["y"])
            page.wait_for_timeout(POINTER_REST_MS)  # as a hand rests the pointer before it presses
            page.evaluate(ARM_CLICK_TIMER)
            page.mouse.click(spot["x"], spot["y"])
            milliseconds = page.evaluate("() => window.clickToAudio")
            if milliseconds is None:
                raise RuntimeError(f"no sound within 30 s of the click at MIDI {midi}")
            heard = page.get_by_text(f"at MIDI {midi}.").first
            heard.wait_for()
            latencies.append(milliseconds)
            in_page.append(page.evaluate(PAGE_SOUND) if page.evaluate("window.nsynthMap.heard.length") else None)
            page.evaluate("window.nsynthMap.heard.length = 0")
        print(heard.inner_text().strip())  # which notes, which decoder
        browser.close()
    return latencies, in_page


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=REPO / "checkpoints", help="folder of checkpoints")
    parser.add_argument("--pitches", type=int, nargs="+", default=[48, 52, 55, 60, 64, 67, 72, 76])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, running_app(args.checkpoint, Path(scratch) / "app.log") as url:
        wait_for_warm_up(Path(scratch) / "app.log")
        load_before = os.getloadavg()
        latencies, in_page = click_latencies(url, args.pitches)
    load_after = os.getloadavg()
    for midi, milliseconds, page_ms in zip(args.pitches, latencies, in_page):
        page_said = "none played by the page" if page_ms is None else f"from the page after {page_ms:.0f} ms"
        print(f"MIDI {midi}: the server's decode in the strip after {milliseconds:.0f} ms, {page_said}")
    played = [ms for ms in in_page if ms is not None]
    if played:
        print(f"the page's own sound: median {statistics.median(played):.0f} ms, max {max(played):.0f} ms over "
              f"{len(played)} clicks, no server answer needed")
    later = latencies[1:] or latencies
    print(f"first click {latencies[0]:.0f} ms; later clicks median {statistics.median(later):.0f} ms, "
          f"max {max(later):.0f} ms over {len(later)}")
    print(f"load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
