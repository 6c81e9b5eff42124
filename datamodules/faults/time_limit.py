"""A wall-clock limit on a block of Python code, so one pathological video cannot hang a run.

The limit is a ``SIGALRM`` timer (``signal.setitimer``): it works in the main thread of any process,
which includes the main training process and every DataLoader worker process (a worker runs its
loop in its own main thread). Signals can only be delivered to the main thread, so elsewhere (a
thread pool, a notebook's background thread) the block runs without a limit and a
:class:`RuntimeWarning` says so once.

Python runs the handler between bytecodes: a decoder that blocks inside a single C call is stopped
when that call returns, not before. Frame-by-frame decoding (PyAV) is interruptible between frames;
for a hard hang inside C code, the DataLoader ``timeout`` of worker-based loaders is the backstop.
"""

from __future__ import annotations

import signal
import threading
import time
import warnings
from contextlib import contextmanager
from typing import Iterator, Optional


class DecodeTimeout(TimeoutError):
    """The block ran longer than its limit of ``seconds``."""

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds = seconds
        super().__init__(f"{what} took longer than decode_timeout_s={seconds:g} s")


def check_timeout(seconds: Optional[float]) -> None:
    """``seconds`` is ``None`` or a positive number (the ``decode_timeout_s`` parameter)."""
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
                                or not seconds > 0):
        raise ValueError(f"decode_timeout_s must be a positive number of seconds or None, got {seconds!r}")


def can_interrupt() -> bool:
    """Whether :func:`time_limit` can enforce a limit here (a POSIX main thread)."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def _warn_unlimited() -> None:
    # Python's default warning filter shows a warning once per code location: no state of our own
    warnings.warn("decode_timeout_s is not enforced off the main thread (signals reach only the main "
                  "thread); decoding there runs without a time limit", RuntimeWarning, stacklevel=3)


@contextmanager
def time_limit(seconds: Optional[float], what: str = "decoding") -> Iterator[None]:
    """Raise :class:`DecodeTimeout` in the block if it runs longer than ``seconds`` (``None``: no limit).

    The previous ``SIGALRM`` handler and any timer already running are restored afterwards (the
    outer timer resumes with what it had left, less the time spent here).
    """
    if seconds is None:
        yield
        return
    check_timeout(seconds)
    if not can_interrupt():
        _warn_unlimited()
        yield
        return

    def _expired(signum: int, frame: object) -> None:
        raise DecodeTimeout(seconds, what)

    previous = signal.signal(signal.SIGALRM, _expired)
    outer_left, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_left > 0:
            # An outer timer keeps counting: give it back what is left, at least a tick.
            signal.setitimer(signal.ITIMER_REAL, max(outer_left - (time.monotonic() - start), 1e-3), outer_interval)

