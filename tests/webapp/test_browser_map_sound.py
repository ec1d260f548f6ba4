"""A click between notes heard from the page itself (assets/map_sound.js) with the shipped models: the sound starts
while the server has not been asked anything, it is the blend the server describes (the same three notes, the
same shares) at the nearest note's pitch, and the current sound's strip then holds the server's decode of it
without playing it a second time."""

import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from nsynth_core.exports import example_grid
from tests.app_helpers import running_app
from tests.browser_helpers import (ANALYSER_SAMPLES, BLEND_NAMED, CHROMIUM, CHROMIUM_ARGS, EMPTY_SPOT,
                                   SOUNDING, WAIT_MS, median_pitch)

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium")
SOUND_SECONDS = 0.9  # of the click's 1 s sound (the Grid tab's length), in the analyser's window when read
READY = "window.nsynthMap && window.nsynthMap.synth && window.nsynthMap.settings && window.nsynthMap.settings.in_page"


@pytest.fixture(scope="module")
def page():
    with tempfile.TemporaryDirectory() as folder, \
            running_app(example_grid.SHIPPED_CHECKPOINTS, Path(folder) / "app.log") as url, \
            playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(WAIT_MS)
        page.goto(url)
        page.wait_for_selector("#map .js-plotly-plot .scatterlayer .points path")
        page.hover("#map .js-plotly-plot")  # the page readies the map's own sound once the pointer is over it
        page.wait_for_function(READY, polling=50)
        yield page
        browser.close()


def test_a_click_between_notes_sounds_before_the_server_is_asked_and_is_the_servers_blend(page):
    held, heard_yet = [], []  # the page's requests to the server's queue, held back until the sound is heard

    def hold(route):
        route.continue_() if heard_yet else held.append(route)

    page.route("**/gradio_api/queue/join*", hold)
    page.evaluate(ANALYSER_SAMPLES)  # the analyser's window made long (which empties it) before the sound
    spot = page.evaluate(EMPTY_SPOT)
    page.mouse.click(spot["x"], spot["y"])
    page.wait_for_function(SOUNDING, polling=10)
    heard = page.evaluate("window.nsynthMap.heard.at(-1)")
    # Every request to the server so far is still held: the sound needed no answer from it.
    # Heard at the nearest note's pitch (pYIN on what reached the loudspeakers, most of the 1 s sound).
    started = page.evaluate("window.nsynthPlay.context.currentTime")
    page.wait_for_function(f"window.nsynthPlay.context.currentTime > {started + SOUND_SECONDS}", polling=20)
    sound = page.evaluate(ANALYSER_SAMPLES)
    assert abs(median_pitch(np.array(sound["samples"], np.float32), sound["rate"]) - heard["pitch"]) < 0.5
    heard_yet.append(True)
    for request in held:
        request.continue_()

    # What the server decoded for the strip is the same blend, named with its shares.
    described = page.locator("#current-name", has_text=BLEND_NAMED)
    described.wait_for()
    shares = re.findall(r"(\S+) (\d+)\s%", described.inner_text())  # a no-break space before %
    assert [name for name, _ in shares] == heard["neighbours"]
    assert [int(share) for _, share in shares] == [round(100 * weight) for weight in heard["weights"]]
    assert f"at MIDI {heard['pitch']}" in described.inner_text()


    # The strip holds the decode to play again or download, in the player that does not play on arrival.
    page.locator("#heard-in-page a[download]").first.wait_for(state="attached")
    assert not page.locator("#selected-player").is_visible()
    page.get_by_label("Note (or click one on the map)").click()  # a note chosen: its player is back, playing
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.locator("#selected-player").wait_for(state="visible")
    page.locator("#heard-in-page").wait_for(state="hidden")


def test_a_second_click_sounds_its_whole_length_whatever_the_first(page):
    """Two clicks at one place (so at one pitch), the second before the first has ended: the first stops as the
    second starts, and the second is not cut when the first's time is up."""
    started = page.evaluate("""async () => {
      const plot = document.querySelector('#map .js-plotly-plot'), layout = plot._fullLayout;
      const x = (layout.xaxis.range[0] + layout.xaxis.range[1]) / 2;
      const y = (layout.yaxis.range[0] + layout.yaxis.range[1]) / 2;
      const {context, analyser} = window.nsynthPlay;
      analyser.fftSize = 32768;  // a window long enough to hold both clicks' ends (set before: setting empties it)
      const first = context.currentTime;
      window.nsynthMap.play(plot, x, y);
      await new Promise((resolve) => setTimeout(resolve, 500));
      window.nsynthMap.play(plot, x, y);
      return {first, second: context.currentTime, seconds: window.nsynthMap.settings.seconds};
    }""")
    assert started["second"] - started["first"] < started["seconds"]
    # A stretch past the end of the first click's sound (and its release), within the second's, found in the
    # analyser's window by the audio clock whenever it is read.
    stretch = started["first"] + started["seconds"] + 0.1, started["first"] + started["seconds"] + 0.3
    assert stretch[1] < started["second"] + started["seconds"]
    page.wait_for_function(f"window.nsynthPlay.context.currentTime > {stretch[1]}", polling=20)
    sound = page.evaluate("""() => {
      const {analyser, context} = window.nsynthPlay;
      const samples = new Float32Array(analyser.fftSize);
      analyser.getFloatTimeDomainData(samples);
      return {samples: Array.from(samples), rate: context.sampleRate, read: context.currentTime};
    }""")
    samples, rate = np.array(sound["samples"], np.float32), sound["rate"]
    begin, end = (len(samples) - round((sound["read"] - t) * rate) for t in stretch)
    assert begin >= 0  # read while the stretch was still in the window
    assert np.sqrt(np.mean(samples[begin:end] ** 2)) > 1e-3


def test_a_click_is_left_to_the_server_when_another_decoder_plays(page):
    page.get_by_role("tab", name="Play").click()
    page.get_by_label("WaveNet").first.check()  # the Play tab's decoder of map points
    page.wait_for_function("window.nsynthMap.settings.in_page === false", polling=50)
    page.get_by_role("tab", name="Explore").click()
    count = page.evaluate("window.nsynthMap.heard.length")
    spot = page.evaluate(EMPTY_SPOT)
    page.mouse.click(spot["x"], spot["y"])
    page.locator("#current-name", has_text="decoded by the WaveNet decoder").wait_for()
    page.locator("#selected-player").wait_for(state="visible")
    assert page.evaluate("window.nsynthMap.heard.length") == count  # the page played nothing itself
