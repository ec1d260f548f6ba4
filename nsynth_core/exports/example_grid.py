"""The page's ready example: a 3 x 3 grid between four contrasting bundled notes, decoded by the DDSP decoder
from the shipped checkpoints and shipped in assets/, so a first visitor hears the grid before choosing anything.

    python -m nsynth_core.exports.example_grid    # rewrites assets/example_grid.wav and .json from checkpoints/

With them, assets/synth/example_corners.json: the corners' Z from the shipped WaveNet, which the page's own
synthesiser (assets/synth/, the shipped DDSP decoder) plays the moment the Play tab opens, before any server work;
and assets/synth/map_notes.json: every bundled note's Z from the shipped WaveNet, in its map's order, from which the
page blends and plays a click between notes at once.

The wav holds the cells one after another, row by row, as 16-bit samples at the playback level (what the page's
players hold); the JSON says which notes are the corners, how each cell is mixed and which weights decoded it.
"""

import base64
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from nsynth_core.explorer.explorer import Explorer
from nsynth_core.explorer.grids import make_grid
from nsynth_core.explorer.loaded_models import LoadedModel, encode_notes, load_model, stacked_z
from nsynth_core.explorer.notes import ASSETS_DIR, Note
from nsynth_core.audio.core import SAMPLE_RATE, playback_pcm16

# Piano, sawtooth lead, violin and vibraphone around middle C: four families far apart in sound, close in pitch.
CORNERS = ("keyboard_acoustic_fluidr3_gm000-060-100", "synth_lead_synthetic_fluidr3_gm081-060-100",
           "string_acoustic_fluidr3_gm040-062-100", "mallet_acoustic_fluidr3_gm011-060-100")
SIZE = 3
SECONDS = 1.0
RULE = "bilinear"
TEMPERATURE = 0.25  # the Grid tab's default; the DDSP decoder does not sample, so it decodes the same at any
SHIPPED_CHECKPOINTS = ASSETS_DIR.parent / "checkpoints"
DECODER, ENCODER = "ddsp", "wavenet"  # the shipped checkpoints' names
AUDIO_FILE, INDEX_FILE = "example_grid.wav", "example_grid.json"
CORNERS_Z_FILE = Path("synth") / "example_corners.json"
MAP_NOTES_FILE = Path("synth") / "map_notes.json"
DESCRIPTION = ("An example: four bundled notes at the corners, decoded by DDSP; choose your own corners to make "
               "a new one.")


@dataclass(frozen=True)
class ExampleGrid:
    corners: list[str]  # note ids of corners A, B, C, D
    labels: list[str]  # one per cell, row by row
    mixes: list[str]  # what each cell is made of, e.g. "A 50 % + B 50 %"
    cells: np.ndarray  # int16 [cells, samples] at the playback level
    checkpoints: dict[str, str]  # "decoder" / "encoder" -> weights fingerprint


def decode_example(explorer: Explorer, decoder: LoadedModel, encoder: LoadedModel) -> ExampleGrid:
    """The example grid as `decoder` (reading `encoder`'s Z) decodes it now."""
    grid = make_grid([explorer.bundled[note_id] for note_id in CORNERS], SIZE, RULE)
    audio, _ = explorer.decode_grid(decoder, encoder, grid, TEMPERATURE, int(SECONDS * SAMPLE_RATE))
    return ExampleGrid(corners=list(CORNERS), labels=grid.labels, mixes=grid.mixes(),
                       cells=np.stack([playback_pcm16(cell) for cell in audio]),
                       checkpoints={"decoder": decoder.fingerprint, "encoder": encoder.fingerprint})


def write_example(example: ExampleGrid, assets_dir=ASSETS_DIR) -> None:
    assets_dir = Path(assets_dir)
    sf.write(assets_dir / AUDIO_FILE, example.cells.reshape(-1), SAMPLE_RATE, subtype="PCM_16")
    index = {"corners": example.corners, "labels": example.labels, "mixes": example.mixes,
             "samples_per_cell": example.cells.shape[1], "checkpoints": example.checkpoints}
    (assets_dir / INDEX_FILE).write_text(json.dumps(index, indent=1) + "\n")


def corners_for_synth(notes: list[Note], encoder: LoadedModel) -> dict:
    """Four corner notes as the page's synthesiser takes them: names, families and their Z from `encoder`
    (float32 [4, frames, channels], little-endian, base64)."""
    z = stacked_z(encode_notes(encoder, notes)).astype("<f4")
    return {"corners": [{"id": note.id, "name": note.name, "family": note.family, "pitch": note.pitch}
                        for note in notes],
            "frames": z.shape[1], "channels": z.shape[2], "encoder": encoder.fingerprint,
            "z": base64.b64encode(z.tobytes()).decode()}


def write_corners_z(explorer: Explorer, encoder: LoadedModel, assets_dir=ASSETS_DIR) -> None:
    corners = corners_for_synth([explorer.bundled[note_id] for note_id in CORNERS], encoder)
    (Path(assets_dir) / CORNERS_Z_FILE).write_text(json.dumps(corners) + "\n")


def map_notes_for_synth(explorer: Explorer, encoder: LoadedModel) -> dict:
    """The notes a click between notes blends (the bundled ones of `encoder`'s map, in its order) as the page's
    synthesiser takes them: ids, pitches and Z (float16 [notes, frames, channels], little-endian, base64: half the
    download of float32, and finer than the synthesiser's own float16 weights)."""
    names = explorer.map_for(encoder, placing=False).names
    notes = [explorer.bundled[str(name)] for name in names]
    z = stacked_z(encode_notes(encoder, notes)).astype("<f2")
    return {"notes": [{"id": note.id, "pitch": note.pitch} for note in notes],
            "frames": z.shape[1], "channels": z.shape[2], "encoder": encoder.fingerprint,
            "z": base64.b64encode(z.tobytes()).decode()}


def write_map_notes(explorer: Explorer, encoder: LoadedModel, assets_dir=ASSETS_DIR) -> None:
    (Path(assets_dir) / MAP_NOTES_FILE).write_text(json.dumps(map_notes_for_synth(explorer, encoder)) + "\n")


def load_example(assets_dir=ASSETS_DIR) -> ExampleGrid:
    assets_dir = Path(assets_dir)
    index = json.loads((assets_dir / INDEX_FILE).read_text())
    samples, _ = sf.read(assets_dir / AUDIO_FILE, dtype="int16")
    return ExampleGrid(corners=index["corners"], labels=index["labels"], mixes=index["mixes"],
                       cells=samples.reshape(len(index["labels"]), index["samples_per_cell"]),
                       checkpoints=index["checkpoints"])


def shipped_models() -> tuple[LoadedModel, LoadedModel]:
    """(the shipped DDSP decoder, the WaveNet whose Z it reads)."""
    return load_model(SHIPPED_CHECKPOINTS / DECODER), load_model(SHIPPED_CHECKPOINTS / ENCODER)


def main() -> None:
    explorer, (decoder, encoder) = Explorer(), shipped_models()
    example = decode_example(explorer, decoder, encoder)
    write_example(example)
    write_corners_z(explorer, encoder)
    write_map_notes(explorer, encoder)
    print(f"Wrote {ASSETS_DIR / AUDIO_FILE} ({len(example.labels)} cells of {SECONDS:g} s), {INDEX_FILE}, "
          f"{CORNERS_Z_FILE} and {MAP_NOTES_FILE}.")


if __name__ == "__main__":
    main()
