"""A visitor in a real browser (Debian's chromium, driven by Playwright): upload -> map -> grid -> play."""

import json
import os
import shutil
import time

import librosa
import numpy as np
import pytest
import soundfile as sf

from tests.browser_helpers import (ARM_CLICK_TIMER, CHROMIUM, EMPTY_SPOT, ERROR_BADGES, SCREENSHOTS_ENV, WAIT_MS,
                                   app_in_chromium, downloaded_audio, median_pitch)

AIM_MS = 2_000  # how long a pointer rests on a note for plotly's hover to find it before it aims again

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    with app_in_chromium(tmp_path_factory.mktemp("checkpoints")) as (url, browser, _):
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(WAIT_MS)
        page.goto(url)
        yield page


# The note ids plotly's hover holds now (plotly reports a click on the note its last hover found).
HOVERED_NOTES = """() => (document.querySelector('.js-plotly-plot')._hoverdata || [])
  .map((point) => Array.isArray(point.customdata) ? point.customdata[0] : point.customdata).filter(Boolean)"""


MAP_CLICK = "document.querySelector('#map-click textarea').value"  # what the page last reported of a click on the map
# The map drawn now, kept to tell when it has been drawn anew.
KEEP_MAP = "() => { window.mapKept = document.querySelector('.js-plotly-plot').data; }"
# The map has been drawn anew since KEEP_MAP, with the played point where the last click on it was (the clicked
# place, in the map's coordinates).
MARKED_WHERE_CLICKED = f"""() => {{
  const click = JSON.parse({MAP_CLICK});
  const map = document.querySelector('.js-plotly-plot').data;
  const played = (map || []).find((trace) => trace.name === 'played point');
  return map !== window.mapKept && Boolean(played) && Math.abs(played.x[0] - click.x) < 1e-9
    && Math.abs(played.y[0] - click.y) < 1e-9;
}}"""


def click_first_example(page) -> str:
    """Point at a bundled note where it is drawn, wait for plotly's hover to find it, and click it; its id.

    As a visitor's pointer does: plotly finds the hovered note at most every 50 ms, so a pointer that jumps onto
    a note and presses at once can click before the hover has caught up, and the press then counts as one on
    empty space. And as a visitor's eye does: if the page moves under the pointer (a redrawn map, a block above it
    that grew), the note is aimed at again where it is now drawn.
    """
    point = page.locator(".js-plotly-plot .scatterlayer .trace").first.locator(".points path").first
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:
        point.scroll_into_view_if_needed()  # a button pressed lower on the page may have scrolled the map away
        x, y = centre(point.bounding_box())
        page.mouse.move(x - 2, y - 2)
        page.mouse.move(x, y)
        try:
            page.wait_for_function(f"({HOVERED_NOTES})().length > 0", timeout=AIM_MS)
        except playwright.TimeoutError:
            pass
        else:
            hovered = page.evaluate(HOVERED_NOTES)  # empty again if the map was redrawn meanwhile
            if hovered and centre(point.bounding_box()) == (x, y):  # still under the pointer: this note's hover
                page.mouse.click(x, y)
                return hovered[0]
        assert time.monotonic() < deadline, "plotly's hover never found the note under the pointer"


def centre(box) -> tuple[float, float]:
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_a_click_between_notes_plays_the_blend_there_at_the_chosen_pitch(page):
    page.get_by_role("tab", name="Explore").click()
    page.wait_for_selector(".js-plotly-plot .scatterlayer .points path")
    page.get_by_text("Settings: models, pitch, octave").click()  # the pitch waits in the closed settings panel
    pitch = page.get_by_label("Pitch (MIDI) of every decoded sound")
    for midi in (60, 72):
        pitch.fill(str(midi))
        pitch.press("Enter")
        assert pitch.input_value() == str(midi)
        spot = page.evaluate(EMPTY_SPOT)  # now: setting the pitch may have scrolled the page
        assert spot is not None
        page.evaluate(ARM_CLICK_TIMER)
        page.evaluate(KEEP_MAP)
        page.mouse.click(spot["x"], spot["y"])
        milliseconds = page.evaluate("() => window.clickToAudio")
        if milliseconds is None:
            page.screenshot(path="/tmp/click_failed.png")
        assert milliseconds is not None, "no sound reached the Explore player within 30 s of the click"
        print(f"map click to audio at MIDI {midi}: {milliseconds:.0f} ms")
        heard = page.get_by_text(f"decoded by the DDSP decoder at MIDI {midi}")
        heard.wait_for()
        assert heard.inner_text().startswith("Blend of ")  # the nearest notes and their weights are named
        audio, rate = downloaded_audio(page, page.locator("#selected-player"))
        assert np.abs(audio).max() > 0.01
        assert abs(median_pitch(audio, rate) - midi) < 0.5
        page.wait_for_function(MARKED_WHERE_CLICKED)  # the map is redrawn once more, after the sound
    assert page.locator(ERROR_BADGES).count() == 0


def test_upload_map_grid_play(page, tmp_path):
    page.wait_for_selector(".js-plotly-plot .scatterlayer .points path")  # the bundled map is drawn on load
    tone = tmp_path / "my_tone.wav"
    sf.write(tone, 0.5 * np.sin(2 * np.pi * 330 * np.arange(16000) / 16000), 16000)
    page.locator("input[type=file]").first.set_input_files(str(tone))
    page.get_by_text("Your notes:").wait_for()
    page.get_by_text("your notes", exact=True).wait_for()  # the upload is placed in the map
    page.get_by_role("button", name="Use as A", exact=True).click()

    example = click_first_example(page)
    assert "fluidr3" in example  # a bundled note, not the upload
    page.wait_for_function(f"{MAP_CLICK}.includes({example!r})")
    page.get_by_role("button", name="Use as B", exact=True).click()

    page.get_by_role("tab", name="Grid").click()
    page.get_by_label("line (A to B)").check()
    steps = page.get_by_label("number input for Cells per side", exact=True)
    steps.fill("2")
    steps.press("Enter")
    length = page.get_by_label("number input for Length (s)")
    length.fill("0.1")
    length.press("Enter")
    page.get_by_text("Decoding 2 cells of 0.1 s").wait_for()  # the expected time is stated before decoding
    page.get_by_role("button", name="Generate grid", exact=True).click()

    for label in ("step1: A 100 %", "step2: B 100 %"):  # each cell says which corners it is made of
        player = page.locator(".block", has=page.get_by_text(label, exact=True)).last
        player.locator("a[download]").first.wait_for(state="attached")
        audio, rate = downloaded_audio(page, player)
        assert rate == 16000 and len(audio) == 1600 and np.abs(audio).max() > 0
    first = page.locator(".block", has=page.get_by_text("step1: A 100 %", exact=True)).last
    first.get_by_role("button", name="Play", exact=True).click()
    first.get_by_role("button", name="Pause", exact=True).wait_for()
    archive = page.locator(".block", has=page.get_by_text("Download every cell")).last
    assert archive.locator("a[download]").first.get_attribute("href").endswith("nsynth_grid.zip")


def test_a_press_the_moment_the_pointer_lands_on_a_note_selects_that_note(page):
    """Plotly's hover lags the pointer by up to 50 ms: a press before it catches up is still a press on the note
    under the pointer, whether the pointer came from empty space or from another note."""
    page.get_by_role("tab", name="Explore").click()
    page.wait_for_selector(".js-plotly-plot .scatterlayer .points path")
    spot = page.evaluate(EMPTY_SPOT)  # first: it scrolls the map into view
    # Each drawn point with its note id (from its trace's data; marks such as the current sound's ring have none).
    notes = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot .scatterlayer .points path')]
      .map((point) => { const box = point.getBoundingClientRect();
                        const trace = point.closest('.trace')?.__data__?.[0]?.trace;
                        const data = trace?.customdata?.[point.__data__?.i];
                        return [box.x + box.width / 2, box.y + box.height / 2, Array.isArray(data) ? data[0] : data]; })
      .filter((note) => note[2])""")
    centres = [(nx, ny) for nx, ny, _ in notes]

    def crowding(note):  # the distance to its nearest neighbour: overlapping notes leave plotly a choice
        return min((note[0] - ox) ** 2 + (note[1] - oy) ** 2 for ox, oy in centres if (ox, oy) != tuple(note[:2]))

    x, y, alone = max(notes, key=crowding)  # a note with no other under the pointer
    farthest = max(centres, key=lambda centre: (centre[0] - x) ** 2 + (centre[1] - y) ** 2)
    for start in ({"x": spot["x"], "y": spot["y"]}, {"x": farthest[0], "y": farthest[1]}):
        before = page.evaluate(MAP_CLICK)
        page.mouse.move(start["x"], start["y"])  # plotly hovers here at once, so its next look waits 50 ms
        page.mouse.move(x, y, steps=4)  # a hand's jump passes over the map on its way, as plotly sees it
        page.mouse.down()
        page.mouse.up()
        page.wait_for_function(f"{MAP_CLICK} !== {before!r}")
        reported = page.evaluate(MAP_CLICK)
        assert json.loads(reported).get("id") == alone  # the note there, not a blend
        page.wait_for_timeout(300)
        assert page.evaluate(MAP_CLICK) == reported  # told once
        page.mouse.move(spot["x"], spot["y"])
        page.wait_for_timeout(100)


def test_how_it_works_walks_the_five_steps(page, tmp_path):
    """At a classroom projector's 1280 x 720, every step is drawn, without an error, and the link reconstructs."""
    shots = os.environ.get(SCREENSHOTS_ENV) or str(tmp_path)
    os.makedirs(shots, exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 720})
    page.get_by_role("tab", name="How it works").click()
    page.get_by_text("through the model").wait_for()
    page.get_by_text("What each costs here").wait_for()  # the last step, computed after the others
    tab = page.locator("#how-it-works")  # the Grid tab may say the same of its own grid
    tab.get_by_text("Decoded by the DDSP decoder").wait_for()  # the tiny checkpoints include one
    assert tab.locator(".js-plotly-plot").count() == 6  # step 2 has the note's path on the map too
    for number, heading in enumerate(["1. Sound as numbers", "2. The encoder's code",
                                      "3. The decoder, one sample at a time", "4. Mixing codes",
                                      "5. Three decoders side by side"], start=1):
        tab.get_by_role("heading", name=heading).evaluate("element => element.scrollIntoView({block: 'start'})")
        page.screenshot(path=os.path.join(shots, f"how-it-works-{number}.png"))
    before = page.evaluate(MAP_CLICK)
    sound = tab.locator(".js-plotly-plot .nsewdrag").first  # a click on a figure other than the map plays nothing
    sound.scroll_into_view_if_needed()
    x, y = centre(sound.bounding_box())
    page.mouse.move(x, y)
    page.wait_for_timeout(200)
    page.mouse.click(x, y)
    page.wait_for_timeout(500)
    assert page.evaluate(MAP_CLICK) == before
    quantised = page.locator(".block", has=page.get_by_text("rounded to 256 levels")).last
    quantised.locator("a[download]").first.wait_for(state="attached")
    assert page.locator(ERROR_BADGES).count() == 0 and page.get_by_text("Error", exact=True).count() == 0

    page.get_by_role("button", name="Hear this note's three reconstructions (Reconstruct tab)", exact=True).click()
    page.get_by_role("button", name="Reconstruct", exact=True).wait_for(state="visible")  # the tab switched
    # Only the Reconstruct tab's DDSP player offers a download among the blocks that say "DDSP".
    reconstructed = page.locator(".block", has=page.get_by_text("DDSP", exact=True))
    reconstructed.locator("a[download]").first.wait_for(state="attached")
    assert page.locator(ERROR_BADGES).count() == 0
    page.set_viewport_size({"width": 1400, "height": 1100})
