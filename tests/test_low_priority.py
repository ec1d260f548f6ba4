"""Handlers that decode run on niced threads, nicer than adding notes, with their caller's context (Gradio's
progress and warnings)."""

import contextvars
import inspect

import pytest

from webapp.low_priority import at_low_priority, compute_nice, decode_nice, niced_pool, thread_nice

caller = contextvars.ContextVar("caller")


def test_a_wrapped_handler_runs_niced_with_its_callers_context_and_errors():
    caller.set("the page's event")
    nice, seen = at_low_priority(lambda: (thread_nice(), caller.get()))()
    assert seen == "the page's event"
    if thread_nice() is not None:  # Linux
        assert nice >= decode_nice() > compute_nice() > thread_nice()
        assert niced_pool(1, "adding-notes").submit(thread_nice).result() == compute_nice()

    @at_low_priority
    def refuses(reason):
        raise ValueError(reason)

    with pytest.raises(ValueError, match="bad input"):
        refuses("bad input")
    assert list(inspect.signature(refuses).parameters) == ["reason"]  # Gradio reads the handler's own signature
