"""Independent chains of a suite's steps, several at a time (``--jobs``).

Each step of a suite is its own ``vtrep fit`` / ``vtrep test`` process, so the chains run on threads that only
wait for their processes. The cores are shared out: each process gets ``cores // jobs`` intra-op threads through
``VTREP_NUM_THREADS`` (:mod:`vtrep.hardware`), unless the user set ``VTREP_NUM_THREADS`` or ``OMP_NUM_THREADS``.
Steps write only their own folders, so chains never touch each other's files, and a killed parallel suite resumes
like a sequential one.

Only ``vtrep benchmark ett`` takes ``jobs``: its steps are all processes. The UCR and video suites probe inside
the suite's own process (global seeds and torch's thread pool), so their runs stay one at a time.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Callable, Iterator

from vtrep.checks import positive_int
from vtrep.hardware import THREADS_ENV, available_cores, default_num_threads


def threads_per_job(jobs: int, cores: int | None = None, env: dict[str, str] | None = None) -> int | None:
    """The thread count each process of a ``jobs``-wide suite should get, or ``None`` to leave the user's setting."""
    env = os.environ if env is None else env
    if jobs == 1 or env.get(THREADS_ENV, "").strip() or env.get("OMP_NUM_THREADS", "").strip():
        return None
    return default_num_threads(available_cores() if cores is None else cores, num_workers=0, processes=jobs)


@contextmanager
def shared_cores(jobs: int) -> Iterator[int | None]:
    """Within the block, child processes see ``VTREP_NUM_THREADS`` = :func:`threads_per_job` (restored after)."""
    threads = threads_per_job(jobs)
    if threads is None:
        yield None
        return
    os.environ[THREADS_ENV] = str(threads)
    try:
        yield threads
    finally:
        os.environ.pop(THREADS_ENV, None)


def run_chains(chains: list[Callable[[], None]], jobs: int = 1) -> None:
    """Run every chain, ``jobs`` at a time; the first failure is raised once the running chains have stopped.

    After a failure no further chain starts (its steps stay for a rerun); chains already running go on to their
    end, so their finished steps are kept and no step is left half-written by this runner. Ctrl-C reaches the
    step processes too (one process group), so an interrupted suite stops at once, as a sequential one does.
    """
    positive_int("jobs", jobs)
    if jobs == 1:
        for chain in chains:
            chain()
        return
    failed = threading.Event()

    def guarded(chain: Callable[[], None]) -> None:
        if failed.is_set():
            return
        try:
            chain()
        except BaseException:
            failed.set()
            raise

    with shared_cores(jobs), ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="vtrep-suite") as pool:
        futures = [pool.submit(guarded, chain) for chain in chains]
        wait(futures, return_when=FIRST_EXCEPTION)
        errors = [error for error in (f.exception() for f in futures if f.done()) if error is not None]
        if errors:
            raise errors[0]  # leaving the block waits for the chains still running
