"""The map and rainbowgram figures read on a phone and on a projector: they take their box's width, keep legends
below the plot, write nothing smaller than 14 px and put no text over other text."""

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from tests.figure_boxes import font_size, title_lines, title_span
from nsynth_core.explorer.embedding_map import EmbeddingMap
from nsynth_core.explorer.notes import Note
from webapp.figures import BLEND_COLOURS, TOOLBAR_HEIGHT, map_figure, mark_blend, rainbowgram_figure
from webapp.play_tab import describe_blend

FAMILIES = ["bass", "flute", "guitar", "reed"]
LEGIBLE_PX = 14


def small_map() -> EmbeddingMap:
    count = 12
    rng = np.random.default_rng(0)
    return EmbeddingMap(names=np.array([f"note{i}" for i in range(count)]),
                        families=np.array([FAMILIES[i % 4] for i in range(count)]),
                        pitches=np.arange(48, 48 + count), sources=np.array(["bank"] * count),
                        features=rng.normal(size=(count, 16)).astype(np.float32),
                        positions=rng.uniform(0, 10, size=(count, 2)).astype(np.float32), checkpoint="test")


def visitor_note(name: str, family: str) -> Note:
    return Note(id=name, name=name, audio=np.zeros(16000, np.float32), family=family, pitch=60)


def test_the_map_takes_its_boxs_width_with_the_legend_below():
    layout = map_figure(small_map()).layout
    assert layout.autosize and layout.width is None  # drawn 700 px wide on a 390 px phone otherwise
    assert layout.legend.orientation == "h" and layout.legend.y < 0 and layout.legend.yanchor == "top"


def test_the_maps_text_is_legible_on_a_projector():
    figure = map_figure(small_map())
    layout = figure.layout
    assert "<sub>" not in layout.title.text
    assert all(size >= LEGIBLE_PX for _, size in title_lines(figure))
    assert font_size(layout.legend.font, layout) >= LEGIBLE_PX
    assert font_size(layout.xaxis.title.font, layout) >= LEGIBLE_PX
    assert font_size(layout.yaxis.title.font, layout) >= LEGIBLE_PX
    top, bottom = title_span(figure)
    assert round(top) >= TOOLBAR_HEIGHT and bottom <= layout.margin.t


def test_visitors_notes_are_told_apart_by_family_colour_and_name():
    embedding_map = small_map()
    figure = map_figure(embedding_map, user_points=[(visitor_note("mine-1", "flute"), (1.0, 1.0)),
                                                    (visitor_note("mine-2", "reed"), (1.1, 1.0))])
    mine = next(trace for trace in figure.data if trace.name == "your notes")
    assert mine.text == ("mine-1", "mine-2") and "text" in mine.mode
    assert mine.textposition[0] != mine.textposition[1]  # side by side, one name above and one below
    colours = {trace.name: trace.marker.color for trace in figure.data}
    assert tuple(mine.marker.color) == (colours["flute"], colours["reed"])  # each in its guessed family's colour
    assert mine.marker.symbol == "star" and mine.marker.line.width >= 1


def test_a_played_point_rings_its_neighbours_without_labels_or_legend_entries_of_their_own():
    """Three neighbours close together: labels beside them on the map overlapped each other and the markers, and
    a legend entry per share made a phone's legend scroll; the shares are named in the strip, in the rings' colours."""
    figure = mark_blend(map_figure(small_map()), (5.0, 5.0), np.array([[5.1, 5.0], [5.1, 5.05], [5.05, 5.1]]))
    rings = [trace for trace in figure.data if trace.marker.symbol == "circle-open"]
    assert [trace.line.color for trace in rings] == list(BLEND_COLOURS[:3])  # nearest first, as the strip names them
    assert [(trace.x[-1], trace.y[-1]) for trace in rings] == [(5.1, 5.0), (5.1, 5.05), (5.05, 5.1)]
    assert [trace.name for trace in figure.data if trace.showlegend is not False][-1] == "played point"
    assert not any(trace.showlegend is not False for trace in rings)
    assert all("text" not in trace.mode for trace in figure.data if trace.name != "your notes")
    assert not figure.layout.annotations


def test_the_strip_names_each_share_after_a_ring_in_its_lines_colour():
    blend = SimpleNamespace(weights=np.array([0.41, 0.33, 0.26]))
    notes = [SimpleNamespace(name=name) for name in ("near", "middle", "far")]
    text = describe_blend(blend, notes, "DDSP", 60)
    assert text.startswith("Blend of ") and text.endswith("decoded by the DDSP decoder at MIDI 60.")
    shares = re.findall(r"<span style='color:(\w+)'>◯</span>\u00a0\*\*(\w+)\*\* (\d+)\u00a0%", text)
    assert shares == [(BLEND_COLOURS[0], "near", "41"), (BLEND_COLOURS[1], "middle", "33"),
                      (BLEND_COLOURS[2], "far", "26")]


def test_a_rainbowgrams_title_ends_above_the_top_octaves_name():
    figure = rainbowgram_figure(np.zeros(16000, np.float32), "Original")
    layout = figure.layout
    tick_size = font_size(layout.yaxis.tickfont, layout)
    assert layout.yaxis.ticktext[-1] == "C8" and layout.yaxis.tickvals[-1] == layout.yaxis.range[1]
    # The top tick's name is centred on the plot's top edge, so half of it rises into the top margin.
    assert layout.title.yref == "container" and layout.title.yanchor == "top"
    top, bottom = title_span(figure)
    assert round(top) >= TOOLBAR_HEIGHT and bottom + tick_size * 0.65 <= layout.margin.t
    assert all(size >= LEGIBLE_PX for _, size in title_lines(figure)) and "<sub>" not in layout.title.text


def test_abouts_first_heading_does_not_repeat_a_tab_name():
    about = (Path(__file__).resolve().parents[2] / "assets" / "about.md").read_text()
    first_heading = next(line for line in about.splitlines() if line.startswith("#")).lstrip("# ").strip()
    assert first_heading not in {"Explore", "Grid", "Reconstruct", "How it works", "Play", "About"}
