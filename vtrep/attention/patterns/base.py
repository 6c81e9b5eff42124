"""The pattern interface shared by every backend.

A pattern decides, from token indices alone, whether query ``q_idx`` may attend to key ``kv_idx``,
in FlexAttention's ``mask_mod(b, h, q_idx, kv_idx)`` form: the arguments are integer tensors that
broadcast against each other and the result is a bool tensor of their broadcast shape. Tokens are
in time-major order (video: t-major over ``(t, h, w)``; series: patch order), so the time step of
token ``i`` is ``i // tokens_per_step`` (``h·w`` for video, 1 for series).
"""

from __future__ import annotations

import copy
import importlib
from typing import Any, ClassVar

import torch

from vtrep.io.init_args import RecordsInitArgs


def check_positive(**values: int) -> None:
    """Raise ``ValueError`` naming the first argument that is not a positive integer."""
    for name, value in values.items():
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


class Pattern(RecordsInitArgs):
    """Base class: subclasses implement :meth:`allowed` on time steps or token indices.

    ``config`` records the constructor arguments (:mod:`vtrep.io.init_args`); :meth:`to_config` is that
    record with the class path. ``is_dynamic`` is True for a pattern whose mask depends on the queries
    and keys (:class:`~vtrep.attention.patterns.block_topk.BlockTopK`): it has no index-only
    :meth:`allowed`, and :class:`~vtrep.attention.attend.PatternAttention` asks it for a rule per call
    (a dynamic pattern provides ``block``, ``check_length(n)``, ``select(q, k)``,
    ``selected_rule(selected, positions)`` and ``local()``).

    Args:
        tokens_per_step: tokens that share one time step (``h·w`` for video, 1 for series).
        causal: additionally forbid keys in a later time step than the query.
    """

    is_dynamic: ClassVar[bool] = False

    def __init__(self, tokens_per_step: int = 1, causal: bool = False) -> None:
        check_positive(tokens_per_step=tokens_per_step)
        self.tokens_per_step, self.causal = tokens_per_step, causal

    def time_step(self, idx: torch.Tensor) -> torch.Tensor:
        """The time step of token ``idx``: ``idx // tokens_per_step``."""
        return idx // self.tokens_per_step

    def allowed(self, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mask_mod(self, b, h, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        """FlexAttention's ``mask_mod``: True where ``q_idx`` attends to ``kv_idx``."""
        keep = self.allowed(q_idx, kv_idx)
        if self.causal:
            keep = keep & (self.time_step(kv_idx) <= self.time_step(q_idx))
        return keep

    def parts(self, num_tokens: int) -> list[tuple["Pattern", torch.Tensor | None]]:
        """Disjoint patterns whose union is this one, each with the token order (``None``: natural) in which
        it is block-sparse; the blocked backend runs each and merges them exactly. Default: just itself."""
        return [(self, None)]

    def on_grid(self, tokens_per_step: int) -> "Pattern":
        """A copy measuring time in steps of ``tokens_per_step`` tokens (a backbone sets its ``h·w``).

        A pattern configured with another ``tokens_per_step`` than 1 (the default) or this one is an error.
        """
        if self.tokens_per_step not in (1, tokens_per_step):
            raise ValueError(f"{self!r} was given tokens_per_step={self.tokens_per_step}, but this backbone has "
                             f"{tokens_per_step} tokens per time step; leave it unset")
        placed = copy.copy(self)
        placed.tokens_per_step, placed.config = tokens_per_step, dict(self.config)
        placed.resolve_init_args(tokens_per_step=tokens_per_step)
        return placed

    def to_config(self) -> dict[str, Any]:
        """``{"class_path", "init_args"}``: JSON for an artefact's config, and what ``from_config`` rebuilds."""
        return self.init_record()

    @staticmethod
    def from_config(config: "Pattern | dict[str, Any] | None") -> "Pattern | None":
        """A pattern from :meth:`to_config`'s dict (only vtrep patterns), or the pattern / ``None`` itself."""
        if config is None or isinstance(config, Pattern):
            return config
        class_path = config.get("class_path", "") if isinstance(config, dict) else ""
        if not class_path.startswith("vtrep.attention."):
            raise ValueError(f"not an attention pattern config: {config!r}")
        module, _, name = class_path.rpartition(".")
        return getattr(importlib.import_module(module), name)(**config.get("init_args", {}))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in self.config.items())
        return f"{type(self).__name__}({fields})"
