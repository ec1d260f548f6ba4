import logging
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from nsynth_core import fastgen
from nsynth_core.audio import mu_law_decode
from nsynth_core.generate import generate, sampling_uniforms
from nsynth_core.wavenet import WaveNetAutoencoder, WaveNetConfig, steady_phase


@pytest.fixture(scope="module")
def engine():
    if fastgen.load_library() is None:
        pytest.skip(f"The fast decoder is unavailable here: {fastgen.build_error()}")


def random_model(preset, seed=0, **changes):
    torch.manual_seed(seed)
    return WaveNetAutoencoder(replace(WaveNetConfig.preset(preset), encoder_layers=2, **changes)).eval()


def random_z(model, batch, length):
    return torch.randn(batch, math.ceil(length / model.config.hop_length), model.config.latent_channels)


LOGIT_CASES = [
    # The shipped model at full depth: 1100 samples cross two frame boundaries and wrap every queue (longest 1024).
    pytest.param("cpu-small", {}, 1100, id="cpu-small"),
    # The paper's channels and kernel; fewer layers and a shorter hop for test time.
    pytest.param("paper", {"decoder_layers": 4, "decoder_cycle": 4, "hop_length": 32}, 100, id="paper-4-layers"),
    pytest.param("cpu-small", {"decoder_layers": 3, "hop_length": 64, "pitch_classes": 128}, 200, id="pitched"),
    pytest.param("cpu-small", {"decoder_layers": 3, "hop_length": 64, "pitch_classes": 128,
                               "excitation_harmonics": 4}, 1700, id="excited"),  # crosses a chunk boundary
]


@pytest.mark.parametrize("preset, changes, length", LOGIT_CASES)
@pytest.mark.usefixtures("engine")
def test_logits_match_the_teacher_forced_forward_over_the_generated_audio(preset, changes, length):
    model = random_model(preset, **changes)
    z = random_z(model, 2, length)
    pitch = torch.tensor([40, 70]) if model.config.pitch_classes else None
    engine = fastgen.FastDecoder(model, z, pitch)
    logits = torch.empty(length, 2, 256)
    codes = engine.run(length, sampling_uniforms(length, 2, 1.0, seed=5), temperature=1.0, logits=logits)
    with torch.no_grad():
        audio = torch.from_numpy(mu_law_decode(codes.numpy()).astype(np.float32))
        phase = None if pitch is None else steady_phase(pitch, 0, audio.shape[1], model.config.sample_rate)
        expected = model.decode_logits(audio, z, pitch, phase)[:, :, :length]
    assert expected.abs().max() > 0.1  # a meaningful comparison, not of zeros
    assert (logits.permute(1, 2, 0) - expected).abs().max().item() < 1e-4


# The reference decodes a few milliseconds per step: these stay short.
@pytest.mark.parametrize("preset, changes, length, temperature", [
    pytest.param("cpu-small", {"hop_length": 64}, 200, 1.0, id="cpu-small"),
    pytest.param("cpu-small", {"hop_length": 64}, 100, 0.0, id="cpu-small-greedy"),
    pytest.param("paper", {"decoder_layers": 4, "decoder_cycle": 4, "hop_length": 16}, 30, 0.8, id="paper-4-layers"),
    pytest.param("cpu-small", {"decoder_layers": 3, "hop_length": 64, "pitch_classes": 128}, 100, 1.0, id="pitched"),
    pytest.param("cpu-small", {"decoder_layers": 3, "hop_length": 64, "pitch_classes": 128,
                               "excitation_harmonics": 4}, 100, 1.0, id="excited"),
])
@pytest.mark.usefixtures("engine")
def test_samples_match_the_reference_generator(preset, changes, length, temperature):
    model = random_model(preset, **changes)
    z = random_z(model, 2, length)
    pitch = torch.tensor([40, 70]) if model.config.pitch_classes else None
    fast = fastgen.fast_generate(model, z, pitch, temperature=temperature, seed=9, length=length)
    np.testing.assert_array_equal(fast, generate(model, z, pitch, temperature=temperature, seed=9, length=length))
    assert len(np.unique(fast)) > 2  # not a trivial sequence


@pytest.mark.usefixtures("engine")
def test_thread_count_and_chunking_do_not_change_the_result():
    model = random_model("cpu-small", seed=1, decoder_layers=6, hop_length=64)
    z = torch.randn(5, 20, 16)
    one, two = fastgen.FastDecoder(model, z), fastgen.FastDecoder(model, z)
    uniforms = sampling_uniforms(1200, 5, 0.7, seed=2)
    logits_one, logits_two = torch.empty(1200, 5, 256), torch.empty(1200, 5, 256)
    codes_one = one.run(1200, uniforms, 0.7, logits=logits_one, threads=1)
    codes_two = torch.cat([two.run(700, uniforms[:700], 0.7, logits=logits_two[:700], threads=2),
                           two.run(500, uniforms[700:], 0.7, logits=logits_two[700:], threads=2)], dim=1)
    assert torch.equal(codes_one, codes_two) and torch.equal(logits_one, logits_two)


@pytest.mark.usefixtures("engine")
def test_fast_generate_reports_progress_by_chunk_and_checks_the_length():
    model = random_model("cpu-small", decoder_layers=2, hop_length=1000)
    z = torch.randn(1, 4, 16)
    calls = []
    audio = fastgen.fast_generate(model, z, seed=0, progress=lambda done, total: calls.append((done, total)))
    assert audio.shape == (1, 4000) and audio.dtype == np.float32 and np.abs(audio).max() <= 1
    assert calls == [(1600, 4000), (3200, 4000), (4000, 4000)]
    with pytest.raises(ValueError, match="frames"):
        fastgen.fast_generate(model, z, length=4001)


def test_decode_falls_back_to_the_reference_for_a_model_the_engine_cannot_run(caplog):
    model = random_model("cpu-small", decoder_layers=2, hop_length=32, residual_channels=24)
    z = torch.randn(2, 2, 16)
    with caplog.at_level(logging.WARNING, logger="nsynth_core.fastgen"):
        audio = fastgen.decode(model, z, seed=4)
    assert "multiples of 16" in caplog.text
    np.testing.assert_array_equal(audio, generate(model, z, seed=4))


def test_decode_falls_back_to_the_reference_when_the_engine_cannot_be_built(caplog, monkeypatch):
    monkeypatch.setattr(fastgen, "load_library", lambda: None)
    monkeypatch.setattr(fastgen, "build_error", lambda: "the C++ engine could not be built (no compiler)")
    model = random_model("cpu-small", decoder_layers=2, hop_length=32)
    z = torch.randn(1, 2, 16)
    with caplog.at_level(logging.WARNING, logger="nsynth_core.fastgen"):
        audio = fastgen.decode(model, z, seed=4)
    assert "no compiler" in caplog.text
    np.testing.assert_array_equal(audio, generate(model, z, seed=4))


@pytest.mark.usefixtures("engine")
def test_decode_uses_the_fast_engine_when_it_can(caplog):
    model = random_model("cpu-small", decoder_layers=2, hop_length=32)
    z = torch.randn(2, 2, 16)
    with caplog.at_level(logging.WARNING, logger="nsynth_core.fastgen"):
        audio = fastgen.decode(model, z, seed=4)
    assert caplog.text == ""
    np.testing.assert_array_equal(audio, generate(model, z, seed=4))
