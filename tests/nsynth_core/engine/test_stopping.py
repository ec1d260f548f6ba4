"""A decode inside `stoppable` stops between chunks once its caller gives up or its time is over."""

import threading
import time

import pytest
import torch

from nsynth_core.engine import fastgen, generate, stopping
from nsynth_core.models.wavenet import WaveNetAutoencoder
from tests.app_helpers import TINY_WAVENET


def tiny_wavenet():
    torch.manual_seed(0)
    return WaveNetAutoencoder(TINY_WAVENET)


@pytest.mark.parametrize("generator", [generate.generate, fastgen.generate_fastest])
def test_a_cancelled_decode_stops_within_a_chunk(generator):
    model = tiny_wavenet()
    z = torch.randn(1, 16, model.config.latent_channels)
    cancelled, reached = threading.Event(), []

    def progress(done, total):
        reached.append(done)
        if done >= 1000:
            cancelled.set()

    with stopping.stoppable(cancelled), pytest.raises(stopping.DecodeStopped, match="cancelled"):
        generator(model, z, progress=progress, length=16 * model.config.hop_length)
    assert max(reached) < 1000 + fastgen.CHUNK


def test_a_decode_over_its_time_is_stopped_with_a_sentence():
    stop = stopping.Stop(threading.Event(), limit_seconds=300, started=time.monotonic() - 301)
    with pytest.raises(stopping.DecodeStopped, match=r"stopped after 301 s: a decode here may run at most 300 s"):
        stop.check()


def test_outside_stoppable_nothing_stops():
    stopping.checkpoint()
