"""NSynth timbre explorer: a web page over nsynth_core.explorer.

    python app.py            # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override)

Checkpoints are read from checkpoints/ (or the folder named by NSYNTH_CHECKPOINTS); files handed to visitors are
written to a temporary folder (NSYNTH_OUTPUTS) and deleted after an hour.
"""

import ctypes
import functools
import json
import os
import sys
import threading
from pathlib import Path

import gradio as gr
import numpy as np
import torch

from nsynth_core import explorer as ex
from nsynth_core import exports, figures, session_archive
from nsynth_core import fastgen
from nsynth_core.audio import NOTE_LENGTH, SAMPLE_RATE, for_playback
from nsynth_core.interpolation import GRID_SIZES
from nsynth_core.rainbowgram import rainbowgram

MAX_SIZE = max(GRID_SIZES)
DECODERS = {"DDSP": "ddsp", "WaveNet": "wavenet", "Spectral baseline": "spectral"}  # page label -> checkpoint kind
DEFAULT_DECODER = "DDSP"  # the closest to the originals in the evaluation (checkpoints/evaluation.md)
CORNERS = ("A (top left)", "B (top right)", "C (bottom left)", "D (bottom right)")
REPO = Path(__file__).resolve().parent
MAX_UPLOAD_MB = 20
SESSION_TTL = 3 * 3600  # s without a new note before a visitor's notes are dropped from server memory
MAX_SESSIONS = 500  # sessions kept in memory, each holding up to ex.MAX_SESSION_NOTES notes of 256 kB
M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # glibc's mallopt parameters (malloc.h)
UPLOAD_LIMITS = (f"WAV, FLAC, OGG or MP3, up to {MAX_UPLOAD_MB} MB each, {ex.MAX_UPLOAD_FILES} files and "
                 f"{ex.MAX_UPLOAD_MB} MB at a time. Only the first "
                 f"{NOTE_LENGTH / SAMPLE_RATE:g} s are used; a shorter sound is padded with silence, as NSynth "
                 "notes end in silence.")
# Generation is a long chain of small tensor operations: on a shared 2-core machine a second thread mostly waits.
torch.set_num_threads(int(os.environ.get("NSYNTH_THREADS", "1")))

app = ex.Explorer()
CLICK_BRIDGE = """
() => {
  const report = (event) => {
    const point = event.points[0];
    const id = Array.isArray(point.customdata) ? point.customdata[0] : point.customdata;
    const box = document.querySelector("#map-click textarea");
    if (!id || !box) return;
    box.value = JSON.stringify({id: id, x: point.x, y: point.y, time: Date.now()});
    box.dispatchEvent(new Event("input", {bubbles: true}));
    box.dispatchEvent(new Event("change", {bubbles: true}));
  };
  const attach = () => document.querySelectorAll(".js-plotly-plot").forEach((plot) => {
    const listening = plot._ev && plot._ev.listeners("plotly_click").includes(report);
    if (plot.on && !listening) plot.on("plotly_click", report);
  });
  new MutationObserver(attach).observe(document.body, {childList: true, subtree: true});
  attach();
}
"""
CSS = "#map-click {display: none !important}"


def friendly(handler):
    """Bad input becomes a message in the page instead of a traceback."""
    @functools.wraps(handler)
    def wrapped(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except ValueError as error:
            raise gr.Error(str(error)) from None
    return wrapped


def playable(audio: np.ndarray) -> tuple[int, np.ndarray]:
    """Notes are encoded at the training level (audio.NOTE_PEAK); every player plays at one louder peak, so
    originals and reconstructions compare by ear."""
    return SAMPLE_RATE, np.round(for_playback(audio) * 32767).astype(np.int16)


def model(path: str | None, kind: str) -> ex.LoadedModel:
    if not path:
        raise ex.ExplorerError(f"No trained {kind} checkpoint is available: put one in {app.checkpoints_dir}/.")
    return ex.load_model(path)


def default_checkpoint(kind: str) -> str | None:
    found = app.checkpoints()[kind]
    return found[0][1] if found else None


def note_choices(session) -> list[tuple[str, str]]:
    return [(note.label, note.id) for note in app.notes(session).values()]


def session_summary(session) -> str:
    if not session:
        return "Your notes will be listed here."
    return "**Your notes:** " + ", ".join(note.label for note in session.values())


@friendly
def draw_map(session, color_by, selected, show_path, grid_cells, wavenet_path, progress=gr.Progress()):
    wavenet = ex.load_model(wavenet_path) if wavenet_path else None
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
    session = ex.add_notes(session, notes, {note.name for note in app.bundled.values()})
    choices = note_choices(session)
    selected = next((n.id for n in reversed(list(session.values())) if any(n.id == m.id for m in notes)), None)
    figure = draw_map(session, color_by, selected, show_path, grid_cells, wavenet_path)
    dropdowns = [gr.update(choices=choices) for _ in range(len(CORNERS) + 1)]
    return [session, session_summary(session), figure, gr.update(choices=choices, value=selected), *dropdowns]


def nothing_new(session):
    return [session, session_summary(session), gr.skip(), gr.skip(), *[gr.skip()] * (len(CORNERS) + 1)]


@friendly
def add_uploads(files, session, color_by, show_path, grid_cells, wavenet_path):
    notes, problems = ex.read_uploads(files, session)
    for problem in problems:
        gr.Warning(problem)
    return with_new_notes(session, notes, color_by, show_path, grid_cells, wavenet_path)


@friendly
def add_recording(path, session, color_by, show_path, grid_cells, wavenet_path):
    if not path:
        return nothing_new(session)
    taken = sum(note.source == "microphone" for note in session.values())
    note = ex.note_from_file(path, name=f"recording {taken + 1}", source="microphone")
    if warning := ex.pitch_warning(note):
        gr.Warning(warning)
    return with_new_notes(session, [note], color_by, show_path, grid_cells, wavenet_path)


@friendly
def save_notes(session):
    path = exports.output_path(app.outputs_dir, "nsynth_notes.npz")
    return str(session_archive.save_notes(list(session.values()), path))


@friendly
def restore_notes(path, session, color_by, show_path, grid_cells, wavenet_path):
    if not path:
        return nothing_new(session)
    return with_new_notes(session, session_archive.load_notes(path), color_by, show_path, grid_cells, wavenet_path)


@friendly
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


def estimate(shape, size, decoder, seconds, *paths):
    path = checkpoint_paths(*paths)[DECODERS[decoder]]
    if not path:
        return f"No {decoder} checkpoint to decode with."
    _, cells = grid_settings(shape, size)
    seconds_needed = ex.load_model(path).decoding.estimate_seconds(cells, int(seconds * SAMPLE_RATE))
    return ex.decode_cost_message(seconds_needed, cells, seconds, decoder)


def decoder_and_encoder(kind: str, label: str, paths: dict) -> tuple[ex.LoadedModel, ex.LoadedModel]:
    loaded = model(paths[kind], label)
    wavenet = ex.load_model(paths["wavenet"]) if paths["wavenet"] else None
    return loaded, ex.encoder_for(loaded, wavenet)


@friendly
def run_grid(a, b, c, d, shape, size, rule, decoder, temperature, seconds, session, wavenet_path, spectral_path,
             ddsp_path, progress=gr.Progress()):
    size = ex.grid_size(size)
    paths = checkpoint_paths(wavenet_path, spectral_path, ddsp_path)
    loaded, encoder = decoder_and_encoder(DECODERS[decoder], decoder, paths)
    count, _ = grid_settings(shape, size)
    chosen = [a, b, c, d][:count]
    if not all(chosen):
        raise ex.ExplorerError(f"Choose {'notes A and B' if count == 2 else 'all four corner notes'} first.")
    grid = ex.make_grid([app.note(session, note_id) for note_id in chosen], size, rule)
    audio, z = app.decode_grid(loaded, encoder, grid, temperature, int(seconds * SAMPLE_RATE),
                               progress=lambda done, total: progress((done, total), desc="Decoding", unit="samples"))
    # The map lies in a WaveNet's space: without one the grid is heard, not placed. The zip comes last, so a
    # failure before it leaves no file behind.
    cells = list(zip(grid.labels, app.place_grid(ex.load_model(wavenet_path), grid).tolist())) if wavenet_path else []
    archive = exports.export_zip(exports.output_path(app.outputs_dir, "nsynth_grid.zip"), grid, audio, z)
    players = [gr.update(value=None, visible=False) for _ in range(MAX_SIZE * MAX_SIZE)]
    rows = 1 if count == 2 else size
    for index, label in enumerate(grid.labels):
        row, column = divmod(index, size) if rows > 1 else (0, index)
        players[row * MAX_SIZE + column] = gr.update(value=playable(audio[index]), label=label, visible=True)
    made_by = f"Decoded by the **{decoder}** decoder (`{loaded.name}`)."
    return [*players, str(archive), cells, made_by]


@friendly
def reconstruct(note_id, session, temperature, seconds, wavenet_path, spectral_path, ddsp_path,
                progress=gr.Progress()):
    if not note_id:
        raise ex.ExplorerError("Choose a note to reconstruct.")
    note = app.note(session, note_id)
    length = int(seconds * SAMPLE_RATE)
    outputs = [playable(note.audio[:length]), rainbowgram(note.audio[:length])]
    paths = checkpoint_paths(wavenet_path, spectral_path, ddsp_path)
    for label, kind in DECODERS.items():
        if not paths[kind]:
            gr.Warning(f"No {label} checkpoint: that reconstruction is skipped.")
            outputs += [None, None]
            continue
        loaded, encoder = decoder_and_encoder(kind, label, paths)
        audio = app.reconstruct(loaded, encoder, note, temperature, length,
                                progress=lambda done, total: progress((done, total), desc=label, unit="samples"))
        outputs += [playable(audio), rainbowgram(audio)]
    return outputs


def describe_models(*paths):
    return "  \n".join(ex.describe_model(ex.load_model(path)) for path in paths if path)


def refresh_checkpoints(*current_paths):
    """Each page load lists the checkpoints on disk now, so a newly trained model shows up without a restart."""
    found = app.checkpoints()
    pickers = []
    for kind, current in checkpoint_paths(*current_paths).items():
        paths = [path for _, path in found[kind]]
        pickers.append(gr.update(choices=found[kind], value=current if current in paths else default_checkpoint(kind)))
    return [app.status(), *pickers]


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
    """Load the default WaveNet and its map (the first UMAP placement compiles for seconds), and time every
    default decoder so the first estimate is a measured one."""
    wavenet = default_checkpoint("wavenet")
    if wavenet:
        app.map_for(ex.load_model(wavenet))
    for kind in DECODERS.values():
        if path := default_checkpoint(kind):
            ex.load_model(path).decoding.probe()


# Gradio keeps a copy of every file it serves (uploads, players' wavs, zips): drop those older than an hour.
with gr.Blocks(title="NSynth timbre explorer", delete_cache=(600, exports.OUTPUT_MAX_AGE)) as demo:
    session = gr.State({}, time_to_live=SESSION_TTL)  # note id -> Note: this visitor's own notes
    grid_cells = gr.State([], time_to_live=SESSION_TTL)  # [(label, [x, y])] of the last grid, drawn on the map
    gr.Markdown("# NSynth timbre explorer\nBring notes, see where they sit in the embedding space, and mix them "
                "into new sounds with a WaveNet autoencoder.")
    status = gr.Markdown(app.status())
    with gr.Row():
        wavenet_path = gr.Dropdown([(name, path) for name, path in app.checkpoints()["wavenet"]],
                                   value=default_checkpoint("wavenet"), label="WaveNet checkpoint")
        spectral_path = gr.Dropdown([(name, path) for name, path in app.checkpoints()["spectral"]],
                                    value=default_checkpoint("spectral"), label="Spectral baseline checkpoint")
        ddsp_path = gr.Dropdown([(name, path) for name, path in app.checkpoints()["ddsp"]],
                                value=default_checkpoint("ddsp"), label="DDSP checkpoint (reads the WaveNet's Z)")
        model_info = gr.Markdown()

    with gr.Tab("Explore"):
        with gr.Row():
            with gr.Column(scale=1):
                uploads = gr.File(label="Upload notes", file_count="multiple", file_types=["audio"])
                gr.Markdown(UPLOAD_LIMITS)
                recorder = gr.Audio(sources=["microphone"], type="filepath", label="Or record one")
                summary = gr.Markdown(session_summary({}))
                with gr.Row():
                    save_button = gr.Button("Save my notes", size="sm")
                    saved = gr.File(label="Saved notes (.npz)", interactive=False)
                restore = gr.File(label="Restore saved notes", file_types=[".npz"])
                selected = gr.Dropdown(note_choices({}), value=None, label="Note (or click one on the map)")
                player = gr.Audio(label="Selected note", interactive=False, autoplay=True)
                with gr.Row():
                    corner_buttons = [gr.Button(f"Use as {corner[0]}", size="sm") for corner in CORNERS]
            with gr.Column(scale=2):
                with gr.Row():
                    color_by = gr.Radio(list(figures.COLOR_BY), value="family", label="Colour by")
                    show_path = gr.Checkbox(label="Show the selected note's path over time")
                map_plot = gr.Plot(label="Map")
                click = gr.Textbox(elem_id="map-click", show_label=False)

    with gr.Tab("Grid"):
        with gr.Row():
            corners = [gr.Dropdown(note_choices({}), value=None, label=f"Corner {corner}") for corner in CORNERS]
        with gr.Row():
            shape = gr.Radio(["grid (4 notes)", "line (A to B)"], value="grid (4 notes)", label="Shape")
            size = gr.Slider(min(GRID_SIZES), MAX_SIZE, value=2, step=1, label="Cells per side")
            rule = gr.Radio([("bilinear", "bilinear"), ("Open NSynth Super distance", "distance")],
                            value="bilinear", label="Mixing")
        with gr.Row():
            decoder = gr.Radio(list(DECODERS), value=DEFAULT_DECODER, label="Decoder")
            # 0.25: the shipped WaveNet keeps the pitch of 84 % of test notes there, 78 % at 0.5 and 49 % at 1, and
            # its spectral distance is lowest there (checkpoints/README.md).
            temperature = gr.Slider(0.0, 1.5, value=0.25, step=0.05,
                                    label="WaveNet temperature (0 = most likely sample, 1 = the model's own "
                                          "distribution)")
            seconds = gr.Slider(0.1, 4.0, value=1.0, step=0.1, label="Length (s)")
        expected = gr.Markdown()
        generate_button = gr.Button("Generate grid", variant="primary")
        made_by = gr.Markdown()
        players = []
        for _ in range(MAX_SIZE):
            with gr.Row():
                players += [gr.Audio(visible=False, interactive=False, min_width=120) for _ in range(MAX_SIZE)]
        archive = gr.File(label="Download every cell (wav + Z as .npy)")

    with gr.Tab("Reconstruct"):
        with gr.Row():
            source_note = gr.Dropdown(note_choices({}), value=None, label="Note")
            reconstruct_button = gr.Button("Reconstruct", variant="primary")
        outputs = []
        with gr.Row():
            for title in ("Original", *DECODERS):
                with gr.Column():
                    outputs += [gr.Audio(label=title, interactive=False), gr.Image(label=f"{title} rainbowgram")]

    with gr.Tab("About"):
        gr.Markdown((ex.ASSETS_DIR / "about.md").read_text())

    note_dropdowns = [selected, *corners, source_note]
    map_inputs = [session, color_by, show_path, grid_cells, wavenet_path]
    new_note_outputs = [session, summary, map_plot, selected, *corners, source_note]
    uploads.upload(add_uploads, [uploads, *map_inputs], new_note_outputs, api_name="add_uploads")
    recorder.stop_recording(add_recording, [recorder, *map_inputs], new_note_outputs, api_name="add_recording")
    save_button.click(save_notes, session, saved, api_name="save_notes")
    restore.upload(restore_notes, [restore, *map_inputs], new_note_outputs, api_name="restore_notes")

    map_args = [session, color_by, selected, show_path, grid_cells, wavenet_path]
    color_by.change(draw_map, map_args, map_plot, api_name="map")
    for trigger in (show_path.change, wavenet_path.change):
        trigger(draw_map, map_args, map_plot)
    selected.change(select_note, [selected, session], player, api_name="select_note")
    selected.change(lambda *args: draw_map(*args) if args[3] else gr.skip(), map_args, map_plot)
    click.change(clicked_note, click, selected)
    for button, corner in zip(corner_buttons, corners):
        button.click(lambda note_id: note_id, selected, corner)

    model_paths = [wavenet_path, spectral_path, ddsp_path]
    estimate_inputs = [shape, size, decoder, seconds, *model_paths]
    for trigger in (shape.change, size.change, decoder.change, seconds.change):
        trigger(estimate, estimate_inputs, expected)
    generate_button.click(
        run_grid, [*corners, shape, size, rule, decoder, temperature, seconds, session, *model_paths],
        [*players, archive, grid_cells, made_by], api_name="grid", concurrency_id="decode",
        concurrency_limit=1).then(
        draw_map, map_args, map_plot)
    reconstruct_button.click(
        reconstruct, [source_note, session, temperature, seconds, *model_paths], outputs,
        api_name="reconstruct", concurrency_id="decode", concurrency_limit=1)
    for trigger in (wavenet_path.change, spectral_path.change, ddsp_path.change):
        trigger(describe_models, model_paths, model_info)

    demo.load(None, js=CLICK_BRIDGE)
    demo.load(refresh_checkpoints, model_paths, [status, *model_paths])
    demo.load(draw_map, map_args, map_plot).then(
        describe_models, model_paths, model_info).then(estimate, estimate_inputs, expected)

if __name__ == "__main__":
    keep_memory_flat()  # before the server's threads start
    fastgen.start_build()  # the first start compiles for up to minutes: not on a visitor's first decode
    for name, problem in ex.broken_checkpoints(app.checkpoints_dir).items():
        print(f"Skipped checkpoint {name}: {problem}", file=sys.stderr)
    threading.Thread(target=warm_up, daemon=True).start()
    # Gradio serves only its own cache and uploads; blocking the code and the weights keeps it so whatever
    # allowed_paths or GRADIO_ALLOWED_PATHS say (Gradio's cache, GRADIO_TEMP_DIR, must lie outside both).
    demo.queue(default_concurrency_limit=2, max_size=32).launch(
        css=CSS, max_file_size=f"{MAX_UPLOAD_MB}mb", state_session_capacity=MAX_SESSIONS,
        blocked_paths=[str(REPO), str(app.checkpoints_dir.resolve())])
