"""Data-worker deaths translated into an error that says what probably happened and what to change.

A ``DataLoader`` worker killed by the operating system — nearly always the out-of-memory killer —
surfaces from torch as ``RuntimeError: DataLoader worker (pid 123) is killed by signal: Killed.`` (or
``... exited unexpectedly``), and a ``MemoryError`` inside a worker as ``MemoryError: Caught
MemoryError in DataLoader worker process 0``. Neither says "memory" or which settings to change.
Lightning re-raises the exception unchanged after its teardown, so a callback's ``on_exception``
cannot reword it; :func:`explain_worker_failures` wraps a whole command instead (``vtrep`` runs
every subcommand inside it) and re-raises :class:`DataLoaderWorkerError` from the original.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from vtrep.errors import UserError

# torch's wording (torch/utils/data/dataloader.py and the C++ SIGCHLD handler)
KILLED = re.compile(r"DataLoader worker \(pid(?:\(s\))? [^)]*\) (?:is killed by signal|exited unexpectedly)")
WORKER_MEMORY_ERROR = "in DataLoader worker process"

ADVICE = ("reduce data.num_workers or data.batch_size (or the clip / series size), or set data.num_workers=0 "
          "to see the failure in the main process")


class DataLoaderWorkerError(UserError, RuntimeError):
    """A data-loading worker died or ran out of memory; the message names the likely cause and the fix."""


def explain(err: BaseException) -> DataLoaderWorkerError | None:
    """The clear error for a worker failure, or ``None`` when ``err`` is something else."""
    first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if isinstance(err, RuntimeError) and KILLED.search(first_line):
        return DataLoaderWorkerError(
            f"a data-loading worker was killed by the operating system ({first_line.rstrip('. ')}), most likely "
            f"because the machine ran out of memory (the OOM killer); {ADVICE}")
    if isinstance(err, MemoryError) and WORKER_MEMORY_ERROR in first_line:
        return DataLoaderWorkerError(
            f"a data-loading worker ran out of memory ({first_line.rstrip('. ')}); {ADVICE}")
    return None


@contextmanager
def explain_worker_failures() -> Iterator[None]:
    """Re-raise data-worker deaths and worker ``MemoryError`` as :class:`DataLoaderWorkerError`."""
    try:
        yield
    except (RuntimeError, MemoryError) as err:
        clear = explain(err)
        if clear is None:
            raise
        raise clear from err
