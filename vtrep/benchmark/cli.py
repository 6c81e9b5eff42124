"""``vtrep benchmark <suite>``: one command per suite (``ucr`` today)."""

from __future__ import annotations


def benchmark_cli(args: list[str] | None = None):
    from jsonargparse import CLI

    from vtrep.benchmark.ucr import benchmark_ucr

    return CLI({"ucr": benchmark_ucr}, args=args, as_positional=False)
