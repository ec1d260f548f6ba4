"""What the page says about the explorer's state: the models found, a model's description, a decode's cost, a
note without a pitch."""

import numpy as np
import pytest

from tests.app_helpers import write_tiny_checkpoints
from nsynth_core.audio.core import NOTE_LENGTH
from nsynth_core.explorer.explorer import Explorer
from nsynth_core.explorer.loaded_models import load_model
from nsynth_core.explorer.notes import Note
from nsynth_core.models.checkpoint import save_checkpoint
from webapp import texts


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    directory = tmp_path_factory.mktemp("checkpoints")
    write_tiny_checkpoints(directory)
    return directory


@pytest.fixture
def no_examples(tmp_path):
    """An assets folder without notes: the status is about checkpoints alone."""
    directory = tmp_path / "assets"
    directory.mkdir()
    (directory / "notes.json").write_text("[]")
    return directory


def test_status_says_when_no_trained_model_exists(tmp_path, no_examples, checkpoints):
    empty = tmp_path / "empty"
    empty.mkdir()
    said = texts.checkpoint_status(Explorer(empty, no_examples))
    assert "No trained WaveNet or spectral baseline or DDSP checkpoint" in said and f"`{empty}/`" in said
    assert texts.checkpoint_status(Explorer(checkpoints, no_examples)) == ""


def test_status_names_a_skipped_checkpoint_and_why(tmp_path, no_examples, checkpoints):
    for path in checkpoints.glob("tiny-*"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    (tmp_path / "tiny-ddsp.safetensors").write_bytes(b"not weights")
    said = texts.checkpoint_status(Explorer(tmp_path, no_examples))
    assert said.startswith("**Skipped checkpoint `tiny-ddsp`:**") and "No trained DDSP checkpoint" in said


def test_model_description_names_the_training_steps(checkpoints, tmp_path):
    wavenet = load_model(checkpoints / "tiny-wavenet")
    save_checkpoint(wavenet.model, tmp_path / "trained", {"step": 1234})
    assert "1,234 steps" in texts.describe_model(load_model(tmp_path / "trained"))
    described = texts.describe_model(wavenet)
    assert "steps" not in described  # random test weights carry no step
    assert described.startswith("`tiny-wavenet`: wavenet, ") and "receptive field" in described


def test_a_decode_too_slow_for_the_machine_is_flagged():
    quick = texts.decode_cost_message(20, 4, 1.0, "WaveNet")
    slow = texts.decode_cost_message(40 * 60, 4, 4.0, "WaveNet")
    assert quick.startswith("Decoding 4 cells of 1 s") and "too slow" not in quick
    assert "too slow" in slow and "about 40 min" in slow


def test_a_multigrid_estimate_says_it_is_decoded_afresh_and_when_it_will_be_refused():
    quick = texts.decode_cost_message(20, 81, 1.0, "DDSP", pitches=16)
    assert quick == ("Decoding 81 cells at 16 pitches (1296 sounds) of 1 s with the DDSP decoder takes **about 20 s** "
                     "on this machine.")  # no cache: a multigrid's notes are too many to keep
    assert texts.decode_cost_message(20, 9, 2.0, "DDSP", pitches=1).startswith("Decoding 9 cells at 1 pitch (9 ")
    slow = texts.decode_cost_message(16 * 60, 81, 1.0, "WaveNet", pitches=16)
    assert slow.startswith("⚠️ **Too long to decode here** (the limit is 5 min): choose the DDSP decoder, fewer "
                           "cells or fewer pitches.") and "takes **about 16 min**" in slow
    assert "small model" not in slow  # the shipped WaveNet is the small one already


def test_only_a_note_without_a_pitch_gets_a_warning():
    audio = np.zeros(NOTE_LENGTH, np.float32)
    assert texts.pitch_warning(Note(id="a", name="bell", audio=audio, pitch=60)) is None
    warning = texts.pitch_warning(Note(id="b", name="noise", audio=audio))
    assert warning.startswith("No pitch was found in 'noise'") and "DDSP" in warning
