"""Importing Magenta's NSynth WaveNet checkpoint, checked on a tiny checkpoint TensorFlow wrote
(tests/fixtures/make_magenta_fixture.py) against a NumPy restatement of Magenta's h512_bo16 graph."""

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from nsynth_core.models.checkpoint import load_checkpoint
from nsynth_core.data.convert_magenta import convert, main
from nsynth_core.data.tf_checkpoint import CheckpointFormatError, TFCheckpoint

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "magenta_ckpt" / "model.ckpt-7"
HOP, CYCLE = 8, 2  # the fixture's model: 3 + 3 layers of dilations 1, 2, 1


# --- Magenta's graph in NumPy, one example at a time, time-major [T, C] as in TensorFlow ---

def mu_law(x):
    return np.floor(np.sign(x) * np.log1p(255 * np.abs(x)) / np.log(256) * 128)


def conv(x, scope, weights, dilation=1, causal=False):
    """masked.conv1d: causal convs see t-(k-1)d .. t; the encoder's are centred ('SAME')."""
    W, b = weights(scope + "/W"), weights(scope + "/biases")
    k, T = W.shape[1], x.shape[0]
    left = (k - 1) * dilation if causal else (k - 1) // 2 * dilation
    padded = np.pad(x, ((left, (k - 1) * dilation - left), (0, 0)))
    return sum(padded[j * dilation : j * dilation + T] @ W[0, j] for j in range(k)) + b


def relu(x):
    return np.maximum(x, 0)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def magenta_encode(x_scaled, weights, layers):
    en = conv(x_scaled, "ae_startconv", weights)
    for i in range(layers):
        d = relu(conv(relu(en), f"ae_dilatedconv_{i + 1}", weights, dilation=2 ** (i % CYCLE)))
        en = en + conv(d, f"ae_res_{i + 1}", weights)
    en = conv(en, "ae_bottleneck", weights)
    return en.reshape(-1, HOP, en.shape[1]).mean(axis=1)  # average pool by the hop


def magenta_decode(x_scaled, z, weights, layers):
    upsample = lambda frames: np.repeat(frames, HOP, axis=0)
    l = np.concatenate([np.zeros((1, 1)), x_scaled[:-1]])  # shift_right
    l = conv(l, "startconv", weights, causal=True)
    s = conv(l, "skip_start", weights)
    for i in range(layers):
        d = conv(l, f"dilatedconv_{i + 1}", weights, dilation=2 ** (i % CYCLE), causal=True)
        d = d + upsample(conv(z, f"cond_map_{i + 1}", weights))
        m = d.shape[1] // 2
        d = sigmoid(d[:, :m]) * np.tanh(d[:, m:])
        l = l + conv(d, f"res_{i + 1}", weights)
        s = s + conv(d, f"skip_{i + 1}", weights)
    s = relu(conv(relu(s), "out1", weights) + upsample(conv(z, "cond_map_out1", weights)))
    return conv(s, "logits", weights)


def magenta_outputs(audio, weights, encoder_layers, decoder_layers):
    """(Z [F, latent], logits [T, 256]) of one clip, as Magenta's graph computes them."""
    x_scaled = (mu_law(audio) / 128.0)[:, None]
    z = magenta_encode(x_scaled, weights, encoder_layers)
    return z, magenta_decode(x_scaled, z, weights, decoder_layers)


# --- tests ---

@pytest.fixture(scope="module")
def checkpoint():
    return TFCheckpoint(FIXTURE)


def mu_law_bin_centres(rng, shape):
    """Audio at the centre of random 8-bit mu-law bins, so every implementation quantizes it alike."""
    companded = (rng.integers(-128, 128, shape) + 0.5) / 128
    return (np.sign(companded) * np.expm1(np.abs(companded) * np.log(256)) / 255).astype(np.float32)


def test_reader_reads_variables_with_their_shapes_and_types(checkpoint):
    assert TFCheckpoint(str(FIXTURE) + ".index").names() == checkpoint.names()  # the .index path works too
    w = checkpoint.read("dilatedconv_2/W")
    assert w.dtype == np.float32 and w.shape == checkpoint.entries["dilatedconv_2/W"].shape == (1, 3, 4, 8)
    assert np.isfinite(w).all() and w.std() > 0
    step = checkpoint.read("global_step")
    assert step.dtype == np.int32 and step.shape == () and step == 7
    assert "logits/W/ExponentialMovingAverage" in checkpoint


def test_converted_model_matches_magentas_equations(checkpoint):
    torch.manual_seed(0)
    model, metadata = convert(checkpoint, hop_length=HOP, dilation_cycle=CYCLE)
    config = model.config
    assert (config.encoder_layers, config.decoder_layers, config.latent_channels) == (3, 3, 3)
    assert metadata["weights"] == "exponential moving average" and metadata["raw_variables"] == []
    assert metadata["global_step"] == 7

    audio = mu_law_bin_centres(np.random.default_rng(0), (2, 4 * HOP))
    with torch.no_grad():
        z = model.encode(torch.from_numpy(audio)).double().numpy()
        logits = model(torch.from_numpy(audio)).double().numpy()
    assert z.shape == (2, 4, 3) and logits.shape == (2, 256, 4 * HOP)

    moving_average = lambda name: checkpoint.read(name + "/ExponentialMovingAverage").astype(np.float64)
    raw = lambda name: checkpoint.read(name).astype(np.float64)
    for clip in range(2):
        z_ref, logits_ref = magenta_outputs(audio[clip], moving_average, 3, 3)
        np.testing.assert_allclose(z[clip], z_ref, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(logits[clip].T, logits_ref, rtol=1e-4, atol=1e-4)
        # The smoothed weights, not the raw ones, were imported.
        _, logits_raw = magenta_outputs(audio[clip], raw, 3, 3)
        assert np.abs(logits[clip].T - logits_raw).max() > 0.1


def test_command_line_writes_a_loadable_checkpoint(tmp_path, capsys):
    main([str(FIXTURE), str(tmp_path / "magenta"), "--hop-length", str(HOP), "--dilation-cycle", str(CYCLE)])
    assert "Wrote" in capsys.readouterr().out
    model, metadata = load_checkpoint(tmp_path / "magenta")
    converted, expected_metadata = convert(TFCheckpoint(FIXTURE), hop_length=HOP, dilation_cycle=CYCLE)
    assert metadata == expected_metadata and model.config == converted.config
    for name, tensor in converted.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name


def test_missing_variable_is_named(checkpoint):
    incomplete = TFCheckpoint(FIXTURE)
    del incomplete.entries["res_2/biases"], incomplete.entries["res_2/biases/ExponentialMovingAverage"]
    with pytest.raises(CheckpointFormatError, match="no variable 'res_2/biases'"):
        convert(incomplete, hop_length=HOP, dilation_cycle=CYCLE)


def test_missing_layer_is_reported_not_skipped(checkpoint):
    gap = TFCheckpoint(FIXTURE)
    for name in [n for n in gap.names() if n.startswith("dilatedconv_2/")]:
        del gap.entries[name]
    with pytest.raises(CheckpointFormatError, match="no place in the model.*missing"):
        convert(gap, hop_length=HOP, dilation_cycle=CYCLE)


def test_misshaped_variable_is_named_with_both_shapes(checkpoint):
    misshaped = TFCheckpoint(FIXTURE)
    entry = misshaped.entries["cond_map_2/W"]
    misshaped.entries["cond_map_2/W"] = dataclasses.replace(entry, shape=(1, 1, 3, 6))
    with pytest.raises(CheckpointFormatError, match=r"'cond_map_2/W' has shape \[1, 1, 3, 6\].*\[1, 1, 3, 8\]"):
        convert(misshaped, hop_length=HOP, dilation_cycle=CYCLE)


def test_corrupt_data_fails_its_checksum(tmp_path):
    for path in FIXTURE.parent.iterdir():
        shutil.copy(path, tmp_path / path.name)
    copy = TFCheckpoint(tmp_path / FIXTURE.name)
    entry = copy.entries["skip_1/W"]
    data_path = copy.shard_path(entry.shard_id)
    data = bytearray(data_path.read_bytes())
    data[entry.offset + 5] ^= 0xFF
    data_path.write_bytes(bytes(data))
    with pytest.raises(CheckpointFormatError, match="'skip_1/W' is corrupt.*CRC32C"):
        copy.read("skip_1/W")
    copy.read("skip_2/W")  # the others still read


def test_not_a_checkpoint_gives_a_clear_error(tmp_path):
    with pytest.raises(CheckpointFormatError, match="model.ckpt-1.index is missing"):
        TFCheckpoint(tmp_path / "model.ckpt-1")
    (tmp_path / "notes.index").write_bytes(b"these are not the bytes of a table" * 3)
    with pytest.raises(CheckpointFormatError, match="not a TensorFlow checkpoint index"):
        TFCheckpoint(tmp_path / "notes")
    with pytest.raises(SystemExit, match="error: No TensorFlow checkpoint"):
        main([str(tmp_path / "model.ckpt-1"), str(tmp_path / "out")])
