"""NSynth timbre explorer: a web page over nsynth_core.explorer.explorer.

    python app.py            # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override)

Checkpoints are read from checkpoints/ (or the folder named by NSYNTH_CHECKPOINTS); files handed to visitors are
written to a temporary folder (NSYNTH_OUTPUTS) and deleted after an hour.
"""

import ctypes
import dataclasses
import functools
import json
import math
import os
import sys
import threading
import time
from itertools import islice
from pathlib import Path

import gradio as gr
import numpy as np
import plotly.graph_objects as go
import torch
from starlette.middleware import Middleware

from nsynth_core.explorer.explorer import Explorer
from nsynth_core.explorer.grids import grid_size, make_grid, played_pitches
from nsynth_core.explorer.loaded_models import (SLOW_DECODE_SECONDS, LoadedModel, broken_checkpoints, encode_notes,
                                                encoder_for, load_model)
from nsynth_core.explorer.notes import (ASSETS_DIR, MAX_REQUEST_UPLOAD_MB, MAX_UPLOAD_FILES, ExplorerError, Note,
                                        add_notes, check_upload, read_note, read_uploads, upload_bytes, with_pitch,
                                        with_pitches)
from webapp import disk_space
from nsynth_core.exports import example_grid
from nsynth_core.exports import files as exports
from nsynth_core.explorer import family_guess
from webapp import figures
from nsynth_core.exports import session_archive
from webapp import encoding_queue
from nsynth_core.engine import fastgen
from webapp import low_priority
from webapp import teaching
from webapp import texts
from nsynth_core.audio.core import NOTE_LENGTH, SAMPLE_RATE, playback_pcm16
from nsynth_core.exports.browser_pack import write_browser_pack
from nsynth_core.explorer.decoding import describe_duration
from nsynth_core.explorer.interpolation import GRID_SIZES
from nsynth_core.explorer.map_points import neighbour_weights
from nsynth_core.explorer.multigrid import ONS_PITCHES
from nsynth_core.audio.rainbowgram import rainbowgram
from nsynth_core.exports.soundfont import write_soundfont

MAX_SIZE = max(GRID_SIZES)
DECODERS = {"DDSP": "ddsp", "WaveNet": "wavenet", "Spectral baseline": "spectral"}  # page label -> checkpoint kind
DEFAULT_DECODER = "DDSP"  # the closest to the originals in the evaluation (checkpoints/evaluation.md)
OWN_PITCH = "each note's own"
PITCH_CHOICES = [OWN_PITCH, *(str(pitch) for pitch in range(24, 97))]
MULTIGRID_SIZE = 9  # Open NSynth Super's
CORNERS = ("A (top left)", "B (top right)", "C (bottom left)", "D (bottom right)")
REPO = Path(__file__).resolve().parent
MAX_UPLOAD_FILE_MB = 20
UPLOAD_REQUEST_MB = MAX_REQUEST_UPLOAD_MB + 1  # the files of one upload and the form around them
# Uploads wait on the shared encoding queue, which serves visitors in turn, rather than on Gradio's queue: enough of
# them run at once that each visitor is told where their own notes stand.
ADDING_NOTES_AT_ONCE = 8
SESSION_TTL = 3 * 3600  # s without a new note before a visitor's notes are dropped from server memory
MAX_SESSIONS = 500  # sessions kept in memory, each holding up to notes.MAX_SESSION_NOTES notes of 256 kB
M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # glibc's mallopt parameters (malloc.h)
UPLOAD_LIMITS = (f"WAV, FLAC, OGG or MP3, up to {MAX_UPLOAD_FILE_MB} MB each, {MAX_UPLOAD_FILES} files and "
                 f"{MAX_REQUEST_UPLOAD_MB} MB at a time. Only the first "
                 f"{NOTE_LENGTH / SAMPLE_RATE:g} s are used; a shorter sound is padded with silence, as NSynth "
                 "notes end in silence.")
# Generation is a long chain of small tensor operations: on a shared 2-core machine a second thread mostly waits.
torch.set_num_threads(int(os.environ.get("NSYNTH_THREADS", "1")))

app = Explorer()
OUTPUTS_DIR = exports.outputs_dir()
notes_queue = encoding_queue.FairBatchQueue(functools.partial(encoding_queue.prepared_notes, app))
EXAMPLE = example_grid.load_example(app.assets_dir)  # heard on the page before anything is chosen
CLICK_BRIDGE = (REPO / "assets" / "map_click.js").read_text()  # reports clicks on notes and on empty space
PLAYER = (REPO / "assets" / "play.js").read_text()  # the Play tab's pad and keyboard (Web Audio, Web MIDI)
PLAY_PITCHES = (48, 56, 64, 72)  # spread over the on-screen keyboard's two octaves: every key at most 4 away
PLAY_SIZE, PLAY_SECONDS = 3, 2.0  # 36 notes: a few seconds with DDSP, 2.3 MB for the page to fetch
PLAY_SURFACE = """
<div id="play-surface">
  <div id="play-pad" title="Click or drag: the nearest cell plays"></div>
  <div id="play-keys"></div>
  <p id="play-status">Decode the grid first; then a MIDI keyboard, the computer's keys or these keys play it.</p>
</div>
"""
PUBLIC_API = {"add_uploads", "add_recording", "save_notes", "restore_notes", "correct_pitch", "map", "select_note",
              "grid", "reconstruct", "play_point", "soundfont", "decode_for_playing"}
CSS = "#map-click {display: none !important}"
CSS += "\n#how-it-works p, #how-it-works td, #how-it-works th {font-size: 1.2rem; line-height: 1.5}"
# On a phone the Explore tab's columns stack: the map comes first, above the upload and note controls.
CSS += "\n@media (max-width: 768px) {#explore-columns {flex-direction: column-reverse}}"
# A corner box shows a whole note id: full width on a phone, where two side by side would cut both.
CSS += ("\n@media (max-width: 768px) {.corner-pickers {flex-direction: column} "
        ".corner-pickers .block {padding-left: 4px; padding-right: 0} .corner-pickers input {font-size: 12px}}")
# The About tables keep their words whole: on a phone they scroll sideways instead of wrapping letter by letter.
CSS += ("\n#about table {display: block; overflow-x: auto} "
        "#about td, #about th {word-break: normal; overflow-wrap: normal; hyphens: none; min-width: 6.5em}")
# Switches to the Reconstruct tab in the page itself; the inputs pass through to the Python handler unchanged.
OPEN_RECONSTRUCT_TAB = """
(...inputs) => {
  const tab = [...document.querySelectorAll("button[role=tab]")].find((b) => b.textContent.trim() === "Reconstruct");
  if (tab) tab.click();
  return inputs;
}
"""


def friendly(handler):
    """Bad input becomes a message in the page instead of a traceback."""
    @functools.wraps(handler)
    def wrapped(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except ValueError as error:  # the visitor's input, not a fault: one log line, no traceback
            print(f"Refused ({handler.__name__}): {' '.join(str(error).split())}", file=sys.stderr, flush=True)
            raise gr.Error(str(error), print_exception=False) from None
    return wrapped


def reads_numbers_in_words(field: gr.Slider | gr.Number) -> None:
    """Makes a Slider or Number read an API caller's "3.0" as 3.0 and refuse anything that is not a finite number
    in words: Gradio's own range check fails on text with a bare "Error" and lets NaN through. (Set on the
    component, not by subclassing it: Gradio writes a .pyi stub beside any module that defines a component.)"""
    gradio_preprocess = field.preprocess

    def preprocess(payload):
        if payload is None and field.value is None:  # a field that starts empty may be left empty
            return None
        number = payload  # a number from the page keeps its type (an int stays one)
        if isinstance(payload, str):
            try:
                number = float(payload)
            except ValueError:
                number = math.nan
        if not isinstance(number, (int, float)) or not math.isfinite(number):
            raise gr.Error(f"{field.label} must be a number, not {payload!r}.", print_exception=False)
        return gradio_preprocess(number)

    field.preprocess = preprocess


def writes_files(handler):
    """For handlers whose players or files Gradio copies into its cache: a nearly full disk is refused in words
    before any work, rather than failing afterwards with a bare "Error"."""
    @functools.wraps(handler)
    def wrapped(*args, **kwargs):
        disk_space.check_room()
        return handler(*args, **kwargs)
    return wrapped


def playable(audio: np.ndarray) -> str:
    """Notes are encoded at the training level (audio.NOTE_PEAK); every player plays at one louder peak, so
    originals and reconstructions compare by ear."""
    return player_files([playback_pcm16(audio)])[0]


def player_files(sounds: list[np.ndarray]) -> list[str]:
    return [str(path) for path in exports.wav_files(OUTPUTS_DIR, sounds)]


def model(path: str | None, kind: str) -> LoadedModel:
    if not path:
        raise ExplorerError(f"No trained {kind} checkpoint is available: put one in {app.checkpoints_dir}/.")
    return load_model(path)


def default_checkpoint(kind: str) -> str | None:
    found = app.checkpoints()[kind]
    return found[0][1] if found else None


def note_choices(session) -> list[tuple[str, str]]:
    return [(note.label, note.id) for note in app.notes(session).values()]


def session_summary(session) -> str:
    if not session:
        return "Your notes will be listed here."
    return "**Your notes:** " + ", ".join(note.label for note in session.values())


def first_map() -> go.Figure | None:
    """The examples' map as the page is served, when it needs no encoding: drawn by a page-load event instead,
    it appeared only after that event's round trip and the plotting library's download."""
    wavenet = default_checkpoint("wavenet")
    stored = app.precomputed_map(load_model(wavenet)) if wavenet else None
    return figures.map_figure(stored) if stored is not None else None


def preload_plotting_library() -> str:
    """The page's head fetches Gradio's plotly bundle as the page starts rather than once a plot has a value."""
    bundles = (Path(gr.__file__).parent / "templates" / "frontend" / "assets").glob("PlotlyPlot-*.js")
    return "".join(f'<link rel="modulepreload" href="assets/{bundle.name}">' for bundle in sorted(bundles))


@friendly
def draw_map(session, color_by, selected, show_path, grid_cells, wavenet_path, progress=gr.Progress()):
    wavenet = load_model(wavenet_path) if wavenet_path else None
    placing = bool(session or grid_cells or (show_path and selected))
    embedding_map = app.map_for(wavenet, lambda done, total: progress(
        (done, total), desc="First use of this checkpoint: encoding the example notes", unit="notes"), placing)
    if embedding_map is None:
        return figures.message_figure("No map yet: it needs a trained WaveNet checkpoint.")
    if wavenet is None:
        return figures.map_figure(embedding_map, color_by)
    own = list(session.values())
    user_points = list(zip(own, app.place_notes(wavenet, own)))
    trajectory = None
    if show_path and selected:
        note = app.note(session, selected)
        trajectory = (note.name, app.trajectory(wavenet, note))
    return figures.map_figure(embedding_map, color_by, user_points, grid_cells or (), trajectory)


def with_new_notes(session, notes, color_by, show_path, grid_cells, wavenet_path):
    session = add_notes(session, notes, {note.name for note in app.bundled.values()})
    session = family_guess.with_guessed_families(app, load_model(wavenet_path) if wavenet_path else None, session)
    choices = note_choices(session)
    selected = next((n.id for n in reversed(list(session.values())) if any(n.id == m.id for m in notes)), None)
    figure = draw_map(session, color_by, selected, show_path, grid_cells, wavenet_path)
    dropdowns = [gr.update(choices=choices) for _ in range(len(CORNERS) + 1)]
    return [session, session_summary(session), figure, gr.update(choices=choices, value=selected), *dropdowns]


def nothing_new(session):
    return [session, session_summary(session), gr.skip(), gr.skip(), *[gr.skip()] * (len(CORNERS) + 1)]


def pitched_and_encoded(notes, wavenet_path, request: gr.Request, progress) -> list[Note]:
    """The notes with their pitch and WaveNet code, from the queue shared by every visitor; meanwhile the page
    says where this visitor's notes stand in it."""
    wavenet = load_model(wavenet_path) if wavenet_path else None
    return notes_queue.run(request.session_hash or id(request), wavenet, notes, lambda position: progress(
        (position.total - position.left, position.total), desc=str(position), unit="notes"))


@friendly
def add_uploads(files, uploaded, session, color_by, show_path, grid_cells, wavenet_path, request: gr.Request,
                progress=gr.Progress()):
    notes, problems = read_uploads(files, session, uploaded, lambda read: pitched_and_encoded(
        read, wavenet_path, request, progress))
    for note in notes:
        print(f"Read upload {note.name}", file=sys.stderr, flush=True)
    for problem in problems + [warning for note in notes if (warning := texts.pitch_warning(note))]:
        gr.Warning(problem)
    return [*with_new_notes(session, notes, color_by, show_path, grid_cells, wavenet_path),
            uploaded + upload_bytes(files)]


@friendly
def add_recording(path, uploaded, session, color_by, show_path, grid_cells, wavenet_path, request: gr.Request,
                  progress=gr.Progress()):
    if not path:
        return [*nothing_new(session), uploaded]
    check_upload([path], session, uploaded)
    taken = sum(note.source == "microphone" for note in session.values())
    read = read_note(path, name=f"recording {taken + 1}", source="microphone")
    note, = pitched_and_encoded([read], wavenet_path, request, progress)
    if warning := texts.pitch_warning(note):
        gr.Warning(warning)
    return [*with_new_notes(session, [note], color_by, show_path, grid_cells, wavenet_path),
            uploaded + upload_bytes([path])]


@friendly
def correct_pitch(note_id, pitch, session, color_by, show_path, grid_cells, wavenet_path):
    session = with_pitch(session, note_id, pitch)
    choices = note_choices(session)
    figure = draw_map(session, color_by, note_id, show_path, grid_cells, wavenet_path)
    dropdowns = [gr.update(choices=choices) for _ in range(len(CORNERS) + 1)]
    return [session, session_summary(session), figure, gr.update(choices=choices, value=note_id), *dropdowns]


def pitch_of(note_id, session):
    return app.note(session, note_id).pitch if note_id else None


@friendly
@writes_files
def save_notes(session):
    path = exports.output_path(OUTPUTS_DIR, "nsynth_notes.npz")
    return str(session_archive.save_notes(list(session.values()), path))


@friendly
def restore_notes(path, session, color_by, show_path, grid_cells, wavenet_path):
    if not path:
        return nothing_new(session)
    return with_new_notes(session, session_archive.load_notes(path), color_by, show_path, grid_cells, wavenet_path)


@friendly
@writes_files
def select_note(note_id, session):
    if not note_id:
        return None
    return playable(app.note(session, note_id).audio)


def clicked_note(payload):
    try:
        return json.loads(payload)["id"]
    except (ValueError, KeyError, TypeError):
        return gr.skip()


def grid_settings(shape, size):
    notes = 2 if shape.startswith("line") else 4
    cells = size if notes == 2 else size * size
    return notes, cells


def checkpoint_paths(wavenet_path, spectral_path, ddsp_path) -> dict[str, str | None]:
    return {"wavenet": wavenet_path, "spectral": spectral_path, "ddsp": ddsp_path}


def decode_estimate(decoder, paths, cells, seconds, pitches=None):
    """What decoding `cells` cells of `seconds` (each at `pitches` pitches for a multigrid) will take, said before
    it starts."""
    path = checkpoint_paths(*paths)[DECODERS[decoder]]
    if not path:
        return f"No {decoder} checkpoint to decode with."
    decoding = load_model(path).decoding
    if delay := decoding.delay():  # said at once: measuring the cost now would wait as long
        return f"A {decoder} decode waits for {delay} before it starts."
    seconds_needed = decoding.estimate_seconds(cells * (pitches or 1), int(seconds * SAMPLE_RATE))
    return texts.decode_cost_message(seconds_needed, cells, seconds, decoder, pitches)


def estimate(shape, size, decoder, seconds, *paths):
    return decode_estimate(decoder, paths, grid_settings(shape, size)[1], seconds)


def multigrid_estimate(size, pitches, decoder, seconds, *paths):
    if not pitches:
        return "Choose at least one pitch to decode."
    return decode_estimate(decoder, paths, int(size) ** 2, seconds, len(pitches))


def decoder_and_encoder(kind: str, label: str, paths: dict) -> tuple[LoadedModel, LoadedModel]:
    loaded = model(paths[kind], label)
    wavenet = load_model(paths["wavenet"]) if paths["wavenet"] else None
    return loaded, encoder_for(loaded, wavenet)


@friendly
@writes_files
@low_priority.at_low_priority
def run_grid(a, b, c, d, shape, size, rule, decoder, temperature, seconds, session, wavenet_path, spectral_path,
             ddsp_path, pitch=OWN_PITCH, octaves=0, progress=gr.Progress()):
    size = grid_size(size)
    paths = checkpoint_paths(wavenet_path, spectral_path, ddsp_path)
    loaded, encoder = decoder_and_encoder(DECODERS[decoder], decoder, paths)
    count, _ = grid_settings(shape, size)
    chosen = [a, b, c, d][:count]
    if not all(chosen):
        raise ExplorerError(f"Choose {'notes A and B' if count == 2 else 'all four corner notes'} first.")
    grid = make_grid([app.note(session, note_id) for note_id in chosen], size, rule)
    audio, z = app.decode_grid(loaded, encoder, grid, temperature, int(seconds * SAMPLE_RATE),
                               progress=lambda done, total: progress((done, total), desc="Decoding", unit="samples"),
                               pitch=chosen_pitch(pitch), octaves=octaves)
    # The map lies in a WaveNet's space: without one the grid is heard, not placed. The zip comes last, so a
    # failure before it leaves no file behind.
    cells = list(zip(grid.labels, app.place_grid(load_model(wavenet_path), grid).tolist())) if wavenet_path else []
    archive = exports.export_zip(exports.output_path(OUTPUTS_DIR, "nsynth_grid.zip"), grid, audio, z)
    pcm = np.stack([playback_pcm16(cell) for cell in audio])
    players = [gr.update(**shown, visible=True) if shown else gr.update(value=None, visible=False)
               for shown in grid_players(grid.labels, grid.mixes(), pcm, size)]
    made_by = f"Decoded by the **{decoder}** decoder (`{loaded.name}`)."
    return [*players, gr.update(**play_all_player(grid.labels, pcm, grid.rule == "line")), str(archive), cells,
            made_by]


def grid_players(labels, mixes, pcm, per_row: int) -> list[dict | None]:
    """What each of the MAX_SIZE x MAX_SIZE cell players shows, row by row: a cell's 16-bit sound and what it is
    made of; None for a player left hidden. A line (as many cells as per_row) fills the first row."""
    shown = [None] * (MAX_SIZE * MAX_SIZE)
    for index, (label, made_of, cell) in enumerate(zip(labels, mixes, player_files(list(pcm)))):
        row, column = divmod(index, per_row)
        shown[row * MAX_SIZE + column] = {"value": cell, "label": f"{label}: {made_of}"}
    return shown


def play_all_player(labels, pcm, line: bool) -> dict:
    return {"value": player_files([exports.play_all(pcm)])[0], "label": exports.play_all_label(labels, line)}


@friendly
@writes_files
@low_priority.at_low_priority
def reconstruct(note_id, session, temperature, seconds, wavenet_path, spectral_path, ddsp_path, pitch=OWN_PITCH,
                octaves=0, progress=gr.Progress()):
    if not note_id:
        raise ExplorerError("Choose a note to reconstruct.")
    note = app.note(session, note_id)
    length = int(seconds * SAMPLE_RATE)
    outputs = [playable(note.audio[:length]), figures.rainbowgram_figure(note.audio[:length], "Original")]
    paths = checkpoint_paths(wavenet_path, spectral_path, ddsp_path)
    for label, kind in DECODERS.items():
        if not paths[kind]:
            gr.Warning(f"No {label} checkpoint: that reconstruction is skipped.")
            outputs += [None, None]
            continue
        loaded, encoder = decoder_and_encoder(kind, label, paths)
        audio = app.reconstruct(loaded, encoder, note, temperature, length,
                                progress=lambda done, total: progress((done, total), desc=label, unit="samples"),
                                pitch=chosen_pitch(pitch), octaves=octaves)
        outputs += [playable(audio), figures.rainbowgram_figure(audio, label)]
    return outputs


def describe_models(*paths):
    return "  \n".join(texts.describe_model(load_model(path)) for path in paths if path)


def refresh_checkpoints(*current_paths):
    """Each page load lists the checkpoints on disk now, so a newly trained model shows up without a restart."""
    found = app.checkpoints()
    pickers = []
    for kind, current in checkpoint_paths(*current_paths).items():
        paths = [path for _, path in found[kind]]
        pickers.append(gr.update(choices=found[kind], value=current if current in paths else default_checkpoint(kind)))
    return [texts.checkpoint_status(app), *pickers]


def keep_memory_flat():
    """glibc keeps freed large arrays in per-thread arenas and raises its mmap threshold after each big free, so
    a threaded server's memory creeps up request after request (benchmarks/load_test.py: about +35 MB a round of
    8 visitors). Two arenas and a fixed threshold, which hands large arrays back to the system when freed, leave
    only the visitors' own notes to grow it."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return
    mallopt(M_ARENA_MAX, 2)
    mallopt(M_MMAP_THRESHOLD, 128 * 1024)


def warm_up():
    """Load the default WaveNet and its map (the first UMAP placement compiles for seconds), encode the examples
    (so a click between notes on the map only decodes), and time every default decoder, so the first estimate of
    a decode is a measured one. Then a batch of notes no visitor has (examples played upside down) goes through the
    notes' queue, pitched and encoded as uploads are (in bfloat16 where the CPU has it, where the examples' own
    codes stay float32, as the shipped map was made), so an upload's first estimate is measured too, on a machine
    no longer busy warming up (pYIN's tracker compiles on one note first)."""
    low_priority.lower_this_thread()
    started = time.monotonic()
    examples = list(app.bundled.values())
    with_pitches(examples[:1])
    wavenet = default_checkpoint("wavenet")
    if wavenet:
        app.map_for(load_model(wavenet))
        encode_notes(load_model(wavenet), examples)
    for kind in DECODERS.values():
        if path := default_checkpoint(kind):
            load_model(path).decoding.probe()
    if wavenet:
        upside_down = [dataclasses.replace(note, id=f"{note.id}-upside-down", audio=-note.audio, source="upload")
                       for note in examples[:notes_queue.batch_size]]
        notes_queue.run("warm-up", load_model(wavenet), upside_down)
    print(f"{texts.WARM_UP_DONE} in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)


# --- the "How it works" tab: one note followed through the autoencoder (nsynth_core/teaching.py) ------------------

def step_heading(index: int):
    title, text = teaching.STEPS[index]
    return gr.Markdown(f"## {title}\n{text}")


def walked_note(selected, session) -> Note:
    """The note chosen in the Explore tab, else the first example, so the walk-through always has one."""
    return app.note(session, selected) if selected else next(iter(app.bundled.values()))


def note_picker(label: str, value: str | None = None) -> gr.Dropdown:
    """A note picker whose choices are filled when the page loads: built empty, the API schema does not list
    every note id, and an id it does not know gets the app's own message rather than a list of all ids."""
    return gr.Dropdown([], value=value, label=label, allow_custom_value=True)


def note_pickers(session, *values):
    choices = note_choices(session)
    return [gr.update(choices=choices, value=value) for value in values]


def another_family_note() -> str | None:
    """A default partner to mix the first example with: the first example of another family."""
    first, *others = app.bundled.values()
    return next((note.id for note in others if note.family != first.family), None)


@friendly
@writes_files
def show_sound(selected, session):
    note = walked_note(selected, session)
    shown = (f"Following **{note.label}** through the model (choose another note in the Explore tab, "
             "then come back).")
    return [shown, teaching.sound_figure(note.audio), playable(note.audio),
            playable(teaching.mu_law_round_trip(note.audio)), note.id]


def no_wavenet_figure():
    return figures.message_figure("This step needs a trained WaveNet checkpoint.")


@friendly
def show_code(selected, session, wavenet_path):
    """The note's Z under its rainbowgram, and its path over the map frame by frame."""
    if not wavenet_path:
        return no_wavenet_figure(), no_wavenet_figure()
    wavenet, note = load_model(wavenet_path), walked_note(selected, session)
    own = [] if note.id in app.bundled else [(note, app.place_notes(wavenet, [note])[0])]
    path = figures.map_figure(app.map_for(wavenet), "family", own,
                              trajectory=(note.name, app.trajectory(wavenet, note)))
    return teaching.code_figure(wavenet, note), path


@friendly
def show_distribution(selected, session, wavenet_path, step, temperature, seed):
    if not wavenet_path:
        return no_wavenet_figure()
    return teaching.distribution_figure(load_model(wavenet_path), walked_note(selected, session), int(step),
                                        temperature, int(seed))


@friendly
def show_decoder(selected, session, wavenet_path, step, temperature, seed):
    if not wavenet_path:
        return [no_wavenet_figure(), no_wavenet_figure()]
    figure = teaching.receptive_field_figure(load_model(wavenet_path), walked_note(selected, session), int(step))
    return [figure, show_distribution(selected, session, wavenet_path, step, temperature, seed)]


@friendly
@writes_files
def show_mix(selected, partner, weight, session, wavenet_path, spectral_path, ddsp_path):
    if not wavenet_path:
        return [no_wavenet_figure(), None, ""]
    if not partner:
        raise ExplorerError("Choose a second note to mix with.")
    paths = checkpoint_paths(wavenet_path, spectral_path, ddsp_path)
    # DDSP decodes a 4 s note in milliseconds; without it the spectral baseline mixes its own codes.
    label, kind = ("DDSP", "ddsp") if ddsp_path else ("Spectral baseline", "spectral")
    loaded, encoder = decoder_and_encoder(kind, label, paths)
    grid = teaching.blend_grid(walked_note(selected, session), app.note(session, partner), weight)
    audio, _ = app.decode_grid(loaded, encoder, grid, temperature=0.0, length=NOTE_LENGTH)
    said = f"Decoded by the **{label}** decoder (`{loaded.name}`)"
    if kind == "spectral":
        said += ", which mixes its own encoder's codes with the same weight (no DDSP checkpoint is available)"
    figure = teaching.mixing_figure(load_model(wavenet_path), grid, audio[0], label)
    return [figure, playable(audio[0]), said + "."]


@friendly
def show_decoders(*paths):
    labels = {kind: label for label, kind in DECODERS.items()}
    decoders = [(labels[kind], load_model(path)) for kind, path in checkpoint_paths(*paths).items() if path]
    return (f"**What each costs here** (measured on this machine):\n\n{teaching.cost_table(decoders)}\n\n"
            f"**What each keeps** (`{teaching.EVALUATION_FILE}` next to the checkpoints):\n\n"
            f"{teaching.evaluation_table(app.checkpoints_dir)}")

def chosen_pitch(choice) -> int | None:
    return None if choice in (None, "", OWN_PITCH) else int(choice)


def point_sound(x, y, decoder, pitch, seconds, temperature, wavenet_path, spectral_path, ddsp_path, octaves=0):
    """(audio, what is heard: the blend and its pitch) of the map point (x, y) decoded by `decoder`."""
    paths = checkpoint_paths(wavenet_path, spectral_path, ddsp_path)
    wavenet = model(paths["wavenet"], "WaveNet")
    loaded = model(paths[DECODERS[decoder]], decoder)
    audio, blend, notes = app.play_point(loaded, wavenet, (float(x), float(y)), temperature,
                                         int(seconds * SAMPLE_RATE), chosen_pitch(pitch), octaves=octaves)
    played = played_pitches([notes[0].pitch], chosen_pitch(pitch), octaves)[0]
    return audio, describe_blend(blend, notes, decoder, played)


def describe_blend(blend, notes, decoder, played: int) -> str:
    return ("Blend of " + ", ".join(f"**{note.name}** {100 * w:.0f} %" for note, w in zip(notes, blend.weights))
            + f", decoded by the {decoder} decoder at MIDI {played}.")


@friendly
@writes_files
@low_priority.at_low_priority
def play_point(x, y, decoder, pitch, seconds, temperature, wavenet_path, spectral_path, ddsp_path, octaves=0):
    audio, description = point_sound(x, y, decoder, pitch, seconds, temperature, wavenet_path, spectral_path,
                                     ddsp_path, octaves)
    return playable(audio), description


def clicked_place(payload) -> tuple[float, float] | None:
    """(x, y) of a click on empty map space; None for a click on a note (clicked_note selects it) or a bad one."""
    try:
        clicked = json.loads(payload)
        place = float(clicked["x"]), float(clicked["y"])
    except (ValueError, KeyError, TypeError):
        return None
    return None if "id" in clicked else place


@friendly
@writes_files
@low_priority.at_low_priority
def play_clicked_point(payload, decoder, pitch, seconds, temperature, wavenet_path, spectral_path, ddsp_path,
                       octaves=0):
    """A click on empty map space: the blend there, played at once (mark_clicked_point then draws it)."""
    place = clicked_place(payload)
    if place is None:
        return [gr.skip()] * 5
    audio, description = point_sound(*place, decoder, pitch, seconds, temperature, wavenet_path, spectral_path,
                                     ddsp_path, octaves)
    return playable(audio), *place, description, description


@friendly
def mark_clicked_point(payload, session, color_by, selected, show_path, grid_cells, wavenet_path):
    """The map with the clicked point and lines to the neighbours blended into it, after its sound has left."""
    place = clicked_place(payload)
    if place is None:
        return gr.skip()
    positions = app.map_for(model(wavenet_path, "WaveNet"), placing=False).positions
    nearest, weights = neighbour_weights(positions, place)  # the rule the sound was blended by
    figure = draw_map(session, color_by, selected, show_path, grid_cells, wavenet_path)
    return figures.mark_blend(figure, place, positions[nearest], [f"{100 * w:.0f} %" for w in weights])


def corner_notes(a, b, c, d, session) -> list[Note]:
    """The Grid tab's four corners; with none chosen, the example grid's, so the instrument can be played
    straight away."""
    if not any((a, b, c, d)):
        a, b, c, d = EXAMPLE.corners
    if not all((a, b, c, d)):
        raise ExplorerError("Choose all four corner notes in the Grid tab first (or none, for four examples).")
    return [app.note(session, note_id) for note_id in (a, b, c, d)]


def decode_every_cell(corners, size, pitches, rule, decoder, seconds, paths, progress):
    """Every cell of the grid between the four corner notes at every pitch (multigrid.py), refused up front when
    the decoder would take too long."""
    loaded, encoder = decoder_and_encoder(DECODERS[decoder], decoder, checkpoint_paths(*paths))
    length, notes = int(seconds * SAMPLE_RATE), int(size) ** 2 * len(pitches)
    needed = loaded.decoding.estimate_seconds(notes, length)
    if needed > SLOW_DECODE_SECONDS:
        raise ExplorerError(f"{notes} notes with the {decoder} decoder would take {describe_duration(needed)} "
                            "here: choose the DDSP decoder, fewer cells or fewer pitches.")
    return app.multigrid(loaded, encoder, corners, int(size), pitches, length, rule,
                         progress=lambda done, total: progress(
                             (done, total), desc=f"Decoding every cell at {len(pitches)} pitches", unit="notes"))


@friendly
@writes_files
@low_priority.at_low_priority
def export_soundfont(a, b, c, d, size, rule, decoder, seconds, session, *paths, progress=gr.Progress()):
    """Every cell of the grid between the four corners at Open NSynth Super's 16 pitches, as a SoundFont."""
    grid = decode_every_cell(corner_notes(a, b, c, d, session), size, ONS_PITCHES, rule, decoder, seconds, paths,
                             progress)
    path = exports.output_path(OUTPUTS_DIR, "nsynth_multigrid.sf2")
    return str(write_soundfont(path, grid, title=f"NSynth {size}x{size} grid ({decoder})"))


@friendly
@writes_files
@low_priority.at_low_priority
def decode_for_playing(a, b, c, d, size, pitches, rule, decoder, seconds, session, *paths, progress=gr.Progress()):
    """The grid's cells at the chosen pitches packed for assets/play.js: (the PCM file, its index, which also
    names the decoder and the corner notes, for the page to say what it plays)."""
    if not pitches:
        raise ExplorerError("Choose at least one pitch to decode.")
    corners = corner_notes(a, b, c, d, session)
    grid = decode_every_cell(corners, size, [int(p) for p in pitches], rule, decoder, seconds, paths, progress)
    path = exports.output_path(OUTPUTS_DIR, "nsynth_play.pcm")
    return str(path), {**write_browser_pack(path, grid), "decoder": decoder,
                       "corners": [note.label for note in corners]}


# Gradio keeps a copy of every file it serves (uploads, players' wavs, zips): drop those older than an hour.
with gr.Blocks(title="NSynth timbre explorer", delete_cache=(600, exports.OUTPUT_MAX_AGE)) as demo:
    session = gr.State({}, time_to_live=SESSION_TTL)  # note id -> Note: this visitor's own notes
    uploaded = gr.State(0, time_to_live=SESSION_TTL)  # bytes of this visitor's uploads so far (their budget)
    grid_cells = gr.State([], time_to_live=SESSION_TTL)  # [(label, [x, y])] of the last grid, drawn on the map
    gr.Markdown("# NSynth timbre explorer\nBring notes, see where they sit in the embedding space, and mix them "
                "into new sounds with the paper's WaveNet autoencoder, its spectral baseline or a fast DDSP decoder "
                "on the WaveNet's code.")
    with gr.Row(elem_id="example"):
        gr.Markdown(f"**Hear an example first.** {example_grid.DESCRIPTION} (The Grid tab plays each cell.)")
        example_track = play_all_player(EXAMPLE.labels, EXAMPLE.cells, line=False)
        gr.Audio(**example_track, interactive=False, elem_id="example-player")
    status = gr.Markdown(texts.checkpoint_status(app))
    with gr.Row():
        wavenet_path = gr.Dropdown([(name, path) for name, path in app.checkpoints()["wavenet"]],
                                   value=default_checkpoint("wavenet"), label="WaveNet checkpoint")
        spectral_path = gr.Dropdown([(name, path) for name, path in app.checkpoints()["spectral"]],
                                    value=default_checkpoint("spectral"), label="Spectral baseline checkpoint")
        ddsp_path = gr.Dropdown([(name, path) for name, path in app.checkpoints()["ddsp"]],
                                value=default_checkpoint("ddsp"), label="DDSP checkpoint (reads the WaveNet's Z)")
        model_info = gr.Markdown()
    with gr.Row():  # the pitch-conditioned decoders play any timbre at any pitch: grid, reconstruction, map point
        pitch_choice = gr.Dropdown(PITCH_CHOICES, value=OWN_PITCH, label="Pitch (MIDI) of every decoded sound")
        octaves = gr.Slider(-3, 3, value=0, step=1,
                            label="Octave shift of each note's own pitch (grid, reconstruction, map point)")

    with gr.Tab("Explore"):
        with gr.Row(elem_id="explore-columns"):
            with gr.Column(scale=1):
                uploads = gr.File(label="Upload notes", file_count="multiple", file_types=["audio"], elem_id="uploads")
                gr.Markdown(UPLOAD_LIMITS)
                recorder = gr.Audio(sources=["microphone"], type="filepath", label="Or record one")
                summary = gr.Markdown(session_summary({}), label="Your notes", elem_id="summary")
                with gr.Row():
                    save_button = gr.Button("Save my notes", size="sm")
                    saved = gr.File(label="Saved notes (.npz)", interactive=False)
                restore = gr.File(label="Restore saved notes", file_types=[".npz"])
                selected = note_picker("Note (or click one on the map)")
                with gr.Row():
                    note_pitch = gr.Number(None, precision=0, minimum=0, maximum=127,
                                           label="Its pitch (MIDI; 60 is middle C)", elem_id="note-pitch")
                    pitch_button = gr.Button("Correct the pitch of my note", size="sm")
                player = gr.Audio(label="Selected note", interactive=False, autoplay=True,
                                  elem_id="selected-player")
                heard = gr.Markdown("Click a note on the map to hear it, or empty space between notes to hear "
                                    "the blend of the nearest three.")
                with gr.Row():
                    corner_buttons = [gr.Button(f"Use as {corner[0]}", size="sm") for corner in CORNERS]
            with gr.Column(scale=2):
                with gr.Row():
                    color_by = gr.Radio([(figures.COLOR_BY_LABELS[name], name) for name in figures.COLOR_BY],
                                        value="family", label="Colour by")
                    show_path = gr.Checkbox(label="Show the selected note's path over time")
                served_map = first_map()
                map_plot = gr.Plot(served_map, label="Map", elem_id="map")
                click = gr.Textbox(elem_id="map-click", show_label=False)

    with gr.Tab("Grid"):
        corners = []
        for row in (CORNERS[:2], CORNERS[2:]):  # laid out as they sit on the grid
            with gr.Row(elem_classes="corner-pickers"):
                corners += [note_picker(f"Corner {corner}", EXAMPLE.corners[CORNERS.index(corner)])
                            for corner in row]
        with gr.Row():
            shape = gr.Radio(["grid (4 notes)", "line (A to B)"], value="grid (4 notes)", label="Shape")
            size = gr.Slider(min(GRID_SIZES), MAX_SIZE, value=example_grid.SIZE, step=1, label="Cells per side")
            rule = gr.Radio([("bilinear", "bilinear"), ("Open NSynth Super distance", "distance")],
                            value="bilinear", label="Mixing")
        with gr.Row():
            decoder = gr.Radio(list(DECODERS), value=DEFAULT_DECODER, label="Decoder")
            # 0.25: the shipped WaveNet keeps the pitch of 84 % of test notes there, 78 % at 0.5 and 49 % at 1, and
            # its spectral distance is lowest there (checkpoints/README.md).
            temperature = gr.Slider(0.0, 1.5, value=0.25, step=0.05,
                                    label="WaveNet temperature (0 = most likely sample, 1 = the model's own "
                                          "distribution)")
            seconds = gr.Slider(0.1, 4.0, value=example_grid.SECONDS, step=0.1, label="Length (s)")
        expected = gr.Markdown()
        generate_button = gr.Button("Generate grid", variant="primary")
        made_by = gr.Markdown(example_grid.DESCRIPTION, label="Decoded by")
        all_cells = gr.Audio(**example_track, interactive=False, elem_id="play-all")
        example_cells = iter(grid_players(EXAMPLE.labels, EXAMPLE.mixes, EXAMPLE.cells, example_grid.SIZE))
        players = []
        for _ in range(MAX_SIZE):
            with gr.Row():
                players += [gr.Audio(**(shown or {"label": "Grid cell"}), visible=shown is not None,
                                     interactive=False, min_width=120)
                            for shown in islice(example_cells, MAX_SIZE)]
        archive = gr.File(label="Download every cell (wav + Z as .npy)")

    with gr.Tab("Reconstruct", elem_id="reconstruct-tab"):
        with gr.Row():
            source_note = note_picker("Note")
            reconstruct_seconds = gr.Slider(0.1, 4.0, value=2.0, step=0.1, label="Length (s)")
            reconstruct_temperature = gr.Slider(0.0, 1.5, value=0.25, step=0.05, label="WaveNet temperature")
            reconstruct_button = gr.Button("Reconstruct", variant="primary")
        outputs = []
        with gr.Row():
            for title in ("Original", *DECODERS):
                with gr.Column():
                    outputs += [gr.Audio(label=title, interactive=False), gr.Plot(label=f"{title} rainbowgram")]

    with gr.Tab("How it works", elem_id="how-it-works") as how_tab:
        walked_id = gr.State(None)  # the note the walk-through shows, for the link to its reconstructions
        shown_note = gr.Markdown(label="Note followed")
        step_heading(0)
        sound_plot = gr.Plot(show_label=False)
        with gr.Row():
            original_player = gr.Audio(label="The note", interactive=False)
            quantised_player = gr.Audio(label="The same note rounded to 256 levels (8-bit mu-law)", interactive=False)
        step_heading(1)
        code_plot = gr.Plot(show_label=False)
        path_plot = gr.Plot(show_label=False)
        step_heading(2)
        with gr.Row():
            time_step = gr.Slider(0, NOTE_LENGTH - 1, value=SAMPLE_RATE // 2, step=1,
                                  label="Time step: the sample to predict (16 000 per second)")
            walk_temperature = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Temperature")
            draw_seed = gr.Number(0, precision=0, minimum=0, label="Seed of the draw")
        field_plot = gr.Plot(show_label=False)
        distribution_plot = gr.Plot(show_label=False)
        step_heading(3)
        with gr.Row():
            partner = note_picker("Mix with", another_family_note())
            weight = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Weight of the second note")
        mix_plot = gr.Plot(show_label=False)
        with gr.Row():
            blend_player = gr.Audio(label="The decoded blend", interactive=False)
            mixed_by = gr.Markdown(label="Mixed by")
        step_heading(4)
        decoders_table = gr.Markdown()
        to_reconstruct = gr.Button("Hear this note's three reconstructions (Reconstruct tab)", variant="primary")

    with gr.Tab("Play") as play_tab:
        gr.Markdown("Click anywhere on the map (Explore tab) to hear the blend of the three nearest notes, "
                    "or give a point here. The SoundFont holds every cell of the Grid tab's four corners (or four "
                    f"examples when none are chosen) at Open NSynth Super's {len(ONS_PITCHES)} pitches, for any "
                    "sampler.")
        with gr.Row():
            point_decoder = gr.Radio(list(DECODERS), value=DEFAULT_DECODER, label="Decoder")
            point_x, point_y = gr.Number(0.0, label="Map x"), gr.Number(0.0, label="Map y")
            play_button = gr.Button("Play this point", variant="primary")
        point_player = gr.Audio(label="Map point", interactive=False, autoplay=True)
        point_blend = gr.Markdown(label="Blend heard")
        with gr.Row():
            multigrid_size = gr.Slider(min(GRID_SIZES), MAX_SIZE, value=MULTIGRID_SIZE, step=1,
                                       label="Cells per side")
            soundfont_button = gr.Button("Download as SoundFont (.sf2)")
        soundfont_expected = gr.Markdown()
        soundfont_file = gr.File(label="SoundFont")
        gr.Markdown("**Play in the page:** the same grid's cells decoded at a few pitches; keys between them play "
                    "the nearest pitch sped up or slowed down.")
        with gr.Row():
            play_size = gr.Slider(min(GRID_SIZES), MAX_SIZE, value=PLAY_SIZE, step=1,
                                  label="Cells per side to play")
            play_pitches = gr.Dropdown(list(ONS_PITCHES), value=list(PLAY_PITCHES), multiselect=True,
                                       label="Pitches to decode (MIDI)")
            play_seconds = gr.Slider(0.5, 4.0, value=PLAY_SECONDS, step=0.5, label="Note length (s)")
            play_decode_button = gr.Button("Decode for playing", variant="primary")
        play_expected = gr.Markdown()
        gr.HTML(PLAY_SURFACE)
        play_file = gr.File(label="Decoded notes (16-bit PCM, index below)", visible="hidden")
        play_index = gr.JSON(visible="hidden", label="Index of the decoded notes")

    with gr.Tab("About"):
        gr.Markdown((ASSETS_DIR / "about.md").read_text(), elem_id="about")

    note_dropdowns = [selected, *corners, source_note]
    map_inputs = [session, color_by, show_path, grid_cells, wavenet_path]
    new_note_outputs = [session, summary, map_plot, selected, *corners, source_note]
    # Each event shows its progress, and a refusal's badge, on one component rather than on every output.
    # The box is emptied after each upload, taken or refused, so the next upload reads only its own files.
    adding = {"concurrency_id": "add_notes", "concurrency_limit": ADDING_NOTES_AT_ONCE, "show_progress_on": summary}
    upload_event = uploads.upload(add_uploads, [uploads, uploaded, *map_inputs], [*new_note_outputs, uploaded],
                                  api_name="add_uploads", **adding)
    for after in (upload_event.success, upload_event.failure):
        after(None, None, uploads, js="() => null")
    recorder.stop_recording(add_recording, [recorder, uploaded, *map_inputs], [*new_note_outputs, uploaded],
                            api_name="add_recording", **adding)
    save_button.click(save_notes, session, saved, api_name="save_notes")
    restore.upload(restore_notes, [restore, *map_inputs], new_note_outputs, api_name="restore_notes",
                   show_progress_on=summary)
    pitch_button.click(correct_pitch, [selected, note_pitch, *map_inputs], new_note_outputs,
                       api_name="correct_pitch", show_progress_on=note_pitch)

    map_args = [session, color_by, selected, show_path, grid_cells, wavenet_path]
    # One listener per output that several settings change, always run on the latest settings: separate listeners
    # could finish out of order under load and leave on the page what earlier settings gave.
    gr.on([color_by.change, show_path.change, wavenet_path.change], draw_map, map_args, map_plot, api_name="map",
          trigger_mode="always_last")
    selected.change(select_note, [selected, session], player, api_name="select_note")
    selected.change(pitch_of, [selected, session], note_pitch)
    selected.change(lambda note_id: f"**{note_id}**, as recorded." if note_id else gr.skip(), selected, heard)
    selected.change(lambda *args: draw_map(*args) if args[3] else gr.skip(), map_args, map_plot)
    click.change(clicked_note, click, selected)
    for button, corner in zip(corner_buttons, corners):
        button.click(lambda note_id: note_id, selected, corner)

    model_paths = [wavenet_path, spectral_path, ddsp_path]
    estimate_inputs = [shape, size, decoder, seconds, *model_paths]
    gr.on([shape.change, size.change, decoder.change, seconds.change], estimate, estimate_inputs, expected,
          trigger_mode="always_last")
    generate_button.click(
        run_grid, [*corners, shape, size, rule, decoder, temperature, seconds, session, *model_paths, pitch_choice,
                   octaves],
        [*players, all_cells, archive, grid_cells, made_by], api_name="grid", concurrency_id="decode",
        concurrency_limit=1, show_progress_on=made_by).then(
        draw_map, map_args, map_plot)
    reconstruct_inputs = [source_note, session, reconstruct_temperature, reconstruct_seconds, *model_paths,
                          pitch_choice, octaves]
    reconstruct_button.click(reconstruct, reconstruct_inputs, outputs, api_name="reconstruct",
                             concurrency_id="decode", concurrency_limit=1, show_progress_on=outputs[0])
    for trigger in (wavenet_path.change, spectral_path.change, ddsp_path.change):
        trigger(describe_models, model_paths, model_info)

    walk_note = [selected, session]
    step_inputs = [*walk_note, wavenet_path, time_step, walk_temperature, draw_seed]
    mix_inputs = [selected, partner, weight, session, *model_paths]
    # In order, so the first steps appear while the later ones compute.
    how_tab.select(show_sound, walk_note, [shown_note, sound_plot, original_player, quantised_player, walked_id]).then(
        show_code, [*walk_note, wavenet_path], [code_plot, path_plot]).then(
        show_decoder, step_inputs, [field_plot, distribution_plot]).then(
        show_mix, mix_inputs, [mix_plot, blend_player, mixed_by]).then(
        show_decoders, model_paths, decoders_table)
    time_step.change(show_decoder, step_inputs, [field_plot, distribution_plot])
    gr.on([walk_temperature.change, draw_seed.change], show_distribution, step_inputs, distribution_plot,
          trigger_mode="always_last")
    gr.on([partner.change, weight.change], show_mix, mix_inputs, [mix_plot, blend_player, mixed_by],
          trigger_mode="always_last")
    to_reconstruct.click(lambda note_id: note_id, walked_id, source_note, js=OPEN_RECONSTRUCT_TAB).then(
        reconstruct, reconstruct_inputs, outputs, concurrency_id="decode", concurrency_limit=1,
        show_progress_on=outputs[0])
    point_settings = [point_decoder, pitch_choice, seconds, temperature, *model_paths, octaves]
    play_button.click(play_point, [point_x, point_y, *point_settings], [point_player, point_blend],
                      api_name="play_point", concurrency_id="decode", concurrency_limit=1,
                      show_progress_on=point_player)
    click.change(play_clicked_point, [click, *point_settings], [player, point_x, point_y, point_blend, heard],
                 concurrency_id="decode", concurrency_limit=1, show_progress_on=player).then(
        mark_clicked_point, [click, *map_args], map_plot)
    soundfont_estimate_inputs = [multigrid_size, gr.State(list(ONS_PITCHES)), point_decoder, seconds, *model_paths]
    play_estimate_inputs = [play_size, play_pitches, point_decoder, play_seconds, *model_paths]
    gr.on([play_tab.select, multigrid_size.change, point_decoder.change, seconds.change], multigrid_estimate,
          soundfont_estimate_inputs, soundfont_expected, trigger_mode="always_last")
    gr.on([play_tab.select, play_size.change, play_pitches.change, point_decoder.change, play_seconds.change],
          multigrid_estimate, play_estimate_inputs, play_expected, trigger_mode="always_last")
    soundfont_button.click(export_soundfont, [*corners, multigrid_size, rule, point_decoder, seconds, session,
                                              *model_paths], soundfont_file, api_name="soundfont",
                           concurrency_id="decode", concurrency_limit=1)
    play_decode_button.click(
        decode_for_playing, [*corners, play_size, play_pitches, rule, point_decoder, play_seconds, session,
                             *model_paths], [play_file, play_index], api_name="decode_for_playing",
        concurrency_id="decode", concurrency_limit=1, show_progress_on=play_expected).success(
        None, [play_file, play_index], None, js="(file, index) => window.nsynthPlay.load(file.url, index)")

    demo.load(None, js=CLICK_BRIDGE)
    demo.load(None, js=PLAYER)
    demo.load(refresh_checkpoints, model_paths, [status, *model_paths])
    note_dropdowns_and_partner = [*note_dropdowns, partner]
    demo.load(note_pickers, [session, *note_dropdowns_and_partner], note_dropdowns_and_partner)
    if served_map is None:  # else it stands until something changes it: a redraw would blank it meanwhile
        demo.load(draw_map, map_args, map_plot)
    demo.load(describe_models, model_paths, model_info).then(estimate, estimate_inputs, expected)
    # The API offers what a caller would call; the page's own wiring (estimates, redraws, steps) stays private.
    for event in demo.fns.values():
        if event.api_name not in PUBLIC_API:
            event.api_visibility = "private"
    for block in demo.blocks.values():
        if isinstance(block, (gr.Slider, gr.Number)):
            reads_numbers_in_words(block)

if __name__ == "__main__":
    keep_memory_flat()  # before the server's threads start
    if (nice := low_priority.compute_nice()) and low_priority.PER_THREAD:
        print(f"Pitch tracking and encoding run at nice {nice}, decoding at nice {low_priority.decode_nice()}, "
              "below the web server.", file=sys.stderr)
    fastgen.start_build()  # the first start compiles for up to minutes: not on a visitor's first decode
    for name, problem in broken_checkpoints(app.checkpoints_dir).items():
        print(f"Skipped checkpoint {name}: {problem}", file=sys.stderr)
    threading.Thread(target=warm_up, daemon=True).start()
    # librosa's first constant-Q transform takes seconds: not on the first rainbowgram a visitor asks for.
    threading.Thread(target=rainbowgram, args=(np.zeros(NOTE_LENGTH, np.float32),), daemon=True).start()
    # Gradio serves only its own cache and uploads; blocking the code and the weights keeps it so whatever
    # allowed_paths or GRADIO_ALLOWED_PATHS say (Gradio's cache, GRADIO_TEMP_DIR, must lie outside both).
    # An earlier run stopped mid-upload (a full disk, a kill) leaves Gradio's partial files behind.
    if removed := disk_space.remove_partial_uploads(older_than=disk_space.ORPHAN_AGE):
        print(f"Removed {removed} partly written upload(s) left by an earlier run.", file=sys.stderr)
    demo.queue(default_concurrency_limit=2, max_size=32).launch(
        css=CSS, head=preload_plotting_library(), max_file_size=f"{MAX_UPLOAD_FILE_MB}mb",
        state_session_capacity=MAX_SESSIONS,
        blocked_paths=[str(REPO), str(app.checkpoints_dir.resolve())],
        app_kwargs={"middleware": [Middleware(disk_space.UploadRoomMiddleware,
                                              max_request_bytes=UPLOAD_REQUEST_MB * disk_space.MB)]})
