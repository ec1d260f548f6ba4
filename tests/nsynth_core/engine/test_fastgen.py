import contextlib
import ctypes
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from nsynth_core.engine import fastgen
from nsynth_core.audio.core import mu_law_decode
from nsynth_core.engine.generate import generate, sampling_uniforms
from nsynth_core.models.wavenet import WaveNetAutoencoder, WaveNetConfig, steady_phase

REPO = Path(__file__).resolve().parents[3]
TINY_SOURCE = 'extern "C" int tiny_answer() { return 42; }\n'  # compiles in about a second
requires_build_tools = pytest.mark.skipif(
    shutil.which(os.environ.get("CXX", "c++")) is None or shutil.which("ninja") is None,
    reason="needs a C++ compiler and ninja")


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


def engine_and_forward_logits(preset, changes, length, dtype):
    """The engine's logits [B, 256, length] as it generates, and the float32 forward pass's over what it made."""
    model = random_model(preset, **changes)
    z = random_z(model, 2, length)
    pitch = torch.tensor([40, 70]) if model.config.pitch_classes else None
    engine = fastgen.FastDecoder(model, z, pitch, dtype)
    logits = torch.empty(length, 2, 256)
    codes = engine.run(length, sampling_uniforms(length, 2, 1.0, seed=5), temperature=1.0, logits=logits)
    with torch.no_grad():
        audio = torch.from_numpy(mu_law_decode(codes.numpy()).astype(np.float32))
        phase = None if pitch is None else steady_phase(pitch, 0, audio.shape[1], model.config.sample_rate)
        expected = model.decode_logits(audio, z, pitch, phase)[:, :, :length]
    assert expected.abs().max() > 0.1  # a meaningful comparison, not of zeros
    return logits.permute(1, 2, 0), expected


@pytest.mark.parametrize("preset, changes, length", LOGIT_CASES)
@pytest.mark.usefixtures("engine")
def test_logits_match_the_teacher_forced_forward_over_the_generated_audio(preset, changes, length):
    logits, expected = engine_and_forward_logits(preset, changes, length, torch.float32)
    assert (logits - expected).abs().max().item() < 1e-4


@pytest.mark.parametrize("preset, changes, length", LOGIT_CASES)
@pytest.mark.usefixtures("engine")
def test_bfloat16_logits_stay_close_to_the_float32_forward_over_the_generated_audio(preset, changes, length):
    if reason := fastgen.bfloat16_unavailable_reason():
        pytest.skip(f"No bfloat16 products here: {reason}")
    logits, expected = engine_and_forward_logits(preset, changes, length, torch.bfloat16)
    error = (logits - expected).abs()
    print(f"bfloat16 logits: error max {error.max():.4f}, mean {error.mean():.5f}; logits up to "
          f"{expected.abs().max():.2f}")
    assert error.max().item() < 0.02 * expected.abs().max().item()
    # Decisions stay the same: the most likely class agrees wherever float32's margin exceeds the error.
    top2 = expected.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 2 * error.max()
    assert (logits.argmax(1) == expected.argmax(1))[clear].all()


# The reference decodes a few milliseconds per step: these stay short. Two threads, each with its share of the batch.
@pytest.mark.parametrize("preset, changes, batch, length, temperature", [
    pytest.param("cpu-small", {"hop_length": 64}, 2, 200, 1.0, id="cpu-small"),
    pytest.param("cpu-small", {"hop_length": 64}, 2, 100, 0.0, id="cpu-small-greedy"),
    pytest.param("paper", {"decoder_layers": 4, "decoder_cycle": 4, "hop_length": 16}, 2, 30, 0.8,
                 id="paper-4-layers"),
    pytest.param("cpu-small", {"decoder_layers": 3, "hop_length": 64, "pitch_classes": 128}, 2, 100, 1.0,
                 id="pitched"),
    pytest.param("cpu-small", {"decoder_layers": 3, "hop_length": 64, "pitch_classes": 128,
                               "excitation_harmonics": 4}, 2, 100, 1.0, id="excited"),
    # A 9 x 9 grid of the shipped model's kind at full depth: 150 samples wrap the queues of dilations up to 64.
    pytest.param("cpu-small", {"hop_length": 64, "pitch_classes": 128, "excitation_harmonics": 4}, 81, 150, 1.0,
                 id="grid-of-81"),
])
@pytest.mark.usefixtures("engine")
def test_samples_match_the_reference_generator(preset, changes, batch, length, temperature):
    model = random_model(preset, **changes)
    z = random_z(model, batch, length)
    pitch = torch.arange(batch) % 60 + 30 if model.config.pitch_classes else None
    fast = fastgen.fast_generate(model, z, pitch, temperature=temperature, seed=9, length=length, threads=2)
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
    with caplog.at_level(logging.WARNING, logger="nsynth_core.engine.fastgen"):
        audio = fastgen.generate_fastest(model, z, seed=4)
    assert "multiples of 16" in caplog.text
    np.testing.assert_array_equal(audio, generate(model, z, seed=4))


def test_decode_falls_back_to_the_reference_when_the_engine_cannot_be_built(caplog, monkeypatch):
    monkeypatch.setattr(fastgen, "load_library", lambda: None)
    monkeypatch.setattr(fastgen, "build_error", lambda: "the C++ engine could not be built (no compiler)")
    model = random_model("cpu-small", decoder_layers=2, hop_length=32)
    z = torch.randn(1, 2, 16)
    with caplog.at_level(logging.WARNING, logger="nsynth_core.engine.fastgen"):
        audio = fastgen.generate_fastest(model, z, seed=4)
    assert "no compiler" in caplog.text
    np.testing.assert_array_equal(audio, generate(model, z, seed=4))


@pytest.mark.usefixtures("engine")
def test_a_bfloat16_decode_without_bfloat16_instructions_runs_in_float32_and_says_why(caplog, monkeypatch):
    monkeypatch.setattr(fastgen, "bfloat16_unavailable_reason", lambda: "this CPU has no AVX512-BF16 instructions")
    model = random_model("cpu-small", decoder_layers=2, hop_length=32)
    z = torch.randn(2, 2, 16)
    with caplog.at_level(logging.WARNING, logger="nsynth_core.engine.fastgen"):
        audio = fastgen.generate_fastest(model, z, seed=4, dtype=torch.bfloat16)
    assert "Decoding in float32: this CPU has no AVX512-BF16" in caplog.text
    np.testing.assert_array_equal(audio, generate(model, z, seed=4))


@pytest.mark.usefixtures("engine")
def test_bfloat16_decodes_are_deterministic_and_mostly_make_float32_choices():
    if reason := fastgen.bfloat16_unavailable_reason():
        pytest.skip(f"No bfloat16 products here: {reason}")
    model = random_model("cpu-small", decoder_layers=3, hop_length=64)
    z = random_z(model, 2, 400)
    greedy = {dtype: fastgen.generate_fastest(model, z, temperature=0.0, length=400, dtype=dtype)
              for dtype in (torch.float32, torch.bfloat16)}
    same = (greedy[torch.float32] == greedy[torch.bfloat16]).mean()
    assert same > 0.9  # greedy choices flip only where float32's two best classes are within the rounding
    assert fastgen.generate_fastest(model, z, temperature=0.0, length=400, dtype=torch.bfloat16).tolist() == \
        greedy[torch.bfloat16].tolist()  # and deterministic


@pytest.mark.usefixtures("engine")
def test_decode_uses_the_fast_engine_when_it_can(caplog):
    model = random_model("cpu-small", decoder_layers=2, hop_length=32)
    z = torch.randn(2, 2, 16)
    with caplog.at_level(logging.WARNING, logger="nsynth_core.engine.fastgen"):
        audio = fastgen.generate_fastest(model, z, seed=4)
    assert caplog.text == ""
    np.testing.assert_array_equal(audio, generate(model, z, seed=4))


def run_python(code, **env):
    """`code` in a fresh Python process at the repository root, with `env` added to the environment."""
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=300)


def recording_tools(folder):
    """A PATH folder whose compilers and ninja only note that they were called, in folder/calls."""
    folder.mkdir()
    for tool in ("c++", "g++", "gcc", "cc", "ninja"):
        script = folder / tool
        script.write_text(f'#!/bin/sh\necho {tool} "$@" >> {folder / "calls"}\nexit 1\n')
        script.chmod(0o755)
    return folder


def line_written_to(path, process, seconds=120):
    """The first line written to `path`, failing if `process` ends or `seconds` pass first."""
    deadline = time.monotonic() + seconds
    while process.poll() is None and time.monotonic() < deadline:
        if path.exists() and path.read_text().endswith("\n"):
            return path.read_text()
        time.sleep(0.1)
    raise AssertionError(f"Nothing was written to {path.name}.")


@pytest.fixture
def tiny_source(tmp_path):
    source = tmp_path / "tiny.cpp"
    source.write_text(TINY_SOURCE)
    return source


def test_each_source_and_set_of_flags_gets_its_own_build_folder_in_the_cache(tmp_path, monkeypatch):
    first, same, other = (tmp_path / name for name in ("a.cpp", "checkout-b.cpp", "c.cpp"))
    first.write_text(TINY_SOURCE)
    same.write_text(TINY_SOURCE)
    other.write_text(TINY_SOURCE + "// changed\n")
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "extensions"))
    assert fastgen.build_directory(first).parent == tmp_path / "extensions"
    assert fastgen.build_directory(first) == fastgen.build_directory(same)  # two checkouts share one build
    assert fastgen.build_directory(first) != fastgen.build_directory(other)
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert fastgen.build_directory(first).parent == (tmp_path / "cache" / "torch_extensions").resolve()
    with_flags = fastgen.build_directory(first)
    monkeypatch.setattr(fastgen, "CFLAGS", [*fastgen.CFLAGS, "-DCHANGED"])
    assert fastgen.build_directory(first) != with_flags


@pytest.mark.usefixtures("engine")
def test_a_fresh_process_loads_the_built_engine_without_calling_the_compiler(tmp_path):
    tools = recording_tools(tmp_path / "bin")
    loaded = run_python("from nsynth_core.engine import fastgen; print(fastgen.load_library() is not None)", PATH=str(tools))
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "True", loaded.stderr
    assert not (tools / "calls").exists()


def decode_twice_in_a_fresh_process(extensions, start_first: bool, **env):
    """Two decodes of a tiny WaveNet in a fresh Python whose engine cache is `extensions` (empty: nothing built
    yet); `start_first`: as app.py starts, fastgen.start_build() first. It prints both shapes and whether the
    engine is loaded."""
    return run_python(
        "import torch; from dataclasses import replace; from nsynth_core.engine import fastgen; "
        "from nsynth_core.models.wavenet import WaveNetAutoencoder, WaveNetConfig; "
        + ("fastgen.start_build(); " if start_first else "") +
        "config = replace(WaveNetConfig.preset('cpu-small'), encoder_layers=2, decoder_layers=2, hop_length=32); "
        "model = WaveNetAutoencoder(config).eval(); z = torch.randn(1, 2, 16); "
        "print(fastgen.generate_fastest(model, z, seed=1).shape, fastgen.generate_fastest(model, z, seed=1).shape, "
        "fastgen.load_library() is not None)",
        TORCH_EXTENSIONS_DIR=str(extensions), **env)


FELL_BACK = "Decoding with the reference generator: the C++ engine could not be built"


@pytest.mark.parametrize("start_first", [False, True], ids=["first-decode", "app-start"])
def test_without_build_tools_decoding_falls_back_and_says_why_once(tmp_path, start_first):
    tools = recording_tools(tmp_path / "bin")
    decoded = decode_twice_in_a_fresh_process(tmp_path / "extensions", start_first, PATH=str(tools))
    assert decoded.returncode == 0, decoded.stderr
    assert decoded.stdout.split() == ["(1,", "64)", "(1,", "64)", "False"]
    assert decoded.stderr.count(FELL_BACK) == 1
    assert (tools / "calls").exists()  # the build was tried, with the tools PATH names


@requires_build_tools
def test_the_apps_start_builds_the_engine_with_a_compiler_and_decodes_with_it(tmp_path):
    decoded = decode_twice_in_a_fresh_process(tmp_path / "extensions", start_first=True)
    assert decoded.returncode == 0, decoded.stderr
    assert decoded.stdout.split() == ["(1,", "64)", "(1,", "64)", "True"]
    assert FELL_BACK not in decoded.stderr and "Decoding with the reference generator" not in decoded.stderr
    built, = (tmp_path / "extensions").glob(f"{fastgen.LIBRARY_NAME}-*/{fastgen.READY_FILE}")
    assert (built.parent / built.read_text()).is_file()  # compiled here, into the empty cache


@requires_build_tools
def test_a_build_killed_midway_leaves_a_lock_that_the_next_build_clears(tmp_path, tiny_source):
    stuck_compiler = tmp_path / "stuck-g++"
    stuck_compiler.write_text(f'#!/bin/sh\necho $$ > {tmp_path / "compiling"}\nexec sleep 600\n')
    stuck_compiler.chmod(0o755)
    build = (f"import logging; from pathlib import Path; from nsynth_core.engine import fastgen; logging.basicConfig(); "
             f"print(fastgen.compiled_library(Path({str(tiny_source)!r}), {str(tmp_path)!r}))")
    killed = subprocess.Popen([sys.executable, "-c", build], cwd=REPO, start_new_session=True,
                              env={**os.environ, "CXX": str(stuck_compiler), "TORCH_DONT_CHECK_COMPILER_ABI": "1"})
    try:
        compiler_pid = int(line_written_to(tmp_path / "compiling", killed))
    finally:
        with contextlib.suppress(ProcessLookupError):  # gone already if it failed before compiling
            os.killpg(killed.pid, signal.SIGKILL)  # the build's python and ninja
        killed.wait()
    os.kill(compiler_pid, signal.SIGKILL)  # ninja runs it in a process group of its own
    directory = fastgen.build_directory(tiny_source, tmp_path)
    assert (directory / "lock").exists()  # torch's lock, on which torch's own loader would wait forever

    rebuilt = run_python(build)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "Removed the build lock that an interrupted build left" in rebuilt.stderr
    assert not (directory / "lock").exists()
    assert ctypes.CDLL(rebuilt.stdout.strip()).tiny_answer() == 42


@requires_build_tools
def test_a_build_waits_for_another_live_builder_and_names_it(tmp_path, tiny_source, caplog):
    directory = fastgen.build_directory(tiny_source, tmp_path)
    directory.mkdir(parents=True)
    built = []
    with caplog.at_level(logging.WARNING, logger="nsynth_core.engine.fastgen"):
        with fastgen._exclusive_build(directory):
            waiter = threading.Thread(target=lambda: built.append(fastgen.compiled_library(tiny_source, tmp_path)))
            waiter.start()
            deadline = time.monotonic() + 60
            while "Waiting for process" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not built
        waiter.join(120)
    assert f"Waiting for process {os.getpid()}, which is building" in caplog.text
    assert ctypes.CDLL(str(built[0])).tiny_answer() == 42


def test_a_decode_during_a_slow_build_waits_a_bounded_time_then_says_why_once(monkeypatch, caplog):
    release = threading.Event()

    def slow_failing_build():
        release.wait(60)  # only ends the test if the bounded wait is broken
        raise RuntimeError("the compiler went away")

    monkeypatch.setattr(fastgen, "compiled_library", slow_failing_build)
    monkeypatch.setattr(fastgen, "_finished_build", lambda directory: None)  # a first start
    monkeypatch.setattr(fastgen, "_engine", fastgen.EngineBuild())
    monkeypatch.setattr(fastgen, "_warned", set())
    monkeypatch.setattr(fastgen, "BUILD_WAIT", 0.3)
    model = random_model("cpu-small", decoder_layers=2, hop_length=32)
    z = torch.randn(1, 2, 16)
    with caplog.at_level(logging.WARNING, logger="nsynth_core.engine.fastgen"):
        fastgen.start_build()
        during = [fastgen.generate_fastest(model, z, seed=4) for _ in range(2)]
        assert not release.is_set()
        assert caplog.text.count("Decoding waits for the C++ engine's build to finish") == 1
        assert caplog.text.count("the C++ engine's build has not finished after 0.3 s") == 1
        release.set()
        monkeypatch.setattr(fastgen, "BUILD_WAIT", 60)
        assert fastgen.load_library() is None and "the compiler went away" in fastgen.build_error()
        after = [fastgen.generate_fastest(model, z, seed=4) for _ in range(2)]
    assert caplog.text.count("the compiler went away") == 1
    for audio in during + after:
        np.testing.assert_array_equal(audio, generate(model, z, seed=4))
