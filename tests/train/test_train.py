"""Training: the loop learns, and a run that is stopped or killed resumes exactly where it was."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from nsynth_core.audio.core import write_wav
from nsynth_core.models.checkpoint import load_checkpoint
from train.cache_z import CacheError, choose_notes, open_manifest
from train.train import TRAIN_CONFIGS, LossOf, build_model, training_batch
from nsynth_core.data.nsynth import EncodedNoteDataset, NoteCropDataset, read_wav
from nsynth_core.models.ddsp import DDSPDecoder
from nsynth_core.models.ddsp_losses import mel_loss

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--set", "encoder_layers=2", "--set", "decoder_layers=3", "--set", "residual_channels=16",
        "--set", "skip_channels=16", "--set", "encoder_channels=16", "--threads", "1"]


def write_split(folder: Path, pitches, instrument: int):
    """A minimal NSynth json/wav split of 1 s harmonic tones."""
    (folder / "audio").mkdir(parents=True)
    examples = {}
    t = np.arange(16000) / 16000
    for pitch in pitches:
        f0 = 440 * 2 ** ((pitch - 69) / 12)
        audio = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 4)) * np.exp(-2 * t) * 0.4
        name = f"keyboard_acoustic_{instrument:03d}-{pitch:03d}-100"
        write_wav(folder / "audio" / f"{name}.wav", audio)
        examples[name] = {"note": pitch, "note_str": name, "instrument": instrument,
                          "instrument_str": f"keyboard_acoustic_{instrument:03d}", "pitch": pitch, "velocity": 100,
                          "sample_rate": 16000, "qualities": [0] * 10, "qualities_str": [],
                          "instrument_family": 4, "instrument_family_str": "keyboard",
                          "instrument_source": 0, "instrument_source_str": "acoustic"}
    (folder / "examples.json").write_text(json.dumps(examples))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("nsynth")
    write_split(root / "nsynth-train", [48, 55, 60, 67], instrument=0)
    write_split(root / "nsynth-valid", [50, 62], instrument=1)
    return root / "nsynth-train"


@pytest.mark.parametrize("config_name", ["cpu-small", "spectral-cpu-small"])
def test_a_training_step_decreases_the_loss(dataset, config_name):
    torch.manual_seed(0)
    config = TRAIN_CONFIGS[config_name]
    changes = {"encoder_layers": 2, "decoder_layers": 3} if config.model == "wavenet" else {}
    from dataclasses import replace
    # As shipped: pitch-conditioned, with the excitation (WaveNet) or the harmonic comb (spectral).
    config = replace(config, model_changes={**config.model_changes, **changes}, pitch_conditioning=True)
    model = build_model(config)
    loss_of = LossOf(model, pitch_conditioning=True)
    data = NoteCropDataset(dataset, crop_length=config.crop_length if config.model == "wavenet" else 16000)
    audio, pitch = training_batch(data, 2, seed=0, step=0, rank=0, device="cpu")
    if config.model == "spectral":  # the spectral model takes whole 4 s notes
        audio = torch.nn.functional.pad(audio, (0, 64000 - audio.shape[1]))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    # Training mode throughout: BatchNorm normalises by the batch's own statistics, the same batch before and
    # after, so both losses are of the same function of the weights.
    with torch.no_grad():
        before = loss_of(audio, pitch).item()
    for _ in range(3):
        optimizer.zero_grad()
        loss_of(audio, pitch).backward()
        optimizer.step()
    with torch.no_grad():
        after = loss_of(audio, pitch).item()
    assert after < before


WAVENET = ("--config", "cpu-small", "--pitch-conditioning", *TINY)


def start_training(data, out, *extra, model=WAVENET) -> subprocess.Popen:
    command = [sys.executable, "-m", "train.train", "--data", str(data), "--out", str(out), "--save-minutes", "0",
               *model, *extra]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run_training(data, out, *extra, model=WAVENET) -> str:
    """The run's console output, once it has finished successfully."""
    process = start_training(data, out, *extra, model=model)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    return output


def losses(out: Path) -> list[tuple[int, str]]:
    with open(out / "metrics.csv") as file:
        return [(int(row["step"]), row["train_loss"]) for row in csv.DictReader(file)]


@pytest.fixture(scope="module")
def uninterrupted(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    run_training(dataset, out, "--max-steps", "8")
    return losses(out)


def test_resume_restores_step_optimizer_and_data(dataset, uninterrupted, tmp_path):
    run_training(dataset, tmp_path, "--max-steps", "3")
    assert json.loads((tmp_path / "state.json").read_text())["step"] == 3
    run_training(dataset, tmp_path, "--max-steps", "8")
    # The resumed run's steps 4-8 repeat the uninterrupted run's losses: same weights, Adam moments and batches.
    assert losses(tmp_path) == uninterrupted
    model, metadata = load_checkpoint(tmp_path / "model")
    assert metadata["step"] == 8 and metadata["ema"] is True


def test_a_killed_run_resumes_from_its_last_save(dataset, uninterrupted, tmp_path):
    process = start_training(dataset, tmp_path, "--max-steps", "1000")
    state = tmp_path / "state.json"
    deadline = time.time() + 240
    while time.time() < deadline and not (state.exists() and json.loads(state.read_text())["step"] >= 2):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved_step = json.loads(state.read_text())["step"]
    assert 2 <= saved_step < 8
    run_training(dataset, tmp_path, "--max-steps", "8")
    assert json.loads(state.read_text())["step"] == 8
    # Rows the killed run logged after its last save are dropped; the resumed run continues the same trajectory.
    assert losses(tmp_path) == uninterrupted


def test_a_shipped_checkpoint_can_be_trained_further(dataset, tmp_path):
    run_training(dataset, tmp_path / "first", "--max-steps", "2")
    shipped, _ = load_checkpoint(tmp_path / "first" / "model")
    run_training(dataset, tmp_path / "second", "--init-from", str(tmp_path / "first" / "model"), "--max-steps", "4",
                 "--batch-size", "2")
    assert [step for step, _ in losses(tmp_path / "second")] == [3, 4]
    continued, metadata = load_checkpoint(tmp_path / "second" / "model")
    assert metadata["step"] == 4 and continued.config == shipped.config
    # The continued run takes the batch size and steps it was given; the rest of the training config it inherits.
    first_config = load_checkpoint(tmp_path / "first" / "model")[1]["train_config"]
    assert metadata["train_config"] == dict(first_config, batch_size=2, max_steps=4) != first_config


def test_a_pitch_driven_config_without_pitch_conditioning_says_what_to_add(dataset, tmp_path):
    command = [sys.executable, "-m", "train.train", "--data", str(dataset), "--out", str(tmp_path), "--config",
               "spectral-cpu-small", "--max-steps", "1"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "harmonic_comb" in result.stderr and "--pitch-conditioning" in result.stderr
    assert not (tmp_path / "state.json").exists()


def test_bf16_precision_trains_the_same_model_in_other_arithmetic(dataset, tmp_path):
    weights = {}
    for precision in ("fp32", "bf16"):
        output = run_training(dataset, tmp_path / precision, "--max-steps", "2", "--precision", precision)
        assert f"Training step in {'bfloat16' if precision == 'bf16' else 'float32'}" in output
        assert all(np.isfinite(float(loss)) for _, loss in losses(tmp_path / precision))
        weights[precision] = load_checkpoint(tmp_path / precision / "model")[0].state_dict()
    differences = [(weights["fp32"][name] - weights["bf16"][name]).abs().max().item() for name in weights["fp32"]]
    # Same data, same initial weights: bf16 matmuls change the gradients a little, so the weights differ a little.
    assert 0 < max(differences) < 1e-2


def test_the_ddsp_decoder_trains_on_cached_z_and_a_continued_run_can_add_the_mel_term(dataset, tmp_path):
    run_training(dataset, tmp_path / "wavenet", "--max-steps", "1")
    cache = tmp_path / "z-cache"
    for split in ("nsynth-train", "nsynth-valid"):
        subprocess.run([sys.executable, "-m", "train.cache_z", "--data", str(dataset.with_name(split)),
                        "--checkpoint", str(tmp_path / "wavenet" / "model"), "--out", str(cache / split),
                        "--notes", "4", "--threads", "1"], cwd=ROOT, check=True, capture_output=True, timeout=300)
    ddsp = ("--z-cache", str(cache / "nsynth-train"), "--config", "ddsp-cpu-small", "--batch-size", "2",
            "--threads", "1")
    small = ["--set", "hidden=16", "--set", "gru_channels=16", "--set", "harmonics=8"]
    run_training(dataset, tmp_path / "first", *small, "--max-steps", "2", model=ddsp)
    first, _ = load_checkpoint(tmp_path / "first" / "model")
    assert first.config.mel_loss_weight == 0
    run_training(dataset, tmp_path / "second", "--init-from", str(tmp_path / "first" / "model"),
                 "--set", "mel_loss_weight=1", "--max-steps", "4", model=ddsp)
    continued, metadata = load_checkpoint(tmp_path / "second" / "model")
    assert continued.config.mel_loss_weight == 1 and metadata["step"] == 4
    assert [step for step, _ in losses(tmp_path / "second")] == [3, 4]
    # The continued model's loss is the spectral loss plus the mel term, on the same weights.
    audio, pitch, z, _, _ = next(iter(torch.utils.data.DataLoader(EncodedNoteDataset(dataset, cache / "nsynth-train"),
                                                                  batch_size=4)))
    without_mel = DDSPDecoder(replace(continued.config, mel_loss_weight=0.0))
    without_mel.load_state_dict(continued.state_dict())
    with torch.no_grad():
        decoded = continued(z, pitch)
        expected = without_mel.loss(audio, pitch, z) + mel_loss(decoded, audio[:, :decoded.shape[-1]])
        assert torch.isclose(continued.loss(audio, pitch, z), expected)

    # f0 contours cached beside the Z: a continued run adds the pitch-motion head and gates, learning the motion.
    subprocess.run([sys.executable, "-m", "train.cache_f0", "--data", str(dataset), "--z-cache",
                    str(cache / "nsynth-train")], cwd=ROOT, check=True, capture_output=True, timeout=300)
    with_contours = EncodedNoteDataset(dataset, cache / "nsynth-train")
    assert with_contours.voiced.any(dim=1).all()  # every cached note has voiced frames
    voiced_medians = [torch.median(motion[voiced]) for motion, voiced in zip(with_contours.motion, with_contours.voiced)]
    assert max(abs(median) for median in voiced_medians) <= 0.5  # motion: cents from the note's own median
    run_training(dataset, tmp_path / "motion", "--init-from", str(tmp_path / "first" / "model"),
                 "--set", "f0_deviation_cents=200", "--set", "gate_subframes=16", "--set", "f0_loss_weight=10",
                 "--set", "motion_context_frames=7", "--set", "motion_spread_weight=10",
                 "--train-only", "to_f0_deviation.", "motion_context.", "to_gates.", "--max-steps", "4", model=ddsp)
    moving, _ = load_checkpoint(tmp_path / "motion" / "model")
    assert moving.config.f0_deviation_cents == 200 and moving.config.gate_subframes == 16
    assert moving.to_f0_deviation.weight.abs().max() > 0  # trained from zero
    assert moving.to_gates.weight.abs().max() > 0
    for name, weight in first.state_dict().items():  # the rest kept as it was
        torch.testing.assert_close(moving.state_dict()[name], weight, atol=0, rtol=0)

    # Another folder's notes (same names, other audio) join the training notes, each read from its own folder.
    other = tmp_path / "other-font" / "nsynth-train"
    shutil.copytree(dataset, other)
    for wav in (other / "audio").glob("*.wav"):
        write_wav(wav, -read_wav(wav))
    joined = EncodedNoteDataset(dataset, cache / "nsynth-train", (other, cache / "nsynth-train"))
    alone = EncodedNoteDataset(dataset, cache / "nsynth-train")
    assert len(joined) == 2 * len(alone) and joined.names == 2 * alone.names
    torch.testing.assert_close(joined[len(alone)][0], -alone[0][0])
    run_training(dataset, tmp_path / "joined", "--init-from", str(tmp_path / "first" / "model"), "--max-steps", "3",
                 "--more-notes", str(other), str(cache / "nsynth-train"), model=ddsp)
    assert load_checkpoint(tmp_path / "joined" / "model")[1]["more_data"] == [str(other)]
    # Z of another encoder would teach the decoder two spaces at once: refused before training.
    foreign = tmp_path / "foreign-cache"
    shutil.copytree(cache / "nsynth-train", foreign)
    manifest = json.loads((foreign / "manifest.json").read_text())
    (foreign / "manifest.json").write_text(json.dumps({**manifest, "encoder": "0" * 16}))
    process = start_training(dataset, tmp_path / "refused", "--more-notes", str(other), str(foreign), model=ddsp)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 2 and "another encoder" in output and not (tmp_path / "refused" / "model.json").exists()


def test_a_z_cache_grows_with_more_notes_of_the_same_order_and_refuses_other_choices(tmp_path):
    manifest = {"data": "nsynth-train", "encoder": "ab" * 8, "notes": 200, "seed": 0, "shard_notes": 100,
                "note_peak": 0.17}
    open_manifest(tmp_path, manifest)
    open_manifest(tmp_path, {**manifest, "notes": 300})  # more notes: the first 200 are the same ones
    assert json.loads((tmp_path / "manifest.json").read_text())["notes"] == 300
    examples = {f"note-{i:03d}": {} for i in range(400)}
    assert choose_notes(examples, 300, 0)[:200] == choose_notes(examples, 200, 0)
    for changed in ({"notes": 250}, {"seed": 1}, {"encoder": "cd" * 8}):  # fewer notes, another order or encoder
        with pytest.raises(CacheError, match="another encoder or choice"):
            open_manifest(tmp_path, {**manifest, "notes": 300, **changed})
    partial = tmp_path / "partial"
    open_manifest(partial, {**manifest, "notes": 150})  # its last shard holds 50 notes: it cannot take more
    with pytest.raises(CacheError):
        open_manifest(partial, {**manifest, "notes": 300})
