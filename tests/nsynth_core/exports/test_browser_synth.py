"""The DDSP decoder in the visitor's browser (assets/synth/*.js over assets/ddsp_synth.bin) against the PyTorch
decoder it was exported from: the exported weights are the shipped checkpoint's, the page decodes the bundled
notes' Z as PyTorch does, plays every key in tune, and its pad morphs between corners."""

import json
import shutil

import librosa
import numpy as np
import pytest
import torch

from nsynth_core.audio.core import SAMPLE_RATE
from nsynth_core.exports import browser_synth
from nsynth_core.explorer.loaded_models import encode_notes, load_model
from nsynth_core.explorer.notes import ASSETS_DIR, bundled_notes
from nsynth_core.models.checkpoint import load_checkpoint, save_checkpoint, weights_fingerprint
from nsynth_core.models.ddsp import DDSPConfig, DDSPDecoder, filtered_noise, harmonic_synth
from tests.app_helpers import TINY_DDSP, write_tiny_checkpoints
from tests.browser_helpers import CHROMIUM
from tests.synth_page import play_key, render_notes, synth_page
from tests.browser_helpers import median_pitch

SHIPPED = ASSETS_DIR.parent / "checkpoints"
EXPORTED = ASSETS_DIR / "ddsp_synth.bin"
SEED = 11
# Piano and sawtooth lead at middle C: a dark and a bright corner for the morph.
DARK, BRIGHT = "keyboard_acoustic_fluidr3_gm000-060-100", "synth_lead_synthetic_fluidr3_gm081-060-100"


def snr_db(reference, test) -> float:
    error = np.sum((reference - test) ** 2)
    return np.inf if error == 0 else float(10 * np.log10(np.sum(reference ** 2) / error))


def log_mel(audio, floor_db) -> np.ndarray:
    """dB log-mel power (FFT 2048, hop 512, 128 bands), nothing below floor_db."""
    mel = librosa.feature.melspectrogram(y=audio, sr=SAMPLE_RATE, n_fft=2048, hop_length=512, n_mels=128)
    return np.maximum(librosa.power_to_db(mel, ref=1.0, amin=1e-20, top_db=None), floor_db)


def test_the_exported_weights_are_the_shipped_checkpoints(tmp_path):
    """A retrained checkpoint makes the page's weights stale: export them again with
    `python -m nsynth_core.exports.browser_synth checkpoints/ddsp --out assets/ddsp_synth.bin`."""
    header = browser_synth.read_header(EXPORTED)
    assert header["source"]["fingerprint"] == weights_fingerprint(SHIPPED / "ddsp")
    browser_synth.main([str(SHIPPED / "ddsp"), "--out", str(tmp_path / "fresh.bin")])
    assert (tmp_path / "fresh.bin").read_bytes() == EXPORTED.read_bytes()
    assert browser_synth.read_header(tmp_path / "fresh.bin") == header


def test_the_export_holds_every_weight_to_float16_precision(tmp_path):
    checkpoint = write_tiny_checkpoints(tmp_path)[2]
    header = browser_synth.export_browser_synth(checkpoint, tmp_path / "tiny.bin")
    values = np.fromfile(tmp_path / "tiny.bin", dtype="<f2")
    model, _ = load_checkpoint(checkpoint)
    state = model.state_dict()
    assert header["config"] == json.loads(checkpoint.with_suffix(".json").read_text())["config"]
    assert header["z_mean"] == state["z_mean"].tolist() and header["z_std"] == state["z_std"].tolist()
    assert {t["name"] for t in header["tensors"]} == set(state) - {"z_mean", "z_std"}
    for tensor in header["tensors"]:
        exported = values[tensor["offset"]: tensor["offset"] + int(np.prod(tensor["shape"]))]
        original = state[tensor["name"]].numpy().ravel()
        np.testing.assert_allclose(exported, original, rtol=2 ** -11, atol=2 ** -24)
    assert header["values"] == values.size == sum(int(np.prod(t["shape"])) for t in header["tensors"])


def test_the_export_refuses_what_the_page_cannot_run(tmp_path):
    wavenet, _, _ = write_tiny_checkpoints(tmp_path)
    with pytest.raises(browser_synth.BrowserSynthError, match="not a DDSP decoder"):
        browser_synth.export_browser_synth(wavenet, tmp_path / "out.bin")
    own_encoder = save_checkpoint(DDSPDecoder(DDSPConfig(**{**TINY_DDSP.__dict__, "own_encoder": True})),
                                  tmp_path / "own")
    with pytest.raises(browser_synth.BrowserSynthError, match="encoder of its own"):
        browser_synth.export_browser_synth(own_encoder, tmp_path / "out.bin")
    for head in ({"f0_deviation_cents": 100.0}, {"gate_subframes": 16}):
        moving = save_checkpoint(DDSPDecoder(DDSPConfig(**{**TINY_DDSP.__dict__, **head})), tmp_path / "moving")
        with pytest.raises(browser_synth.BrowserSynthError, match="pitch-motion head or gates"):
            browser_synth.export_browser_synth(moving, tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()


# ------------------------------------------------------------------------------------------------- in chromium

browser = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A folder the page serves at /extra/, for weights a test exports."""
    return tmp_path_factory.mktemp("served")


@pytest.fixture(scope="module")
def page(served):
    with synth_page({"extra": served}) as page:
        yield page


@pytest.fixture(scope="module")
def decoder():
    return load_checkpoint(SHIPPED / "ddsp")[0]


@pytest.fixture(scope="module")
def bundled():
    """{note id: (the note, its Z from the shipped WaveNet encoder)} for the first bundled note of each family
    and the morph's corners."""
    notes, families = [], set()
    for note in bundled_notes():
        if note.family not in families or note.id in (DARK, BRIGHT):
            notes.append(note)
            families.add(note.family)
    return {note.id: (note, note.z) for note in encode_notes(load_model(SHIPPED / "wavenet"), notes)}


@browser
def test_the_page_decodes_as_pytorch_on_a_note_of_every_family(page, decoder, bundled):
    """The harmonics match to within 40 dB of their level and the whole note's log-mel spectrum to 1 dB on average
    (the noise, drawn from the same seed as torch.rand draws it, matches too)."""
    by_family = {}
    for note, z in bundled.values():
        by_family.setdefault(note.family, (note, z))
    notes, z = zip(*by_family.values())
    assert len(notes) >= 10
    pitch = torch.tensor([note.pitch for note in notes])
    with torch.no_grad():
        controls = decoder.controls(torch.from_numpy(np.stack(z)), pitch)
        harmonic = harmonic_synth(controls["f0"], controls["amplitudes"], decoder.config.frame_hop, SAMPLE_RATE)
        noise = filtered_noise(controls["noise"], decoder.config.frame_hop, torch.Generator().manual_seed(SEED))
        total = harmonic + noise
        assert torch.equal(total, decoder(torch.from_numpy(np.stack(z)), pitch, seed=SEED))
    rendered = render_notes(page, [{"z": z_i, "pitch": note.pitch, "seed": SEED} for note, z_i in zip(notes, z)])
    for i, (note, decoded) in enumerate(zip(notes, rendered)):
        reference = total[i].numpy()
        assert decoded["audio"].shape == reference.shape == (len(z[i]) * decoder.config.latent_hop,)
        assert snr_db(harmonic[i].numpy(), decoded["harmonic"]) >= 40, note.id
        assert snr_db(noise[i].numpy(), decoded["noise"]) >= 40, note.id
        floor = 10 * np.log10(np.mean(reference ** 2)) - 100  # quieter than this is not heard next to the note
        difference = np.abs(log_mel(decoded["audio"], floor) - log_mel(reference, floor)).mean()
        assert difference <= 1.0, (note.id, difference)


def heard_pitch(audio) -> float:
    """MIDI pitch, fractional: pYIN finds which partial is heard as the fundamental (its estimate moves in 10 cent
    steps), and that partial's peak in the spectrum (zero-padded, interpolated) says where it lies."""
    rough = median_pitch(audio, SAMPLE_RATE)
    length = 1 << 18
    magnitude = np.log(np.abs(np.fft.rfft(audio * np.hanning(len(audio)), length)) + 1e-12)
    low, high = (int(librosa.midi_to_hz(rough + side) * length / SAMPLE_RATE) for side in (-0.5, 0.5))
    peak = low + int(np.argmax(magnitude[low:high]))
    left, centre, right = magnitude[peak - 1: peak + 2]
    offset = 0.5 * (left - right) / (left - 2 * centre + right)  # the parabola's vertex through the three bins
    return float(librosa.hz_to_midi((peak + offset) * SAMPLE_RATE / length))


@browser
def test_every_key_from_36_to_96_sounds_at_its_pitch(page, bundled):
    """A second of the piano's Z at every key: its fundamental within 10 cents of the key."""
    _, z = bundled[DARK]
    keys = range(36, 97)
    rendered = render_notes(page, [{"z": z[:32], "pitch": key, "seed": key} for key in keys])
    off = np.abs([heard_pitch(note["audio"]) - key for key, note in zip(keys, rendered)]) * 100
    assert off.max() <= 10, f"MIDI {keys[int(np.argmax(off))]} is {off.max():.1f} cents off"


def spectral_centroid(audio) -> float:
    """Hz, of the held part's average power spectrum (0.5 s to 2.5 s)."""
    held = audio[SAMPLE_RATE // 2: 5 * SAMPLE_RATE // 2]
    spectrum = np.abs(np.fft.rfft(held * np.hanning(len(held)))) ** 2
    frequencies = np.fft.rfftfreq(len(held), 1 / SAMPLE_RATE)
    return float(np.sum(frequencies * spectrum) / np.sum(spectrum))


@browser
def test_the_pad_moves_the_sound_from_one_corner_to_the_other(page, bundled):
    """Along the pad's top edge (corner A to corner B), the held note's spectral centroid moves monotonically
    from A's to B's."""
    corners = np.stack([bundled[name][1] for name in (DARK, BRIGHT, DARK, BRIGHT)])
    centroids = [spectral_centroid(play_key(page, corners, 60, x, 0.0, seconds=2.5, seed=SEED)[0])
                 for x in np.linspace(0, 1, 6)]
    steps = np.diff(centroids)
    assert centroids[-1] > 1.5 * centroids[0]  # the two corners sound apart
    assert np.all(steps > 0), centroids


@browser
def test_a_held_key_on_the_worklet_plays_the_corner_as_the_offline_renderer_and_releases(page, bundled):
    corners = np.stack([bundled[name][1] for name in (BRIGHT, DARK, DARK, DARK)])
    played, stats = play_key(page, corners, 64, 0.0, 0.0, seconds=2.0, seed=SEED)
    offline = render_notes(page, [{"z": corners[0][:63], "pitch": 64, "seed": SEED}])[0]["audio"]
    assert snr_db(offline[: len(played)], played) >= 100  # the same code, block by block
    assert stats["voicesSounding"] == 1 and stats["blocks"] == 2 * SAMPLE_RATE // 128

    released, stats = play_key(page, corners, 64, 0.0, 0.0, seconds=2.0, seed=SEED, release=0.25, release_at=1.0)
    assert snr_db(played[:SAMPLE_RATE], released[:SAMPLE_RATE]) >= 100  # as held until the release
    tail = released[SAMPLE_RATE + SAMPLE_RATE // 4 + 128:]
    assert np.all(tail == 0) and stats["voicesSounding"] == 0  # silent a quarter second on, its voice free
    assert np.abs(released[SAMPLE_RATE: SAMPLE_RATE + 4000]).max() > 0


def upsampler_delay(page, factor: int) -> int:
    return page.evaluate("async (factor) => new (await import('/assets/synth/upsample.js')).Upsampler(factor).delay",
                         factor)


def band_level_db(audio, rate, low_hz) -> float:
    """dB of the power above low_hz against the whole signal's."""
    power = np.abs(np.fft.rfft(audio * np.hanning(len(audio)))) ** 2
    return float(10 * np.log10(power[np.fft.rfftfreq(len(audio), 1 / rate) >= low_hz].sum() / power.sum()))


@browser
def test_in_the_play_tabs_48_khz_context_the_worklet_plays_its_16_khz_samples_upsampled(page, bundled):
    """The context at the loudspeakers' rate: every third sample, once the upsampler's delay is past, is the
    16 kHz worklet's own, and the samples between bring no images above the decoder's band."""
    corners = np.stack([bundled[name][1] for name in (BRIGHT, DARK, DARK, DARK)])
    at_16k, _ = play_key(page, corners, 64, 0.0, 0.0, seconds=1.0, seed=SEED)
    at_48k, stats = play_key(page, corners, 64, 0.0, 0.0, seconds=1.0, seed=SEED, rate=48000)
    delay = upsampler_delay(page, 3)
    kept = at_48k[delay::3]
    assert snr_db(at_16k[: len(kept)], kept) >= 100
    assert band_level_db(at_16k, SAMPLE_RATE, 6000) > -40  # the bright corner reaches near the band's edge,
    assert band_level_db(at_48k, 48000, 9000) < -70  # and its images are filtered out
    assert stats["voicesSounding"] == 1


@browser
def test_a_decoder_with_a_reverb_is_played_with_it(page, served, tmp_path):
    """A tiny random decoder with a learnt reverb, exported: the offline renderer matches PyTorch (on the float16
    weights the page has), and the worklet with its ConvolverNode matches the offline renderer."""
    torch.manual_seed(0)
    model = DDSPDecoder(DDSPConfig(**{**TINY_DDSP.__dict__, "reverb_samples": 2000}))
    with torch.no_grad():
        model.reverb_impulse.mul_(40)  # a reverb loud enough to matter
        for parameter in model.parameters():
            parameter.copy_(parameter.half().float())
    save_checkpoint(model, tmp_path / "reverb")
    browser_synth.export_browser_synth(tmp_path / "reverb", served / "reverb.bin")
    z = torch.randn(1, 32, 16) * 0.5
    with torch.no_grad():
        reference = model(z, torch.tensor([57]), seed=SEED)[0].numpy()
    weights = "/extra/reverb.bin"
    offline = render_notes(page, [{"z": z[0].numpy(), "pitch": 57, "seed": SEED}], weights)[0]
    assert snr_db(reference, offline["audio"]) >= 80
    wet = offline["audio"] - offline["harmonic"] - offline["noise"]
    assert np.sqrt(np.mean(wet ** 2)) > 0.1 * np.sqrt(np.mean(offline["audio"] ** 2))  # the reverb is heard
    played, _ = play_key(page, np.repeat(z.numpy(), 4, axis=0), 57, 0.0, 0.0, seconds=0.9, seed=SEED,
                         weights=weights)
    assert snr_db(offline["audio"][: len(played)], played) >= 60
    at_48k, _ = play_key(page, np.repeat(z.numpy(), 4, axis=0), 57, 0.0, 0.0, seconds=0.9, seed=SEED,
                         weights=weights, rate=48000)  # the impulse upsampled for the 48 kHz convolver
    kept = at_48k[upsampler_delay(page, 3)::3]
    assert snr_db(offline["audio"][: len(kept)], kept) >= 40


# Messages the synthesiser refuses, each answered by a sentence naming what is wrong, then a key it plays.
BAD_MESSAGES = """async () => {
  const {createSynth} = await import("/assets/synth/synth_node.js");
  const context = new OfflineAudioContext(1, 16000, 16000);
  const synth = await createSynth(context);
  synth.noteOn(60);
  synth.setCorners(new Float32Array(10), 1);
  synth.setCorners(new Float32Array(4 * 16), 1);
  synth.noteOn(200);
  synth.noteOn(60, {seed: -1});
  synth.setEnvelope(-1, 0.2);
  synth.node.port.postMessage({type: "chord"});
  synth.noteOn(60);
  const stats = await synth.stats();
  let wrongRate = null;
  try {
    await createSynth(new OfflineAudioContext(1, 128, 44100));
  } catch (error) {
    wrongRate = error.message;
  }
  return {errors: synth.errors, pending: stats.voicesSounding, wrongRate};
}"""


@browser
def test_the_synthesiser_answers_bad_messages_with_what_is_wrong(page):
    answer = page.evaluate(BAD_MESSAGES)
    assert answer["errors"] == [
        "No corners' Z yet: send {type: 'corners'} first.",
        "corners: z must be a Float32Array of 4 x frames x 16 values, frames at least 1.",
        "noteOn: pitch must be a MIDI note from 0 to 127, not 200.",
        "noteOn: seed must be a whole number from 0 to 2**32 - 1, not -1.",
        "envelope: attack and release must be seconds from 0 to 10.",
        "Unknown message type chord; the synthesiser takes noteOn, noteOff, corners, envelope, stats."]
    assert answer["pending"] == 1  # the good key after them is taken
    assert answer["wrongRate"] == ("The DDSP synthesiser runs at 16000 Hz: make the AudioContext at it or a whole "
                                   "multiple of it (the Play tab's is 48000 Hz), not 44100 Hz.")
