"""``vtrep.benchmark.parallel``: chains of suite steps several at a time, the cores shared, failures raised."""

from __future__ import annotations

import os
import threading
import time

import pytest

from vtrep.benchmark.parallel import run_chains, threads_per_job
from vtrep.errors import UsageError
from vtrep.hardware import THREADS_ENV


def test_each_process_gets_its_share_of_the_cores_unless_the_user_chose():
    assert threads_per_job(2, cores=2, env={}) == 1
    assert threads_per_job(2, cores=16, env={}) == 8
    assert threads_per_job(3, cores=2, env={}) == 1  # never 0
    assert threads_per_job(1, cores=16, env={}) is None  # one at a time: vtrep.hardware's own rule
    assert threads_per_job(2, cores=16, env={"OMP_NUM_THREADS": "3"}) is None
    assert threads_per_job(2, cores=16, env={THREADS_ENV: "5"}) is None


def test_chains_run_at_the_same_time_and_see_their_thread_share(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("vtrep.benchmark.parallel.available_cores", lambda: 4)
    both_started = threading.Barrier(2, timeout=10)  # breaks (an error) unless two chains run at once
    seen = []

    def chain():
        both_started.wait()
        seen.append(os.environ[THREADS_ENV])

    run_chains([chain, chain], jobs=2)
    assert seen == ["2", "2"]
    assert THREADS_ENV not in os.environ  # restored after the suite


def test_one_job_runs_the_chains_in_order_in_this_thread():
    order = []
    run_chains([lambda: order.append((1, threading.current_thread())), lambda: order.append((2, None))], jobs=1)
    assert [o[0] for o in order] == [1, 2] and order[0][1] is threading.main_thread()


def test_a_failure_is_raised_after_the_running_chain_ends_and_no_new_chain_starts():
    other_running, events = threading.Event(), []

    def failing():
        other_running.wait(10)
        raise ValueError("fit of seed 0 failed")

    def running():
        other_running.set()
        time.sleep(1.0)  # the failing chain has long ended when this one does
        events.append("running chain finished")

    def later():
        events.append("later chain started")

    with pytest.raises(ValueError, match="seed 0 failed"):
        run_chains([failing, running, later, later], jobs=2)
    assert events == ["running chain finished"]


def test_jobs_must_be_a_positive_whole_number():
    with pytest.raises(UsageError, match="jobs"):
        run_chains([], jobs=0)
