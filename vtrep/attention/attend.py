"""One entry point for patterned attention: a pattern, a backend by name, and the per-length caches.

``PatternAttention(pattern, backend)(q, k, v, positions)`` runs ``q (B, heads, Nq, d)``,
``k, v (B, heads, Nk, d)`` under ``pattern`` on

- ``"dense"``: the mask materialised and SDPA — the reference, any pattern, any device;
- ``"blocked"``: only the visited key blocks (:mod:`vtrep.attention.backends.blocked`), forward and
  backward on any device;
- ``"flex"``: FlexAttention with a block mask — GPU training, CPU inference under ``torch.compile``
  (FlexAttention has no CPU backward in this torch, so a CPU call that needs gradients is an error).

``positions (B, N)`` gives each token's place in the full token grid when the sequence is a
subset of it (the visible tokens of a masked encoder); the pattern is then applied to positions.
Layouts and block masks of a static pattern are built once per length and reused.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F

from vtrep.attention.backends.blocked import blocked_attention
from vtrep.attention.backends.dense import dense_attention, dense_rule_attention
from vtrep.attention.backends.layout import (
    BlockLayout,
    block_layout,
    kept_blocks,
    layout_from_blocks,
    pattern_rule,
)
from vtrep.attention.backends.union import union_attention
from vtrep.attention.patterns.base import Pattern, check_positive
from vtrep.tensor_identity import same_tensor, tensor_key

Backend = Literal["dense", "blocked", "flex"]

DEFAULT_BLOCK = {"dense": 64, "blocked": 64, "flex": 128}


class PatternAttention:
    """Attention under ``pattern`` (``None``: full attention) on ``backend``.

    Args:
        pattern: a :class:`~vtrep.attention.patterns.base.Pattern`, or ``None`` for full attention.
        backend: ``"dense"``, ``"blocked"`` or ``"flex"``.
        block_size: tokens per block for ``blocked`` (default 64) and ``flex`` (default 128);
            a dynamic pattern (``pattern.is_dynamic``, e.g. ``BlockTopK``) fixes it to its own ``block``.
        num_tokens: tokens of the full grid, if known, so length errors (top-k > blocks) surface at
            construction and ``run_blocks`` recognises a whole-grid sequence without reading positions.
    """

    def __init__(self, pattern: Pattern | None = None, backend: Backend = "dense", block_size: int | None = None,
                 num_tokens: int | None = None) -> None:
        if backend not in get_args(Backend):
            raise ValueError(f"backend must be one of {get_args(Backend)}, got {backend!r}")
        if block_size is not None:
            check_positive(block_size=block_size)
        if pattern is not None and pattern.is_dynamic:
            name = type(pattern).__name__
            if backend == "flex":
                raise ValueError(f"{name} with backend='flex' is not supported: its blocks are chosen from the "
                                 "content at every call, so FlexAttention would rebuild its block mask each time; "
                                 "use backend='blocked'")
            if block_size not in (None, pattern.block):
                raise ValueError(f"{name} selects blocks of {pattern.block} tokens, so block_size must be "
                                 f"{pattern.block} (or left unset), got {block_size}")
            block_size = pattern.block
            if num_tokens is not None:
                pattern.check_length(num_tokens)
        self.pattern, self.backend, self.num_tokens = pattern, backend, num_tokens
        self.block_size = block_size or DEFAULT_BLOCK[backend]
        self._cache: dict = {}

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                 positions: torch.Tensor | None = None) -> torch.Tensor:
        if self.pattern is None:
            return F.scaled_dot_product_attention(q, k, v)
        if self.backend == "flex":
            return self._flex(q, k, v, positions)
        if self.pattern.is_dynamic:
            selected = self.pattern.select(q, k)
            if self.backend == "dense":
                return dense_rule_attention(q, k, v, self.pattern.selected_rule(selected, positions))
            return blocked_attention(q, k, v, self._topk_layout(selected, q.shape[-2], k.shape[-2], q.device,
                                                                positions))
        if self.backend == "dense":
            return dense_attention(q, k, v, self.pattern, positions)
        if positions is None and q.shape[-2] == k.shape[-2] and (parts := self._parts(q.shape[-2], q.device)):
            return union_attention(q, k, v, parts)
        return blocked_attention(q, k, v, self._layout(q.shape[-2], k.shape[-2], q.device, positions))

    def _layout(self, nq: int, nk: int, device, positions) -> BlockLayout:
        if positions is not None:
            # every layer of one forward passes the same positions tensor: keep the last layout and reuse it,
            # recognising that tensor on the host (comparing values would sync with the device every layer)
            last = self._cache.get("positioned")
            if last is not None and same_tensor(last[0], positions):
                return last[2]
            if last is not None and last[1].shape == positions.shape and torch.equal(last[1], positions):
                self._cache["positioned"] = (tensor_key(positions), *last[1:])  # the next layers: no compare
                return last[2]
            layout = block_layout(self.pattern, nq, nk, self.block_size, device, positions)
            self._cache["positioned"] = (tensor_key(positions), positions.clone(), layout)
            return layout
        return self._cached(("layout", nq, nk, str(device)),
                            lambda: block_layout(self.pattern, nq, nk, self.block_size, device))

    def _cached(self, key: tuple, build):
        """``build()`` once per ``key`` (length and device): static layouts are reused by every call and layer."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def _parts(self, n: int, device) -> list | None:
        """Per part of a union pattern (strided, fixed): its layout in its own token order, built once per
        length; ``None`` for a pattern that is one part."""
        def build():
            split = [(part, None if order is None else order.to(device)) for part, order in self.pattern.parts(n)]
            if len(split) == 1:
                return None
            return [(block_layout(part, n, n, self.block_size, device, None if order is None else order[None],
                                  allow_empty=True), order) for part, order in split]

        return self._cached(("parts", n, str(device)), build)

    def _topk_layout(self, selected: torch.Tensor, nq: int, nk: int, device, positions) -> BlockLayout:
        """Selected blocks in full, plus the local window's blocks with its token mask (those cached per length)."""
        local_rule = pattern_rule(self.pattern.local(), positions)
        build = lambda: kept_blocks(local_rule, nq, nk, self.block_size, device)  # noqa: E731
        local = build() if positions is not None else self._cached(("local", nq, nk, str(device)), build)
        return layout_from_blocks(selected | local, local_rule, nq, nk, self.block_size, whole=selected)

    def _flex(self, q, k, v, positions):
        from vtrep.attention.backends.flex import flex_pattern_attention

        needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
        if q.device.type == "cpu" and needs_grad:
            raise RuntimeError("the flex backend has no backward on CPU in this torch: train with backend='blocked' "
                               "(or run under torch.no_grad() for inference)")
        return flex_pattern_attention(q, k, v, self.pattern, self.block_size, positions, self._cache)

    def __repr__(self) -> str:
        return f"PatternAttention(pattern={self.pattern!r}, backend={self.backend!r}, block_size={self.block_size})"


def grid_attention(pattern: Pattern | dict | None, backend: Backend, block_size: int | None,
                   grid: tuple[int, int, int]) -> PatternAttention | None:
    """The shared kernel of a backbone on a ``(t, h, w)`` grid: ``pattern`` in frames (``h·w`` tokens a step)."""
    pattern = Pattern.from_config(pattern)
    if pattern is None:
        if backend != "dense" or block_size is not None:
            raise ValueError(f"attention_backend={backend!r} / attention_block_size={block_size} need an "
                             "attention_pattern (full attention always runs dense SDPA)")
        return None
    t, h, w = grid
    return PatternAttention(pattern.on_grid(h * w), backend, block_size, num_tokens=t * h * w)
