"""Argument checks shared by the datamodules."""

from __future__ import annotations


def check_loader_args(batch_size: int, num_workers: int) -> None:
    """A positive integer batch size and a non-negative integer number of worker processes."""
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be a non-negative integer, got {num_workers!r}")
