import dataclasses
import json

import numpy as np
import pytest
import torch

from nsynth_core.audio import metrics
from nsynth_core.audio.core import NOTE_LENGTH
from nsynth_core.models.spectral import (
    SpectralAutoencoder,
    SpectralConfig,
    SpectralError,
    harmonic_comb,
    spectrogram_to_audio,
)

torch.set_num_threads(1)


def harmonic_tone(midi_pitch, seconds=4.0, sample_rate=16000):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 440.0 * 2 ** ((midi_pitch - 69) / 12)
    tone = sum(np.sin(2 * np.pi * k * f0 * t + k) / k for k in range(1, 6))
    return (0.5 * tone / np.abs(tone).max()).astype(np.float32)


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return SpectralAutoencoder(SpectralConfig.preset("cpu-small"))


def test_paper_preset_has_a_1984_value_latent_and_the_paper_layers():
    model = SpectralAutoencoder(SpectralConfig.preset("paper")).eval()
    with torch.no_grad():
        z = model.encode(torch.from_numpy(harmonic_tone(60)[None]))
    assert z.shape == (1, 1984)
    encoder = [block[1] for block in model.encoder if isinstance(block, torch.nn.Sequential)]
    assert [c.kernel_size for c in encoder] == [(5, 5)] + [(4, 4)] * 8 + [(1, 1)]
    assert [c.stride for c in encoder] == [(2, 2)] * 8 + [(2, 1), (1, 1)]
    assert [c.out_channels for c in encoder] == [128, 128, 128, 256, 256, 256, 512, 512, 512, 1024]
    # The decoder shares its geometry with the small preset, whose output shape is checked by running it.
    decoder = [block[0] for block in model.decoder if isinstance(block, torch.nn.Sequential)]
    assert [c.kernel_size for c in decoder] == [(1, 1)] + [(4, 4)] * 7 + [(5, 5)] * 2
    assert [c.stride for c in decoder] == [(1, 1)] + [(2, 2)] * 8 + [(2, 1)]
    assert [c.out_channels for c in decoder] == [1024, 512, 512, 256, 256, 256, 128, 128, 128, 128]


def test_small_preset_encodes_and_decodes_real_audio(small_model):
    audio = torch.from_numpy(np.stack([harmonic_tone(48), harmonic_tone(72)]))
    small_model.eval()
    with torch.no_grad():
        z = small_model.encode(audio)
        magnitude = small_model.decode_magnitude(z)
    assert z.shape == (2, 1984)
    assert magnitude.shape == (2, 1, 512, 256)
    assert torch.all((magnitude > 0) & (magnitude < 1))
    assert not torch.allclose(z[0], z[1])


def test_spectrogram_is_scaled_to_unit_range_with_silent_padding(small_model):
    loud, quiet = harmonic_tone(60), 0.1 * harmonic_tone(60)
    spectrogram = small_model.spectrogram(np.stack([loud, quiet, np.zeros(NOTE_LENGTH)]))
    assert spectrogram.shape == (3, 1, 512, 256)
    assert spectrogram.min() >= 0 and spectrogram.max() <= 1
    assert torch.allclose(spectrogram[:2].amax(dim=(1, 2, 3)), torch.ones(2))  # loudest bin is 0 dB
    assert torch.allclose(spectrogram[0], spectrogram[1], atol=1e-2)  # per-note reference level
    assert torch.all(spectrogram[:, :, :, 251:] == 0)  # padding frames beyond the 251 STFT frames
    assert torch.all(spectrogram[2] == 0)
    assert 0 < spectrogram[0].mean() < 0.9


def test_griffin_lim_of_the_target_spectrogram_keeps_the_pitch(small_model):
    midi_pitch = 57
    target = small_model.spectrogram(harmonic_tone(midi_pitch)[None])
    audio = spectrogram_to_audio(target, griffin_lim_iters=16)
    assert audio.shape == (1, NOTE_LENGTH)
    assert np.abs(audio).max() == pytest.approx(1.0)
    assert metrics.pitch_kept(audio[0], midi_pitch)


def test_reconstruct_returns_peak_normalised_notes(small_model):
    small_model.eval()
    audio = small_model.reconstruct(harmonic_tone(60)[None], griffin_lim_iters=2)
    assert audio.shape == (1, NOTE_LENGTH) and audio.dtype == np.float32
    assert np.all(np.isfinite(audio)) and np.abs(audio).max() == pytest.approx(1.0)


def test_one_adam_step_reduces_the_frequency_weighted_loss():
    torch.manual_seed(0)
    model = SpectralAutoencoder(SpectralConfig.preset("cpu-small"))
    audio = torch.from_numpy(np.stack([harmonic_tone(45), harmonic_tone(64)]))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999))
    before = model.loss(audio)
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    assert model.loss(audio).item() < before.item()


def test_loss_weights_low_frequencies_more(small_model):
    weights = small_model.loss_weights.flatten()
    assert weights[0] == pytest.approx(10.0)
    assert torch.all(weights[1:] <= weights[:-1])
    assert torch.all(weights[256:] == 1.0)  # bin 256 is 4 kHz


def test_pitch_conditioning_changes_the_decoded_magnitude():
    torch.manual_seed(0)
    model = SpectralAutoencoder(SpectralConfig.preset("cpu-small", pitch_classes=128))
    z = torch.randn(1, 1984)
    with torch.no_grad():  # one batch, so both notes see the same BatchNorm statistics
        low, high = model.decode_magnitude(z.repeat(2, 1), torch.tensor([40, 80]))
    assert not torch.allclose(low, high, atol=1e-3)
    with pytest.raises(SpectralError, match="needs a MIDI pitch"):
        model.decode_magnitude(z)
    with pytest.raises(SpectralError, match="0-127"):
        model.decode_magnitude(z, torch.tensor([128]))


def test_harmonic_comb_peaks_on_the_partials_of_the_conditioned_pitch():
    comb = harmonic_comb(torch.tensor([69]))[0, 0, :, 0]  # A4: partials every 440 Hz = 28.16 bins
    assert comb[round(440 / 15.625)] > 0.9 and comb[round(880 / 15.625)] > 0.9
    assert comb[round(660 / 15.625)] < -0.9  # halfway between the first two partials
    assert torch.all(comb[: round(220 / 15.625)] == -1)  # nothing below f0 / 2
    torch.manual_seed(0)
    model = SpectralAutoencoder(SpectralConfig.preset("cpu-small", pitch_classes=128, harmonic_comb=True)).eval()
    output = model.decoder[-1]
    with torch.no_grad():  # a flat envelope with a deep comb: the pitch must come from the comb alone
        output.weight.zero_()
        output.bias.copy_(torch.tensor([-2.0, 3.0]))
        magnitude = model.decode_magnitude(torch.randn(2, 1984), torch.tensor([52, 67]))
    audio = spectrogram_to_audio(magnitude, griffin_lim_iters=16)
    assert metrics.pitch_kept(audio[0], 52) and metrics.pitch_kept(audio[1], 67)
    with pytest.raises(SpectralError, match="needs pitch_classes"):
        SpectralConfig.preset("cpu-small", harmonic_comb=True)


def test_config_survives_a_json_round_trip(small_model):
    saved = json.loads(json.dumps(dataclasses.asdict(small_model.config)))
    rebuilt = SpectralAutoencoder(SpectralConfig(**saved))
    assert rebuilt.config == small_model.config
    rebuilt.load_state_dict(small_model.state_dict())


def test_bad_input_gets_a_clear_error(small_model):
    with pytest.raises(SpectralError, match=r"\[batch, 64000\]"):
        small_model.encode(torch.zeros(1, 16000))
    with pytest.raises(SpectralError, match="without pitch conditioning"):
        small_model.decode_magnitude(torch.zeros(1, 1984), pitch=torch.tensor([60]))
    with pytest.raises(SpectralError, match="Unknown spectral preset"):
        SpectralConfig.preset("huge")
    with pytest.raises(SpectralError, match="9 entries"):
        SpectralConfig(encoder_channels=(8, 8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda():
    model = SpectralAutoencoder(SpectralConfig.preset("cpu-small", pitch_classes=128)).cuda()
    loss = model.loss(torch.from_numpy(harmonic_tone(60)[None]).cuda(), pitch=torch.tensor([60]))
    loss.backward()
    assert loss.device.type == "cuda" and torch.isfinite(loss)
