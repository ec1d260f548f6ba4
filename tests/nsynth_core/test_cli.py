import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch

from nsynth_core.audio.core import NOTE_LENGTH, PLAYBACK_PEAK, SAMPLE_RATE, for_playback, load_audio
from nsynth_core.models.checkpoint import save_checkpoint
from nsynth_core.cli import main
from nsynth_core.engine.generate import generate
from nsynth_core.models.spectral import SpectralAutoencoder, SpectralConfig
from nsynth_core.models.wavenet import WaveNetAutoencoder, WaveNetConfig

TINY = WaveNetConfig(encoder_channels=8, encoder_layers=2, encoder_cycle=2, residual_channels=8,
                     skip_channels=8, decoder_layers=2, decoder_cycle=2)
PCM_STEP = 1 / 32768  # what writing 16-bit wav may change


@pytest.fixture(autouse=True)
def one_thread():
    """The tiny models' per-sample steps only lose time handing work between threads on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def checkpoint(tmp_path):
    """Saves a tiny random model and returns (its checkpoint path, the model)."""

    def save(model, name):
        path = tmp_path / "checkpoints" / name
        save_checkpoint(model.eval(), path)
        return path, model

    return save


@pytest.fixture
def wavenet(checkpoint):
    torch.manual_seed(0)
    return checkpoint(WaveNetAutoencoder(TINY), "wavenet")


def write_tone(path, frequency=440.0, seconds=0.25, amplitude=0.5):
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, amplitude * np.sin(2 * np.pi * frequency * t), SAMPLE_RATE)
    return path


def read_wav(path):
    audio, rate = sf.read(path, dtype="float32")
    assert rate == SAMPLE_RATE
    return audio


def run(capsys, *argv):
    """main(argv) -> (exit status, stderr)."""
    status = main([str(a) for a in argv])
    return status, capsys.readouterr().err


def test_help_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "nsynth_core", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    for command in ("encode", "decode", "reconstruct"):
        assert command in result.stdout


def test_encode_writes_the_models_z_for_files_and_folders(tmp_path, wavenet, capsys):
    path, model = wavenet
    low = write_tone(tmp_path / "in" / "low.wav", 220.0)
    high = write_tone(tmp_path / "in" / "more" / "high.flac", 880.0)
    single = write_tone(tmp_path / "single.wav", 330.0)
    status, err = run(capsys, "encode", tmp_path / "in", single, "--checkpoint", path, "--out", tmp_path / "z",
                      "--seconds", 0.1, "--batch-size", 2)
    assert status == 0, err
    for source, written in ((low, "low.npy"), (high, "more/high.npy"), (single, "single.npy")):
        z = np.load(tmp_path / "z" / written)
        assert z.shape == (1600 // 512, 16)
        audio = torch.from_numpy(load_audio(source, length=1600))[None]
        np.testing.assert_allclose(z, model.encode(audio)[0].detach().numpy(), atol=1e-5)


def test_non_audio_input_is_reported_and_skipped(tmp_path, wavenet, capsys):
    path, _ = wavenet
    write_tone(tmp_path / "in" / "good.wav")
    (tmp_path / "in" / "broken.wav").write_text("not audio at all")
    text = tmp_path / "readme.txt"
    text.write_text("hello")
    status, err = run(capsys, "encode", tmp_path / "in", text, tmp_path / "absent.wav", "--checkpoint", path,
                      "--out", tmp_path / "z", "--seconds", 0.1)
    assert status == 1
    assert (tmp_path / "z" / "good.npy").exists()
    assert not (tmp_path / "z" / "broken.npy").exists() and not (tmp_path / "z" / "readme.npy").exists()
    skipped = {line.split(": ")[1].split("/")[-1]: line for line in err.splitlines() if "skipped" in line}
    assert sorted(skipped) == ["absent.wav", "broken.wav", "readme.txt"], err
    assert "Could not decode" in skipped["broken.wav"] and "Could not decode" in skipped["readme.txt"]
    assert "no such file" in skipped["absent.wav"]
    assert "Traceback" not in err


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    write_tone(tmp_path / "a.wav")
    status, err = run(capsys, "encode", tmp_path / "a.wav", "--checkpoint", tmp_path / "nothing", "--out",
                      tmp_path / "z")
    assert status == 1
    assert "error:" in err and "nothing.json" in err and "missing" in err
    assert "Traceback" not in err and not (tmp_path / "z").exists()


def test_two_inputs_with_the_same_name_are_refused(tmp_path, wavenet, capsys):
    path, _ = wavenet
    first, second = write_tone(tmp_path / "a" / "x.wav"), write_tone(tmp_path / "b" / "x.wav")
    status, err = run(capsys, "encode", first, second, "--checkpoint", path, "--out", tmp_path / "z")
    assert status == 1 and "would both be written as 'x'" in err


def test_decode_matches_the_reference_generator_per_batch(tmp_path, wavenet, capsys):
    path, model = wavenet
    torch.manual_seed(1)
    z = {name: torch.randn(frames, 16) for name, frames in (("a", 3), ("b", 3), ("c", 2))}
    for name, z_note in z.items():
        np.save(tmp_path / f"{name}.npy", z_note.numpy())
    status, err = run(capsys, "decode", *(tmp_path / f"{name}.npy" for name in z), "--checkpoint", path,
                      "--out", tmp_path / "wav", "--seed", 5, "--temperature", 0.7, "--batch-size", 4,
                      "--keep-level")
    assert status == 0, err
    # Notes of equal length share a batch (a, b); c, shorter, is decoded in a batch of its own.
    expected = generate(model, torch.stack([z["a"], z["b"]]), temperature=0.7, seed=5)
    expected_c = generate(model, z["c"][None], temperature=0.7, seed=5)[0]
    for name, reference in (("a", expected[0]), ("b", expected[1]), ("c", expected_c)):
        audio = read_wav(tmp_path / "wav" / f"{name}.wav")
        assert audio.shape == (len(z[name]) * 512,)
        np.testing.assert_allclose(audio, reference, atol=PCM_STEP)


def test_decode_skips_files_that_are_not_embeddings(tmp_path, wavenet, capsys):
    path, _ = wavenet
    np.save(tmp_path / "good.npy", np.zeros((2, 16), np.float32))
    np.save(tmp_path / "wrong.npy", np.zeros((2, 7), np.float32))
    (tmp_path / "text.npy").write_text("0 1 2")
    status, err = run(capsys, "decode", tmp_path, "--checkpoint", path, "--out", tmp_path / "wav",
                      "--temperature", 0)
    assert status == 1
    assert read_wav(tmp_path / "wav" / "good.wav").shape == (1024,)
    assert "text.npy" in err and "not a NumPy .npy file" in err
    assert "wrong.npy" in err and "[2, 7]" in err and "[frames, 16]" in err
    assert "Traceback" not in err


def test_pitch_conditioned_decode_needs_a_pitch(tmp_path, checkpoint, capsys):
    path, _ = checkpoint(WaveNetAutoencoder(replace(TINY, pitch_classes=128)), "pitched")
    np.save(tmp_path / "z.npy", np.zeros((2, 16), np.float32))
    arguments = ("decode", tmp_path / "z.npy", "--checkpoint", path, "--out", tmp_path / "wav")
    status, err = run(capsys, *arguments)
    assert status == 1 and "--pitch" in err and not (tmp_path / "wav").exists()
    status, err = run(capsys, *arguments, "--pitch", 128)
    assert status == 1 and "0 to 127" in err
    status, err = run(capsys, *arguments, "--pitch", 60)
    assert status == 0, err
    assert read_wav(tmp_path / "wav" / "z.wav").shape == (1024,)


def test_reconstruct_wavenet_estimates_the_pitch_when_not_given(tmp_path, checkpoint, capsys):
    path, _ = checkpoint(WaveNetAutoencoder(replace(TINY, pitch_classes=128)), "pitched")
    tone = write_tone(tmp_path / "in" / "a440.wav", 440.0)  # MIDI 69
    silence = write_tone(tmp_path / "in" / "silence.wav", amplitude=0.0)
    outputs = {}
    for label, pitch in (("estimated", ()), ("69", ("--pitch", 69)), ("40", ("--pitch", 40))):
        status, err = run(capsys, "reconstruct", tone, *([silence] if not pitch else []), "--checkpoint", path,
                          "--out", tmp_path / label, "--seconds", 0.3, "--seed", 3, *pitch)
        outputs[label] = read_wav(tmp_path / label / "a440.wav")
        assert outputs[label].shape == (4800 // 512 * 512,)
        if not pitch:
            assert status == 1 and "silence.wav" in err and "no pitch" in err
            assert not (tmp_path / label / "silence.wav").exists()
        else:
            assert status == 0, err
    np.testing.assert_array_equal(outputs["estimated"], outputs["69"])
    assert not np.array_equal(outputs["estimated"], outputs["40"])


def test_spectral_encode_decode_and_reconstruct(tmp_path, checkpoint, capsys):
    torch.manual_seed(0)
    path, model = checkpoint(SpectralAutoencoder(SpectralConfig.preset("cpu-small")), "spectral")
    tone = write_tone(tmp_path / "note.wav", 330.0, seconds=1.0)
    status, err = run(capsys, "encode", tone, "--checkpoint", path, "--out", tmp_path / "z")
    assert status == 0, err
    z = np.load(tmp_path / "z" / "note.npy")
    expected = model.encode(torch.from_numpy(load_audio(tone))[None])[0].detach().numpy()
    assert z.shape == (1984,)
    np.testing.assert_allclose(z, expected, atol=1e-4)

    status, err = run(capsys, "decode", tmp_path / "z", "--checkpoint", path, "--out", tmp_path / "decoded",
                      "--griffin-lim-iters", 2)
    assert status == 0, err
    status, err = run(capsys, "reconstruct", tone, "--checkpoint", path, "--out", tmp_path / "reconstructed",
                      "--griffin-lim-iters", 2)
    assert status == 0, err
    reconstructed = read_wav(tmp_path / "reconstructed" / "note.wav")
    assert reconstructed.shape == (NOTE_LENGTH,) and np.abs(reconstructed).max() > 0.5
    np.testing.assert_allclose(read_wav(tmp_path / "decoded" / "note.wav"), reconstructed, atol=2 * PCM_STEP)

    status, err = run(capsys, "encode", tone, "--checkpoint", path, "--out", tmp_path / "z", "--seconds", 1)
    assert status == 1 and "4 s notes only" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for CUDA where there is none")
def test_cuda_without_a_gpu_is_a_clear_error(tmp_path, wavenet, capsys):
    path, _ = wavenet
    status, err = run(capsys, "encode", write_tone(tmp_path / "a.wav"), "--checkpoint", path, "--out",
                      tmp_path / "z", "--device", "cuda")
    assert status == 1 and "no CUDA GPU" in err


def test_ddsp_decodes_and_reconstructs_from_the_wavenets_z(wavenet, checkpoint, tmp_path, capsys):
    from tests.app_helpers import TINY_DDSP
    from nsynth_core.models.checkpoint import weights_fingerprint
    from nsynth_core.models.ddsp import DDSPDecoder

    wavenet_path, wavenet_model = wavenet
    torch.manual_seed(0)
    ddsp_model = DDSPDecoder(TINY_DDSP).eval()
    ddsp_path = tmp_path / "checkpoints" / "ddsp"
    save_checkpoint(ddsp_model, ddsp_path, {"encoder": weights_fingerprint(wavenet_path)})
    tone = write_tone(tmp_path / "notes" / "a4.wav", seconds=1.0)

    assert main(["reconstruct", str(tone), "--checkpoint", str(ddsp_path), "--encoder", str(wavenet_path),
                 "--out", str(tmp_path / "out")]) == 0
    audio = read_wav(tmp_path / "out" / "a4.wav")
    z = wavenet_model.encode(torch.from_numpy(load_audio(tone))[None])
    with torch.no_grad():
        expected = ddsp_model(z, torch.tensor([69]))[0].numpy()  # A4, found by pitch tracking
    assert len(audio) == NOTE_LENGTH and np.abs(audio - for_playback(expected)).max() <= PCM_STEP

    np.save(tmp_path / "a4.npy", z[0].numpy())
    assert main(["decode", str(tmp_path / "a4.npy"), "--checkpoint", str(ddsp_path), "--pitch", "69",
                 "--out", str(tmp_path / "decoded"), "--keep-level"]) == 0
    assert np.abs(read_wav(tmp_path / "decoded" / "a4.wav") - expected).max() <= PCM_STEP

    assert main(["encode", str(tone), "--checkpoint", str(ddsp_path), "--out", str(tmp_path / "z")]) == 1
    assert "has no encoder" in capsys.readouterr().err
    other, _ = checkpoint(WaveNetAutoencoder(TINY), "other-wavenet")
    assert main(["reconstruct", str(tone), "--checkpoint", str(ddsp_path), "--encoder", str(other),
                 "--out", str(tmp_path / "out2")]) == 1
    assert "trained on the Z of another encoder" in capsys.readouterr().err


def test_reconstruct_writes_at_the_playing_level_or_the_inputs_and_names_each_file(tmp_path, checkpoint, capsys):
    path, _ = checkpoint(WaveNetAutoencoder(replace(TINY, pitch_classes=128)), "pitched")
    quiet = write_tone(tmp_path / "in" / "quiet.wav", 440.0, amplitude=0.05)
    loud = write_tone(tmp_path / "in" / "loud.wav", 330.0, amplitude=0.8)
    status = main(["reconstruct", str(quiet), str(loud), "--checkpoint", str(path), "--out",
                   str(tmp_path / "played"), "--seconds", "0.3", "--seed", "1"])
    printed = capsys.readouterr().out.split()
    assert status == 0
    assert sorted(printed) == sorted(str(tmp_path / "played" / name) for name in ("quiet.wav", "loud.wav"))
    for name in ("quiet.wav", "loud.wav"):
        assert np.abs(read_wav(tmp_path / "played" / name)).max() == pytest.approx(PLAYBACK_PEAK, abs=2 * PCM_STEP)

    assert main(["reconstruct", str(quiet), str(loud), "--checkpoint", str(path), "--out", str(tmp_path / "kept"),
                 "--seconds", "0.3", "--seed", "1", "--keep-level"]) == 0
    for name, amplitude in (("quiet.wav", 0.05), ("loud.wav", 0.8)):
        assert np.abs(read_wav(tmp_path / "kept" / name)).max() == pytest.approx(amplitude, abs=2 * PCM_STEP)
