"""Lightning callbacks that every ``vtrep fit`` run gets."""

from vtrep.callbacks.rng_state import RNGStateCheckpoint

__all__ = ["RNGStateCheckpoint"]
