"""From a click between notes on the map to its sound, as a visitor's browser sees it.

Launches `python app.py` with the shipped checkpoints (or --checkpoint DIR) on a loopback port, opens the Explore tab
in Debian's chromium and clicks the empty spot of the map nearest its centre (the pointer resting there first, as a
hand does), once at each of several MIDI pitches (so no sound comes from a cache). Each latency runs from the press
to the moment the Explore player offers the new sound. It waits for the start-up warm-up (examples encoded, decoders timed) first, so the clicks only decode; the
first click is printed apart all the same. Prints the load average beside the figures.

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


def click_latencies(url: str, pitches: list[int]) -> list[float]:
    """Milliseconds from press to sound for one click at each pitch, in order."""
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(300_000)
        page.goto(url)
        page.get_by_role("tab", name="Explore").click()
        page.wait_for_selector(".js-plotly-plot .scatterlayer .points path")
        pitch = page.get_by_label("Pitch (MIDI) of every decoded sound")
        latencies = []
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
        print(heard.inner_text().strip())  # which notes, which decoder
        browser.close()
    return latencies


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=REPO / "checkpoints", help="folder of checkpoints")
    parser.add_argument("--pitches", type=int, nargs="+", default=[48, 52, 55, 60, 64, 67, 72, 76])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, running_app(args.checkpoint, Path(scratch) / "app.log") as url:
        wait_for_warm_up(Path(scratch) / "app.log")
        load_before = os.getloadavg()
        latencies = click_latencies(url, args.pitches)
    load_after = os.getloadavg()
    for midi, milliseconds in zip(args.pitches, latencies):
        print(f"MIDI {midi}: {milliseconds:.0f} ms")
    later = latencies[1:] or latencies
    print(f"first click {latencies[0]:.0f} ms; later clicks median {statistics.median(later):.0f} ms, "
          f"max {max(later):.0f} ms over {len(later)}")
    print(f"load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
