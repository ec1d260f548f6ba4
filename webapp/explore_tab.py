"""The Explore tab: a visitor's own notes (uploaded, recorded, saved and restored, their pitch corrected) and the
map of the embedding space they are placed on, where a click selects a note or (play_tab.py) plays a point."""

import json
import sys

import gradio as gr
import plotly.graph_objects as go

from nsynth_core.audio.core import NOTE_LENGTH, SAMPLE_RATE
from nsynth_core.explorer.explorer import Explorer
from nsynth_core.explorer.loaded_models import load_model
from nsynth_core.explorer.notes import (MAX_REQUEST_UPLOAD_MB, MAX_UPLOAD_FILES, Note, add_notes, check_upload, read_note, read_uploads, upload_bytes, with_pitch)
from webapp.texts import pitch_warning
from nsynth_core.explorer import family_guess
from nsynth_core.explorer.map_points import neighbour_weights
from nsynth_core.exports import session_archive
from nsynth_core.exports import files as exports
from webapp import encoding_queue, figures
from webapp.header import SESSION_TTL
from webapp.shared import CORNERS, MAX_UPLOAD_FILE_MB, Tab, default_checkpoint, friendly, note_picker, writes_files

# Uploads wait on the shared encoding queue, which serves visitors in turn, rather than on Gradio's queue: enough of
# them run at once that each visitor is told where their own notes stand.
ADDING_NOTES_AT_ONCE = 8
UPLOAD_LIMITS = (f"WAV, FLAC, OGG or MP3, up to {MAX_UPLOAD_FILE_MB} MB each, {MAX_UPLOAD_FILES} files and "
                 f"{MAX_REQUEST_UPLOAD_MB} MB at a time. Only the first "
                 f"{NOTE_LENGTH / SAMPLE_RATE:g} s are used; a shorter sound is padded with silence, as NSynth "
                 "notes end in silence.")


MAP_TITLE = "Near notes sound alike"  # short enough for a phone's title line
FIRST_SOUND = ("**Hear an example first:** four bundled notes at the corners and the blends between them, "
               "decoded by DDSP. Then touch the map: a note plays as recorded, a place between notes plays the "
               "blend of the nearest three.")


def session_summary(session) -> str:
    if not session:
        return "Your notes will be listed here."
    return "**Your notes:** " + ", ".join(note.label for note in session.values())


def click_of(payload) -> dict:
    """What assets/map_click.js reported ({id, x, y} on a note, {x, y} elsewhere, in_page when the page played
    it); {} for anything else."""
    try:
        clicked = json.loads(payload)
    except (ValueError, TypeError):
        return {}
    return clicked if isinstance(clicked, dict) else {}


def clicked_note(payload) -> str | None:
    return click_of(payload).get("id")


def heard_in_page(payload) -> bool:
    """Whether the page played this click's blend itself (assets/map_sound.js)."""
    return click_of(payload).get("in_page") is True


def show_the_playing_player(heard_in_page_shown: bool):
    """(the strip's playing player, the one that does not play, whether that one is shown), as a note was chosen:
    the playing one back in view if the other held a blend the page had played; else nothing changes."""
    if not heard_in_page_shown:
        return gr.skip(), gr.skip(), gr.skip()
    return gr.update(visible=True), gr.update(visible=False), False


def clicked_place(payload) -> tuple[float, float] | None:
    """(x, y) of a click on empty map space; None for a click on a note (clicked_note selects it) or a bad one."""
    clicked = click_of(payload)
    try:
        place = float(clicked["x"]), float(clicked["y"])
    except (ValueError, KeyError, TypeError):
        return None
    return None if "id" in clicked else place


# The current sound's player has its sound loaded and decoded: it shows the sound's length, and play plays it.
PLAYER_READY = """[...document.querySelectorAll('#selected-player time')]
  .some((shown) => /^\\d+:\\d\\d$/.test(shown.textContent.trim()) && shown.textContent.trim() !== '0:00')"""
FIRST_SOUND_WAIT_MS = 8000  # the longest the map waits for the player, should it never be ready
# The map's page-load event sends its inputs on once the current sound's player is ready: the plotting library the
# map loads keeps the page busy a while, and the first screen's sound comes first.
AFTER_THE_FIRST_SOUND = """async (...inputs) => {
  const asked = performance.now();
  while (!(%s) && performance.now() - asked < %d) await new Promise((next) => setTimeout(next, 20));
  return inputs;
}""" % (PLAYER_READY, FIRST_SOUND_WAIT_MS)
CURRENT_RING = dict(size=24, symbol="circle-open", color="crimson", line=dict(color="crimson", width=3))
# The chosen note ringed on the map drawn now, or no ring when no note is chosen (a blend is marked instead).
RING_IN_BROWSER = """(noteId) => {
  const plot = document.querySelector('#map .js-plotly-plot');
  if (!plot || !window.Plotly || !plot.data) return [];
  const idOf = (custom) => Array.isArray(custom) ? custom[0] : custom;
  let place = null;
  for (const trace of plot.data) {
    const index = noteId && trace.customdata ? Array.from(trace.customdata).findIndex((c) => idOf(c) === noteId) : -1;
    if (index >= 0) { place = [trace.x[index], trace.y[index]]; break; }
  }
  const ring = plot.data.findIndex((trace) => trace.name === 'current sound');
  if (ring >= 0) window.Plotly.restyle(plot, place ? {x: [[place[0]]], y: [[place[1]]]} : {x: [[]], y: [[]]}, [ring]);
  else if (place) window.Plotly.addTraces(plot, {x: [place[0]], y: [place[1]], mode: 'markers', name: 'current sound',
                                                hoverinfo: 'skip', marker: %s});
  return [];
}""" % json.dumps(CURRENT_RING)


def ring_current(figure: go.Figure, embedding_map, user_points, note_id) -> go.Figure:
    """The map with a ring around the current note, wherever it lies: among the examples or the visitor's own."""
    places = {**{str(name): xy for name, xy in zip(embedding_map.names, embedding_map.positions)},
              **{note.id: xy for note, xy in user_points}}
    if note_id in places:
        x, y = places[note_id]
        figure.add_trace(go.Scatter(x=[x], y=[y], mode="markers", name="current sound", hoverinfo="skip",
                                    marker=CURRENT_RING))
    return figure


def for_first_screen(figure: go.Figure) -> go.Figure:
    """The map sized to share the first screen with the current sound, on a laptop and below it on a phone: a
    one-line title (how the map is made is told in "How it works"), and a legend a projector's class can read."""
    # The axes have no units, so they go unnamed here: the room is the plot's, on a phone's first screen.
    # No height of its own: plotly fills its box, which first-screen.css sizes for a phone and for a laptop.
    return figure.update_layout(height=None, margin=dict(t=figures.title_bottom(0) + 8, b=10, l=10, r=20),
                                title=figures.pinned_title(MAP_TITLE), xaxis_title=None, yaxis_title=None)


class ExploreTab(Tab):
    def __init__(self, explorer: Explorer, notes_queue: encoding_queue.FairBatchQueue):
        super().__init__(explorer)
        self.notes_queue = notes_queue

    def layout(self, header) -> None:
        with gr.Tab("Explore"):
            # The instrument first: the map and the current sound side by side (stacked on a phone, map first).
            with gr.Row(elem_id="explore-columns"):
                with gr.Column(scale=3, min_width=320, elem_id="map-column"):
                    self.opening_figure = self.first_map()
                    self.map_plot = gr.Plot(label="Map", show_label=False, elem_id="map")  # opening_map fills it
                    self.click = gr.Textbox(elem_id="map-click", show_label=False)
                with gr.Column(scale=2, min_width=300, elem_id="current-sound"):
                    self.player = gr.Audio(header.example_track["value"], label="Current sound",
                                           type="filepath", interactive=False, autoplay=True, elem_id="selected-player")
                    # In its place for a blend the page has already played itself (assets/map_sound.js): the
                    # same sound decoded here, to play again and download, without playing it twice.
                    self.heard_in_page = gr.Audio(label="Current sound", type="filepath", interactive=False,
                                                  visible=False, elem_id="heard-in-page")
                    self.heard_in_page_shown = gr.State(False)  # which of the two players the strip shows
                    self.heard = gr.Markdown(FIRST_SOUND, elem_id="current-name")
                    # The note the other tabs start from: the one heard, or the nearest note of a blend.
                    self.current = gr.State(None, time_to_live=SESSION_TTL)
                    with gr.Row(elem_classes="current-actions"):
                        self.corner_buttons = [gr.Button(f"Use as {corner[0]}", size="sm", min_width=60)
                                               for corner in CORNERS]
                    with gr.Row(elem_classes="current-actions"):
                        self.reconstruct_button = gr.Button("Reconstruct it", size="sm", variant="primary")
                        self.download = gr.DownloadButton("Download", header.example_track["value"], size="sm")
                    self.selected = note_picker("Note (or click one on the map)")
            with gr.Accordion("Your own notes: upload, record, save, restore", open=True, elem_id="your-notes"):
                with gr.Row():
                    with gr.Column():
                        self.uploads = gr.File(label="Upload notes", file_count="multiple", file_types=["audio"],
                                               elem_id="uploads")
                        gr.Markdown(UPLOAD_LIMITS)
                    self.recorder = gr.Audio(sources=["microphone"], type="filepath", label="Or record one")
                self.summary = gr.Markdown(session_summary({}), label="Your notes", elem_id="summary")
                with gr.Row():
                    self.note_pitch = gr.Number(None, precision=0, minimum=0, maximum=127,
                                                label="Its pitch (MIDI; 60 is middle C)", elem_id="note-pitch")
                    self.pitch_button = gr.Button("Correct the pitch of my note", size="sm")
                with gr.Row():
                    self.save_button = gr.Button("Save my notes", size="sm")
                    self.saved = gr.File(label="Saved notes (.npz)", interactive=False)
                    self.restore = gr.File(label="Restore saved notes", file_types=[".npz"])
            with gr.Accordion("Map options", open=False):
                with gr.Row():
                    self.color_by = gr.Radio([(figures.COLOR_BY_LABELS[name], name) for name in figures.COLOR_BY],
                                             value="family", label="Colour by")
                    self.show_path = gr.Checkbox(label="Show the current note's path over time")
        self.map_inputs = [header.session, self.color_by, self.show_path, header.grid_cells, header.wavenet_path]
        self.map_args = [header.session, self.color_by, self.selected, self.show_path, header.grid_cells,
                         header.wavenet_path]

    def wire(self, header, corners: list[gr.Dropdown], source_note: gr.Dropdown) -> None:
        """The notes' events, which also fill the Grid tab's `corners` and the Reconstruct tab's `source_note`."""
        session, summary, map_plot, selected = header.session, self.summary, self.map_plot, self.selected
        map_inputs, map_args = self.map_inputs, self.map_args
        # What a new note changes (also what the API answers: the notes listed, the map, the new note's id); the
        # other tabs' note pickers learn of it in an event of their own, kept out of the API.
        new_note_outputs = [session, summary, map_plot, selected]
        other_pickers = [*corners, source_note]
        # Each event shows its progress, and a refusal's badge, on one component rather than on every output.
        # The box is emptied after each upload, taken or refused, so the next upload reads only its own files.
        adding = {"concurrency_id": "add_notes", "concurrency_limit": ADDING_NOTES_AT_ONCE,
                  "show_progress_on": summary}
        upload_event = self.uploads.upload(self.add_uploads, [self.uploads, header.uploaded, *map_inputs],
                                           [*new_note_outputs, header.uploaded], api_name="add_uploads", **adding)
        for after in (upload_event.success, upload_event.failure):
            after(None, None, self.uploads, js="() => null")
        recording_event = self.recorder.stop_recording(
            self.add_recording, [self.recorder, header.uploaded, *map_inputs], [*new_note_outputs, header.uploaded],
            api_name="add_recording", **adding)
        self.save_button.click(self.save_notes, session, self.saved, api_name="save_notes")
        restore_event = self.restore.upload(self.restore_notes, [self.restore, *map_inputs], new_note_outputs,
                                            api_name="restore_notes", show_progress_on=summary)
        pitch_event = self.pitch_button.click(self.correct_pitch, [selected, self.note_pitch, *map_inputs],
                                              new_note_outputs, api_name="correct_pitch",
                                              show_progress_on=self.note_pitch)
        for event in (upload_event, recording_event, restore_event, pitch_event):
            event.success(self.other_pickers, session, other_pickers, show_progress="hidden")

        # One listener per output that several settings change, always run on the latest settings: separate
        # listeners could finish out of order under load and leave on the page what earlier settings gave.
        gr.on([self.color_by.change, self.show_path.change, header.wavenet_path.change], self.draw_map, map_args,
              map_plot, api_name="map", trigger_mode="always_last")
        # The current sound: a note chosen (clicked, uploaded, recorded, restored) or a blend clicked is heard,
        # named and marked on the map; the Grid's corners and Reconstruct start from it.
        selected.change(self.select_note, [selected, session], self.player, api_name="select_note").then(
            show_the_playing_player, self.heard_in_page_shown,
            [self.player, self.heard_in_page, self.heard_in_page_shown], show_progress="hidden")
        selected.change(self.choose_note, [selected, session], [self.current, self.heard, self.note_pitch,
                                                               source_note])
        # Ringed in the browser at once: a redraw from the server after each click would swallow a press made
        # meanwhile. The server's own redraws (uploads, colours, grids) ring it too (ring_current).
        selected.change(None, selected, None, js=RING_IN_BROWSER)
        # Redraws that follow a click keep the map clickable: a progress overlay over it would swallow the next press.
        selected.change(lambda *args: self.draw_map(*args) if args[3] else gr.skip(), map_args, map_plot,
                        show_progress="hidden")
        self.click.change(self.choose_clicked, [self.click, header.wavenet_path], [selected, self.current,
                                                                                  source_note])
        for player in (self.player, self.heard_in_page):
            player.change(lambda path: path or gr.skip(), player, self.download)
        for button, corner in zip(self.corner_buttons, corners):
            button.click(lambda note_id: note_id or gr.skip(), self.current, corner)

    def first_map(self) -> go.Figure | None:
        """The examples' map every visit opens on, made once, when it needs no encoding."""
        wavenet = default_checkpoint(self.explorer, "wavenet")
        stored = self.explorer.precomputed_map(load_model(wavenet)) if wavenet else None
        return for_first_screen(figures.map_figure(stored)) if stored is not None else None

    def opening_map(self, *map_args):
        """The map, sent once the page is up: the plotting library, a large script, loads when the map has a
        figure, so the current sound's player is ready first (a figure inside the served page made it wait)."""
        return self.opening_figure if self.opening_figure is not None else self.draw_map(*map_args)

    @friendly
    def draw_map(self, session, color_by, selected, show_path, grid_cells, wavenet_path, progress=gr.Progress()):
        wavenet = load_model(wavenet_path) if wavenet_path else None
        placing = bool(session or grid_cells or (show_path and selected))
        embedding_map = self.explorer.map_for(wavenet, lambda done, total: progress(
            (done, total), desc="First use of this checkpoint: encoding the example notes", unit="notes"), placing)
        if embedding_map is None:
            return figures.message_figure("No map yet: it needs a trained WaveNet checkpoint.")
        if wavenet is None:
            return for_first_screen(ring_current(figures.map_figure(embedding_map, color_by), embedding_map, [],
                                                 selected))
        own = list(session.values())
        user_points = list(zip(own, self.explorer.place_notes(wavenet, own)))
        trajectory = None
        if show_path and selected:
            note = self.explorer.note(session, selected)
            trajectory = (note.name, self.explorer.trajectory(wavenet, note))
        figure = figures.map_figure(embedding_map, color_by, user_points, grid_cells or (), trajectory)
        return for_first_screen(ring_current(figure, embedding_map, user_points, selected))

    def with_new_notes(self, session, notes, color_by, show_path, grid_cells, wavenet_path):
        session = add_notes(session, notes, {note.name for note in self.explorer.bundled.values()})
        session = family_guess.with_guessed_families(self.explorer,
                                                     load_model(wavenet_path) if wavenet_path else None, session)
        choices = self.note_choices(session)
        selected = next((n.id for n in reversed(list(session.values())) if any(n.id == m.id for m in notes)), None)
        figure = self.draw_map(session, color_by, selected, show_path, grid_cells, wavenet_path)
        return [session, session_summary(session), figure, gr.update(choices=choices, value=selected)]

    @staticmethod
    def nothing_new(session):
        return [session, session_summary(session), gr.skip(), gr.skip()]

    def other_pickers(self, session) -> list:
        """The Grid's corners and Reconstruct's note offered the session's notes, each keeping its choice."""
        choices = self.note_choices(session)
        return [gr.update(choices=choices) for _ in range(len(CORNERS) + 1)]

    def pitched_and_encoded(self, notes, wavenet_path, request: gr.Request, progress) -> list[Note]:
        """The notes with their pitch and WaveNet code, from the queue shared by every visitor; meanwhile the page
        says where this visitor's notes stand in it."""
        wavenet = load_model(wavenet_path) if wavenet_path else None
        return self.notes_queue.run(request.session_hash or id(request), wavenet, notes, lambda position: progress(
            (position.total - position.left, position.total), desc=str(position), unit="notes"))

    @friendly
    def add_uploads(self, files, uploaded, session, color_by, show_path, grid_cells, wavenet_path,
                    request: gr.Request, progress=gr.Progress()):
        notes, problems = read_uploads(files, session, uploaded, lambda read: self.pitched_and_encoded(
            read, wavenet_path, request, progress))
        for note in notes:
            print(f"Read upload {note.name}", file=sys.stderr, flush=True)
        for problem in problems + [warning for note in notes if (warning := pitch_warning(note))]:
            gr.Warning(problem)
        return [*self.with_new_notes(session, notes, color_by, show_path, grid_cells, wavenet_path),
                uploaded + upload_bytes(files)]

    @friendly
    def add_recording(self, path, uploaded, session, color_by, show_path, grid_cells, wavenet_path,
                      request: gr.Request, progress=gr.Progress()):
        if not path:
            return [*self.nothing_new(session), uploaded]
        check_upload([path], session, uploaded)
        taken = sum(note.source == "microphone" for note in session.values())
        read = read_note(path, name=f"recording {taken + 1}", source="microphone")
        note, = self.pitched_and_encoded([read], wavenet_path, request, progress)
        if warning := pitch_warning(note):
            gr.Warning(warning)
        return [*self.with_new_notes(session, [note], color_by, show_path, grid_cells, wavenet_path),
                uploaded + upload_bytes([path])]

    @friendly
    def correct_pitch(self, note_id, pitch, session, color_by, show_path, grid_cells, wavenet_path):
        session = with_pitch(session, note_id, pitch)
        choices = self.note_choices(session)
        figure = self.draw_map(session, color_by, note_id, show_path, grid_cells, wavenet_path)
        return [session, session_summary(session), figure, gr.update(choices=choices, value=note_id)]

    @friendly
    def choose_note(self, note_id, session):
        """[the current note, what the strip says of it, its pitch, Reconstruct's note] once a note is chosen;
        nothing changes when the choice is emptied (a click between notes), as the blend's own event names it."""
        if not note_id:
            return [gr.skip()] * 4
        note = self.explorer.note(session, note_id)
        pitch = "no pitch found" if note.pitch is None else f"MIDI {note.pitch}"
        return [note_id, f"**{note.label}**: the note as recorded ({pitch}).", note.pitch, note_id]

    @friendly
    def choose_clicked(self, payload, wavenet_path):
        """[note picker, current note, Reconstruct's note] after a click on the map, in one round trip so a button
        pressed next reads them: a note clicked is chosen; after a click between notes none is, and the blend's
        nearest note is the one the other tabs start from."""
        if (note_id := clicked_note(payload)) is not None:
            return [note_id] * 3
        place = clicked_place(payload)
        if place is None:
            return [gr.skip()] * 3
        embedding_map = self.explorer.map_for(self.model(wavenet_path, "WaveNet"), placing=False)
        nearest, _ = neighbour_weights(embedding_map.positions, place)
        nearest_id = str(embedding_map.names[nearest[0]])
        return [None, nearest_id, nearest_id]

    @friendly
    @writes_files
    def save_notes(self, session):
        path = exports.output_path(self.outputs_dir, "nsynth_notes.npz")
        return str(session_archive.save_notes(list(session.values()), path))

    @friendly
    def restore_notes(self, path, session, color_by, show_path, grid_cells, wavenet_path):
        if not path:
            return self.nothing_new(session)
        return self.with_new_notes(session, session_archive.load_notes(path), color_by, show_path, grid_cells,
                                   wavenet_path)

    @friendly
    @writes_files
    def select_note(self, note_id, session):
        if not note_id:  # a click between notes: its blend takes the player
            return gr.skip()
        return self.playable(self.explorer.note(session, note_id).audio)

    @friendly
    def mark_clicked_point(self, payload, session, color_by, selected, show_path, grid_cells, wavenet_path):
        """The map with the clicked point and lines to the neighbours blended into it, after its sound has
        left."""
        place = clicked_place(payload)
        if place is None:
            return gr.skip()
        positions = self.explorer.map_for(self.model(wavenet_path, "WaveNet"), placing=False).positions
        nearest, weights = neighbour_weights(positions, place)  # the rule the sound was blended by
        figure = self.draw_map(session, color_by, selected, show_path, grid_cells, wavenet_path)
        return figures.mark_blend(figure, place, positions[nearest])
