from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from gradio_client import Client

from tests.app_helpers import running_app, write_tiny_checkpoints


@pytest.fixture
def write_tone(tmp_path):
    """Write a sine (the same in every channel) to a file in tmp_path and return its path."""

    def write(frequency=440.0, seconds=0.5, sample_rate=44100, channels=1, amplitude=0.5,
              format="WAV", subtype="PCM_16", suffix=".wav"):
        t = np.arange(round(seconds * sample_rate)) / sample_rate
        tone = amplitude * np.sin(2 * np.pi * frequency * t)
        path = tmp_path / f"tone_{sample_rate}_{channels}_{subtype}{suffix}"
        sf.write(path, np.repeat(tone[:, None], channels, axis=1), sample_rate, format=format, subtype=subtype)
        return path

    return write


@pytest.fixture(scope="module")
def served_app(tmp_path_factory):
    """(a gradio_client connected to `python app.py` over tiny random checkpoints, the app's log), one app per
    test module."""
    directory = tmp_path_factory.mktemp("checkpoints")
    write_tiny_checkpoints(directory)
    with running_app(directory, directory / "app.log") as url:
        yield Client(url, verbose=False), directory / "app.log"


@pytest.fixture(scope="module")
def client(served_app):
    return served_app[0]


@pytest.fixture(scope="module")
def app_log(served_app):
    return served_app[1]


APP_LOG_LINES = 60


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test that talked to a running app reports the end of the app's log beside its own output: what the
    server did (or refused) is often the reason a page waited in vain."""
    report = yield
    if report.failed and call.when == "call":
        for value in getattr(item, "funcargs", {}).values():
            for part in value if isinstance(value, tuple) else (value,):
                if isinstance(part, Path) and part.name == "app.log" and part.exists():
                    tail = part.read_text(errors="replace").splitlines()[-APP_LOG_LINES:]
                    report.sections.append(("app log (its last lines)", "\n".join(tail)))
    return report
