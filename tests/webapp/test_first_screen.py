"""The page's first screen and its one current sound, through the page app.build makes, in this process over tiny
checkpoints: model internals behind a closed settings panel, the map beside the current sound, and the current sound
(a note chosen, or the nearest note of a blend clicked) as the starting point of the Grid and Reconstruct tabs."""

import asyncio
from dataclasses import replace
import json
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
import soundfile as sf

from tests.app_helpers import built_page
from nsynth_core.audio.core import playback_pcm16
from nsynth_core.explorer.loaded_models import load_model
from webapp.explore_tab import ExploreTab
from webapp.grid_tab import GridTab
from webapp.header import Header, playing_line
from webapp.reconstruct_tab import ReconstructTab
from webapp.shared import OWN_PITCH


def part_of(page, kind):
    """The part of the page (a Tab subclass) one of whose handlers is wired into the page."""
    return next(event.fn.__self__ for event in page.fns.values()
                if isinstance(getattr(event.fn, "__self__", None), kind))


def ancestors(block):
    while block is not None:
        yield block
        block = block.parent


def events_into(page, output):
    """The handlers whose outputs include `output`, with their inputs."""
    return [event for event in page.fns.values() if any(out is output for out in event.outputs)]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    with built_page(tmp_path_factory, "first_screen") as (explorer, built):
        header = part_of(built, Header)
        yield SimpleNamespace(built=built, explorer=explorer, header=header, explore=part_of(built, ExploreTab),
                              grid=part_of(built, GridTab), reconstruct=part_of(built, ReconstructTab),
                              wavenet=header.wavenet_path.value,
                              paths=[picker.value for picker in header.model_paths])


def test_model_choice_pitch_and_octave_wait_in_a_closed_settings_panel(page):
    header = page.header
    for setting in (*header.model_paths, header.model_info, header.status, header.pitch_choice, header.octaves):
        panels = [block for block in ancestors(setting) if isinstance(block, gr.Accordion)]
        assert panels and panels[0].open is False, f"{setting.label or setting} is not behind the closed settings"
    assert not any(isinstance(block, gr.Accordion) for block in ancestors(header.playing))
    assert header.playing.value == "**Playing:** DDSP decoder, each note's own pitch."


def test_the_playing_line_follows_the_settings(page):
    header = page.header
    wired = {tuple(event.inputs) for event in events_into(page.built, header.playing)}
    assert (header.ddsp_path, header.pitch_choice, header.octaves) in wired
    ddsp = header.ddsp_path.value
    assert playing_line(ddsp, "60", 0) == "**Playing:** DDSP decoder, every sound at MIDI 60."
    assert playing_line(ddsp, OWN_PITCH, -1) == "**Playing:** DDSP decoder, each note's own pitch 1 octave down."
    assert playing_line(ddsp, OWN_PITCH, 2) == "**Playing:** DDSP decoder, each note's own pitch 2 octaves up."
    assert playing_line(None, OWN_PITCH, 0).startswith("No DDSP decoder yet")


def test_the_explore_tab_opens_on_the_map_beside_the_current_sound(page):
    explore = page.explore
    shared_row = next(block for block in ancestors(explore.map_plot) if block.elem_id == "explore-columns")
    assert shared_row in ancestors(explore.player) and shared_row in ancestors(explore.corner_buttons[0])
    assert shared_row in ancestors(explore.reconstruct_button) and shared_row in ancestors(explore.download)
    assert explore.player.label == "Current sound"  # not "Selected note": a blend plays there too
    tabs = [block for block in page.built.blocks.values() if isinstance(block, gr.Tab)]
    assert tabs[0].label == "Explore" and tabs[0] in ancestors(explore.map_plot)


def test_a_click_between_notes_leaves_no_note_chosen_and_starts_from_the_nearest(page):
    explore = page.explore
    embedding_map = page.explorer.map_for(load_model(page.wavenet), placing=False)
    first, second = embedding_map.positions[:2]
    place = 0.8 * first + 0.2 * second  # between two notes, nearer the first
    payload = json.dumps({"x": float(place[0]), "y": float(place[1]), "time": 1})
    nearest = str(embedding_map.names[np.argmin(np.linalg.norm(embedding_map.positions - place, axis=1))])
    assert explore.choose_clicked(payload, page.wavenet) == [None, nearest, nearest]
    wired = [event for event in page.built.fns.values() if event.fn == explore.choose_clicked]
    assert [list(event.outputs) for event in wired] == [[explore.selected, explore.current,
                                                        page.reconstruct.source_note]]
    note_click = json.dumps({"id": nearest, "x": 0.0, "y": 0.0})
    assert explore.choose_clicked(note_click, page.wavenet) == [nearest] * 3
    assert explore.select_note(None, {}) is not None  # an emptied choice leaves the blend in the player
    assert explore.choose_note(None, {}) == [gr.skip()] * 4


def test_the_map_redrawn_after_a_click_or_a_choice_stays_clickable(page):
    """A progress overlay covers a component while an event into it runs, and takes the presses made on it: the
    map's redraws that follow a click or a chosen note run without one, so a visitor's next press is heard."""
    explore = page.explore

    def triggered_by(event, *sources):
        while event.trigger_after is not None:  # a .then() runs after the event it follows
            event = page.built.fns[event.trigger_after]
        return any(block == source._id for block, _ in event.targets for source in sources)

    following = [event for event in events_into(page.built, explore.map_plot)
                 if triggered_by(event, explore.click, explore.selected)]
    assert {event.fn.__name__ for event in following} >= {"mark_clicked_point", "<lambda>"}
    assert all(event.show_progress == "hidden" for event in following)


def test_a_new_note_is_offered_by_every_tabs_picker_once_it_is_added(page):
    """The events that add notes answer the notes listed, the map and the new note (what the API returns too); the
    Grid's corners and Reconstruct's note are offered the session's notes by an event that follows each."""
    explore, grid, reconstruct = page.explore, page.grid, page.reconstruct
    others = [*grid.corners, reconstruct.source_note]
    adding = {"add_uploads", "add_recording", "restore_notes", "correct_pitch"}
    events = {event.api_name: event for event in page.built.fns.values() if event.api_name in adding}
    assert sorted(events) == sorted(adding)
    for event in events.values():
        assert [out for out in event.outputs if not isinstance(out, gr.State)] == [
            explore.summary, explore.map_plot, explore.selected]
    following = [event for event in events_into(page.built, grid.corners[0]) if event.trigger_after is not None
                 and page.built.fns[event.trigger_after].api_name in adding]
    assert len(following) == len(adding) and all(list(event.outputs) == others for event in following)
    note = list(page.explorer.bundled.values())[3]
    session = {"mine": replace(note, id="mine", name="mine", source="upload")}
    offered = explore.other_pickers(session)
    assert len(offered) == len(others)
    assert all(any(value == "mine" for _, value in update["choices"]) and "value" not in update
               for update in offered)


def test_a_chosen_note_is_named_marked_on_the_map_and_used_as_the_next_corner(page):
    explore, explorer = page.explore, page.explorer
    note = list(explorer.bundled.values())[5]
    current, named, pitch, to_reconstruct = explore.choose_note(note.id, {})
    assert current == to_reconstruct == note.id and pitch == note.pitch and note.label in named
    figure = explore.draw_map({}, "family", note.id, False, [], page.wavenet)
    ring, = [trace for trace in figure.data if trace.name == "current sound"]
    embedding_map = explorer.map_for(load_model(page.wavenet), placing=False)
    where = embedding_map.positions[list(embedding_map.names).index(note.id)]
    assert (ring.x[0], ring.y[0]) == pytest.approx(tuple(where))
    assert not any(trace.name == "current sound"
                   for trace in explore.draw_map({}, "family", None, False, [], page.wavenet).data)
    for button, corner in zip(explore.corner_buttons, page.grid.corners):
        use, = [event for event in page.built.fns.values() if (button._id, "click") in event.targets]
        assert list(use.inputs) == [explore.current] and list(use.outputs) == [corner]
        assert use.fn(note.id) == note.id


def test_reconstruct_opens_on_a_note_and_needs_no_choice(page):
    reconstruct, explorer = page.reconstruct, page.explorer
    first = next(iter(explorer.bundled.values()))
    opening, = [event for event in page.built.fns.values() if event.fn == reconstruct.opening_note]
    assert list(opening.outputs) == [reconstruct.source_note] and reconstruct.opening_note(None) == first.id
    original, _, *decoded = asyncio.run(reconstruct.reconstruct(None, {}, 0.25, 0.1, *page.paths))  # nothing chosen
    assert len(decoded) == 6 and all(decoded)  # each decoder's sound and rainbowgram
    audio, _ = sf.read(original, dtype="int16")
    np.testing.assert_array_equal(audio, playback_pcm16(first.audio[:1600]))
