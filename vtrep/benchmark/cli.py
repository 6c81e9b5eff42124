"""``vtrep benchmark <suite>``: one command per suite (``ucr``, ``ett``, ``video``, ``quickstart``)."""

from __future__ import annotations


def benchmark_cli(args: list[str] | None = None):
    from vtrep.benchmark.ett import benchmark_ett
    from vtrep.benchmark.quickstart import benchmark_quickstart
    from vtrep.benchmark.ucr import benchmark_ucr
    from vtrep.benchmark.video import benchmark_video
    from vtrep.cli_messages import run_command

    return run_command({"ucr": benchmark_ucr, "ett": benchmark_ett, "video": benchmark_video,
                        "quickstart": benchmark_quickstart}, args)
