"""The DDSP decoder: its synthesisers measured by their spectra, the network, training and checkpoints."""

import math

import numpy as np
import pytest
import torch

from nsynth_core.audio.metrics import f0_contour

from nsynth_core.models.checkpoint import load_checkpoint, save_checkpoint
from nsynth_core.models.ddsp import (
    ADDED_HEADS,
    DDSPConfig,
    DDSPDecoder,
    filtered_noise,
    glide,
    gliding_harmonic_synth,
    harmonic_synth,
    upsample,
    noise_impulse_responses,
    reverb,
    set_latent_statistics,
)
from nsynth_core.models.ddsp_losses import mel_loss, modulation_loss, motion_loss, motion_spread_loss, spectral_loss

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
    model = DDSPDecoder(tiny_config(reverb_samples=256, f0_deviation_cents=200, gate_subframes=16,
                                    f0_loss_weight=1.0))
    motion, voiced = torch.randn(2, 64) * 10, torch.ones(2, 64, dtype=torch.bool)
    loss = model.loss(torch.randn(2, 8192) * 0.1, torch.tensor([50, 60]), torch.randn(2, 16, 16), motion, voiced)
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


# ------------------------------------------------------------------------------------------- pitch motion

def train_steps(model, steps, *loss_inputs):
    """Adam at 3e-3 on the model's loss of one batch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = model.loss(*loss_inputs)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def per_sample_harmonics(f0, cents, amplitudes, hop):
    """The gliding synthesiser's definition, sample by sample: K sines of the running phase of f0(t)."""
    k = torch.arange(1, amplitudes.shape[-1] + 1, dtype=torch.float64)
    f0_samples = f0[:, None].double() * torch.exp2(upsample(cents.double()[..., None], hop)[..., 0] / 1200)
    advance = f0_samples / SAMPLE_RATE
    cycles = torch.cumsum(advance, 1) - advance
    audible = f0_samples[..., None] * k < SAMPLE_RATE / 2
    return (upsample(amplitudes.double(), hop) * audible * torch.sin(2 * math.pi * cycles[..., None] * k)).sum(-1)


def test_gliding_synth_follows_a_vibrato_and_equals_the_steady_synth_when_held():
    frames, hop = 250, 128
    f0 = torch.tensor([110.0, 440.0])
    amplitudes = (torch.rand(2, 1, 16) / torch.arange(1, 17)).expand(-1, frames, -1)
    held = gliding_harmonic_synth(f0, torch.zeros(2, frames), amplitudes, hop, SAMPLE_RATE)
    torch.testing.assert_close(held, harmonic_synth(f0, amplitudes, hop, SAMPLE_RATE), atol=1e-5, rtol=0)
    t = torch.arange(frames) * hop / SAMPLE_RATE
    vibrato = (30 * torch.sin(2 * math.pi * 5.5 * t)).expand(2, -1)
    gliding = gliding_harmonic_synth(f0, vibrato, amplitudes, hop, SAMPLE_RATE).double()
    exact = per_sample_harmonics(f0, vibrato, amplitudes, hop)
    relative = ((gliding - exact).square().sum(1) / exact.square().sum(1)).sqrt()
    assert relative.max() < 0.01, relative
    # It moves: the steady note differs from the vibrato by far more than the approximation does.
    assert ((held.double() - exact).square().sum(1) / exact.square().sum(1)).sqrt().min() > 0.5


def test_added_heads_start_silent_so_a_checkpoint_continues_sounding_the_same(tmp_path):
    torch.manual_seed(0)
    plain = DDSPDecoder(tiny_config())
    extended = DDSPDecoder(tiny_config(f0_deviation_cents=200, vibrato_cents=100, gate_subframes=16))
    missing, unexpected = extended.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == sorted(name for name in extended.state_dict() if name.startswith(ADDED_HEADS))
    assert not unexpected
    z, pitch = torch.randn(2, 30, 16), torch.tensor([45, 70])
    with torch.no_grad():
        torch.testing.assert_close(extended.eval()(z, pitch), plain.eval()(z, pitch), atol=1e-5, rtol=0)


def test_f0_deviation_is_bounded_and_zero_mean_on_a_steady_note():
    torch.manual_seed(0)
    model = DDSPDecoder(tiny_config(f0_deviation_cents=200, f0_loss_weight=1.0))
    with torch.no_grad():  # an untrained head pushed hard: tanh keeps it within the bound
        model.to_f0_deviation.weight.normal_(0, 50)
        cents = model.controls(torch.randn(4, 30, 16) * 5, torch.tensor([30, 50, 70, 90]))["cents"]
    assert cents.abs().max() <= 200 and cents.abs().max() > 150
    # Trained on a steady note (measured motion 0 on every frame), its deviation settles at 0 on average.
    t = torch.arange(16384) / SAMPLE_RATE
    note = (0.17 * torch.sin(2 * math.pi * 220 * t))[None]
    model = DDSPDecoder(tiny_config(f0_deviation_cents=200, f0_loss_weight=10.0))
    z, pitch = torch.randn(1, 32, 16), torch.tensor([57])
    motion, voiced = torch.zeros(1, 128), torch.ones(1, 128, dtype=torch.bool)
    train_steps(model, 60, note, pitch, z, motion, voiced)
    with torch.no_grad():
        cents = model.controls(z, pitch)["cents"]
    assert cents.mean().abs() < 2 and cents.std() < 3, (cents.mean(), cents.std())


def test_a_tiny_model_learns_a_given_vibrato_from_one_note():
    """30 cents at 5 Hz on a 220 Hz tone, told by its measured motion: the learnt deviation follows it."""
    torch.manual_seed(0)
    length, hop = 32768, 128
    t = torch.arange(length, dtype=torch.float64) / SAMPLE_RATE
    depth = 30.0
    vibrato = depth * torch.sin(2 * math.pi * 5 * t)
    phase = torch.cumsum(220 * torch.exp2(vibrato / 1200), 0) / SAMPLE_RATE
    note = (0.17 * (torch.sin(2 * math.pi * phase) + 0.5 * torch.sin(4 * math.pi * phase))).float()[None]
    frame_centres = torch.arange(length // hop) * hop + (hop - 1) / 2
    motion = (depth * torch.sin(2 * math.pi * 5 * frame_centres / SAMPLE_RATE)).float()[None]
    model = DDSPDecoder(tiny_config(hidden=64, gru_channels=64, f0_deviation_cents=200, f0_loss_weight=10.0))
    z, pitch = torch.randn(1, length // 512, 16), torch.tensor([57])
    voiced = torch.ones_like(motion, dtype=torch.bool)
    train_steps(model, 150, note, pitch, z, motion, voiced)
    with torch.no_grad():
        controls = model.eval().controls(z, pitch)
        # Its oscillators, heard alone at a fixed spectrum, carry the vibrato: pYIN reads it at its depth.
        flat = torch.ones_like(controls["amplitudes"]) / torch.arange(1, 17)
        oscillators = gliding_harmonic_synth(controls["f0"], controls["cents"], flat, hop, SAMPLE_RATE)[0]
    learnt = controls["cents"][0].numpy()
    assert np.corrcoef(learnt, motion[0].numpy())[0, 1] > 0.95
    cents, voiced_frames = f0_contour(oscillators.numpy(), 57)
    held = voiced_frames[25:-25]
    assert held.mean() > 0.9
    assert 0.8 < cents[25:-25][held].std() / (depth / math.sqrt(2)) < 1.25


def test_a_glide_keeps_a_settling_pitch_and_drops_a_jitter_too_fast_to_be_heard_as_vibrato():
    control_rate = 125.0
    t = torch.arange(500) / control_rate
    settling = -40 * torch.exp(-t / 0.3)  # a blown note's attack, 40 cents flat, settling in 0.3 s
    jitter = 10 * torch.sin(2 * math.pi * 31.25 * t)  # at the Z frame rate
    smoothed = glide((settling + jitter)[None], control_rate)[0]
    # After the first 0.2 s (and before the held end): the settling kept, the jitter gone.
    assert (smoothed - settling)[25:-25].abs().max() < 1


def test_the_vibrato_oscillator_learns_a_depth_a_pitch_tracker_hears_from_the_spread_term_alone():
    """30 cents at 5 Hz, told only by the measured motion's spread (no phase): the oscillators carry a vibrato
    that pYIN reads within a factor of 1.5 of that depth, where the per-frame deviation alone could meet the spread
    with jitter."""
    torch.manual_seed(0)
    length, hop = 32768, 128
    t = torch.arange(length, dtype=torch.float64) / SAMPLE_RATE
    depth = 30.0
    phase = torch.cumsum(220 * torch.exp2(depth * torch.sin(2 * math.pi * 5 * t) / 1200), 0) / SAMPLE_RATE
    note = (0.17 * (torch.sin(2 * math.pi * phase) + 0.5 * torch.sin(4 * math.pi * phase))).float()[None]
    frame_centres = torch.arange(length // hop) * hop + (hop - 1) / 2
    motion = (depth * torch.sin(2 * math.pi * 5 * frame_centres / SAMPLE_RATE)).float()[None]
    model = DDSPDecoder(tiny_config(hidden=64, gru_channels=64, f0_deviation_cents=200, vibrato_cents=100,
                                    motion_spread_weight=30.0))
    z, pitch = torch.randn(1, length // 512, 16), torch.tensor([57])
    train_steps(model, 150, note, pitch, z, motion, torch.ones_like(motion, dtype=torch.bool))
    with torch.no_grad():
        controls = model.eval().controls(z, pitch)
        flat = torch.ones_like(controls["amplitudes"]) / torch.arange(1, 17)
        oscillators = gliding_harmonic_synth(controls["f0"], controls["cents"], flat, hop, SAMPLE_RATE)[0]
    cents, voiced_frames = f0_contour(oscillators.numpy(), 57)
    held = voiced_frames[25:-25]
    assert held.mean() > 0.9
    assert 1 / 1.5 < cents[25:-25][held].std() / (depth / math.sqrt(2)) < 1.5


def test_the_spread_term_hears_a_vibrato_of_the_right_depth_in_any_phase_and_asks_steady_notes_for_none():
    frames = torch.arange(128, dtype=torch.float32)
    motion = 20 * torch.sin(2 * math.pi * frames / 16)[None]
    voiced = torch.ones_like(motion, dtype=torch.bool)
    opposite = -motion  # the right depth, the wrong phase
    assert motion_spread_loss(opposite, motion, voiced) < 0.01 < 20 < motion_loss(opposite, motion, voiced)
    assert motion_spread_loss(opposite / 2, motion, voiced) > 5  # half the depth is heard
    jitter = 2 * torch.sin(2 * math.pi * frames / 3)[None]  # a steady note's tracker jitter (under 4 cents)
    assert motion_spread_loss(jitter, jitter, voiced) > 1  # so a steady note is asked for no motion
    assert motion_spread_loss(torch.zeros_like(jitter), jitter, voiced) < 0.01


def test_the_motion_context_hears_z_frames_ahead_and_loads_over_a_checkpoint_without_it():
    torch.manual_seed(0)
    plain = DDSPDecoder(tiny_config())
    model = DDSPDecoder(tiny_config(f0_deviation_cents=200, motion_context_frames=7))
    missing, _ = model.load_state_dict(plain.state_dict(), strict=False)
    assert missing and all(name.startswith(ADDED_HEADS) for name in missing)
    with torch.no_grad():
        model.to_f0_deviation.weight.normal_(0, 1)
    z = torch.randn(1, 20, 16, requires_grad=True)
    model.controls(z, torch.tensor([60]))["cents"][0, 4 * 10].backward()  # frame 10's first control frame
    heard = z.grad[0].abs().sum(-1)
    assert heard[11:14].min() > 0 and heard[14:].max() == 0  # three Z frames ahead, not more (the GRU is causal)
    with pytest.raises(ValueError, match="motion_context_frames"):
        tiny_config(f0_deviation_cents=200, motion_context_frames=6)


def test_gates_reach_exactly_zero_on_both_signals():
    torch.manual_seed(0)
    model = DDSPDecoder(tiny_config(gate_subframes=16)).eval()
    z, pitch = torch.randn(1, 20, 16), torch.tensor([60])
    with torch.no_grad():
        assert model(z, pitch).abs().max() > 0
        model.to_gates.bias.fill_(-1.5)  # below -1: both gains relu(1 + x) are exactly 0
        assert torch.count_nonzero(model(z, pitch)) == 0
        model.to_gates.bias[0::2] = 0.0  # the harmonic signal back, the noise still silent
        controls = model.controls(z, pitch)
        harmonic_only = harmonic_synth(controls["f0"], controls["amplitudes"], model.config.frame_hop, SAMPLE_RATE)
        torch.testing.assert_close(model(z, pitch), harmonic_only, atol=1e-6, rtol=0)
