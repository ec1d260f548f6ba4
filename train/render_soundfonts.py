"""Render General-MIDI SoundFonts as a dataset in NSynth's json/wav layout.

    python -m train.render_soundfonts OUT_DIR FONT.sf2 [FONT2.sf2 ...] \
        [--velocities 25 50 75 100 127] [--pitch-step N] [--split-seed S] [--programs P ...] \
        [--train-only FONT3.sf2 ...]

Every melodic program of every font that `train.instruments` maps to an NSynth family is one instrument. Each
note is rendered like NSynth's: 4 s at 16 kHz mono, 16-bit, the key held for 3 s and then released, MIDI
pitches 21-108 within the program's range, NSynth's velocities. Rendering uses tinysoundfont, whose optional
pyaudio dependency is only needed for live playback, never here.

Pitch labels are checked against the audio. Some programs sound an octave away from the key pressed (GM
drawbar organs carry a 16' stop, so pYIN hears them an octave low; some fonts map a few keys to samples an
octave off). Before rendering, every key of every program is rendered once at velocity 100 and its pitch over
0.1-1.1 s is measured with librosa's pYIN. A key agrees when the measured pitch lies within 50 cents of the
key plus a whole number of octaves; the program's octave shift is the most common such number. The pitch
label is key + 12 * shift (so a drawbar organ's key 60 is labelled 48, what it sounds), keys that disagree
with the program's shift or whose pitch pYIN cannot find are not rendered, and a program where fewer than half
of the keys agree is dropped entirely. The key actually pressed is kept in each example's `midi_key` field.

Qualities: only the two that the amplitude envelope shows are set, the other eight are 0.
- fast_decay: the level over the last 0.25 s before note-off is more than 30 dB below the loudest frame.
- long_release: the level over the last 0.5 s (0.5 s after note-off) is within 40 dB of the loudest frame.

Notes whose peak is below -60 dBFS (silent) or reaches full scale (clipped) are dropped and counted.
Instruments are split into nsynth-train / nsynth-valid / nsynth-test within each family (about 80/10/10,
shuffled with the split seed), so no instrument is in two splits and every family with three or more
instruments is in all three. Fonts given with --train-only add instruments to nsynth-train alone: the valid
and test splits stay exactly those of the other fonts, so figures measured on them stay comparable. Each example has NSynth's json fields plus `soundfont`, `program`,
`preset_name` and `midi_key`. Instrument ids are font_index * 128 + program, so instrument_str (and the start
of note_str, family_source_id-pitch-velocity) names the font and the program.
"""

import argparse
import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import tinysoundfont
from tqdm import tqdm

from nsynth_core.audio.core import NOTE_LENGTH, SAMPLE_RATE, write_wav
from nsynth_core.data.nsynth import FAMILIES, QUALITIES, SOURCES
from train.instruments import GM_INSTRUMENTS

HOLD_SECONDS = 3
NSYNTH_VELOCITIES = (25, 50, 75, 100, 127)
LOWEST_PITCH, HIGHEST_PITCH = 21, 108
CHECK_VELOCITY = 100
PITCH_TOLERANCE = 0.5  # semitones
SILENT_PEAK = 1e-3  # -60 dBFS
SPLITS = ("nsynth-train", "nsynth-valid", "nsynth-test")
HELD_OUT_FRACTION = 0.1  # of each family's instruments, for valid and for test each
ENVELOPE_FRAME = 512

log = logging.getLogger(__name__)


class RenderError(ValueError):
    """Arguments that cannot produce a dataset; the message says why."""


class SoundFontSynth:
    """One SoundFont, rendering one isolated note at a time on channel 0."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise RenderError(f"SoundFont '{self.path}' does not exist.")
        self.synth = tinysoundfont.Synth(samplerate=SAMPLE_RATE)
        try:
            self.font_id = self.synth.sfload(str(self.path))
        except RuntimeError as error:
            raise RenderError(f"Could not load '{self.path.name}' as a SoundFont ({error}).") from None

    def preset_name(self, program):
        """The font's name for a bank-0 program, or None when the font lacks it."""
        return self.synth.sfpreset_name(self.font_id, 0, program)

    def render(self, program, key, velocity):
        """A NOTE_LENGTH float32 mono note: key held HOLD_SECONDS, then released."""
        self.synth.program_select(0, self.font_id, 0, program)
        self.synth.noteon(0, key, velocity)
        held = self.synth.generate(HOLD_SECONDS * SAMPLE_RATE)
        self.synth.noteoff(0, key)
        released = self.synth.generate(NOTE_LENGTH - HOLD_SECONDS * SAMPLE_RATE)
        # Cut every voice and let the quick fade finish, so nothing leaks into the next note.
        self.synth.sounds_off(0)
        self.synth.generate(1024)
        stereo = np.frombuffer(bytes(held) + bytes(released), dtype=np.float32).reshape(-1, 2)
        return stereo.mean(axis=1)


def measure_pitch(audio, expected_pitch):
    """Median MIDI pitch (float) that pYIN hears over 0.1-1.1 s, searching +-14 semitones around the expected
    pitch, or None when fewer than half of the frames are voiced."""
    excerpt = audio[SAMPLE_RATE // 10: SAMPLE_RATE * 11 // 10]
    fmin = max(librosa.midi_to_hz(expected_pitch - 14), 20.0)
    fmax = min(librosa.midi_to_hz(expected_pitch + 14), 0.45 * SAMPLE_RATE)
    f0, voiced, _ = librosa.pyin(excerpt, sr=SAMPLE_RATE, fmin=fmin, fmax=fmax, frame_length=4096,
                                 hop_length=512, center=False)
    if voiced.mean() < 0.5:
        return None
    return float(np.median(librosa.hz_to_midi(f0[voiced])))


@dataclass
class Instrument:
    id: int
    font: SoundFontSynth
    program: int
    preset_name: str
    family: str
    source: str
    octave_shift: int
    keys: list  # MIDI keys that passed the pitch check, each labelled key + 12 * octave_shift

    @property
    def name(self):
        return f"{self.family}_{self.source}_{self.id:03d}"


def check_program(font, program, keys):
    """(octave_shift, agreeing keys) for a program, or None when fewer than half of `keys` agree."""
    octaves = {}
    for key in keys:
        audio = font.render(program, key, CHECK_VELOCITY)
        if np.abs(audio).max() < SILENT_PEAK:
            continue
        pitch = measure_pitch(audio, key)
        if pitch is None:
            continue
        octave = round((pitch - key) / 12)
        if abs(pitch - key - 12 * octave) <= PITCH_TOLERANCE:
            octaves[key] = octave
    if not octaves:
        return None
    shift, agreeing = Counter(octaves.values()).most_common(1)[0]
    if agreeing < len(keys) / 2:
        return None
    return shift, [key for key, octave in octaves.items() if octave == shift]


def envelope_qualities(audio):
    """NSynth's 10 quality flags, with fast_decay and long_release read from the amplitude envelope."""
    frames = audio[: len(audio) // ENVELOPE_FRAME * ENVELOPE_FRAME].reshape(-1, ENVELOPE_FRAME)
    level_db = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    frames_per_second = SAMPLE_RATE / ENVELOPE_FRAME
    note_off = int(HOLD_SECONDS * frames_per_second)
    loudest = level_db.max()
    before_note_off = level_db[note_off - int(0.25 * frames_per_second): note_off].mean()
    tail = level_db[-int(0.5 * frames_per_second):].mean()
    flags = {"fast_decay": before_note_off < loudest - 30, "long_release": tail > loudest - 40}
    return [int(flags.get(name, False)) for name in QUALITIES]


def split_instruments(instruments, seed):
    """{instrument id: split name}, shuffling each family's instruments and holding out ~10% for valid and
    ~10% for test (at least one each once a family has three instruments)."""
    by_family = defaultdict(list)
    for instrument in instruments:
        by_family[instrument.family].append(instrument.id)
    splits = {}
    for family, ids in by_family.items():
        # One generator per family, so adding or removing a program reshuffles its own family only.
        rng = np.random.default_rng([seed, FAMILIES.index(family)])
        ids = sorted(ids)
        ids = [ids[i] for i in rng.permutation(len(ids))]
        held_out = round(HELD_OUT_FRACTION * len(ids))
        if len(ids) >= 3:
            held_out = max(held_out, 1)
        for position, instrument_id in enumerate(ids):
            if position < held_out:
                splits[instrument_id] = "nsynth-test"
            elif position < 2 * held_out:
                splits[instrument_id] = "nsynth-valid"
            else:
                splits[instrument_id] = "nsynth-train"
    return splits


def find_instruments(fonts, programs, pitch_step):
    """Every (font, program) that exists in the font and passes the pitch check, as Instruments."""
    candidates = [(index, font, program) for index, font in enumerate(fonts) for program in programs
                  if font.preset_name(program) is not None]
    instruments = []
    for index, font, program in tqdm(candidates, desc="checking pitch", unit="program"):
        gm = GM_INSTRUMENTS[program]
        keys = range(max(gm.lowest_pitch, LOWEST_PITCH), min(gm.highest_pitch, HIGHEST_PITCH) + 1, pitch_step)
        check = check_program(font, program, keys)
        if check is None:
            log.info("dropped %s program %d (%s): its pitch does not match its keys",
                     font.path.name, program, gm.name)
            continue
        shift, agreeing = check
        keys = [key for key in agreeing if LOWEST_PITCH <= key + 12 * shift <= HIGHEST_PITCH]
        if shift:
            log.info("%s program %d (%s) sounds %+d octave(s) from its keys: labels shifted",
                     font.path.name, program, gm.name, shift)
        instruments.append(Instrument(index * 128 + program, font, program, font.preset_name(program),
                                      gm.family, gm.source, shift, keys))
    return instruments


def render_dataset(out_dir, font_paths, velocities=NSYNTH_VELOCITIES, pitch_step=1, split_seed=0,
                   programs=None, train_only_paths=()):
    """Render the fonts into out_dir/nsynth-{train,valid,test} (the instruments of train_only_paths into
    nsynth-train only); returns a summary of what was written."""
    programs = sorted(GM_INSTRUMENTS) if programs is None else sorted(programs)
    unknown = [p for p in programs if p not in GM_INSTRUMENTS]
    if unknown:
        raise RenderError(f"Programs {unknown} are not melodic programs with an NSynth family "
                          "(see train/instruments.py).")
    bad_velocities = [v for v in velocities if not 1 <= v <= 127]
    if bad_velocities or not velocities:
        raise RenderError(f"Velocities must be between 1 and 127, got {list(velocities)}.")
    if pitch_step < 1:
        raise RenderError(f"The pitch step must be at least 1, got {pitch_step}.")
    if not font_paths:
        raise RenderError("Give at least one SoundFont.")

    fonts = [SoundFontSynth(path) for path in [*font_paths, *train_only_paths]]
    instruments = find_instruments(fonts, programs, pitch_step)
    # Split the main fonts' instruments alone, so adding training-only fonts leaves valid and test unchanged.
    main_ids = len(font_paths) * 128
    split_of = split_instruments([i for i in instruments if i.id < main_ids], split_seed)
    split_of.update({i.id: "nsynth-train" for i in instruments if i.id >= main_ids})
    out_dir = Path(out_dir)
    for split in SPLITS:
        (out_dir / split / "audio").mkdir(parents=True, exist_ok=True)

    examples = {split: {} for split in SPLITS}
    dropped = Counter()
    note_id = 0
    total = sum(len(instrument.keys) for instrument in instruments) * len(velocities)
    with tqdm(total=total, desc="rendering", unit="note") as progress:
        for instrument in instruments:
            split = split_of[instrument.id]
            for key in instrument.keys:
                for velocity in velocities:
                    progress.update()
                    audio = instrument.font.render(instrument.program, key, velocity)
                    peak = np.abs(audio).max()
                    if peak < SILENT_PEAK:
                        dropped["silent"] += 1
                        continue
                    if peak >= 1.0:
                        dropped["clipped"] += 1
                        continue
                    pitch = key + 12 * instrument.octave_shift
                    note_str = f"{instrument.name}-{pitch:03d}-{velocity:03d}"
                    write_wav(out_dir / split / "audio" / f"{note_str}.wav", audio)
                    qualities = envelope_qualities(audio)
                    examples[split][note_str] = {
                        "note": note_id,
                        "note_str": note_str,
                        "instrument": instrument.id,
                        "instrument_str": instrument.name,
                        "pitch": pitch,
                        "velocity": velocity,
                        "sample_rate": SAMPLE_RATE,
                        "qualities": qualities,
                        "qualities_str": [name for name, flag in zip(QUALITIES, qualities) if flag],
                        "instrument_family": FAMILIES.index(instrument.family),
                        "instrument_family_str": instrument.family,
                        "instrument_source": SOURCES.index(instrument.source),
                        "instrument_source_str": instrument.source,
                        "soundfont": instrument.font.path.name,
                        "program": instrument.program,
                        "preset_name": instrument.preset_name,
                        "midi_key": key,
                    }
                    note_id += 1
    for split in SPLITS:
        with open(out_dir / split / "examples.json", "w") as file:
            json.dump(examples[split], file, indent=1)

    summary = {
        "notes": {split: len(examples[split]) for split in SPLITS},
        "instruments": {split: sum(1 for s in split_of.values() if s == split) for split in SPLITS},
        "families": {split: dict(sorted(Counter(e["instrument_family_str"] for e in examples[split].values())
                                        .items())) for split in SPLITS},
        "dropped_notes": dict(dropped),
        "programs_checked": sum(font.preset_name(p) is not None for font in fonts for p in programs),
        "instruments_kept": len(instruments),
    }
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("fonts", nargs="+", type=Path, help="General-MIDI SoundFont files (.sf2)")
    parser.add_argument("--velocities", nargs="+", type=int, default=list(NSYNTH_VELOCITIES))
    parser.add_argument("--pitch-step", type=int, default=1, help="render every Nth MIDI pitch")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--programs", nargs="+", type=int, help="GM programs (0-127) to render; default all")
    parser.add_argument("--train-only", nargs="+", type=Path, default=[],
                        help="further SoundFonts whose instruments go to nsynth-train only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        summary = render_dataset(args.out_dir, args.fonts, args.velocities, args.pitch_step, args.split_seed,
                                 args.programs, args.train_only)
    except RenderError as error:
        parser.error(str(error))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
