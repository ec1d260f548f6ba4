"""A first visit in a real browser: a ready example to hear, uploads one after another, a refusal shown once,
Reconstruct's own settings, a corrected pitch, whole note ids in the corner boxes; the first screen (the map and a
sound to play in view at a laptop's and a phone's size, labels a projector's class can read) and one current sound
that a click sets, the map marks and the other tabs start from; and screenshots at a laptop's and a phone's size
(to $NSYNTH_SCREENSHOTS, else the test's folder)."""

import os
import re
import shutil

import numpy as np
import pytest
import soundfile as sf

from tests.app_helpers import wait_for_warm_up
from tests.browser_helpers import BLEND_NAMED, CHROMIUM, EMPTY_SPOT, OVERFLOWING, app_in_chromium, downloaded_audio
from nsynth_core.exports import example_grid
from nsynth_core.explorer.notes import bundled_notes
from nsynth_core.exports.files import PLAY_ALL_GAP
from webapp.explore_tab import PLAYER_READY

WAIT_MS = 120_000
SCREENSHOTS_ENV = "NSYNTH_SCREENSHOTS"
ERROR_BADGES = ".error-container, .error-bubble, .status-tracker.error"  # a component's own "Error" badge
ERROR_TOASTS = ".toast-body.error"
VIEWPORTS = {"laptop": (1280, 900), "phone": (390, 844)}
PROJECTOR = (1280, 720)
SMALLEST_READABLE_PX = 14
MAP_DRAWN = "#map .js-plotly-plot .scatterlayer .points path"
SOUND_HELD_MS = 3000
# Whether the plotting library had loaded when the current sound's player first had its sound ready.
PLOTLY_WHEN_PLAYABLE = """(() => new MutationObserver((changes, observer) => {
  if (!(%s)) return;
  window.plotlyWhenPlayable = window.Plotly !== undefined;
  observer.disconnect();
}).observe(document, {subtree: true, childList: true, characterData: true}))()""" % PLAYER_READY
# The part of an element's box outside the window (px above, below, left of, right of it).
OUTSIDE_THE_WINDOW = """(el) => { const box = el.getBoundingClientRect();
  return [-box.top, box.bottom - innerHeight, -box.left, box.right - innerWidth].map((px) => Math.max(0, px)); }"""
# Text drawn smaller than a projector's back row can read, within the first screen: [text, px].
# Gradio's timers of an event in progress ("0.3s"): they come and go while the page loads, not labels to read.
SMALL_TEXT = f"""() => {{
  const PROGRESS_TIMERS = '.meta-text, .meta-text-center, .progress-text';
  const small = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {{
    const el = node.parentElement, text = node.textContent.trim();
    if (!text || !el || el.closest('.visually-hidden, .sr-only, script, style, ' + PROGRESS_TIMERS)) continue;
    const box = el.getBoundingClientRect(), style = getComputedStyle(el);
    if (!box.width || !box.height || style.visibility === 'hidden' || box.top >= innerHeight || box.bottom <= 0)
      continue;
    if (parseFloat(style.fontSize) < {SMALLEST_READABLE_PX}) small.push([text, style.fontSize]);
  }}
  return small;
}}"""
# The traces of the map drawn now, by name.
MAP_TRACES = "() => (document.querySelector('#map .js-plotly-plot').data || []).map((trace) => trace.name)"
# The words of an element's table cells that the layout breaks over two lines or more.
BROKEN_WORDS = """selector => {
    const broken = [];
    for (const cell of document.querySelectorAll(`${selector} td, ${selector} th`)) {
        const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            for (const word of node.textContent.matchAll(/[^\\s-]+/g)) {  // a break after a hyphen is fine
                const range = document.createRange();
                range.setStart(node, word.index);
                range.setEnd(node, word.index + word[0].length);
                if (range.getClientRects().length > 1) broken.push(word[0]);
            }
        }
    }
    return broken;
}"""

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with app_in_chromium(tmp_path_factory.mktemp("checkpoints")) as served:
        yield served


@pytest.fixture
def page(served):
    url, browser, _ = served
    width, height = VIEWPORTS["laptop"]
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    page.wait_for_selector(".js-plotly-plot .scatterlayer .points path")
    yield page
    page.close()


def screenshot_folder(tmp_path):
    folder = os.environ.get(SCREENSHOTS_ENV) or str(tmp_path)
    os.makedirs(folder, exist_ok=True)
    return folder


def tone(path, frequency, seconds=1.0, amplitude=0.5):
    t = np.arange(round(seconds * 16000)) / 16000
    sf.write(path, amplitude * np.sin(2 * np.pi * frequency * t) * np.exp(-2 * t), 16000)
    return path


def upload(page, path):
    page.locator("#uploads input[type=file]").set_input_files(str(path))


def test_the_first_visit_offers_a_ready_example(page):
    """Before anything is chosen: the example's line and all its cells in one track in the current sound's player,
    beside the map; on the Grid tab its corners, the same track and each of its nine cells, playable."""
    example = example_grid.load_example()
    page.get_by_text("Hear an example first").wait_for()
    top = page.locator("#selected-player")
    top.locator("a[download]").first.wait_for(state="attached")
    audio, rate = downloaded_audio(page, top)
    cells, samples = example.cells.shape
    with_gap = samples + round(PLAY_ALL_GAP * rate)
    assert rate == 16000 and len(audio) == cells * with_gap
    heard = np.round(audio * 32768).astype(np.int16).reshape(cells, with_gap)
    np.testing.assert_array_equal(heard[:, :samples], example.cells)  # the shipped cells, row by row
    assert not heard[:, samples:].any()

    page.get_by_role("tab", name="Grid").click()
    page.get_by_role("tabpanel").get_by_text(example_grid.DESCRIPTION).wait_for()
    for corner, note_id in zip("ABCD", example.corners):
        assert note_id in page.get_by_label(f"Corner {corner}").input_value()
    page.locator("#play-all", has_text="row by row from the top left (r1c1, r1c2, r1c3, …, r3c3)").wait_for()
    for label, made_of in zip(example.labels, example.mixes):  # each cell says which corners it leans on
        player = page.locator(".block", has=page.get_by_text(f"{label}: {made_of}", exact=True)).last
        player.locator("a[download]").first.wait_for(state="attached")
    middle = page.locator(".block", has=page.get_by_text(f"r2c2: {example.mixes[4]}", exact=True)).last
    middle.get_by_role("button", name="Play", exact=True).click()
    middle.get_by_role("button", name="Pause", exact=True).wait_for()


# Where a text box's text ends and where its room for text ends (before the dropdown's arrow), in page pixels.
TEXT_AND_ROOM = """(box) => {
  const style = getComputedStyle(box), area = box.getBoundingClientRect();
  const pen = document.createElement('canvas').getContext('2d');
  pen.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
  const arrow = box.closest('.wrap').querySelector('.dropdown-arrow');
  const room = Math.min(area.right - parseFloat(style.paddingRight),
                        arrow ? arrow.getBoundingClientRect().left : Infinity);
  return [area.left + parseFloat(style.paddingLeft) + pen.measureText(box.value).width, room];
}"""


def test_the_first_sound_is_ready_before_the_map_loads_its_plotting_library(served):
    """The map's plotting library is a large script that keeps the page busy while it loads: the current sound's
    player is ready to play first, and the map follows, even when the sound is slow to arrive (here it is held
    until the map is drawn or a while has passed)."""
    url, browser, log = served
    wait_for_warm_up(log)  # the examples encoded: the map is quick to come
    page = browser.new_page(viewport=dict(zip(("width", "height"), VIEWPORTS["laptop"])))
    page.set_default_timeout(WAIT_MS)
    page.add_init_script(PLOTLY_WHEN_PLAYABLE)
    held = []
    page.route(re.compile(r"/gradio_api/file=.*\.wav$"), lambda route: held.append(route))
    page.goto(url)
    try:
        page.wait_for_selector(MAP_DRAWN, timeout=SOUND_HELD_MS)
    except playwright.TimeoutError:
        pass
    for route in held:
        route.continue_()
    page.unroute_all()
    page.wait_for_function("window.plotlyWhenPlayable !== undefined")
    assert page.evaluate("window.plotlyWhenPlayable") is False
    page.wait_for_selector(MAP_DRAWN)
    page.close()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_corner_boxes_show_whole_note_ids(served, viewport, tmp_path):
    """The example's corner B is as long as any bundled note's label (synth_lead, FluidR3): none may be cut."""
    examples = {note.id: note for note in bundled_notes()}
    assert max(len(examples[note_id].label) for note_id in example_grid.CORNERS) == max(
        len(note.label) for note in examples.values())
    url, browser, _ = served
    width, height = VIEWPORTS[viewport]
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    page.get_by_role("tab", name="Grid").click()
    page.wait_for_function("document.querySelector('#play-all a[download]') !== null")
    for corner, note_id in zip("ABCD", example_grid.CORNERS):
        box = page.get_by_label(f"Corner {corner}")
        page.wait_for_function("(box) => box.value.includes('(')", arg=box.element_handle())  # its label shown
        assert note_id in box.input_value()
        text_end, room_end = box.evaluate(TEXT_AND_ROOM)
        assert text_end <= room_end, f"corner {corner} cut at {viewport}: text ends at {text_end}, room at {room_end}"
    page.screenshot(path=os.path.join(screenshot_folder(tmp_path), f"grid_tab_{viewport}.png"), full_page=True)
    page.close()


BOX_EMPTY = "document.querySelectorAll('#uploads tbody tr').length === 0"  # no file listed in the upload box


def test_each_upload_reads_only_its_own_files_and_a_refused_one_does_not_stay(page, served, tmp_path):
    _, _, log = served
    upload(page, tone(tmp_path / "first_tone.wav", 220))
    page.locator("#summary", has_text="first_tone").wait_for()  # the upload has been read and placed
    page.wait_for_function(BOX_EMPTY)
    upload(page, tone(tmp_path / "second_tone.wav", 330))
    page.locator("#summary", has_text="second_tone").wait_for()
    assert "first_tone" in page.locator("#summary").inner_text()
    page.wait_for_function(BOX_EMPTY)
    logged = log.read_text()
    assert logged.count("Read upload first_tone\n") == 1 and logged.count("Read upload second_tone\n") == 1

    silent = tmp_path / "silent_take.wav"
    sf.write(silent, np.zeros(16000), 16000)
    upload(page, silent)
    page.locator(".toast-body", has_text="silent").first.wait_for()
    page.wait_for_function(BOX_EMPTY)
    upload(page, tone(tmp_path / "third_tone.wav", 440))
    page.locator("#summary", has_text="third_tone").wait_for()
    assert log.read_text().count("'silent_take' is silent") == 1  # refused once, not again with the next upload


def test_a_refused_request_shows_one_badge_not_one_per_output(page):
    page.get_by_role("tab", name="Reconstruct").click()
    tab = page.locator("#reconstruct-tab")
    tab.get_by_label("Note").fill("a note of another visitor")
    tab.get_by_label("Note").press("Enter")
    tab.get_by_role("button", name="Reconstruct", exact=True).click()
    page.locator(".toast-body", has_text="That note is no longer available").first.wait_for()
    assert page.locator(ERROR_BADGES).count() <= 1


def test_reconstruct_has_its_own_settings_and_rainbowgrams_with_axes(page, served, tmp_path):
    page.get_by_role("tab", name="Reconstruct").click()
    tab = page.locator("#reconstruct-tab")
    assert tab.get_by_label("number input for Length (s)").input_value() == "2"
    assert tab.get_by_label("number input for WaveNet temperature").input_value() == "0.25"
    length = tab.get_by_label("number input for Length (s)")
    length.fill("0.5")
    length.press("Enter")
    picker = tab.get_by_label("Note")
    picker.click()
    picker.press("ArrowDown")
    picker.press("Enter")
    tab.get_by_role("button", name="Reconstruct", exact=True).click()
    tab.locator(".js-plotly-plot").nth(3).wait_for()  # the original and three reconstructions
    assert tab.locator(".js-plotly-plot .xtitle", has_text="time (s)").count() == 4
    assert tab.locator(".js-plotly-plot .ytick", has_text="C4").count() == 4
    page.screenshot(path=os.path.join(screenshot_folder(tmp_path), "reconstruct.png"), full_page=True)


def test_a_wrong_pitch_estimate_can_be_corrected(page, tmp_path):
    upload(page, tone(tmp_path / "bell_like.wav", 261.63))  # C4
    page.locator("#summary", has_text="bell_like").wait_for()
    pitch = page.get_by_label("Its pitch (MIDI; 60 is middle C)")
    page.wait_for_function("document.querySelector('#note-pitch input').value === '60'")
    pitch.fill("48")
    page.get_by_role("button", name="Correct the pitch of my note").click()
    page.locator("#summary", has_text=re.compile(r"bell_like \([a-z_]+\?, C3\)")).wait_for()  # a family guess
    the_map = page.locator("#explore-columns .js-plotly-plot")
    the_map.locator(".legendtext", has_text="your notes").wait_for()  # placed as a star
    the_map.locator(".scatterlayer .textpoint", has_text="bell_like").wait_for()  # and named beside it
    the_map.screenshot(path=os.path.join(screenshot_folder(tmp_path), "own_note.png"))


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_screenshots_for_review(served, viewport, tmp_path):
    url, browser, _ = served
    width, height = VIEWPORTS[viewport]
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    page.wait_for_selector(".js-plotly-plot .scatterlayer .points path")
    page.screenshot(path=os.path.join(screenshot_folder(tmp_path), f"first_visit_{viewport}.png"), full_page=True)
    assert page.locator(ERROR_BADGES).count() == 0
    plot_top = page.locator(".js-plotly-plot").first.bounding_box()["y"] + page.evaluate("window.scrollY")
    assert plot_top < 2 * height  # the map is within the first two screens, even on a phone
    plot, title = (page.locator(f".js-plotly-plot {part}").first.bounding_box() for part in ("", ".gtitle"))
    assert title["x"] >= plot["x"] and title["x"] + title["width"] <= plot["x"] + plot["width"]  # not cut off
    if not page.get_by_role("tab", name="About").is_visible():  # a phone keeps the last tabs behind a menu
        page.locator(".overflow-menu button").first.click()
    page.get_by_text("About", exact=True).last.click()
    page.locator("#about table").first.wait_for()
    page.screenshot(path=os.path.join(screenshot_folder(tmp_path), f"about_{viewport}.png"), full_page=True)
    assert page.evaluate(BROKEN_WORDS, "#about") == []  # a squeezed column wraps its words letter by letter
    page.close()


# --- the first screen and the current sound ----------------------------------------------------------------------

def opened(served, size):
    url, browser, _ = served
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    page.wait_for_selector(MAP_DRAWN)
    return page


def play_control(page):
    return page.locator("#selected-player").get_by_role("button", name=re.compile("^(Play|Pause)$"))


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_map_and_a_sound_to_play_fill_the_first_screen(served, viewport, tmp_path):
    page = opened(served, VIEWPORTS[viewport])
    page.locator("#selected-player a[download]").first.wait_for(state="attached")  # the example, ready to play
    for what, element in (("the map", page.locator("#map .js-plotly-plot")), ("the play button", play_control(page)),
                          ("what plays", page.locator("#playing"))):
        assert element.evaluate(OUTSIDE_THE_WINDOW) == [0, 0, 0, 0], f"{what} is not in the first view"
    assert page.locator("#playing").inner_text() == "Playing: DDSP decoder, each note's own pitch."
    seen = page.locator("body").inner_text()
    assert "parameters" not in seen and "tiny-wavenet" not in seen  # no model internals until asked for
    assert not page.get_by_label("WaveNet checkpoint").is_visible()
    page.screenshot(path=os.path.join(screenshot_folder(tmp_path), f"first_screen_{viewport}.png"))
    page.close()


def test_a_projector_reads_every_label_of_the_first_screen(served, tmp_path):
    page = opened(served, PROJECTOR)
    page.locator("#selected-player a[download]").first.wait_for(state="attached")
    assert page.evaluate(SMALL_TEXT) == []
    page.screenshot(path=os.path.join(screenshot_folder(tmp_path), "first_screen_projector.png"))
    page.close()


def test_a_click_between_notes_is_the_current_sound_everywhere_on_a_phone(served, tmp_path):
    page = opened(served, VIEWPORTS["phone"])
    picker = page.get_by_label("Note (or click one on the map)")
    picker.click()
    picker.press("ArrowDown")
    picker.press("Enter")
    chosen = picker.input_value()
    page.locator("#current-name", has_text="the note as recorded").wait_for()
    page.wait_for_function(f"({MAP_TRACES})().includes('current sound')")  # the chosen note is ringed

    spot = page.evaluate(EMPTY_SPOT)
    page.mouse.click(spot["x"], spot["y"])
    page.locator("#current-name", has_text=BLEND_NAMED).wait_for()
    page.wait_for_function(f"({MAP_TRACES})().includes('played point')")  # the blend's place is marked
    assert "current sound" not in page.evaluate(MAP_TRACES)
    assert picker.input_value() == ""  # the note chosen before is no longer the current sound
    assert page.evaluate(OVERFLOWING) == []
    page.screenshot(path=os.path.join(screenshot_folder(tmp_path), "blend_heard_phone.png"))
    blend = page.locator("#current-name").inner_text()

    page.get_by_role("button", name="Use as A", exact=True).click()
    page.get_by_role("button", name="Reconstruct it", exact=True).click()
    tab = page.locator("#reconstruct-tab")
    tab.locator(".js-plotly-plot").nth(3).wait_for()  # the original and three reconstructions
    nearest = tab.get_by_label("Note").input_value()
    assert nearest and nearest != chosen and nearest.split(" (")[0] in blend  # the blend's nearest note
    assert page.locator(ERROR_BADGES).count() == 0 and page.locator(ERROR_TOASTS).count() == 0
    page.get_by_role("tab", name="Grid").click()
    assert page.get_by_label("Corner A").input_value() == nearest
    page.close()


def test_reconstruct_with_nothing_chosen_reconstructs_a_note(served):
    page = opened(served, VIEWPORTS["laptop"])
    page.get_by_role("tab", name="Reconstruct").click()
    tab = page.locator("#reconstruct-tab")
    page.wait_for_function("(box) => box.value !== ''", arg=tab.get_by_label("Note").element_handle())  # on a note
    tab.get_by_label("Note").fill("")
    tab.get_by_role("button", name="Reconstruct", exact=True).click()
    tab.locator(".js-plotly-plot").nth(3).wait_for()
    assert page.locator(ERROR_BADGES).count() == 0 and page.locator(ERROR_TOASTS).count() == 0
    page.close()
