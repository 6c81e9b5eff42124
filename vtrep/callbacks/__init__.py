"""Lightning callbacks that every ``vtrep fit`` run gets, and the data-worker error translation."""

from vtrep.callbacks.finite_loss import FiniteLossGuard, NonFiniteLossError
from vtrep.callbacks.rng_state import RNGStateCheckpoint
from vtrep.callbacks.worker_faults import DataLoaderWorkerError, explain_worker_failures

__all__ = ["DataLoaderWorkerError", "FiniteLossGuard", "NonFiniteLossError", "RNGStateCheckpoint",
           "explain_worker_failures"]
