"""Constructor-argument checks shared by vtrep's components.

Every component validates what a user can set in YAML when it is built, not at the first batch, with
one message format: the parameter's name, the accepted values and the value given, e.g.
``head_dropout must be in [0, 1), got 1.5``. (Divisibility checks live beside the sizes they relate:
``vtrep.layers.patch_embed.check_divisible`` and :func:`~vtrep.attention.blocks.transformer_blocks`.)

A refusal raises :class:`~vtrep.errors.UsageError`, which the ``vtrep`` command prints as one ``error:`` line.
"""

from __future__ import annotations

import math
from typing import Any

from vtrep.errors import UsageError


def _is_number(value: Any) -> bool:
    # bools are ints to Python, but `dropout: true` in a YAML file is a mistake, not 1
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(name: str, value: Any) -> None:
    """``value`` is an integer >= 1."""
    if not _is_int(value) or value < 1:
        raise UsageError(f"{name} must be a positive integer, got {value!r}")


def int_at_least(name: str, value: Any, minimum: int) -> None:
    """``value`` is an integer >= ``minimum``."""
    if not _is_int(value) or value < minimum:
        raise UsageError(f"{name} must be an integer >= {minimum}, got {value!r}")


def non_negative_int(name: str, value: Any) -> None:
    """``value`` is an integer >= 0."""
    int_at_least(name, value, 0)


def positive(name: str, value: Any) -> None:
    """``value`` is a finite number > 0."""
    if not _is_number(value) or value <= 0:
        raise UsageError(f"{name} must be a finite number > 0, got {value!r}")


def non_negative(name: str, value: Any) -> None:
    """``value`` is a finite number >= 0."""
    if not _is_number(value) or value < 0:
        raise UsageError(f"{name} must be a finite number >= 0, got {value!r}")


def fraction(name: str, value: Any, include_one: bool = False) -> None:
    """``value`` is in ``[0, 1)`` (or ``[0, 1]`` with ``include_one``): dropout rates, warmup fractions."""
    if not _is_number(value) or value < 0 or value > 1 or (value == 1 and not include_one):
        raise UsageError(f"{name} must be in [0, 1{']' if include_one else ')'}, got {value!r}")


def beta_pair(name: str, value: Any) -> None:
    """``value`` is an optimiser's ``(beta1, beta2)``: two numbers, each in ``[0, 1)``."""
    if len(value) != 2:
        raise UsageError(f"{name} must be two numbers in [0, 1), got {value!r}")
    for index, beta in enumerate(value):
        fraction(f"{name}[{index}]", beta)
