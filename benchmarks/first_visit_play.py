"""The Play tab on a first visit to the real page (app.py with the shipped checkpoints, Debian's chromium): how soon
the pad can sound, and how soon a key is heard.

- page opened -> synthesiser ready: from the navigation's start to the moment play.js has the decoder's weights,
  its worklet and the example corners' Z (window.nsynthPlay.corners), by the page's clock;
- Play tab opened -> pad sounding: the tab is clicked as soon as it can be, and a key pressed as soon as the pad is
  ready: from the click to that note's first sample above -80 dBFS at the loudspeakers (target: 1 s);
- the same on a page left to settle first (the synthesiser ready before the tab is opened);
- key press -> first non-silent sample: real key presses (Playwright's keyboard) on the ready tab. The worklet
  reports the frame of each note's first sample above -80 dBFS; the context's output timestamp turns that frame
  into the moment it reaches the loudspeakers. From the key event's timeStamp.

The visit comes as soon as the server answers, while it warms up. Prints the load average beside the figures.

    python -m benchmarks.first_visit_play [--presses 16]
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from nsynth_core.exports import example_grid
from tests.app_helpers import running_app
from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS

KEYS = "awsedftgyhujk"  # the Play tab's computer keys, C4 upwards
TARGET_MS = 1000
WAIT_MS = 600_000  # the app's first start on a busy machine
# Before the page's scripts: the moment of every key press and of the first click on the Play tab, and the audio
# frame the context had reached at each press (the note's onset comes at or after it).
RECORD_PRESSES = """
window.presses = [];
document.addEventListener("keydown", (event) => {
  if (!event.repeat && window.nsynthPlay) {
    const {context} = window.nsynthPlay;
    window.presses.push({at: event.timeStamp, frame: Math.round(context.currentTime * context.sampleRate)});
  }
}, {capture: true});
document.addEventListener("click", (event) => {
  if (window.tabClicked === undefined && event.target.closest?.("button")?.textContent.trim() === "Play") {
    window.tabClicked = event.timeStamp;
  }
}, {capture: true});
"""
# Milliseconds from the last key press to its first sound at the loudspeakers (null while none is reported yet).
PRESS_TO_SOUND = """async () => {
  const {context, synth} = window.nsynthPlay, press = window.presses.at(-1);
  const stats = await synth.stats(), frames = stats.onsets.map((o) => o.frame).filter((f) => f >= press.frame);
  if (!frames.length) return null;
  const stamp = context.getOutputTimestamp();
  return {sounded: stamp.performanceTime + (Math.min(...frames) / context.sampleRate - stamp.contextTime) * 1000,
          pressed: press.at};
}"""


# When the synthesiser's files arrived, by the page's clock (Resource Timing).
FETCHED = """() => Object.fromEntries(performance.getEntriesByType("resource")
  .filter((entry) => entry.name.includes("/play-synth/"))
  .map((entry) => [entry.name.split("/play-synth/")[1], [Math.round(entry.startTime), Math.round(entry.responseEnd)]]))"""


def load_average() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def press_to_sound(page, key: str) -> dict:
    page.keyboard.down(key)
    while (timing := page.evaluate(PRESS_TO_SOUND)) is None:
        time.sleep(0.01)
    page.keyboard.up(key)
    return timing


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presses", type=int, default=16, help="key presses timed on the ready tab")
    args = parser.parse_args()
    print(f"load average (1 min) {load_average()} before; {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as folder, \
            running_app(example_grid.SHIPPED_CHECKPOINTS, Path(folder) / "app.log") as url, \
            sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM,
                                         args=[*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(WAIT_MS)
        page.add_init_script(RECORD_PRESSES)
        page.goto(url)
        page.get_by_role("tab", name="Play").click()  # as soon as the tab can be clicked
        page.wait_for_function("window.nsynthPlay && window.nsynthPlay.corners !== null", polling=5)
        ready = page.evaluate("performance.now()")
        first = press_to_sound(page, "d")
        clicked = page.evaluate("window.tabClicked")
        print(f"Page opened -> synthesiser ready: {ready:.0f} ms (from the navigation's start)")
        sounding = first["sounded"] - clicked
        verdict = "within" if sounding <= TARGET_MS else "OVER"
        print(f"Play tab opened -> pad sounding: {sounding:.0f} ms ({verdict} the {TARGET_MS} ms target): ready "
              f"{ready - clicked:.0f} ms after the click, the key pressed {first['pressed'] - clicked:.0f} ms "
              f"after it, heard {first['sounded'] - first['pressed']:.0f} ms after the press")
        print("  the synthesiser's files (requested, arrived), ms from the navigation's start:", page.evaluate(FETCHED))
        settled = browser.new_page(viewport={"width": 1280, "height": 900})
        settled.set_default_timeout(WAIT_MS)
        settled.add_init_script(RECORD_PRESSES)
        settled.goto(url)
        settled.wait_for_function("window.nsynthPlay && window.nsynthPlay.corners !== null", polling=5)
        settled.wait_for_selector(".js-plotly-plot .scatterlayer .points path")  # the map drawn too
        settled.get_by_role("tab", name="Play").click()
        settled.locator("#play-keys .key").first.wait_for()
        timing = press_to_sound(settled, "d")
        print(f"On a settled page, Play tab opened -> pad sounding: "
              f"{timing['sounded'] - settled.evaluate('window.tabClicked'):.0f} ms")
        settled.close()
        page.wait_for_timeout(800)  # the first note's release (0.5 s) ends before the timed presses
        latencies = []
        for press in range(args.presses):
            timing = press_to_sound(page, KEYS[press % len(KEYS)])
            latencies.append(timing["sounded"] - timing["pressed"])
            page.wait_for_timeout(700)  # the release ends before the next press
        context = page.evaluate("({base: window.nsynthPlay.context.baseLatency, "
                                "output: window.nsynthPlay.context.outputLatency})")
        print(f"Key press -> first non-silent sample at the loudspeakers over {len(latencies)} presses: median "
              f"{statistics.median(latencies):.1f} ms, min {min(latencies):.1f}, max {max(latencies):.1f} (context "
              f"baseLatency {1000 * context['base']:.1f} ms, outputLatency {1000 * context['output']:.1f} ms)")
        browser.close()
    print(f"load average (1 min) {load_average()} after")


if __name__ == "__main__":
    main()
