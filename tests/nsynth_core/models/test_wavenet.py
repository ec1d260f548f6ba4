import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from nsynth_core.audio.core import midi_to_hz
from nsynth_core.engine import precision
from nsynth_core.engine.generate import generate
from nsynth_core.models.wavenet import (
    WaveNetAutoencoder,
    WaveNetConfig,
    count_parameters,
    excitation,
    fundamental_phase,
)


def magenta_parameter_count() -> int:
    """Sum over the variables of Magenta's h512_bo16 checkpoint (W [1, k, in, out] + biases [out])."""
    shapes = [(3, 1, 128), (1, 128, 16), (3, 1, 512), (1, 512, 256), (1, 256, 256), (1, 16, 256), (1, 256, 256)]
    shapes += [(3, 128, 128), (1, 128, 128)] * 30  # ae_dilatedconv_i, ae_res_i
    shapes += [(3, 512, 1024), (1, 16, 1024), (1, 512, 512), (1, 512, 256)] * 30  # dilatedconv, cond_map, res, skip
    return sum(k * i * o + o for k, i, o in shapes)


def test_paper_preset_has_magentas_parameters():
    model = WaveNetAutoencoder(WaveNetConfig.preset("paper"))
    assert count_parameters(model) == magenta_parameter_count() == 61_804_048
    assert model.config.receptive_field == 6141  # samples, about 384 ms at 16 kHz


def test_note_encodes_to_125_frames_of_16():
    model = WaveNetAutoencoder(WaveNetConfig.preset("cpu-small")).eval()
    with torch.no_grad():
        z = model.encode(torch.rand(2, 64000) * 2 - 1)
    assert z.shape == (2, 125, 16)


@pytest.mark.parametrize("length", [64000, 5000, 700])
def test_fast_encoder_path_equals_the_convolutional_forward_pass(length):
    """encode() runs the time-major inference path; it must give the training pass's Z, note by note."""
    torch.manual_seed(0)
    model = WaveNetAutoencoder(WaveNetConfig.preset("cpu-small")).eval()
    audio = (torch.rand(3, length) * 2 - 1) * torch.linspace(0.05, 0.9, 3)[:, None]
    with torch.no_grad():
        reference = model.encoder(model.scale_input(audio)).transpose(1, 2)
    fast = model.encode(audio, torch.float32)
    assert fast.shape == reference.shape == (3, length // 512, 16)
    torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(model.encode(audio[1:2], torch.float32), fast[1:2], rtol=1e-5, atol=1e-5)  # per note
    # bfloat16 (what an AVX512-BF16 or AMX CPU runs by default) rounds each layer's activations: Z stays close.
    brief = model.encode(audio, torch.bfloat16)
    assert brief.dtype == torch.float32
    assert ((brief - reference).norm() / reference.norm()).item() < 0.01


@pytest.mark.parametrize("sounding", [(0, 16000), (20000, 31000), (62000, 64000), (0, 0)])
def test_a_note_silent_but_for_a_stretch_encodes_as_the_full_pass_does(sounding):
    """Frames that hear only zeros are taken from a wholly silent note's Z: the same Z as the convolutional pass,
    in float32 and (against its own full inference) in bfloat16, with sound at the start, within, at the end or
    nowhere."""
    torch.manual_seed(0)
    model = WaveNetAutoencoder(WaveNetConfig.preset("cpu-small")).eval()
    audio = torch.zeros(2, 64000)
    audio[:, sounding[0]:sounding[1]] = torch.rand(2, sounding[1] - sounding[0]) - 0.5
    with torch.no_grad():
        reference = model.encoder(model.scale_input(audio)).transpose(1, 2)
        for dtype in (torch.float32, torch.bfloat16):
            whole = torch.stack([model.encoder._infer_note(x[0], dtype) for x in model.scale_input(audio)])
            torch.testing.assert_close(model.encode(audio, dtype), whole, rtol=0, atol=1e-6)
    torch.testing.assert_close(model.encode(audio, torch.float32), reference, rtol=1e-4, atol=1e-4)


def test_no_frame_hears_beyond_the_encoders_reach():
    """What skipping silence rests on: a burst that starts one sample past a frame's window (its samples and
    `reach` either side) leaves the frame as in a silent note; a frame whose window reaches into it hears it."""
    torch.manual_seed(0)
    model = WaveNetAutoencoder(WaveNetConfig.preset("cpu-small")).eval()
    reach, hop, frame = model.encoder.reach, model.config.hop_length, 60
    assert reach == 1 + 2 * sum(2 ** i for i in range(10))
    with torch.no_grad():
        silent = model.encoder(model.scale_input(torch.zeros(1, 64000))).transpose(1, 2)[0]
        for burst in (slice((frame + 1) * hop + reach, 64000), slice(0, frame * hop - reach)):
            audio = torch.zeros(1, 64000)
            audio[0, burst] = torch.rand(burst.stop - burst.start) - 0.5
            z = model.encoder(model.scale_input(audio)).transpose(1, 2)[0]
            assert torch.equal(z[frame], silent[frame])
            neighbour = frame + 5 if burst.start else frame - 5  # its window well into the burst
            assert (z[neighbour] - silent[neighbour]).abs().max() > 1e-3


@pytest.mark.parametrize("variable, chosen", [(precision.ENCODER_PRECISION_ENV, precision.encoder_dtype),
                                              (precision.DECODER_PRECISION_ENV, precision.decoder_dtype)])
def test_the_app_precisions_follow_the_hardware_unless_chosen(monkeypatch, variable, chosen):
    cpu = torch.device("cpu")
    monkeypatch.delenv(variable, raising=False)
    assert chosen(cpu) == (torch.bfloat16 if precision.native_bf16(cpu) else torch.float32)
    for choice, dtype in precision.PRECISIONS.items():
        monkeypatch.setenv(variable, choice)
        assert chosen(cpu) == dtype
    monkeypatch.setenv(variable, "half")
    with pytest.raises(ValueError, match="use auto, bf16 or fp32"):
        chosen(cpu)


def test_forward_gives_256_logits_per_sample_and_causal_decoder():
    torch.manual_seed(0)
    config = replace(WaveNetConfig.preset("cpu-small"), decoder_layers=4, encoder_layers=2, hop_length=64)
    model = WaveNetAutoencoder(config).eval()
    audio = torch.rand(1, 256) * 2 - 1
    z = model.encode(audio)
    logits = model.decode_logits(audio, z)
    assert logits.shape == (1, 256, 256)
    # Changing sample 100 may only change predictions of samples after it (the input is shifted right).
    changed = audio.clone()
    changed[0, 100] = -changed[0, 100] + 0.5
    diff = (model.decode_logits(changed, z) - logits).abs().amax(dim=1)[0]
    assert diff[:101].max() == 0 and diff[101] > 0


def test_pitch_conditioning_changes_the_prediction_and_is_required():
    torch.manual_seed(0)
    config = replace(WaveNetConfig.preset("cpu-small"), decoder_layers=2, encoder_layers=2, pitch_classes=128)
    model = WaveNetAutoencoder(config).eval()
    audio = torch.rand(1, 1024) * 2 - 1
    with torch.no_grad():
        low, high = model(audio, torch.tensor([40])), model(audio, torch.tensor([80]))
    assert (low - high).abs().max() > 1e-3
    with pytest.raises(ValueError, match="pitch"):
        model(audio)


def incremental_logits(model, audio, z, pitch=None, drive=None):
    """Teacher-forced incremental pass: the cached step fed the true previous sample each time."""
    decoder = model.decoder
    state = decoder.init_state(model.conditioning(z, pitch))
    previous = torch.zeros(audio.shape[0])
    inputs = model.scale_input(audio)[:, 0]
    logits = []
    for t in range(audio.shape[1]):
        logits.append(decoder.step(previous, state, t, None if drive is None else drive[:, :, t]))
        previous = inputs[:, t]
    return torch.stack(logits, dim=-1)


@pytest.mark.parametrize("preset, changes, length", [
    # The shipped preset at full depth: 3 frames, so frame boundaries and every queue's wrap-around are crossed.
    ("cpu-small", {}, 1536),
    # The paper's channels and kernel, fewer layers (dilations 1..8 then 1, 2), shorter hop for test time.
    ("paper", {"decoder_layers": 6, "decoder_cycle": 4, "encoder_layers": 2, "hop_length": 128}, 300),
    # Pitch-conditioned variant, and with the harmonic excitation.
    ("cpu-small", {"decoder_layers": 3, "encoder_layers": 2, "hop_length": 64, "pitch_classes": 128}, 200),
    ("cpu-small", {"decoder_layers": 3, "encoder_layers": 2, "hop_length": 64, "pitch_classes": 128,
                   "excitation_harmonics": 3}, 200),
])
def test_incremental_decoder_matches_teacher_forced_forward(preset, changes, length):
    torch.manual_seed(1)
    model = WaveNetAutoencoder(replace(WaveNetConfig.preset(preset), **changes)).eval()
    frames = math.ceil(length / model.config.hop_length)
    audio = (torch.rand(2, frames * model.config.hop_length) * 2 - 1)
    pitch = torch.tensor([30, 90]) if model.config.pitch_classes else None
    with torch.no_grad():
        z = model.encode(audio)
        phase = fundamental_phase(audio, pitch, 16000) if model.config.excitation_harmonics else None
        full = model.decode_logits(audio, z, pitch, phase)[:, :, :length]
        drive = None if phase is None else model.excitation(pitch, phase)
        stepped = incremental_logits(model, audio[:, :length], z, pitch, drive)
    assert full.abs().max() > 0.1  # a meaningful comparison, not of zeros
    assert (full - stepped).abs().max().item() < 1e-4


def small_model(seed=0):
    torch.manual_seed(seed)
    config = replace(WaveNetConfig.preset("cpu-small"), decoder_layers=4, encoder_layers=2, hop_length=32)
    return WaveNetAutoencoder(config).eval()


def test_generate_is_reproducible_with_a_seed_and_reports_progress():
    model = small_model()
    z = torch.randn(3, 4, 16)
    calls = []
    first = generate(model, z, temperature=1.0, seed=7, progress=lambda done, total: calls.append((done, total)))
    again = generate(model, z, temperature=1.0, seed=7)
    other = generate(model, z, temperature=1.0, seed=8)
    assert first.shape == (3, 128) and first.dtype == np.float32
    assert np.abs(first).max() <= 1.0
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert calls[-1] == (128, 128) and len(calls) > 1 and calls == sorted(calls)


def test_greedy_generation_follows_the_argmax_of_the_teacher_forced_pass():
    model = small_model(seed=3)
    z = torch.randn(2, 3, 16)
    audio = generate(model, z, temperature=0)
    # Feeding the generated audio back through the full forward pass must predict exactly that audio.
    with torch.no_grad():
        logits = model.decode_logits(torch.from_numpy(audio), z)
    from nsynth_core.audio.core import mu_law_encode
    np.testing.assert_array_equal(logits.argmax(dim=1).numpy() - 128, mu_law_encode(audio))


def test_generate_rejects_more_samples_than_z_covers():
    with pytest.raises(ValueError, match="frames"):
        generate(small_model(), torch.randn(1, 2, 16), length=65)


def test_fundamental_phase_follows_the_note_and_excitation_drives_the_decoder():
    t = torch.arange(16000, dtype=torch.float64)
    pitch = torch.tensor([45, 69])
    f0 = midi_to_hz(pitch)[:, None]
    offset = torch.tensor([[1.0], [-2.5]], dtype=torch.float64)
    # A fundamental with a known phase offset under louder harmonics, 20 cents sharp.
    fundamental = 2 * math.pi * f0 * 2 ** (20 / 1200) * t / 16000 + offset
    audio = (0.3 * torch.cos(fundamental) + 0.5 * torch.cos(2 * fundamental + 0.7)
             + 0.2 * torch.cos(3 * fundamental)).float()
    measured = fundamental_phase(audio, pitch, 16000)
    error = torch.remainder(measured - fundamental + math.pi, 2 * math.pi) - math.pi
    assert error[:, 1000:-1000].abs().max() < 0.1  # radians; away from the edges, where the window is cut short
    drive = excitation(measured, pitch, 3, 16000)
    assert drive.shape == (2, 6, 16000)
    assert torch.allclose(drive[:, 0], torch.cos(measured).float(), atol=1e-5)
    assert torch.equal(excitation(measured, torch.tensor([104, 104]), 3, 16000)[:, [2, 5]],
                       torch.zeros(2, 2, 16000))  # the third harmonic of MIDI 104 is above 8 kHz

    torch.manual_seed(0)
    config = replace(WaveNetConfig.preset("cpu-small"), decoder_layers=2, encoder_layers=2, pitch_classes=128,
                     excitation_harmonics=3)
    model = WaveNetAutoencoder(config).eval()
    z = torch.randn(2, 32, 16)
    with torch.no_grad():
        own = model.decode_logits(audio, z, pitch)
        shifted = model.decode_logits(audio, z, pitch, measured + math.pi / 2)
    assert (own - shifted).abs().max() > 1e-3
    with pytest.raises(ValueError, match="needs pitch_classes"):
        replace(WaveNetConfig.preset("cpu-small"), excitation_harmonics=3)
