"""The Play tab's instrument in a real browser (Debian's chromium, driven by Playwright): decode the grid, point
at a cell, press a key, and hear it through Web Audio (assets/play.js)."""

import os
import shutil

import pytest

from app_helpers import running_app, write_tiny_checkpoints
from test_browser import CHROMIUM, CHROMIUM_ARGS, ERROR_BADGES, SCREENSHOTS_ENV, WAIT_MS

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium")
SOUNDING_MS = 1000  # a pressed key is heard within a second
# The RMS of what the analyser sees now: the voices' sum on its way to the loudspeakers.
ANALYSER_RMS = """() => {
  const {analyser} = window.nsynthPlay;
  const samples = new Float32Array(analyser.fftSize);
  analyser.getFloatTimeDomainData(samples);
  return Math.sqrt(samples.reduce((sum, s) => sum + s * s, 0) / samples.length);
}"""


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    directory = tmp_path_factory.mktemp("checkpoints")
    write_tiny_checkpoints(directory)
    with running_app(directory, directory / "app.log") as url, playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM,
                                         args=[*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(WAIT_MS)
        page.goto(url)
        yield page
        browser.close()


def test_a_key_plays_the_cell_under_the_pad_point(page, tmp_path):
    page.get_by_role("tab", name="Play").click()
    page.locator("#play-keys .key").first.wait_for()  # play.js drew the keyboard
    assert page.locator("#play-keys .key").count() == 25
    # Said before the button is pressed: 3 x 3 cells at 4 pitches, and the SoundFont's 9 x 9 at 16.
    page.get_by_text("Decoding 9 cells at 4 pitches (36 sounds) of 2 s with the DDSP decoder takes").wait_for()
    page.get_by_text("Decoding 81 cells at 16 pitches (1296 sounds) of 1 s with the DDSP decoder takes").wait_for()
    page.get_by_role("button", name="Decode for playing", exact=True).click()
    page.wait_for_function("window.nsynthPlay.index !== null")
    pad = page.locator("#play-pad")
    assert pad.locator(".cell").count() == 9  # 3 x 3 by default
    pad.click(position={"x": 230, "y": 10})  # top right
    assert pad.locator(".cell.nearest").inner_text() == "r1c3"
    assert page.evaluate(ANALYSER_RMS) == 0  # nothing sounds before a key is pressed

    page.keyboard.down("d")  # E4
    page.wait_for_function("window.nsynthPlay.voicesStarted > 0", timeout=SOUNDING_MS)
    page.wait_for_function(f"({ANALYSER_RMS})() > 0", timeout=SOUNDING_MS, polling=20)
    assert page.locator('#play-keys [data-key="64"]').get_attribute("class").endswith("down")
    page.keyboard.up("d")
    page.locator('#play-keys [data-key="67"]').click()  # an on-screen key adds a voice
    assert page.evaluate("window.nsynthPlay.voicesStarted") == 2
    assert page.locator(ERROR_BADGES).count() == 0

    shots = os.environ.get(SCREENSHOTS_ENV) or str(tmp_path)
    os.makedirs(shots, exist_ok=True)
    page.get_by_text("Play in the page:").evaluate("element => element.scrollIntoView({block: 'start'})")
    page.screenshot(path=os.path.join(shots, "play.png"))


def test_the_soundfont_downloads(page, tmp_path):
    page.get_by_role("tab", name="Play").click()
    cells = page.get_by_label("number input for Cells per side", exact=True).filter(visible=True)
    cells.fill("2")
    cells.press("Enter")
    page.get_by_role("button", name="Download as SoundFont (.sf2)", exact=True).click()
    link = page.locator(".block", has=page.get_by_text("SoundFont", exact=True)).locator("a[download]").first
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.suffix == ".sf2" and saved.read_bytes()[8:12] == b"sfbk"  # a RIFF SoundFont bank
    assert page.locator(ERROR_BADGES).count() == 0
