"""Build the app's bundled assets: example notes rendered from General-MIDI SoundFonts, and the map.

    python scripts/build_assets.py --notes --checkpoint checkpoints/<name>

--notes writes assets/notes/*.ogg with assets/notes.json (name, family, pitch, source of every note); notes
follow NSynth's shape: 4 s at 16 kHz, held for 3 s at velocity 100, then released. --checkpoint encodes every
note with that WaveNet's encoder and stores the fitted map (assets/map.npz, assets/map_reducer.joblib); the app
uses it whenever it runs the same weights. Either may be given alone (re-rendering changes the Ogg files' bytes,
so leave --notes out when only the checkpoint changed).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import tinysoundfont  # rendering never touches its optional pyaudio dependency

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nsynth_core.audio.core import NOTE_LENGTH, PLAYBACK_PEAK, SAMPLE_RATE, normalize_loudness  # noqa: E402
from nsynth_core.explorer.embedding_map import save_map  # noqa: E402
from nsynth_core.explorer.explorer import compute_map  # noqa: E402
from nsynth_core.explorer.loaded_models import load_model  # noqa: E402
from nsynth_core.explorer.notes import bundled_notes  # noqa: E402

SOUNDFONTS = {"FluidR3_GM": "/usr/share/sounds/sf2/FluidR3_GM.sf2", "TimGM6mb": "/usr/share/sounds/sf2/TimGM6mb.sf2"}
# NSynth family -> (General-MIDI program, NSynth instrument source, three MIDI pitches in the instrument's range)
FAMILIES = {
    "bass": (33, "electronic", (36, 43, 50)),  # electric bass (finger)
    "brass": (56, "acoustic", (55, 62, 69)),  # trumpet
    "flute": (73, "acoustic", (67, 74, 81)),
    "guitar": (24, "acoustic", (48, 55, 62)),  # nylon-string guitar
    "keyboard": (0, "acoustic", (48, 60, 72)),  # grand piano
    "mallet": (11, "acoustic", (60, 67, 74)),  # vibraphone
    "organ": (19, "acoustic", (48, 55, 62)),  # church organ (drawbar organ sounds an octave low)
    "reed": (71, "acoustic", (55, 62, 69)),  # clarinet
    "string": (40, "acoustic", (55, 62, 69)),  # violin
    "synth_lead": (81, "synthetic", (48, 60, 72)),  # sawtooth lead
    "vocal": (52, "acoustic", (55, 60, 67)),  # choir aahs
}
VELOCITY = 100
HELD_SAMPLES = 3 * SAMPLE_RATE
NOTES_DIR = "notes"
NOTES_INDEX = "notes.json"


def render_note(synth: tinysoundfont.Synth, font_id: int, program: int, pitch: int) -> np.ndarray:
    synth.program_select(0, font_id, 0, program)
    synth.noteon(0, pitch, VELOCITY)
    held = np.frombuffer(synth.generate(HELD_SAMPLES), dtype=np.float32)
    synth.noteoff(0, pitch)
    released = np.frombuffer(synth.generate(NOTE_LENGTH - HELD_SAMPLES), dtype=np.float32)
    synth.sounds_off()  # nothing of this note may ring into the next one
    synth.generate(SAMPLE_RATE // 10)
    stereo = np.concatenate([held, released]).reshape(-1, 2)
    return normalize_loudness(stereo.mean(axis=1), PLAYBACK_PEAK)


def render_notes(assets: Path) -> list[dict]:
    (assets / NOTES_DIR).mkdir(parents=True, exist_ok=True)
    synth = tinysoundfont.Synth(samplerate=SAMPLE_RATE)
    index = []
    for font_name, font_path in SOUNDFONTS.items():
        font_id = synth.sfload(font_path)
        for family, (program, instrument_source, pitches) in FAMILIES.items():
            for pitch in pitches:
                name = f"{family}_{instrument_source}_{font_name.lower()}{program:03d}-{pitch:03d}-{VELOCITY:03d}"
                audio = render_note(synth, font_id, program, pitch)
                sf.write(assets / NOTES_DIR / f"{name}.ogg", audio, SAMPLE_RATE, format="OGG", subtype="VORBIS")
                index.append({"name": name, "file": f"{NOTES_DIR}/{name}.ogg", "family": family, "pitch": pitch,
                              "source": font_name})
        synth.sfunload(font_id)
    (assets / NOTES_INDEX).write_text(json.dumps(index, indent=1) + "\n")
    return index


def build_bundled_map(assets: Path, checkpoint: Path) -> None:
    wavenet = load_model(checkpoint)
    save_map(compute_map(wavenet, bundled_notes(assets)), assets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=Path, default=Path(__file__).resolve().parent.parent / "assets")
    parser.add_argument("--notes", action="store_true", help="render the example notes from the SoundFonts")
    parser.add_argument("--checkpoint", type=Path, help="WaveNet checkpoint whose encoder places the notes")
    args = parser.parse_args()
    if not args.notes and args.checkpoint is None:
        parser.error("give --notes, --checkpoint or both")
    if args.notes:
        index = render_notes(args.assets)
        size = sum((args.assets / note["file"]).stat().st_size for note in index)
        print(f"rendered {len(index)} notes ({size / 1e6:.2f} MB) into {args.assets / NOTES_DIR}")
    if args.checkpoint:
        build_bundled_map(args.assets, args.checkpoint)
        print(f"map written to {args.assets}")


if __name__ == "__main__":
    main()
