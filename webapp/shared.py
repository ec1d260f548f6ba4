"""What every tab of the page uses: the decoder and pitch choices, the wrappers that turn bad input and a full disk
into a sentence, note pickers, and `Tab`, the base of each tab's handlers (the explorer they serve and the sound
files they hand to the page)."""

import functools
import inspect
import sys

from pathlib import Path

import gradio as gr
import numpy as np

from nsynth_core.audio.core import SAMPLE_RATE, playback_pcm16
from nsynth_core.explorer.explorer import Explorer
from nsynth_core.explorer.loaded_models import LoadedModel, encoder_for, load_model
from nsynth_core.explorer.notes import ExplorerError
from webapp.texts import decode_cost_message
from nsynth_core.explorer.interpolation import GRID_SIZES
from nsynth_core.exports import files as exports
from webapp import disk_space

MAX_SIZE = max(GRID_SIZES)
DECODERS = {"DDSP": "ddsp", "WaveNet": "wavenet", "Spectral baseline": "spectral"}  # page label -> checkpoint kind
DEFAULT_DECODER = "DDSP"  # the closest to the originals in the evaluation (checkpoints/evaluation.md)
OWN_PITCH = "each note's own"
PITCH_CHOICES = [OWN_PITCH, *(str(pitch) for pitch in range(24, 97))]
CORNERS = ("A (top left)", "B (top right)", "C (bottom left)", "D (bottom right)")
MAX_UPLOAD_FILE_MB = 20  # each file


def refusal(handler, error: ValueError) -> gr.Error:
    """The visitor's input, not a fault: one log line, no traceback, and the sentence shown in the page."""
    print(f"Refused ({handler.__name__}): {' '.join(str(error).split())}", file=sys.stderr, flush=True)
    return gr.Error(str(error), print_exception=False)


def friendly(handler):
    """Bad input becomes a message in the page instead of a traceback."""
    if inspect.iscoroutinefunction(handler):  # a decode in its lane (lanes.py)
        @functools.wraps(handler)
        async def waited(*args, **kwargs):
            try:
                return await handler(*args, **kwargs)
            except ValueError as error:
                raise refusal(handler, error) from None
        return waited

    @functools.wraps(handler)
    def wrapped(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except ValueError as error:
            raise refusal(handler, error) from None
    return wrapped


def writes_files(handler):
    """For handlers whose players or files Gradio copies into its cache: a nearly full disk is refused in words
    before any work, rather than failing afterwards with a bare "Error"."""
    if inspect.iscoroutinefunction(handler):
        @functools.wraps(handler)
        async def waited(*args, **kwargs):
            disk_space.check_room()
            return await handler(*args, **kwargs)
        return waited

    @functools.wraps(handler)
    def wrapped(*args, **kwargs):
        disk_space.check_room()
        return handler(*args, **kwargs)
    return wrapped


def note_picker(label: str, value: str | None = None) -> gr.Dropdown:
    """A note picker whose choices are filled when the page loads: built empty, the API schema does not list
    every note id, and an id it does not know gets the app's own message rather than a list of all ids."""
    return gr.Dropdown([], value=value, label=label, allow_custom_value=True)


def chosen_pitch(choice) -> int | None:
    return None if choice in (None, "", OWN_PITCH) else int(choice)


def checkpoint_paths(wavenet_path, spectral_path, ddsp_path) -> dict[str, str | None]:
    return {"wavenet": wavenet_path, "spectral": spectral_path, "ddsp": ddsp_path}


def default_checkpoint(explorer: Explorer, kind: str) -> str | None:
    found = explorer.checkpoints()[kind]
    return found[0][1] if found else None


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
    return decode_cost_message(seconds_needed, cells, seconds, decoder, pitches)


class Tab:
    """A part of the page and its handlers, over the explorer every visitor shares. A subclass's `layout` makes
    its components (kept as attributes) inside the page, and its `wire` connects their events once every part is
    laid out."""

    def __init__(self, explorer: Explorer):
        self.explorer = explorer

    @property
    def outputs_dir(self) -> Path:
        """Where the files handed to visitors are written (NSYNTH_OUTPUTS, read when a file is written)."""
        return exports.outputs_dir()

    def playable(self, audio: np.ndarray) -> str:
        """Notes are encoded at the training level (audio.NOTE_PEAK); every player plays at one louder peak, so
        originals and reconstructions compare by ear."""
        return self.player_files([playback_pcm16(audio)])[0]

    def player_files(self, sounds: list[np.ndarray]) -> list[str]:
        return [str(path) for path in exports.wav_files(self.outputs_dir, sounds)]

    def play_all_player(self, labels, pcm, line: bool) -> dict:
        return {"value": self.player_files([exports.play_all(pcm)])[0],
                "label": exports.play_all_label(labels, line)}

    def model(self, path: str | None, kind: str) -> LoadedModel:
        if not path:
            raise ExplorerError(
                f"No trained {kind} checkpoint is available: put one in {self.explorer.checkpoints_dir}/.")
        return load_model(path)

    def decoder_and_encoder(self, kind: str, label: str, paths: dict) -> tuple[LoadedModel, LoadedModel]:
        loaded = self.model(paths[kind], label)
        wavenet = load_model(paths["wavenet"]) if paths["wavenet"] else None
        return loaded, encoder_for(loaded, wavenet)

    def note_choices(self, session) -> list[tuple[str, str]]:
        return [(note.label, note.id) for note in self.explorer.notes(session).values()]
