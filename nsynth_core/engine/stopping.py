"""Stopping a decode that nobody waits for any more, or that has run past its time.

A caller that may abandon a decode (a web visitor who cancels) runs it inside `stoppable(...)`: the sample loops
call `checkpoint()` between chunks, which raises DecodeStopped once the caller's event is set or the decode has
run longer than its limit, so the core stops within one chunk instead of finishing work no one will hear. Outside
`stoppable`, checkpoint() does nothing.
"""

import contextlib
import contextvars
import dataclasses
import threading
import time


class DecodeStopped(ValueError):
    """The decode was stopped before it finished: cancelled, or over its time limit (the message says which)."""


@dataclasses.dataclass
class Stop:
    cancelled: threading.Event
    limit_seconds: float | None
    started: float = dataclasses.field(default_factory=time.monotonic)

    def check(self) -> None:
        if self.cancelled.is_set():
            raise DecodeStopped("The decode was cancelled.")
        spent = time.monotonic() - self.started
        if self.limit_seconds is not None and spent > self.limit_seconds:
            raise DecodeStopped(f"The decode was stopped after {spent:.0f} s: a decode here may run at most "
                                f"{self.limit_seconds:.0f} s. Choose the DDSP decoder, "
                                "fewer cells or shorter notes.")


CURRENT: contextvars.ContextVar[Stop | None] = contextvars.ContextVar("decode_stop", default=None)


@contextlib.contextmanager
def stoppable(cancelled: threading.Event, limit_seconds: float | None = None):
    """Decodes run inside stop (DecodeStopped from checkpoint()) once `cancelled` is set or after
    `limit_seconds` of measured time."""
    token = CURRENT.set(Stop(cancelled, limit_seconds))
    try:
        yield
    finally:
        CURRENT.reset(token)


def checkpoint() -> None:
    """Called by the decoding loops between chunks: raises DecodeStopped when the surrounding `stoppable` says
    so."""
    if (stop := CURRENT.get()) is not None:
        stop.check()
