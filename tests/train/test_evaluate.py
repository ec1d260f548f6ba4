import contextlib
import copy
import io
import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch

from nsynth_core.audio.core import NOTE_PEAK, SAMPLE_RATE
from nsynth_core.models.checkpoint import load_checkpoint, save_checkpoint
from nsynth_core.data.nsynth import FAMILIES
from nsynth_core.models.ddsp import DDSPDecoder
from nsynth_core.models.spectral import SpectralAutoencoder, SpectralConfig
from nsynth_core.models.wavenet import WaveNetAutoencoder, WaveNetConfig
from train import evaluate
from train.evaluate import (ORIGINAL, SPECTRAL, EvaluationError, choose_notes, load_notes, main, markdown_table,
                            wavenet_reconstructions, wavenet_row)
from train.family_classifier import train_family_classifier
from tests.app_helpers import TINY_DDSP

TINY_WAVENET = WaveNetConfig(encoder_channels=8, encoder_layers=2, encoder_cycle=2, residual_channels=8,
                             skip_channels=8, decoder_layers=2, decoder_cycle=2)
SINE, SQUARE = FAMILIES.index("flute"), FAMILIES.index("synth_lead")
# (instrument, family, MIDI pitch) of each split's notes: two instruments per split, one of each family.
SPLITS = {
    "train": [(0, SINE, 48), (0, SINE, 64), (1, SQUARE, 50), (1, SQUARE, 67)],
    "test": [(2, SINE, 55), (2, SINE, 72), (3, SQUARE, 57), (3, SQUARE, 69)],
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny models' per-sample steps only lose time handing work between threads on a busy machine.

    Module scope, so that it is in force before the module-scoped evaluation runs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tone(family, pitch, seconds=1.0):
    """A 1 s note: a pure sine, or a band-limited square wave (odd harmonics up to Nyquist), fading out."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    harmonics = [1] if family == SINE else range(1, int(SAMPLE_RATE / 2 / f0), 2)
    wave = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in harmonics)
    return 0.5 * wave / np.abs(wave).max() * np.exp(-t)


def write_split(root, notes):
    (root / "audio").mkdir(parents=True)
    examples = {}
    for instrument, family, pitch in notes:
        name = f"{FAMILIES[family]}_synthetic_{instrument:03d}-{pitch:03d}-100"
        sf.write(root / "audio" / f"{name}.wav", tone(family, pitch), SAMPLE_RATE, subtype="PCM_16")
        examples[name] = {"note": len(examples), "pitch": pitch, "velocity": 100, "instrument": instrument,
                          "instrument_family": family, "instrument_source": 2}
    (root / "examples.json").write_text(json.dumps(examples))
    return root


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Tiny splits of synthetic tones and tiny random checkpoints; returns the paths main() takes."""
    root = tmp_path_factory.mktemp("evaluate")
    paths = {split: write_split(root / f"nsynth-{split}", notes) for split, notes in SPLITS.items()}
    torch.manual_seed(0)
    paths["wavenet"] = root / "wavenet"
    save_checkpoint(WaveNetAutoencoder(TINY_WAVENET).eval(), paths["wavenet"], {"step": 7})
    paths["pitched_wavenet"] = root / "pitched-wavenet"
    save_checkpoint(WaveNetAutoencoder(replace(TINY_WAVENET, pitch_classes=128)).eval(), paths["pitched_wavenet"])
    paths["spectral"] = root / "spectral"
    save_checkpoint(SpectralAutoencoder(SpectralConfig.preset("cpu-small")).eval(), paths["spectral"], {"step": 3})
    paths["ddsp"] = root / "ddsp"
    save_checkpoint(DDSPDecoder(TINY_DDSP).eval(), paths["ddsp"], {"step": 11})
    paths["ddsp_own_encoder"] = root / "ddsp-own"
    save_checkpoint(DDSPDecoder(replace(TINY_DDSP, own_encoder=True)).eval(), paths["ddsp_own_encoder"], {"step": 12})
    paths["root"] = root
    return paths


def arguments(setup, out, wavenet="wavenet", notes=4, length_seconds=0.3, temperatures=("1", "0.5")):
    return ["--data", str(setup["test"]), "--train-data", str(setup["train"]), "--wavenet", str(setup[wavenet]),
            "--spectral", str(setup["spectral"]), "--notes", str(notes), "--out", str(out),
            "--length-seconds", str(length_seconds), "--griffin-lim-iters", "8", "--device", "cpu",
            "--temperature", *temperatures, "--ddsp", str(setup["ddsp"]), str(setup["ddsp_own_encoder"])]


@pytest.fixture(scope="module")
def evaluated(setup):
    """One end-to-end run of the script; returns (stdout table, written table, raw numbers)."""
    out = setup["root"] / "results" / "results.md"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(arguments(setup, out)) == 0
    return stdout.getvalue(), out.read_text(), json.loads(out.with_suffix(".json").read_text())


def test_writes_a_table_of_original_wavenet_per_temperature_and_spectral_rows(setup, evaluated):
    printed, written, results = evaluated
    assert printed == written
    rows = [line for line in written.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0].startswith("| Audio | Pitch accuracy (%) | Family accuracy (%) | STFT distance |")
    assert [row.split("|")[1].strip() for row in rows[1:]] == [
        "Original audio", "WaveNet reconstruction, temperature 1", "WaveNet reconstruction, temperature 0.5",
        "Spectral baseline reconstruction", "DDSP reconstruction (ddsp, the WaveNet's Z)",
        "DDSP reconstruction (ddsp-own, its own encoder's Z)"]
    assert "step 11, given the labelled pitch" in written and "step 12" in written
    split = "/".join(setup["test"].parts[-2:])  # the table names the folder it was measured on
    assert f"4 notes of {split}, from 2 held-out instruments" in written
    assert "step 7" in written and "step 3" in written and "no pitch input" in written
    assert len(results["notes"]) == 4 and min(results["wavenet"]["decode_seconds"]) > 0
    assert np.isfinite(results["wavenet"]["cross_entropy_nats"]) and results["wavenet"]["cross_entropy_nats"] > 0


def test_ddsp_rows_alone_need_only_the_wavenet_encoder(setup, tmp_path, monkeypatch):
    """No temperatures and no spectral checkpoint: the originals and the DDSP rows, the WaveNet never decoding."""
    decoded = []
    monkeypatch.setattr(evaluate, "generate_fastest", lambda *args, **kwargs: decoded.append(args))
    out = tmp_path / "ddsp-only.md"
    argv = arguments(setup, out, temperatures=())
    spectral_at = argv.index("--spectral")
    del argv[spectral_at: spectral_at + 2]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 0
    results = json.loads(out.with_suffix(".json").read_text())
    assert list(results["rows"]) == [ORIGINAL, "DDSP reconstruction (ddsp, the WaveNet's Z)",
                                     "DDSP reconstruction (ddsp-own, its own encoder's Z)"]
    assert decoded == [] and results["wavenet"]["cross_entropy_nats"] is None and results["spectral"] is None
    assert "its encoder only" in out.read_text() and "Spectral baseline" not in out.read_text()


def test_original_audio_keeps_its_pitch(evaluated):
    original = evaluated[2]["rows"][ORIGINAL]
    assert original["pitch_accuracy"] == 100.0
    assert original["stft_distance"] == 0.0 and original["sounding_stft_distance"] == 0.0


def test_retrieval_rows_state_their_chance(evaluated):
    """Two instruments of two notes each: the originals' row looks among the other three (chance 1 in 3)."""
    results = evaluated[2]
    original = results["rows"][ORIGINAL]
    assert original["retrieval"] in (0.0, 25.0, 50.0, 75.0, 100.0)
    assert original["retrieval_chance"] == pytest.approx(100 / 3)
    ddsp = results["rows"]["DDSP reconstruction (ddsp, the WaveNet's Z)"]
    assert ddsp["retrieval_chance"] == 50.0  # its candidates include the note's own original
    assert "chance 50.0 %" in evaluated[1] and "chance 33.3 %" in evaluated[1]


def test_random_wavenet_is_spectrally_further_than_the_original(evaluated):
    rows = evaluated[2]["rows"]
    for temperature in (1, 0.5):
        assert rows[wavenet_row(temperature)]["stft_distance"] > rows[ORIGINAL]["stft_distance"]
    assert rows[SPECTRAL]["stft_distance"] > rows[ORIGINAL]["stft_distance"]


def test_classifier_tells_sine_from_square(evaluated):
    assert evaluated[2]["rows"][ORIGINAL]["family_accuracy"] > 50.0


def test_classifier_features_are_cached(setup, evaluated):
    cache_dir = setup["root"] / "results"
    assert (cache_dir / "family_classifier_features.npz").is_file()
    cached = train_family_classifier(setup["train"], 0.3, seed=0, cache_dir=cache_dir)
    assert cached.features_cached and cached.training_notes == 4


def test_models_hear_every_note_at_the_apps_level(setup, evaluated, tmp_path, monkeypatch):
    heard = []  # the peak of every note each model is given

    def listening(reconstruct):
        def wrapped(model, audio, *rest):
            heard.append(np.abs(audio).max(axis=1))
            return reconstruct(model, audio, *rest)
        return wrapped

    for name in ("wavenet_reconstructions", "spectral_reconstructions"):
        monkeypatch.setattr(evaluate, name, listening(getattr(evaluate, name)))
    quieter = tmp_path / "nsynth-test"
    shutil.copytree(setup["test"], quieter)
    for path in (quieter / "audio").glob("*.wav"):
        audio, rate = sf.read(path)
        sf.write(path, audio / 2, rate, subtype="FLOAT")  # exact in binary, so the scaled notes match bit for bit
    out = tmp_path / "results.md"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(arguments(dict(setup, test=quieter), out)) == 0
    results = json.loads(out.with_suffix(".json").read_text())
    assert len(heard) == 2 and np.allclose(heard, NOTE_PEAK)
    assert results["wavenet"]["cross_entropy_nats"] == evaluated[2]["wavenet"]["cross_entropy_nats"]
    for row in (wavenet_row(1), wavenet_row(0.5), SPECTRAL):
        assert results["rows"][row]["per_note"]["median_f0_hz"] == evaluated[2]["rows"][row]["per_note"]["median_f0_hz"]


def test_pitch_conditioned_wavenet_gets_the_labelled_pitch(setup, evaluated):
    model, _ = load_checkpoint(setup["pitched_wavenet"])
    notes = load_notes(setup["test"], evaluated[2]["notes"][:2])
    [as_labelled], _, _, _ = wavenet_reconstructions(model, notes, [55, 72], length=600, seed=0)
    [other_pitch], _, _, _ = wavenet_reconstructions(model, notes, [60, 60], length=600, seed=0)
    assert not np.array_equal(as_labelled, other_pitch)
    results = copy.deepcopy(evaluated[2])
    results["wavenet"]["pitch_conditioned"] = True
    assert "WaveNet: step 7, given the labelled pitch" in markdown_table(results)


def test_sampling_temperature_reaches_the_decoder_and_the_table(setup, evaluated):
    model, _ = load_checkpoint(setup["wavenet"])
    notes = load_notes(setup["test"], evaluated[2]["notes"][:2])
    decoded = lambda temperatures, seed: wavenet_reconstructions(model, notes, [55, 72], 600, seed, temperatures)
    np.testing.assert_array_equal(*decoded((0.0,), 0)[0], *decoded((0.0,), 1)[0])  # the most likely sample always
    assert not np.array_equal(*decoded((1.0,), 0)[0], *decoded((1.0,), 1)[0])
    [at_1, at_0], cross_entropy, seconds, _ = decoded((1.0, 0.0), 0)
    np.testing.assert_array_equal(at_1, *decoded((1.0,), 0)[0])  # each temperature starts from the seed
    np.testing.assert_array_equal(at_0, *decoded((0.0,), 0)[0])
    assert cross_entropy == decoded((0.0,), 0)[1] and len(seconds) == 2
    results = evaluated[2]
    assert results["wavenet"]["temperatures"] == [1.0, 0.5]
    assert "s at temperature 1 (" in evaluated[1] and "s at temperature 0.5 (" in evaluated[1]
    assert results["rows"][wavenet_row(1)] != results["rows"][wavenet_row(0.5)]


def test_notes_spread_over_families_and_instruments():
    examples = {f"note{instrument}-{pitch}": {"instrument": instrument, "instrument_family": instrument % 3,
                                              "pitch": pitch}
                for instrument in range(6) for pitch in range(40, 80, 2)}
    chosen = choose_notes(examples, 6, seed=1)
    assert chosen == choose_notes(examples, 6, seed=1)
    assert len({examples[name]["instrument"] for name in chosen}) == 6
    assert {examples[name]["instrument_family"] for name in chosen[:3]} == {0, 1, 2}
    pitches = sorted(examples[name]["pitch"] for name in choose_notes(examples, 12, seed=1))
    assert pitches[0] < 46 and pitches[-1] > 74  # the pitch range is covered, not one register
    assert len(set(choose_notes(examples, len(examples), seed=2))) == len(examples)
    with pytest.raises(EvaluationError, match="holds 120"):
        choose_notes(examples, 121, seed=0)


def test_bad_options_are_explained(setup, tmp_path, capsys):
    assert main(arguments(setup, tmp_path / "r.md", length_seconds=0.05)) == 1
    assert "--length-seconds must be from" in capsys.readouterr().err
    swapped = arguments(setup, tmp_path / "r.md")
    swapped[swapped.index("--wavenet") + 1] = str(setup["spectral"])
    assert main(swapped) == 1
    assert "holds a SpectralAutoencoder, not a WaveNetAutoencoder" in capsys.readouterr().err
    assert main(arguments(setup, tmp_path / "r.md", temperatures=("0.5", "1", "0.5"))) == 1
    assert "--temperature lists a value twice: 0.5 1 0.5." in capsys.readouterr().err
