"""Every tab in a real browser on a laptop (1280 x 900) and a phone (390 x 844): each tab's main action works,
nothing reaches past the screen's right edge, no error shows, and the result fits the screen once scrolled to."""

import os
import shutil

import pytest

from tests.browser_helpers import (BLEND_NAMED, CHROMIUM, EMPTY_SPOT, ERROR_BADGES, LEGEND_SCROLLS, OVERFLOWING,
                                   SCREENSHOTS_ENV, WAIT_MS, app_in_chromium)

VIEWPORTS = {"laptop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
TABS = ["Explore", "Grid", "Reconstruct", "How it works", "Play", "About"]
PLOTS_IN_THE_WALK_THROUGH = 6

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium")

# How far a region (every element matching the selector, together) reaches from its top to its bottom, in px.
REGION_HEIGHT = """(selector) => {
  const boxes = [...document.querySelectorAll(selector)].map((el) => el.getBoundingClientRect())
    .filter((box) => box.height > 0);
  return Math.max(...boxes.map((box) => box.bottom)) - Math.min(...boxes.map((box) => box.top));
}"""
# The visible players of a grid's cells, as [row top, left] of each.
CELL_PLACES = """() => [...document.querySelectorAll('.grid-cells > .block')]
  .filter((el) => el.getBoundingClientRect().height > 0)
  .map((el) => [Math.round(el.getBoundingClientRect().top), Math.round(el.getBoundingClientRect().left)])"""


@pytest.fixture(scope="module")
def browser_and_url(tmp_path_factory):
    with app_in_chromium(tmp_path_factory.mktemp("checkpoints")) as (url, browser, _):
        yield browser, url


@pytest.fixture(params=list(VIEWPORTS))
def page(request, browser_and_url):
    browser, url = browser_and_url
    page = browser.new_page(viewport=VIEWPORTS[request.param], has_touch=request.param == "phone")
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    page.wait_for_selector(".js-plotly-plot .scatterlayer .points path")  # the page has loaded its map
    yield page
    page.close()


def screenshot(page, name, tmp_path):
    folder = os.environ.get(SCREENSHOTS_ENV) or str(tmp_path)
    os.makedirs(folder, exist_ok=True)
    page.screenshot(path=os.path.join(folder, f"{name}-{page.viewport_size['width']}.png"), full_page=True)


def open_tab(page, name):
    """Every tab is in the bar itself, none behind a "…" menu, and within the screen's width."""
    width = page.viewport_size["width"]
    for tab in TABS:
        box = page.get_by_role("tab", name=tab, exact=True).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, tab
    assert not page.get_by_role("button", name="More tabs").is_visible()
    page.get_by_role("tab", name=name, exact=True).click()


def assert_fits(page):
    assert page.evaluate(OVERFLOWING) == []
    assert page.locator(ERROR_BADGES).count() == 0


def assert_shown_and_fits(page, element, name, tmp_path):
    """`element`, scrolled to, is in view; the page fits and shows no error; a screenshot named `name`."""
    element.scroll_into_view_if_needed()
    assert element.is_visible()
    assert_fits(page)
    screenshot(page, name, tmp_path)


def test_a_3_by_3_grid_is_a_square_of_players_that_fits_the_screen(page, tmp_path):
    open_tab(page, "Grid")
    page.get_by_role("button", name="Generate grid").click()
    page.get_by_text("Decoded by the DDSP decoder").wait_for()
    page.locator(".grid-cells").nth(2).locator("a[download]").first.wait_for(state="attached")
    places = page.evaluate(CELL_PLACES)
    rows = sorted({top for top, _ in places})
    assert len(places) == 9 and len(rows) == 3 and all(sum(top == row for top, _ in places) == 3 for row in rows)
    page.locator(".grid-cells").first.scroll_into_view_if_needed()
    assert page.evaluate(REGION_HEIGHT, ".grid-cells") <= page.viewport_size["height"]
    assert_fits(page)
    screenshot(page, "grid", tmp_path)
    # The map was redrawn with the grid's cells while hidden; shown again, it fits the screen's width.
    page.get_by_role("tab", name="Explore", exact=True).click()
    page.wait_for_function("() => { const svg = document.querySelector('#map .main-svg');"
                           " return svg && svg.getBoundingClientRect().right <= document.documentElement.clientWidth; }")
    assert_fits(page)
    screenshot(page, "explore-after-grid", tmp_path)


def test_the_walk_through_draws_every_step_within_the_screen(page, tmp_path):
    open_tab(page, "How it works")
    page.get_by_text("What each costs here").wait_for()  # the last step, computed after the others
    page.wait_for_function(f"""() => [...document.querySelectorAll('#how-it-works [data-testid=plotly]')]
      .filter((plot) => plot.querySelector('.main-svg')).length >= {PLOTS_IN_THE_WALK_THROUGH}""")
    first = page.locator("#how-it-works [data-testid=plotly]").first
    first.scroll_into_view_if_needed()
    assert first.bounding_box()["height"] <= page.viewport_size["height"]
    assert_fits(page)
    screenshot(page, "how-it-works", tmp_path)


def test_about_opens_within_the_screen(page, tmp_path):
    open_tab(page, "About")
    heading = page.locator("#about h2").first
    heading.wait_for()
    assert heading.inner_text() != "How it works"
    assert_shown_and_fits(page, heading, "about", tmp_path)


def test_a_touch_between_notes_names_the_blend_beside_the_map(page, tmp_path):
    open_tab(page, "Explore")
    spot = page.evaluate(EMPTY_SPOT)
    page.mouse.click(spot["x"], spot["y"])
    heard = page.locator("#current-name", has_text=BLEND_NAMED)
    heard.wait_for()
    page.locator("#selected-player a[download]").first.wait_for(state="attached")  # its sound, ready to play
    page.wait_for_function("() => document.querySelector('#map .js-plotly-plot').data"
                           ".some((trace) => trace.name === 'played point')")  # the map marks the blend
    assert not page.evaluate(LEGEND_SCROLLS)  # every entry of the map's legend in view
    assert_shown_and_fits(page, heard, "explore", tmp_path)


def test_reconstruct_shows_the_note_and_its_three_reconstructions_within_the_screen(page, tmp_path):
    open_tab(page, "Reconstruct")
    tab = page.locator("#reconstruct-tab")
    tab.get_by_role("button", name="Reconstruct", exact=True).click()  # the note it opens on
    tab.locator(".js-plotly-plot").nth(3).wait_for()  # the original and three reconstructions
    boxes = [plot.bounding_box() for plot in tab.locator(".js-plotly-plot").all()]
    for box in boxes:
        assert box["width"] <= page.viewport_size["width"] and box["height"] <= page.viewport_size["height"]
    rows = {round(box["y"]) for box in boxes}
    assert len(rows) == (1 if page.viewport_size["width"] >= 1280 else 4)  # side by side, or one under another
    assert_fits(page)
    screenshot(page, "reconstruct", tmp_path)


def test_the_play_pad_shows_its_corners_and_keys_within_the_screen(page, tmp_path):
    open_tab(page, "Play")
    page.wait_for_function("document.querySelectorAll('#play-pad .corner').length === 4 && "
                           "[...document.querySelectorAll('#play-pad .corner')].every((c) => c.innerText.trim())")
    pad = page.locator("#play-pad")
    pad.scroll_into_view_if_needed()
    box = pad.bounding_box()
    pad.click(position={"x": box["width"] / 2, "y": box["height"] / 2})  # a touch at the pad's centre
    assert page.locator("#play-keys .key").last.bounding_box()["x"] >= 0
    assert_fits(page)
    screenshot(page, "play", tmp_path)
