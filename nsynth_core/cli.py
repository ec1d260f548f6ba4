"""The command line, after Magenta's nsynth_save_embeddings and nsynth_generate.

    python -m nsynth_core encode INPUT... --checkpoint CKPT --out DIR        audio -> DIR/<name>.npy (Z)
    python -m nsynth_core decode INPUT... --checkpoint CKPT --out DIR        Z (.npy) -> DIR/<name>.wav
    python -m nsynth_core reconstruct INPUT... --checkpoint CKPT --out DIR   audio -> Z -> DIR/<name>.wav

CKPT is any decoder (WaveNet, spectral baseline, DDSP); the DDSP decoder reads Z made by a WaveNet encoder
(`--encoder`, checkpoints/wavenet by default). INPUT are files or folders, searched recursively; a note found
in a folder keeps its path below that folder.
An input that cannot be used is reported on stderr and skipped, and the exit status is then 1.
"""

import argparse
import itertools
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from nsynth_core import default_device
from nsynth_core.audio.core import NOTE_LENGTH, NOTE_PEAK, SAMPLE_RATE, for_playback, load_audio, normalize_loudness, write_wav
from nsynth_core.models.checkpoint import load_checkpoint, weights_fingerprint
from nsynth_core.explorer.decoding import Decoding, decoding_for
from nsynth_core.audio.metrics import median_f0

PROGRAM = "python -m nsynth_core"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
EMBEDDING_SUFFIXES = (".npy",)


class CommandError(ValueError):
    """A problem that stops the whole command, such as options that do not fit the model."""


@dataclass(frozen=True)
class Source:
    path: Path
    name: str  # where its output goes below --out, without suffix


class Report:
    """Each input that fails is one line on stderr; any failure makes the exit status 1."""

    def __init__(self):
        self.failures = 0

    def fail(self, path, message: str) -> None:
        self.failures += 1
        tqdm.write(f"{PROGRAM}: skipped {path}: {message}", file=sys.stderr)  # tqdm.write keeps the bar intact

    def exit_status(self) -> int:
        return 1 if self.failures else 0


# --- inputs and outputs ------------------------------------------------------------------------------------------

def find_sources(inputs, suffixes, report: Report) -> list[Source]:
    """Files named on the command line are taken whatever their suffix; folders give their files with `suffixes`."""
    sources = []
    for given in map(Path, inputs):
        if given.is_dir():
            found = sorted(p for p in given.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
            if not found:
                report.fail(given, f"the folder holds no {'/'.join(s[1:] for s in suffixes)} files.")
            sources += [Source(p, str(p.relative_to(given).with_suffix(""))) for p in found]
        elif given.is_file():
            sources.append(Source(given, given.stem))
        else:
            report.fail(given, "there is no such file or folder.")
    unique = {}
    for source in sources:
        other = unique.setdefault(source.name, source)
        if other.path.resolve() != source.path.resolve():
            raise CommandError(f"{other.path} and {source.path} would both be written as '{source.name}'; "
                               "rename one or run them separately.")
    return list(unique.values())


def output_path(out_dir, source: Source, suffix: str) -> Path:
    path = Path(out_dir) / (source.name + suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def loaded_batches(sources, load, batch_size: int, report: Report, on_skip=lambda: None):
    """Lists of up to batch_size (source, load(path)), streamed so that memory stays bounded; inputs that `load`
    rejects with a ValueError or OSError are reported and skipped."""
    batch = []
    for source in sources:
        try:
            batch.append((source, load(source.path)))
        except (ValueError, OSError) as error:
            report.fail(source.path, str(error))
            on_skip()
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def load_embedding(path: Path, decoding: Decoding) -> np.ndarray:
    """A .npy file holding one note's Z in the shape the decoder reads."""
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise CommandError(f"'{path.name}' is not a NumPy .npy file.") from None
    if not isinstance(z, np.ndarray):  # an .npz archive
        raise CommandError(f"'{path.name}' is not a NumPy .npy file.")
    if not decoding.z_fits(z) or not np.issubdtype(z.dtype, np.number) or np.iscomplexobj(z):
        raise CommandError(f"'{path.name}' holds {z.dtype} {list(z.shape)}, "
                           f"not an embedding of this model (real numbers {decoding.z_shape()}).")
    if not np.isfinite(z).all():
        raise CommandError(f"'{path.name}' holds NaN or infinite values.")
    return z.astype(np.float32)


# --- the model -----------------------------------------------------------------------------------------------------

def load_decoding(args, checkpoint=None) -> tuple[Decoding, dict]:
    """The decoding interface of --checkpoint (or `checkpoint`) on --device, and the checkpoint's metadata."""
    if args.device == "cuda" and not torch.cuda.is_available():
        raise CommandError("--device cuda was asked for, but PyTorch sees no CUDA GPU here.")
    device = default_device() if args.device == "auto" else torch.device(args.device)
    model, metadata = load_checkpoint(checkpoint or args.checkpoint, device)
    decoding = decoding_for(model)
    decoding.griffin_lim_iters = getattr(args, "griffin_lim_iters", decoding.griffin_lim_iters)
    return decoding, metadata


def load_encoder(args, decoding: Decoding, metadata: dict) -> Decoding:
    """The model whose encoder makes the Z `decoding` reads: itself, or the WaveNet named by --encoder."""
    if decoding.own_encoder:
        return decoding
    encoder, _ = load_decoding(args, args.encoder)
    trained_on = metadata.get("encoder")
    if not encoder.own_encoder or (trained_on and trained_on != weights_fingerprint(args.encoder)):
        raise CommandError(f"{args.checkpoint} was trained on the Z of another encoder than {args.encoder}'s; "
                           "give the WaveNet it was trained with as --encoder.")
    return encoder


def note_length(decoding: Decoding, seconds: float | None) -> int:
    """Samples read from each audio file: 4 s unless --seconds says otherwise (the spectral model needs 4 s)."""
    if decoding.note_length_only:
        if seconds is not None and round(seconds * SAMPLE_RATE) != NOTE_LENGTH:
            raise CommandError(f"The {decoding.label} model works on {NOTE_LENGTH / SAMPLE_RATE:g} s notes only; "
                               "leave out --seconds.")
        return NOTE_LENGTH
    length = NOTE_LENGTH if seconds is None else round(seconds * SAMPLE_RATE)
    frame = decoding.samples_for(1)
    if length < frame:
        raise CommandError(f"--seconds must be at least {frame / SAMPLE_RATE:g} (one frame of Z).")
    return length


def checked_pitch(decoding: Decoding, pitch: int | None) -> int | None:
    if pitch is not None and not decoding.needs_pitch:
        raise CommandError("This model is not conditioned on pitch; leave out --pitch.")
    if pitch is not None and pitch not in decoding.pitch_range:
        raise CommandError(f"--pitch must be a MIDI pitch from {decoding.pitch_range[0]} to "
                           f"{decoding.pitch_range[-1]}.")
    return pitch


def estimated_pitch(audio: np.ndarray, pitch_range: range) -> int:
    """The MIDI pitch of a note from its median pYIN f0, for pitch-conditioned models when --pitch is not given."""
    f0 = median_f0(audio)
    if np.isnan(f0):
        raise CommandError("no pitch could be found in it; give the MIDI pitch with --pitch.")
    pitch = int(round(librosa.hz_to_midi(f0)))
    if pitch not in pitch_range:
        raise CommandError(f"its estimated MIDI pitch {pitch} is beyond the model's {pitch_range[0]} to "
                           f"{pitch_range[-1]}.")
    return pitch


@torch.no_grad()
def encode_batch(encoder: Decoding, audio: list[np.ndarray]) -> torch.Tensor:
    if not encoder.own_encoder:
        raise CommandError(f"The {encoder.label} decoder has no encoder: encode with the WaveNet checkpoint whose "
                           "Z it reads.")
    return encoder.model.encode(torch.from_numpy(np.stack(audio)).to(encoder.device))


def decode_batch(decoding: Decoding, z: torch.Tensor, pitch: list[int] | None, args, progress) -> np.ndarray:
    """Audio [B, samples] of Z [B, ...]; progress(done, total) counts the samples of one note."""
    pitch = None if pitch is None else torch.tensor(pitch)
    return decoding.decode(z, pitch, None, args.temperature, args.seed, progress)


def batch_progress(bar: tqdm, batch_size: int):
    """A decoder progress callback advancing `bar`, which counts the samples of all notes, for a batch of notes."""
    reported = 0

    def progress(done: int, total: int) -> None:
        nonlocal reported
        bar.update(batch_size * (done - reported))
        reported = done

    return progress


def write_note(path: Path, audio: np.ndarray, peak: float | None, keep_level: bool) -> None:
    """Writes a decoded note at the app's playing level, or, with --keep-level, at `peak` (the input's level;
    None: as decoded), and names the file on standard output."""
    if not keep_level:
        audio = for_playback(audio)
    elif peak is not None:
        audio = normalize_loudness(audio, peak)
    write_wav(path, audio)
    print(path)


# --- the commands --------------------------------------------------------------------------------------------------

def encode_audio_files(args) -> int:
    model, _ = load_decoding(args)
    length = note_length(model, args.seconds)
    report = Report()
    sources = find_sources(args.inputs, AUDIO_SUFFIXES, report)
    with tqdm(total=len(sources), unit="note", desc="encode") as bar:
        load = lambda path: load_audio(path, length=length)
        for batch in loaded_batches(sources, load, args.batch_size, report, on_skip=lambda: bar.update(1)):
            z = encode_batch(model, [audio for _, audio in batch]).cpu().numpy()
            for (source, _), z_note in zip(batch, z):
                path = output_path(args.out, source, ".npy")
                np.save(path, z_note)
                print(path)
            bar.update(len(batch))
    return report.exit_status()


def decode_z_files(args) -> int:
    model, _ = load_decoding(args)
    pitch = checked_pitch(model, args.pitch)
    if model.needs_pitch and pitch is None:
        raise CommandError("This model is conditioned on pitch: give the notes' MIDI pitch with --pitch.")
    report = Report()
    notes = []
    for source in find_sources(args.inputs, EMBEDDING_SUFFIXES, report):
        try:
            notes.append((source, load_embedding(source.path, model)))
        except CommandError as error:
            report.fail(source.path, str(error))
    # Only Z of the same number of frames can share a batch.
    by_shape = itertools.groupby(sorted(notes, key=lambda note: note[1].shape), key=lambda note: note[1].shape)
    total = sum(model.samples_for(len(z)) for _, z in notes)
    with tqdm(total=total, unit="sample", unit_scale=True, desc="decode") as bar:
        for _, group in by_shape:
            group = list(group)
            for start in range(0, len(group), args.batch_size):
                batch = group[start:start + args.batch_size]
                z = torch.from_numpy(np.stack([note_z for _, note_z in batch]))
                pitches = None if pitch is None else [pitch] * len(batch)
                audio = decode_batch(model, z, pitches, args, batch_progress(bar, len(batch)))
                for (source, _), note in zip(batch, audio):
                    write_note(output_path(args.out, source, ".wav"), note, None, args.keep_level)
    return report.exit_status()


def reconstruct_audio_files(args) -> int:
    model, metadata = load_decoding(args)
    encoder = load_encoder(args, model, metadata)
    length = note_length(model, args.seconds)
    pitch = checked_pitch(model, args.pitch)

    def load(path):
        """The note at the level models are fed at, its own peak, and its pitch when the decoder needs one."""
        as_recorded = load_audio(path, length=length, peak=None)
        audio = normalize_loudness(as_recorded, NOTE_PEAK)
        input_peak = float(np.abs(as_recorded).max())
        if not model.needs_pitch:
            return audio, input_peak, None
        return audio, input_peak, pitch if pitch is not None else estimated_pitch(audio, model.pitch_range)

    report = Report()
    sources = find_sources(args.inputs, AUDIO_SUFFIXES, report)
    samples = model.samples_for(model.frames_for(length))
    with tqdm(total=len(sources) * samples, unit="sample", unit_scale=True, desc="reconstruct") as bar:
        for batch in loaded_batches(sources, load, args.batch_size, report, on_skip=lambda: bar.update(samples)):
            z = encode_batch(encoder, [audio for _, (audio, _, _) in batch])
            pitches = [note_pitch for _, (_, _, note_pitch) in batch] if model.needs_pitch else None
            audio = decode_batch(model, z, pitches, args, batch_progress(bar, len(batch)))
            for (source, (_, input_peak, _)), note in zip(batch, audio):
                write_note(output_path(args.out, source, ".wav"), note, input_peak, args.keep_level)
    return report.exit_status()


# --- arguments -----------------------------------------------------------------------------------------------------

def positive(kind):
    def parse(text):
        value = kind(text)
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be a number greater than 0, got {text}")
        return value
    return parse


def non_negative_float(text):
    value = float(text)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a number of 0 or more, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM, description="Encode notes to NSynth embeddings (Z), decode Z to audio, or both.",
        epilog="Inputs that cannot be used are reported and skipped; the exit status is then 1.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--checkpoint", required=True, help="model checkpoint: NAME, NAME.json or NAME.safetensors")
    common.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    common.add_argument("--batch-size", type=positive(int), default=16, help="notes per model pass (default 16)")
    common.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where the model runs; auto picks CUDA when present (default auto)")
    reading = argparse.ArgumentParser(add_help=False)
    reading.add_argument("--seconds", type=positive(float), default=None,
                         help=f"seconds of each audio file to use, cut or zero-padded (default "
                              f"{NOTE_LENGTH / SAMPLE_RATE:g}, the only length the spectral model takes)")
    decoding = argparse.ArgumentParser(add_help=False)
    # 0.25, as in the app: the shipped WaveNet keeps the pitch of 84 % of test notes there, 49 % at 1.
    decoding.add_argument("--temperature", type=non_negative_float, default=0.25,
                          help="WaveNet sampling temperature; 0 picks the likeliest sample, 1 samples the model's "
                               "own distribution (default 0.25, where the shipped WaveNet keeps pitch best)")
    decoding.add_argument("--seed", type=int, default=None, help="seed of the WaveNet sampling, for repeatable audio")
    decoding.add_argument("--pitch", type=int, default=None,
                          help="MIDI pitch of every note, for pitch-conditioned models")
    decoding.add_argument("--griffin-lim-iters", type=positive(int), default=100,
                          help="Griffin-Lim iterations that give spectral models' output a phase (default 100)")

    audio_inputs = dict(nargs="+", metavar="INPUT", help="audio files or folders (wav, flac, ogg, mp3)")
    command = commands.add_parser("encode", parents=[common, reading], help="audio -> OUT/<name>.npy",
                                  description="Encode audio to Z: [frames, 16] for WaveNet, [1984] for spectral.")
    command.add_argument("inputs", **audio_inputs)
    command.set_defaults(run=encode_audio_files)
    command = commands.add_parser("decode", parents=[common, decoding], help="Z (.npy) -> OUT/<name>.wav",
                                  description="Decode Z (.npy files written by encode) to 16 kHz audio.")
    command.add_argument("inputs", nargs="+", metavar="INPUT", help=".npy files or folders")
    command.add_argument("--keep-level", action="store_true",
                         help="write the decoder's output as it is, not at the app's playing level (peak 0.9)")
    command.set_defaults(run=decode_z_files)
    decoding.add_argument("--encoder", default="checkpoints/wavenet",
                          help="for a decoder that reads a WaveNet's Z (DDSP): the WaveNet checkpoint that encodes "
                               "(default checkpoints/wavenet)")
    command = commands.add_parser("reconstruct", parents=[common, reading, decoding],
                                  help="audio -> Z -> OUT/<name>.wav",
                                  description="Encode audio and decode it again. Pitch-conditioned models "
                                              "estimate each note's pitch when --pitch is not given.")
    command.add_argument("inputs", **audio_inputs)
    command.add_argument("--keep-level", action="store_true",
                         help="write each note at its input's peak level, not at the app's playing level (peak 0.9)")
    command.set_defaults(run=reconstruct_audio_files)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with logging_redirect_tqdm():  # the decoder's notes on its engine go around the progress bar
            return args.run(args)
    except (ValueError, OSError) as error:  # bad checkpoints, options or output folders: a sentence, no traceback
        print(f"{PROGRAM} {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROGRAM} {args.command}: interrupted.", file=sys.stderr)
        return 130
