"""A new visitor's first minute, as the browser sees it: how soon the page offers a sound to play, how soon the
visitor's own first note is on the map, and how soon the Play tab's pad sounds once the tab is opened.

Launches `python app.py` with the shipped checkpoints (or --checkpoint DIR) on a loopback port, waits for its
start-up warm-up, and opens the page in Debian's chromium several times at 1280 x 900, each in a fresh browser
context (nothing cached). For each visit: the seconds from the navigation's start to the first note drawn on the map
and, on its own clock, to the current sound's player holding a sound ready to play (loaded and decoded: its length
shown), then to the first own note placed on the map after a test wav is uploaded as soon as the upload box is
there, and from the Play tab's click to the first sound of a key pressed as soon as the pad is ready
(benchmarks/first_visit_play times the tab opened before the page settles, and the keys). Every visit uploads the
same wav, each in its own session. Prints each visit, the medians and the load average beside them.

    python -m benchmarks.first_visit [--visits 5]
"""

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from benchmarks.first_visit_play import RECORD_PRESSES, press_to_sound
from benchmarks.map_click import REPO
from tests.app_helpers import running_app, wait_for_warm_up
from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS
from webapp.explore_tab import PLAYER_READY

OWN_NOTE = REPO / "tests" / "fixtures" / "nsynth" / "jsonwav" / "audio" / "keyboard_acoustic_004-060-100.wav"
# Milliseconds from the navigation's start to the map's first note drawn and to the current sound's player having
# its sound loaded and decoded (it shows the sound's length, and play plays it), each whenever it happens.
MILESTONES = """(() => {
  const seen = window.firstVisit = {};
  const holds = {
    mapDrawn: () => document.querySelector('#map .js-plotly-plot .scatterlayer .points path') !== null,
    playable: () => %s};
  const look = () => {
    for (const [name, met] of Object.entries(holds)) {
      if (seen[name] === undefined && met()) seen[name] = performance.now();
    }
    if (Object.keys(seen).length < Object.keys(holds).length) requestAnimationFrame(look);
  };
  requestAnimationFrame(look);
})()""" % PLAYER_READY
OWN_NOTE_ON_MAP = """() => ((document.querySelector('#map .js-plotly-plot') || {}).data || [])
  .some((trace) => trace.name === 'your notes')"""


def visit(browser, url: str) -> tuple[float, float, float, float]:
    """(s to the map drawn, s to a sound ready to play, s to the first own note on the map, s from the Play tab's
    click to its pad sounding) of one fresh visit."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.add_init_script(RECORD_PRESSES)
    page.add_init_script(MILESTONES)
    page.set_default_timeout(300_000)
    page.goto(url)
    page.wait_for_function("window.firstVisit.mapDrawn !== undefined && window.firstVisit.playable !== undefined")
    drawn, playable = (page.evaluate(f"window.firstVisit.{name}") / 1000 for name in ("mapDrawn", "playable"))
    page.locator("#uploads input[type=file]").set_input_files(str(OWN_NOTE))
    page.wait_for_function(OWN_NOTE_ON_MAP, polling=20)
    own_note = page.evaluate("performance.now()") / 1000
    page.get_by_role("tab", name="Play").click()
    page.wait_for_function("window.nsynthPlay && window.nsynthPlay.corners !== null", polling=5)
    page.locator("#play-keys .key").first.wait_for()
    pad = (press_to_sound(page, "d")["sounded"] - page.evaluate("window.tabClicked")) / 1000
    context.close()
    return drawn, playable, own_note, pad


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=REPO / "checkpoints")
    parser.add_argument("--visits", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, running_app(args.checkpoint, Path(scratch) / "app.log") as url:
        wait_for_warm_up(Path(scratch) / "app.log")
        load_before = os.getloadavg()[0]
        map_drawn, playable, own_note, pad_sounding = [], [], [], []
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM,
                                             args=[*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"])
            for number in range(1, args.visits + 1):
                drawn, heard, placed, pad = visit(browser, url)
                map_drawn.append(drawn)
                playable.append(heard)
                own_note.append(placed)
                pad_sounding.append(pad)
                print(f"visit {number}: the map drawn after {drawn:.1f} s, a sound playable after {heard:.1f} s, "
                      f"own note on the map after {placed:.1f} s, the Play pad sounding {pad:.2f} s after its tab "
                      f"opened", flush=True)
            browser.close()
        print(f"median over {args.visits} visits: the map drawn after {statistics.median(map_drawn):.1f} s, "
              f"a sound playable after {statistics.median(playable):.1f} s "
              f"(max {max(playable):.1f} s), own note on the map after {statistics.median(own_note):.1f} s "
              f"(max {max(own_note):.1f} s), the Play pad sounding {statistics.median(pad_sounding):.2f} s after "
              f"its tab opened (max {max(pad_sounding):.2f} s); load average (1 min) {load_before:.2f} before, "
              f"{os.getloadavg()[0]:.2f} after; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
