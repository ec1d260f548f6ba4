"""A multigrid as a SoundFont 2 file (.sf2), playable in any sampler: one preset per cell, its keyboard split
over the decoded pitches.

The layout (SoundFont 2.01 specification): a RIFF 'sfbk' of three LISTs,
- INFO: version (ifil 2.01), target engine (isng) and the bank's name (INAM);
- sdta: one 'smpl' chunk of 16-bit mono PCM, each sample followed by 46 zero samples (the spec's guard for
  interpolating players);
- pdta: the nine record tables phdr/pbag/pmod/pgen (presets), inst/ibag/imod/igen (instruments), shdr (samples),
  each closed by its terminal record. Preset i holds one zone naming instrument i; instrument i has one zone
  per decoded pitch, covering the keys nearer to that pitch than to its neighbours, played back from that
  pitch's sample (overridingRootKey), once through (sampleModes 0: the notes have their own release).
The sample data is streamed to the file: a 9 x 9 x 16 multigrid of 4 s notes is 166 MB of PCM.
"""

import struct
from pathlib import Path

import numpy as np

from nsynth_core.audio.core import SAMPLE_RATE, playback_pcm16
from nsynth_core.explorer.multigrid import Multigrid

GUARD_SAMPLES = 46
LOOP_MARGIN = 8  # the spec wants 8 valid samples around loop points, even unused ones
MIN_SAMPLE_LENGTH = 2 * LOOP_MARGIN + 1
PRESETS_PER_BANK = 128
# Generator operators (spec section 8.1.2).
INSTRUMENT, KEY_RANGE, SAMPLE_ID, SAMPLE_MODES, OVERRIDING_ROOT_KEY, RELEASE_VOL_ENV = 41, 43, 53, 54, 58, 38
RELEASE_SECONDS = 0.1  # after a key is let go: short, but not the 1 ms default's click
MONO_SAMPLE = 1
NAME_BYTES = 20


class SoundFontError(ValueError):
    pass


def riff_chunk(tag: bytes, data: bytes) -> bytes:
    return tag + struct.pack("<I", len(data)) + data + b"\0" * (len(data) % 2)


def list_chunk(kind: bytes, *chunks: bytes) -> bytes:
    return riff_chunk(b"LIST", kind + b"".join(chunks))


def info_text(text: str) -> bytes:
    """A zero-terminated INFO string padded to an even length (at most 256 bytes)."""
    data = text.encode("ascii", "replace")[:254] + b"\0"
    return data + b"\0" * (len(data) % 2)


def record_name(text: str) -> bytes:
    return text.encode("ascii", "replace")[:NAME_BYTES - 1].ljust(NAME_BYTES, b"\0")


def key_ranges(pitches) -> list[tuple[int, int]]:
    """(lowest, highest key) of each pitch's zone: the keys nearer to it than to the next pitch, the lowest and
    highest zones reaching to the ends of the keyboard."""
    splits = [(low + high) // 2 for low, high in zip(pitches, pitches[1:])]
    return list(zip([0] + [split + 1 for split in splits], splits + [127]))


def write_soundfont(path, multigrid: Multigrid, title: str = "NSynth multigrid",
                    sample_rate: int = SAMPLE_RATE) -> Path:
    """Writes `multigrid` as a .sf2 file; every note at the playback level (each normalised on its own)."""
    path = Path(path)
    cells, n_pitches, length = multigrid.audio.shape
    if length < MIN_SAMPLE_LENGTH:
        raise SoundFontError(f"Notes of {length} samples are too short for a SoundFont; give at least "
                             f"{MIN_SAMPLE_LENGTH}.")
    if not 0 <= min(multigrid.pitches) <= max(multigrid.pitches) <= 127:
        raise SoundFontError("SoundFont zones span MIDI keys 0 to 127.")
    tables = pdta_tables(multigrid, length, sample_rate)
    info = list_chunk(b"INFO", riff_chunk(b"ifil", struct.pack("<HH", 2, 1)),
                      riff_chunk(b"isng", info_text("EMU8000")), riff_chunk(b"INAM", info_text(title)),
                      riff_chunk(b"ISFT", info_text("NSynth Timbre Explorer")))
    pdta = list_chunk(b"pdta", *(riff_chunk(tag, data) for tag, data in tables))
    smpl_bytes = cells * n_pitches * (length + GUARD_SAMPLES) * 2
    sdta_header = b"LIST" + struct.pack("<I", 4 + 8 + smpl_bytes) + b"sdta" + b"smpl" + struct.pack("<I", smpl_bytes)
    guard = np.zeros(GUARD_SAMPLES, "<i2").tobytes()
    with open(path, "wb") as file:
        file.write(b"RIFF" + struct.pack("<I", 4 + len(info) + len(sdta_header) + smpl_bytes + len(pdta)) + b"sfbk")
        file.write(info + sdta_header)
        for note in multigrid.audio.reshape(cells * n_pitches, length):
            file.write(playback_pcm16(note).astype("<i2").tobytes() + guard)
        file.write(pdta)
    return path


def pdta_tables(multigrid: Multigrid, length: int, sample_rate: int) -> list[tuple[bytes, bytes]]:
    """The nine preset, instrument and sample tables, in the order the spec lays them out."""
    pitches, cells = multigrid.pitches, len(multigrid.labels)
    ranges = key_ranges(pitches)
    release = round(1200 * np.log2(RELEASE_SECONDS))  # timecents
    phdr, pbag, pgen, inst, ibag, igen, shdr = (bytearray() for _ in range(7))
    for cell, label in enumerate(multigrid.labels):
        bank, preset = divmod(cell, PRESETS_PER_BANK)
        phdr += record_name(label) + struct.pack("<HHHIII", preset, bank, cell, 0, 0, 0)
        pbag += struct.pack("<HH", cell, 0)  # one generator per preset zone, no modulators
        pgen += struct.pack("<HH", INSTRUMENT, cell)
        inst += record_name(label) + struct.pack("<H", cell * len(pitches))
        for index, (pitch, (low, high)) in enumerate(zip(pitches, ranges)):
            sample = cell * len(pitches) + index
            ibag += struct.pack("<HH", len(igen) // 4, 0)
            # keyRange must come first and sampleID last in a zone.
            igen += struct.pack("<HBB", KEY_RANGE, low, high)
            igen += struct.pack("<HH", OVERRIDING_ROOT_KEY, pitch)
            igen += struct.pack("<HH", SAMPLE_MODES, 0)
            igen += struct.pack("<Hh", RELEASE_VOL_ENV, release)
            igen += struct.pack("<HH", SAMPLE_ID, sample)
            start = sample * (length + GUARD_SAMPLES)
            end = start + length
            shdr += record_name(f"{label} {pitch}") + struct.pack(
                "<IIIIIBbHH", start, end, start + LOOP_MARGIN, end - LOOP_MARGIN, sample_rate, pitch, 0, 0,
                MONO_SAMPLE)
    samples = cells * len(pitches)
    phdr += record_name("EOP") + struct.pack("<HHHIII", 0, 0, cells, 0, 0, 0)
    pbag += struct.pack("<HH", cells, 0)
    pgen += struct.pack("<HH", 0, 0)
    inst += record_name("EOI") + struct.pack("<H", samples)
    ibag += struct.pack("<HH", len(igen) // 4, 0)
    igen += struct.pack("<HH", 0, 0)
    shdr += record_name("EOS") + bytes(26)
    no_modulators = bytes(10)  # the terminal modulator record alone
    return [(b"phdr", bytes(phdr)), (b"pbag", bytes(pbag)), (b"pmod", no_modulators), (b"pgen", bytes(pgen)),
            (b"inst", bytes(inst)), (b"ibag", bytes(ibag)), (b"imod", no_modulators), (b"igen", bytes(igen)),
            (b"shdr", bytes(shdr))]
