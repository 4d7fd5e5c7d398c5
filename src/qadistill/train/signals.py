"""Graceful stops: SIGINT / SIGTERM finish the current step, save a checkpoint, then end the run cleanly.

The exceptions of a training run live here too: the CLI maps `TrainingInterrupted` to exit status 130 (it is a
`KeyboardInterrupt`, so nothing that catches `Exception` swallows it) and `NonFiniteLoss` (a `QADistillError`)
to status 2.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from qadistill.errors import QADistillError


class TrainingInterrupted(KeyboardInterrupt):
    """The run stopped on a signal after saving a checkpoint; rerun with resume to continue."""

    def __init__(self, message: str, *, step: int, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.message, self.step, self.checkpoint = message, step, checkpoint

    def __str__(self) -> str:
        return self.message


class NonFiniteLoss(QADistillError):
    """A NaN / Inf loss or gradient stopped the run (nan_policy: stop); the last good checkpoint is kept."""

    def __init__(self, message: str, *, step: int) -> None:
        super().__init__(message)
        self.step = step


class StopRequest:
    """Set by the signal handler; the loop checks it after each step."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    @property
    def requested(self) -> bool:
        return self.signal_name is not None


@contextmanager
def graceful_stop() -> Iterator[StopRequest]:
    """Install SIGINT / SIGTERM handlers for the duration of the block (main thread only).

    The first signal only sets the request; a second one stops at once (the default KeyboardInterrupt).
    Previous handlers are restored on exit.
    """
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum: int, _frame) -> None:
        if request.requested:
            raise KeyboardInterrupt
        request.signal_name = signal.Signals(signum).name

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
