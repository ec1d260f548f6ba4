"""The Play tab's instrument in a real browser (Debian's chromium, driven by Playwright): the DDSP decoder runs in
the page (assets/synth/ through assets/play.js) and plays the example's four corners as soon as the tab opens, a
drag across the pad morphs between them, the Grid tab's corners replace them; on a phone everything fits and every
key can be reached; a browser without AudioWorklet plays the grid decoded on the server instead."""

import json
import os
import re
import shutil

import librosa
import numpy as np
import pytest

from tests.browser_helpers import (ANALYSER_SAMPLES, BLEND_NAMED, CHROMIUM, EMPTY_SPOT, ERROR_BADGES, HEARD_SECONDS,
                                   OVERFLOWING, SCREENSHOTS_ENV, SOUNDING, WAIT_MS, app_in_chromium, median_pitch)
from nsynth_core.exports import example_grid

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium")
SOUNDING_MS = 1000  # a pressed key is heard within a second
VIEWPORTS = {"laptop": (1280, 900), "phone": (390, 844)}
TAP_PX = 44  # the smallest tap target
SERVER_DECODES = {"decode_for_playing", "play_point", "soundfont"}
# A MIDI keyboard the test plays, offered through Web MIDI's own interface: chromium has no device here to ask
# permission for. The page gets it in place of navigator.requestMIDIAccess before play.js asks for one.
MIDI_KEYBOARD = """
window.testMidiInput = {type: "input", onmidimessage: null};
navigator.requestMIDIAccess = async () => ({inputs: new Map([["test", window.testMidiInput]]), onstatechange: null});
"""
NO_AUDIO_WORKLET = "delete window.AudioWorkletNode;"
CORNER_NAMES = "[...document.querySelectorAll('#play-pad .corner span')].map((name) => name.textContent)"
# Every key of the keyboard, scrolled into its box, and what a tap at its own part would reach: a white key's part
# below the black keys, a black key's middle.
KEY_TAPS = """() => [...document.querySelectorAll('#play-keys .key')].map((key) => {
  key.scrollIntoView({block: 'nearest', inline: 'nearest'});
  const box = key.getBoundingClientRect();
  const x = box.left + box.width / 2, y = key.classList.contains('black') ? box.top + box.height / 2 : box.bottom - 20;
  const reached = document.elementFromPoint(x, y)?.closest('.key');
  return {key: Number(key.dataset.key), width: box.width, height: box.height,
          reached: reached ? Number(reached.dataset.key) : null};
})"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with app_in_chromium(tmp_path_factory.mktemp("checkpoints"),
                         "--autoplay-policy=no-user-gesture-required") as (url, browser, _):
        yield url, browser


def open_page(served, viewport="laptop", init_script=MIDI_KEYBOARD):
    url, browser = served
    width, height = VIEWPORTS[viewport]
    page = browser.new_page(viewport={"width": width, "height": height}, has_touch=viewport == "phone")
    page.add_init_script(init_script)
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    page.wait_for_selector(".js-plotly-plot .scatterlayer .points path")
    return page


@pytest.fixture
def page(served):
    page = open_page(served)
    yield page
    page.close()


def open_play_tab(page):
    if not page.get_by_role("tab", name="Play").is_visible():  # a phone keeps the last tabs behind a menu
        page.locator(".overflow-menu button").first.click()
    page.get_by_role("tab", name="Play").or_(page.get_by_text("Play", exact=True)).last.click()
    page.locator("#play-keys .key").first.wait_for()


def screenshot(page, tmp_path, name):
    folder = os.environ.get(SCREENSHOTS_ENV) or str(tmp_path)
    os.makedirs(folder, exist_ok=True)
    page.locator("#play-surface").evaluate("element => element.scrollIntoView({block: 'start'})")
    page.screenshot(path=os.path.join(folder, name))


def heard_after(page, started: float) -> tuple[np.ndarray, float]:
    """(the samples the page sends to the loudspeakers, their rate) once what sounds since `started` (the audio
    clock's time) fills them."""
    page.wait_for_function(f"window.nsynthPlay.context.currentTime > {started + HEARD_SECONDS}", polling=10)
    heard = page.evaluate(ANALYSER_SAMPLES)
    return np.array(heard["samples"], np.float32), heard["rate"]


def audio_clock(page) -> float:
    return page.evaluate("window.nsynthPlay.context.currentTime")


def joined_api_names(page, requests) -> set[str]:
    """The api names of the events whose queue the page joined in `requests` (request bodies)."""
    names = {dependency["id"]: dependency.get("api_name") for dependency in
             page.evaluate("window.gradio_config.dependencies")}
    return {names.get(json.loads(body).get("fn_index")) for body in requests}


def test_the_pad_plays_the_example_corners_on_arrival_without_the_server(page, tmp_path):
    joined = []
    page.on("request", lambda request: joined.append(request.post_data) if "/queue/join" in request.url else None)
    open_play_tab(page)
    page.wait_for_function(f"{CORNER_NAMES}.length === 4")
    assert page.evaluate(CORNER_NAMES) == list(example_grid.CORNERS)  # A to D, in the pad's corners
    assert [text.split("\n")[0] for text in page.locator("#play-pad .corner").all_inner_texts()] == [
        "A · keyboard", "B · synth lead", "C · string", "D · mallet"]
    page.wait_for_function("window.nsynthPlay.corners !== null")
    assert not page.evaluate(SOUNDING)  # nothing sounds before a key is pressed
    page.keyboard.down("d")  # E4, and no button pressed before it
    page.wait_for_function(SOUNDING, timeout=SOUNDING_MS, polling=20)
    assert page.locator('#play-keys [data-key="64"]').get_attribute("class").endswith("down")
    page.keyboard.up("d")
    page.wait_for_function(f"!({SOUNDING})()", polling=50)  # released
    assert not joined_api_names(page, joined) & SERVER_DECODES  # the sound is made in the page
    assert page.evaluate("window.nsynthPlay.synth.errors") == []
    assert page.locator(ERROR_BADGES).count() == 0
    screenshot(page, tmp_path, "play_laptop.png")


def test_a_drag_from_corner_a_to_b_changes_the_sound(page):
    """A touch of the pad plays; held and dragged from the piano's corner to the sawtooth lead's, the sound
    follows: its spectrum moves to the brighter one."""
    open_play_tab(page)
    page.wait_for_function("window.nsynthPlay.corners !== null")
    pad = page.locator("#play-pad")
    pad.scroll_into_view_if_needed()  # the mouse moves in the viewport's coordinates
    box = pad.bounding_box()
    inset = 16  # inside the pad's rounded corners
    top = box["y"] + inset
    page.mouse.move(box["x"] + inset, top)
    page.mouse.down()
    page.wait_for_function(SOUNDING, timeout=SOUNDING_MS, polling=20)
    corner_a, rate = heard_after(page, audio_clock(page))
    page.mouse.move(box["x"] + box["width"] - inset, top, steps=10)
    assert page.evaluate("window.nsynthPlay.point.x") > 0.9
    corner_b, _ = heard_after(page, audio_clock(page))
    page.mouse.up()

    def centroid(samples):
        spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
        return float(np.sum(np.fft.rfftfreq(len(samples), 1 / rate) * spectrum) / np.sum(spectrum))

    assert np.sqrt(np.mean(corner_a ** 2)) > 1e-3 and np.sqrt(np.mean(corner_b ** 2)) > 1e-3
    assert centroid(corner_b) > 1.3 * centroid(corner_a)


def test_keys_play_their_exact_pitch_and_chords(page):
    """Web MIDI keys: each heard at its own pitch (no nearest decoded pitch sped up), two at once both heard."""
    open_play_tab(page)
    page.wait_for_function("window.nsynthPlay.corners !== null")
    for key in (67, 62):
        started = audio_clock(page)
        page.evaluate(f"window.testMidiInput.onmidimessage({{data: [0x90, {key}, 100]}})")
        assert abs(median_pitch(*heard_after(page, started)) - key) < 0.5
        page.evaluate(f"window.testMidiInput.onmidimessage({{data: [0x80, {key}, 0]}})")
        assert not page.locator(f'#play-keys [data-key="{key}"]').get_attribute("class").endswith("down")
    started = audio_clock(page)
    for key in (60, 67):
        page.evaluate(f"window.testMidiInput.onmidimessage({{data: [0x90, {key}, 100]}})")
    samples, rate = heard_after(page, started)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    for key in (60, 67):
        near = round(librosa.midi_to_hz(key) * len(samples) / rate)
        assert spectrum[near - 2:near + 3].max() > 0.1 * spectrum.max(), f"key {key} is not heard in the chord"
    for key in (60, 67):
        page.evaluate(f"window.testMidiInput.onmidimessage({{data: [0x80, {key}, 0]}})")


def test_the_grid_tabs_corners_replace_the_example(page):
    flute = "flute_acoustic_fluidr3_gm073-067-100"
    page.get_by_role("tab", name="Grid").click()
    corner_a = page.get_by_label("Corner A")
    corner_a.fill(flute)
    corner_a.press("Enter")
    open_play_tab(page)
    page.wait_for_function(f"{CORNER_NAMES}[0] === '{flute}'")
    assert page.evaluate(CORNER_NAMES)[1:] == list(example_grid.CORNERS[1:])
    page.keyboard.down("g")
    page.wait_for_function(SOUNDING, timeout=SOUNDING_MS, polling=20)
    page.keyboard.up("g")
    assert page.locator(ERROR_BADGES).count() == 0


def test_on_a_phone_the_instrument_fits_and_every_key_can_be_reached(served, tmp_path):
    page = open_page(served, "phone")
    open_play_tab(page)
    page.wait_for_function(f"{CORNER_NAMES}.length === 4")
    assert page.evaluate(OVERFLOWING) == []
    pad = page.locator("#play-pad").bounding_box()
    assert pad["width"] == pytest.approx(pad["height"], abs=1) and pad["x"] >= 0
    assert pad["x"] + pad["width"] <= VIEWPORTS["phone"][0]
    taps = page.evaluate(KEY_TAPS)
    assert len(taps) == 25
    for tap in taps:
        assert tap["reached"] == tap["key"], f"key {tap['key']} cannot be reached"
        assert tap["width"] >= TAP_PX and tap["height"] >= TAP_PX, f"key {tap['key']} is too small to tap"
    for control in page.locator("#play-envelope input").all():
        assert control.bounding_box()["height"] >= TAP_PX
    page.locator("#play-keys-scroll").evaluate("box => box.scrollLeft = 0")
    screenshot(page, tmp_path, "play_phone.png")
    page.locator("#play-pad").tap()  # a finger on the pad plays (how soon: the laptop's test and the benchmark)
    page.wait_for_function(SOUNDING, polling=20)
    page.close()


def test_a_clicked_map_place_is_shown_rounded_and_no_blend_line_waits_under_an_empty_player(page):
    spot = page.evaluate(EMPTY_SPOT)
    page.mouse.click(spot["x"], spot["y"])
    page.locator("#current-name", has_text=BLEND_NAMED).wait_for()  # the Explore tab played it
    open_play_tab(page)
    x = page.get_by_label("Map x")
    page.wait_for_function("(field) => field.value !== '0'", arg=x.element_handle())
    for field in (x, page.get_by_label("Map y")):
        assert re.fullmatch(r"-?\d+(\.\d)?", field.input_value()), field.input_value()
    blend_line = page.locator("#play-tab").get_by_text(re.compile(r"^Blend of "))
    assert blend_line.count() == 0  # the Play tab's own player is empty
    page.get_by_role("button", name="Play this point").click()
    blend_line.wait_for()
    assert page.locator(ERROR_BADGES).count() == 0


def test_the_soundfont_estimate_follows_the_play_tabs_own_note_length(page):
    open_play_tab(page)
    page.get_by_text("Decoding 81 cells at 16 pitches (1296 sounds) of 1 s").wait_for()
    length = page.get_by_label("number input for Note length (s)", exact=True).filter(visible=True)
    length.fill("3")
    length.press("Enter")
    page.get_by_text("Decoding 81 cells at 16 pitches (1296 sounds) of 3 s").wait_for()


def test_the_soundfont_downloads(page, tmp_path):
    open_play_tab(page)
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


def test_without_audio_worklet_the_grid_decoded_on_the_server_plays(served):
    """The fallback: said once, its settings in a closed accordion; keys between its decoded pitches (48, 56, 64,
    72) play the nearest sped up or slowed down, in tune."""
    page = open_page(served, init_script=MIDI_KEYBOARD + NO_AUDIO_WORKLET)
    open_play_tab(page)
    assert "cannot run the synthesiser" in page.locator("#play-status").inner_text()
    page.get_by_role("button", name="Play without the in-page synthesiser").click()
    page.get_by_role("button", name="Decode for playing", exact=True).click()
    page.wait_for_function("window.nsynthPlay.index !== null")
    assert page.evaluate("window.nsynthPlay.index.pitches") == [48, 56, 64, 72]
    assert page.locator("#play-pad .cell").count() == 9
    started = audio_clock(page)
    page.evaluate("window.testMidiInput.onmidimessage({data: [0x90, 67, 100]})")
    assert page.evaluate("window.nsynthPlay.voicesStarted") == 1
    assert abs(median_pitch(*heard_after(page, started)) - 67) < 0.5
    page.evaluate("window.testMidiInput.onmidimessage({data: [0x80, 67, 0]})")
    assert page.locator(ERROR_BADGES).count() == 0
    page.close()
