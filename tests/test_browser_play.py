"""The Play tab's instrument in a real browser (Debian's chromium, driven by Playwright): decode the grid, point
at a cell, press a key, and hear it through Web Audio (assets/play.js)."""

import os
import shutil

import librosa
import numpy as np
import pytest

from app_helpers import running_app, write_tiny_checkpoints
from test_browser import CHROMIUM, CHROMIUM_ARGS, ERROR_BADGES, SCREENSHOTS_ENV, WAIT_MS, median_pitch

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
# A MIDI keyboard the test plays, offered through Web MIDI's own interface: chromium has no device here to ask
# permission for. The page gets it in place of navigator.requestMIDIAccess before play.js asks for one.
MIDI_KEYBOARD = """
window.testMidiInput = {type: "input", onmidimessage: null};
navigator.requestMIDIAccess = async () => ({inputs: new Map([["test", window.testMidiInput]]), onstatechange: null});
"""
# The analyser's window, 32 768 samples, is full of a note this long after it starts, by the page's audio clock:
# on a loaded machine that clock may stall and catch up, so wall time would not tell.
HEARD_SECONDS = 0.8
# What the loudspeakers receive now: the analyser's last 32 768 samples and the context's sample rate.
ANALYSER_SAMPLES = """() => {
  const {analyser, context} = window.nsynthPlay;
  analyser.fftSize = 32768;
  const samples = new Float32Array(analyser.fftSize);
  analyser.getFloatTimeDomainData(samples);
  return {samples: Array.from(samples), rate: context.sampleRate};
}"""


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    directory = tmp_path_factory.mktemp("checkpoints")
    write_tiny_checkpoints(directory)
    with running_app(directory, directory / "app.log") as url, playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM,
                                         args=[*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.add_init_script(MIDI_KEYBOARD)
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
    said = page.locator("#play-status").inner_text()  # what plays: the corners and the decoder
    assert said.startswith("3 × 3 cells between A ") and "decoded by the DDSP decoder at MIDI 48, 56, 64, 72" in said
    pad = page.locator("#play-pad")
    assert pad.locator(".cell").count() == 9  # 3 x 3 by default
    pad.scroll_into_view_if_needed()  # the mouse moves in the viewport's coordinates
    box = pad.bounding_box()
    page.mouse.move(box["x"] + 10, box["y"] + box["height"] - 10)  # a drag from the bottom left corner ...
    page.mouse.down()
    assert pad.locator(".cell.nearest").inner_text() == "r3c1"
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=5)
    assert pad.locator(".cell.nearest").inner_text() == "r2c2"  # ... follows the pointer
    page.mouse.up()
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


def play_midi(page, *keys, on=True):
    """Note on (or off) on channel 1 for each key; returns the page's audio clock before the first."""
    started = page.evaluate("window.nsynthPlay.context.currentTime")
    status, velocity = (0x90, 100) if on else (0x80, 0)
    for key in keys:
        page.evaluate(f"window.testMidiInput.onmidimessage({{data: [{status}, {key}, {velocity}]}})")
    return started


def heard_after(page, started: float) -> tuple[np.ndarray, float]:
    """(the samples the page sends to the loudspeakers, their rate) once notes begun at `started` fill them."""
    page.wait_for_function(f"window.nsynthPlay.context.currentTime > {started + HEARD_SECONDS}", polling=10)
    heard = page.evaluate(ANALYSER_SAMPLES)
    return np.array(heard["samples"], np.float32), heard["rate"]


def test_a_midi_keyboard_plays_keys_between_the_decoded_pitches_in_tune_and_chords(page):
    """The default grid is decoded at MIDI 48, 56, 64 and 72: key 67 is 64's note sped up, key 62 is it slowed
    down, and each is heard at its own pitch."""
    page.get_by_role("tab", name="Play").click()
    if page.evaluate("window.nsynthPlay.index === null"):
        page.get_by_role("button", name="Decode for playing", exact=True).click()
        page.wait_for_function("window.nsynthPlay.index !== null")
    assert page.evaluate("window.nsynthPlay.index.pitches") == [48, 56, 64, 72]
    for key in (67, 62):
        voices = page.evaluate("window.nsynthPlay.voicesStarted")
        played = play_midi(page, key)
        assert page.evaluate("window.nsynthPlay.voicesStarted") == voices + 1
        assert page.locator(f'#play-keys [data-key="{key}"]').get_attribute("class").endswith("down")
        assert abs(median_pitch(*heard_after(page, played)) - key) < 0.5
        play_midi(page, key, on=False)
        assert not page.locator(f'#play-keys [data-key="{key}"]').get_attribute("class").endswith("down")
    # A chord: both keys sound at once, each at its own fundamental (67's is not a harmonic of 60's).
    samples, rate = heard_after(page, play_midi(page, 60, 67))
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    for key in (60, 67):
        near = round(librosa.midi_to_hz(key) * len(samples) / rate)
        assert spectrum[near - 2:near + 3].max() > 0.1 * spectrum.max(), f"key {key} is not heard in the chord"
    play_midi(page, 60, 67, on=False)
    assert page.locator(ERROR_BADGES).count() == 0
