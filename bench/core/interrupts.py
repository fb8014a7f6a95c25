"""Stopping on Ctrl-C / SIGTERM without corrupting a store.

The signal sets :data:`STOP_REQUESTED` and raises ``KeyboardInterrupt`` in the main thread, so
the current cell is marked KILLED and the suite stops. Inside :func:`shielded` (a write to the
tracking store) the interrupt waits until the write is done: raised mid-transaction, it would
leave sqlite locked, and the KILLED mark that follows would fail with "database is locked".
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

# Set when the process was asked to stop. A library may catch KeyboardInterrupt and raise
# something else: the flag keeps such a cell from being recorded as an ordinary failure.
STOP_REQUESTED = threading.Event()
_state = {"depth": 0, "pending": False}


@contextmanager
def shielded():
    """Hold off a stop request until the block is done (then raise it)."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        if _state["depth"] == 0 and _state["pending"]:
            _state["pending"] = False
            raise KeyboardInterrupt


def request_stop(signum=None, frame=None) -> None:
    """The SIGINT / SIGTERM handler."""
    STOP_REQUESTED.set()
    if _state["depth"]:
        _state["pending"] = True
        return
    raise KeyboardInterrupt
