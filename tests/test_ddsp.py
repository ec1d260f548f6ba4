"""The DDSP decoder: its synthesisers measured by their spectra, the network, training and checkpoints."""

import math

import numpy as np
import pytest
import torch

from nsynth_core.models.checkpoint import load_checkpoint, save_checkpoint
from nsynth_core.models.ddsp import (
    DDSPConfig,
    DDSPDecoder,
    filtered_noise,
    harmonic_synth,
    mel_loss,
    modulation_loss,
    noise_impulse_responses,
    reverb,
    set_latent_statistics,
    spectral_loss,
)

SAMPLE_RATE = 16000


def tiny_config(**changes):
    fields = dict(hidden=32, mlp_layers=1, gru_channels=32, subframes=4, harmonics=16, noise_bands=17,
                  reverb_samples=0)
    return DDSPConfig(**{**fields, **changes})


def magnitude_spectrum(audio):
    window = np.hanning(len(audio))
    return np.abs(np.fft.rfft(audio * window)), np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE)


@pytest.mark.parametrize("f0", [220.0, 1000.0, 3100.0])
def test_harmonic_oscillator_puts_energy_at_multiples_of_f0_only_and_nothing_above_nyquist(f0):
    frames, hop, harmonics = 250, 64, 8  # 8 x 3100 Hz lies far above Nyquist: harmonics 3-8 must be silent
    amplitudes = torch.rand(1, 1, harmonics).expand(1, frames, harmonics) + 0.1
    audio = harmonic_synth(torch.tensor([f0]), amplitudes, hop, SAMPLE_RATE)[0].numpy()
    spectrum, frequencies = magnitude_spectrum(audio)
    power = spectrum ** 2
    near_harmonic = np.zeros_like(power, dtype=bool)
    for k in range(1, harmonics + 1):
        if k * f0 < SAMPLE_RATE / 2:
            near_harmonic |= np.abs(frequencies - k * f0) < 15
            peak = spectrum[np.argmin(np.abs(frequencies - k * f0))]
            assert peak > 0.1 * spectrum.max(), f"harmonic {k} of {f0} Hz is missing"
    assert power[~near_harmonic].sum() < 1e-6 * power.sum()  # no energy between, nor above Nyquist
    assert audio.shape == (frames * hop,)


def test_harmonic_amplitudes_are_interpolated_between_frame_centres():
    """A frame-by-frame ramp of amplitudes becomes a smooth envelope, continuous across frames."""
    frames, hop = 40, 64
    envelope = torch.linspace(0, 1, frames)[None, :, None]
    audio = harmonic_synth(torch.tensor([2000.0]), envelope, hop, SAMPLE_RATE)[0]
    t = torch.arange(frames * hop, dtype=torch.float64)
    expected_envelope = torch.clamp((t - (hop - 1) / 2) / hop / (frames - 1), 0, 1)
    expected = expected_envelope * torch.sin(2 * math.pi * 2000.0 * t / SAMPLE_RATE)
    torch.testing.assert_close(audio.double(), expected, atol=2e-5, rtol=0)


def test_noise_filter_output_spectrum_follows_the_requested_magnitudes():
    bands, frames, hop = 65, 2000, 64
    frequencies = np.linspace(0, SAMPLE_RATE / 2, bands)
    requested = np.where(frequencies < 3000, 1.0, 0.05) * np.exp(-frequencies / 8000)  # a shelf
    magnitudes = torch.tensor(requested, dtype=torch.float32).expand(1, frames, bands)
    noise = filtered_noise(magnitudes, hop, torch.Generator().manual_seed(0))[0].numpy()
    # Welch estimate of the output's power spectral density at the filter's own resolution.
    n_fft = 2 * (bands - 1)
    segments = noise[: len(noise) // n_fft * n_fft].reshape(-1, n_fft) * np.hanning(n_fft)
    psd = np.mean(np.abs(np.fft.rfft(segments, axis=1)) ** 2, axis=0)
    response = np.abs(np.fft.rfft(noise_impulse_responses(magnitudes[:1, :1])[0, 0].numpy())) ** 2
    psd_db = 10 * np.log10(psd / psd.max())
    wanted_db = 10 * np.log10(requested ** 2 / (requested ** 2).max())
    inside = (np.abs(frequencies - 3000) > 600) & (frequencies > 200) & (frequencies < 7800)  # away from the edge
    assert np.max(np.abs(psd_db[inside] - wanted_db[inside])) < 3.0
    assert np.max(np.abs(10 * np.log10(response[inside] / response.max()) - wanted_db[inside])) < 3.0
    assert psd_db[frequencies > 4000].max() < -20  # the stop band is down where it was asked to be


def test_reverb_keeps_the_dry_path_and_adds_the_convolution():
    audio = torch.zeros(1, 100)
    audio[0, 10] = 1.0
    impulse = torch.zeros(30)
    impulse[5], impulse[20] = 0.5, -0.25
    out = reverb(audio, impulse)[0]
    expected = torch.zeros(100)
    expected[10], expected[15], expected[30] = 1.0, 0.5, -0.25
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_decoder_maps_z_and_pitch_to_a_note_deterministically():
    torch.manual_seed(0)
    model = DDSPDecoder(tiny_config()).eval()
    z, pitch = torch.randn(2, 125, 16), torch.tensor([48, 72])
    with torch.no_grad():
        first, second = model(z, pitch), model(z, pitch)
        other_seed = model(z, pitch, seed=1)
        shorter = model(z[:, :10], pitch)
        alone = model(z[1:], pitch[1:])
    assert first.shape == (2, 64000)
    assert torch.isfinite(first).all()
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert not torch.equal(first, other_seed)  # only the noise differs with the seed
    torch.testing.assert_close(alone[0], first[1], atol=1e-5, rtol=0)  # a note does not depend on its batch
    # The GRU runs forward over frames: a shorter Z decodes to the start of the note, up to the last control
    # frame (whose envelope is held instead of interpolated to the next, and whose noise tail is cut).
    kept = 10 * 512 - model.config.frame_hop
    torch.testing.assert_close(shorter[:, :kept], first[:, :kept], atol=1e-5, rtol=0)


def test_gradients_reach_every_part_of_the_decoder():
    torch.manual_seed(0)
    model = DDSPDecoder(tiny_config(reverb_samples=256))
    loss = model.loss(torch.randn(2, 8192) * 0.1, torch.tensor([50, 60]), torch.randn(2, 16, 16))
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_own_encoder_variant_encodes_audio_and_ignores_a_given_z():
    torch.manual_seed(0)
    model = DDSPDecoder(tiny_config(own_encoder=True))
    audio, pitch = torch.randn(2, 8192) * 0.1, torch.tensor([50, 60])
    assert model.encode(audio).shape == (2, 16, 16)
    torch.testing.assert_close(model.loss(audio, pitch, torch.randn(2, 16, 16)), model.loss(audio, pitch))
    with pytest.raises(ValueError, match="no encoder of its own"):
        DDSPDecoder(tiny_config()).encode(audio)


def test_checkpoint_round_trips_with_its_z_normalisation(tmp_path):
    torch.manual_seed(0)
    model = DDSPDecoder(tiny_config())
    set_latent_statistics(model, torch.randn(10, 125, 16) * 3 + 1)
    save_checkpoint(model, tmp_path / "ddsp", {"step": 5})
    loaded, metadata = load_checkpoint(tmp_path / "ddsp")
    assert isinstance(loaded, DDSPDecoder) and metadata == {"step": 5}
    z, pitch = torch.randn(1, 20, 16), torch.tensor([60])
    with torch.no_grad():
        torch.testing.assert_close(loaded(z, pitch), model.eval()(z, pitch), rtol=0, atol=0)
    torch.testing.assert_close(loaded.z_std, model.z_std)


def test_a_tiny_model_overfits_one_note():
    """A plucked two-partial tone with a little noise: the spectral loss must fall below 40 % of its start."""
    torch.manual_seed(0)
    t = torch.arange(16384) / SAMPLE_RATE
    f0 = 440.0
    note = (torch.exp(-3 * t) * (torch.sin(2 * math.pi * f0 * t) + 0.3 * torch.sin(2 * math.pi * 3 * f0 * t))
            + 0.003 * torch.randn_like(t)) * 0.17
    model = DDSPDecoder(tiny_config(hidden=64, gru_channels=64))
    z, pitch, audio = torch.randn(1, 32, 16), torch.tensor([69]), note[None]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(300):
        loss = model.loss(audio, pitch, z)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.4 * losses[0], (losses[0], losses[-10:])


def test_spectral_loss_is_zero_for_equal_signals_and_grows_with_difference():
    a = torch.randn(1, 4096) * 0.1
    assert spectral_loss(a, a).item() < 1e-6
    assert spectral_loss(a * 0.5, a).item() > spectral_loss(a * 0.9, a).item() > 0


def test_modulation_loss_asks_for_as_much_wavering_whatever_its_phase():
    t = torch.arange(32000) / SAMPLE_RATE
    tone = torch.sin(2 * math.pi * 440 * t)
    tremolo = lambda phase: tone * (1 + 0.5 * torch.sin(2 * math.pi * 6 * t + phase))  # 6 Hz, as a voice wavers
    steady, wavering, shifted = tone[None], tremolo(0.0)[None], tremolo(math.pi)[None]
    assert modulation_loss(wavering, wavering).item() == 0
    # The same wavering half a cycle apart is nearly free; a steady note in its place is not.
    assert modulation_loss(shifted, wavering).item() < 0.1 * modulation_loss(steady, wavering).item()
    # The spectral loss prefers the steady note to the shifted one: the trade the modulation term corrects.
    assert spectral_loss(steady, wavering).item() < spectral_loss(shifted, wavering).item()


def test_mel_loss_is_the_log_ratio_of_levels():
    a = torch.randn(2, 16000) * 0.1
    assert mel_loss(a, a).item() < 1e-6
    # Half the level lowers every band's log magnitude by ln 2.
    assert mel_loss(a * 0.5, a).item() == pytest.approx(math.log(2), rel=1e-3)
