"""How long a visitor waits for the map when the page loads, as the browser sees it.

Launches `python app.py` with the shipped checkpoints (or --checkpoint DIR) on a loopback port and opens the page
in Debian's chromium several times at 1280 x 900, each in a fresh browser (nothing cached), after the start-up
warm-up. For each visit: the seconds from navigation to the first note on the map, and to the moment the page's
plotting library had arrived. Prints the load average beside the figures.

    python -m benchmarks.page_load [--visits 5]
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from benchmarks.map_click import REPO
from tests.app_helpers import running_app, wait_for_warm_up
from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS

PLOTTING_LIBRARY = "PlotlyPlot-"  # Gradio's bundle of plotly.js, 4.6 MB


def visit(browser, url: str) -> tuple[float, float]:
    """(s to the first note on the map, s to the plotting library's arrival) of one fresh visit."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(300_000)
    started = time.perf_counter()
    page.goto(url)
    page.wait_for_selector(".js-plotly-plot .scatterlayer .points path")
    drawn = time.perf_counter() - started
    library = page.evaluate(f"""() => performance.getEntriesByType('resource')
        .filter((entry) => entry.name.includes('{PLOTTING_LIBRARY}'))
        .map((entry) => entry.responseEnd / 1000)[0]""")
    context.close()
    return drawn, library


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=REPO / "checkpoints")
    parser.add_argument("--visits", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, running_app(args.checkpoint, Path(scratch) / "app.log") as url:
        wait_for_warm_up(Path(scratch) / "app.log")
        load_before = os.getloadavg()[0]
        times = []
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for number in range(1, args.visits + 1):
                drawn, library = visit(browser, url)
                times.append(drawn)
                print(f"visit {number}: map drawn after {drawn:.1f} s (plotting library arrived at {library:.1f} s)",
                      flush=True)
            browser.close()
        print(f"median {statistics.median(times):.1f} s, max {max(times):.1f} s over {args.visits} visits; "
              f"load average (1 min) {load_before:.2f} before, {os.getloadavg()[0]:.2f} after; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
