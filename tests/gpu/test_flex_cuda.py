"""The FlexAttention backend trains on CUDA: outputs and q/k/v gradients equal the dense reference."""

from __future__ import annotations

import pytest
import torch

from vtrep.attention import DividedSpace, DividedTime, FixedPattern, LocalWindow, PatternAttention, StridedPattern

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none is visible)")]

PATTERNS = [LocalWindow(3, tokens_per_step=16), LocalWindow(2, tokens_per_step=24, causal=True), StridedPattern(5),
            FixedPattern(6, summary=2), DividedSpace(tokens_per_step=16), DividedTime(tokens_per_step=16)]
# flex's Triton kernels may multiply in TF32: agreement to ~1e-3, not fp32 round-off
TOL = dict(atol=2e-3, rtol=2e-3)


def qkv(batch: int, length: int, heads: int = 4, dim: int = 32):
    return [torch.randn(batch, heads, length, dim, device="cuda", requires_grad=True) for _ in range(3)]


def outputs_and_grads(attend: PatternAttention, inputs, positions=None, weights=None):
    out = attend(*inputs, positions)
    weights = torch.randn_like(out) if weights is None else weights  # a non-uniform upstream gradient
    return out, weights, torch.autograd.grad((out * weights).sum(), inputs)


@pytest.mark.parametrize("pattern", PATTERNS, ids=repr)
@pytest.mark.parametrize("length", [384, 500])  # whole flex blocks of 128, and a ragged last block
def test_flex_forward_and_backward_equal_dense(pattern, length):
    torch.manual_seed(0)
    inputs = qkv(2, length)
    out, weights, grads = outputs_and_grads(PatternAttention(pattern, "flex"), inputs)
    ref, _, ref_grads = outputs_and_grads(PatternAttention(pattern, "dense"), inputs, weights=weights)
    torch.testing.assert_close(out, ref, **TOL)
    for name, got, want in zip("qkv", grads, ref_grads):
        torch.testing.assert_close(got, want, **TOL, msg=lambda m: f"d{name}: {m}")


def test_flex_with_per_sample_positions_equals_dense():
    """A masked encoder: each sample keeps its own subset of a 1024-token grid."""
    torch.manual_seed(0)
    positions = torch.stack([torch.randperm(1024, device="cuda")[:301].sort().values for _ in range(2)])
    inputs = qkv(2, 301)
    pattern = LocalWindow(2, tokens_per_step=64)
    out, weights, grads = outputs_and_grads(PatternAttention(pattern, "flex"), inputs, positions)
    ref, _, ref_grads = outputs_and_grads(PatternAttention(pattern, "dense"), inputs, positions, weights)
    torch.testing.assert_close(out, ref, **TOL)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, **TOL)


def test_flex_in_bf16_stays_close_to_dense():
    torch.manual_seed(0)
    inputs = [t.detach().bfloat16().requires_grad_(True) for t in qkv(2, 512)]
    pattern = LocalWindow(3, tokens_per_step=32)
    out, weights, grads = outputs_and_grads(PatternAttention(pattern, "flex"), inputs)
    ref, _, ref_grads = outputs_and_grads(PatternAttention(pattern, "dense"), inputs, weights=weights)
    torch.testing.assert_close(out.float(), ref.float(), atol=3e-2, rtol=3e-2)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got.float(), want.float(), atol=5e-2, rtol=5e-2)
