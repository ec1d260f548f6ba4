import json
from dataclasses import replace

import pytest
import torch

from nsynth_core.models.checkpoint import CheckpointError, load_checkpoint, read_description, save_checkpoint
from nsynth_core.models.wavenet import WaveNetAutoencoder, WaveNetConfig


def tiny_config(**changes):
    return replace(WaveNetConfig.preset("cpu-small"), encoder_layers=2, decoder_layers=2, **changes)


def test_round_trip_keeps_weights_config_and_metadata(tmp_path):
    torch.manual_seed(0)
    model = WaveNetAutoencoder(tiny_config(pitch_classes=128))
    save_checkpoint(model, tmp_path / "model", {"step": 12})
    assert (tmp_path / "model.safetensors").exists() and (tmp_path / "model.json").exists()
    loaded, metadata = load_checkpoint(tmp_path / "model.safetensors")
    assert metadata == {"step": 12}
    assert loaded.config == model.config and not loaded.training
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    assert read_description(tmp_path / "model.json")["kind"] == "wavenet"


def test_weights_that_do_not_match_the_config_are_refused(tmp_path):
    save_checkpoint(WaveNetAutoencoder(tiny_config()), tmp_path / "a")
    save_checkpoint(WaveNetAutoencoder(tiny_config(residual_channels=32)), tmp_path / "b")
    (tmp_path / "b.json").write_text((tmp_path / "a.json").read_text())  # config says 64 channels, file has 32
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_checkpoint(tmp_path / "b")


def test_missing_tensors_are_named(tmp_path):
    save_checkpoint(WaveNetAutoencoder(tiny_config()), tmp_path / "a")
    description = json.loads((tmp_path / "a.json").read_text())
    description["config"]["decoder_layers"] = 3
    (tmp_path / "a.json").write_text(json.dumps(description))
    with pytest.raises(CheckpointError, match="missing .* decoder.layers.2"):
        load_checkpoint(tmp_path / "a")


@pytest.mark.parametrize("damage, message", [
    (lambda p: (p / "m.safetensors").write_bytes(b"\x00" * 40), "cannot be read"),
    (lambda p: (p / "m.safetensors").unlink(), "missing"),
    (lambda p: (p / "m.json").write_text("{not json"), "not valid JSON"),
    (lambda p: (p / "m.json").write_text('{"kind": "pickle", "config": {}}'), "unknown model kind"),
])
def test_damaged_checkpoints_give_clear_errors(tmp_path, damage, message):
    save_checkpoint(WaveNetAutoencoder(tiny_config()), tmp_path / "m")
    damage(tmp_path)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path / "m")
