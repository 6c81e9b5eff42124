"""The FlexAttention backend: the pattern's ``mask_mod`` compiled into a block-sparse kernel.

On GPU this trains (forward and backward). On CPU, torch runs FlexAttention's forward only
under ``torch.compile`` and has no backward, so the caller guards gradient-carrying CPU calls;
this module compiles the call on CPU and runs it eagerly-compiled on GPU as torch recommends.
Block masks of a static pattern are built once per length; with per-sample ``positions`` the
mask is built once per positions tensor (every layer of a forward shares it).
"""

from __future__ import annotations

import torch
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

from vtrep.tensor_identity import same_tensor, tensor_key


def _plain(pattern):
    # create_block_mask inspects the signature: it wants a function of four arguments, not a bound method
    def mask_mod(b, h, q_idx, kv_idx):
        return pattern.mask_mod(b, h, q_idx, kv_idx)

    return mask_mod


def _positioned(pattern, positions: torch.Tensor):
    def mask_mod(b, h, q_idx, kv_idx):
        return pattern.mask_mod(b, h, positions[b, q_idx], positions[b, kv_idx])

    return mask_mod


def _kernel(cache: dict):
    if "flex_kernel" not in cache:
        cache["flex_kernel"] = torch.compile(flex_attention, dynamic=False)
    return cache["flex_kernel"]


def flex_pattern_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern, block_size: int,
                           positions: torch.Tensor | None, cache: dict) -> torch.Tensor:
    """``q (B, heads, Nq, d)``, ``k, v (B, heads, Nk, d)`` → ``(B, heads, Nq, d)`` under ``pattern``."""
    nq, nk = q.shape[-2], k.shape[-2]
    if positions is None:
        key = ("flex_mask", nq, nk, str(q.device))
        if key not in cache:
            cache[key] = create_block_mask(_plain(pattern), None, None, nq, nk, device=q.device,
                                           BLOCK_SIZE=block_size)
        block_mask = cache[key]
    else:
        # every layer of one forward passes the same positions tensor: build its mask once, not per layer
        last = cache.get("flex_positioned")
        if last is not None and same_tensor(last[0], positions):
            block_mask = last[1]
        else:
            block_mask = create_block_mask(_positioned(pattern, positions), q.shape[0], None, nq, nk,
                                           device=q.device, BLOCK_SIZE=block_size)
            cache["flex_positioned"] = (tensor_key(positions), block_mask)
    return _kernel(cache)(q, k, v, block_mask=block_mask)
