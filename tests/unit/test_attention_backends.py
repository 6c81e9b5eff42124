"""Every pattern × backend against the dense reference; block top-k; positions; construction errors; blocks."""

import math

import pytest
import torch

from vtrep.attention import (
    BlockTopK,
    DividedSpace,
    DividedTime,
    FixedPattern,
    LocalWindow,
    PatternAttention,
    StridedPattern,
)

PATTERNS = [LocalWindow(3), LocalWindow(2, tokens_per_step=3, causal=True), StridedPattern(5),
            StridedPattern(4, causal=True), FixedPattern(6, summary=2), DividedSpace(tokens_per_step=4),
            DividedTime(tokens_per_step=4), BlockTopK(block=8, top_k=2, window=1)]


def random_qkv(length: int, batch: int = 2, heads: int = 3, dim: int = 8):
    return [torch.randn(batch, heads, length, dim, dtype=torch.float64, requires_grad=True) for _ in range(3)]


def assert_same_outputs_and_grads(fast, reference, inputs):
    torch.testing.assert_close(fast, reference)
    weights = torch.randn_like(reference)  # a non-uniform upstream gradient
    for got, want in zip(torch.autograd.grad((fast * weights).sum(), inputs),
                         torch.autograd.grad((reference * weights).sum(), inputs)):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("pattern", PATTERNS, ids=repr)
@pytest.mark.parametrize("length", [37, 61])
def test_blocked_equals_dense_through_pattern_attention(pattern, length):
    q, k, v = random_qkv(length)
    block = pattern.block if isinstance(pattern, BlockTopK) else 16
    fast = PatternAttention(pattern, "blocked", block_size=block)(q, k, v)
    reference = PatternAttention(pattern, "dense")(q, k, v)
    assert_same_outputs_and_grads(fast, reference, (q, k, v))


@pytest.mark.parametrize("pattern", [LocalWindow(2, tokens_per_step=4), FixedPattern(3, summary=1, tokens_per_step=4),
                                     BlockTopK(block=8, top_k=2, window=1, tokens_per_step=4)], ids=repr)
def test_positions_apply_the_pattern_to_each_samples_visible_tokens(pattern):
    """A masked encoder sees a per-sample subset of the grid: the pattern must act on grid positions."""
    grid, visible = 96, 41
    positions = torch.stack([torch.randperm(grid)[:visible].sort().values for _ in range(2)])
    q, k, v = random_qkv(visible)
    reference = PatternAttention(pattern, "dense")(q, k, v, positions)
    fast = PatternAttention(pattern, "blocked", block_size=8)(q, k, v, positions)
    assert_same_outputs_and_grads(fast, reference, (q, k, v))
    if not isinstance(pattern, BlockTopK):  # the dense mask itself is the pattern on positions
        full = torch.randn(1, 1, grid, 8, dtype=torch.float64)
        q0, k0, v0 = (full[:, :, positions[0]] for _ in range(3))
        expected = explicit_attention(q0, k0, v0, pattern.mask_mod(None, None, positions[0][:, None],
                                                                   positions[0][None, :]))
        got = PatternAttention(pattern, "dense")(q0, k0, v0, positions[:1])
        torch.testing.assert_close(got, expected)


def explicit_attention(q, k, v, mask):
    scores = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).masked_fill(~mask, float("-inf"))
    return scores.softmax(-1) @ v


def test_block_topk_keeps_the_best_scoring_blocks_and_the_local_window():
    torch.manual_seed(0)
    pattern = BlockTopK(block=4, top_k=1, window=1)
    q, k, v = random_qkv(16, batch=1, heads=1)
    with torch.no_grad():
        k[..., 12:16, :] += 5 * q[..., :, :].mean(-2, keepdim=True)  # block 3 aligns with every query block
    selected = pattern.select(q, k)
    assert selected.shape == (1, 1, 4, 4) and selected.sum(-1).eq(1).all()
    assert selected[..., 3].all()
    i, j = torch.arange(16)[:, None], torch.arange(16)[None, :]
    mask = (j // 4 == 3) | ((i - j).abs() <= 1)
    out = PatternAttention(pattern, "blocked")(q, k, v)
    torch.testing.assert_close(out, explicit_attention(q, k, v, mask))


def test_block_topk_gradients_reach_queries_and_keys_through_the_kept_entries():
    q, k, v = random_qkv(40)
    out = PatternAttention(BlockTopK(block=8, top_k=2), "blocked")(q, k, v)
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    assert all(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("build, message", [
    (lambda: PatternAttention(LocalWindow(2), "sparse"), "backend must be one of"),
    (lambda: PatternAttention(LocalWindow(2), "blocked", block_size=0), "block_size must be a positive integer"),
    (lambda: BlockTopK(block=0), "block must be a positive integer"),
    (lambda: BlockTopK(top_k=0), "top_k must be a positive integer"),
    (lambda: PatternAttention(BlockTopK(block=16, top_k=5), "blocked", num_tokens=64),
     "top_k=5 is larger than the 4 key blocks of 64 tokens"),
    (lambda: PatternAttention(BlockTopK(block=16), "flex"), "BlockTopK with backend='flex' is not supported"),
    (lambda: PatternAttention(BlockTopK(block=16), "blocked", block_size=32), "block_size must be 16"),
])
def test_bad_configurations_fail_at_construction(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_block_topk_longer_than_the_sequence_is_caught_at_call_too():
    q, k, v = random_qkv(20)
    with pytest.raises(ValueError, match="top_k=4 is larger than the 3 key blocks of 20 tokens"):
        PatternAttention(BlockTopK(block=8, top_k=4), "blocked")(q, k, v)


def test_flex_refuses_a_cpu_call_that_needs_gradients():
    q, k, v = random_qkv(20)
    with pytest.raises(RuntimeError, match="no backward on CPU"):
        PatternAttention(LocalWindow(2), "flex")(q, k, v)


@pytest.mark.parametrize("pattern", [LocalWindow(3)] + [
    pytest.param(p, marks=pytest.mark.slow) for p in PATTERNS[1:-1]], ids=repr)
def test_flex_inference_on_cpu_equals_dense(pattern):
    """FlexAttention's CPU forward (compiled; ~30 s for the first pattern, so the rest are ``slow``)."""
    q, k, v = (torch.randn(2, 3, 301, 16) for _ in range(3))
    with torch.no_grad():
        fast = PatternAttention(pattern, "flex")(q, k, v)
        reference = PatternAttention(pattern, "dense")(q, k, v)
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=1e-5)


def test_pattern_block_with_full_attention_reproduces_timm_block():
    from timm.models.vision_transformer import Block

    from vtrep.attention.blocks import PatternBlock

    dense = Block(32, 4, qkv_bias=True)
    sparse = PatternBlock(32, 4, PatternAttention(LocalWindow(100), "blocked", block_size=8), qkv_bias=True)
    sparse.load_state_dict(dense.state_dict())  # same parameter names
    x = torch.randn(2, 50, 32)
    torch.testing.assert_close(sparse(x), dense(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pattern", [StridedPattern(16), StridedPattern(8, tokens_per_step=2, causal=True),
                                     FixedPattern(32, summary=4), FixedPattern(16, summary=2, causal=True)], ids=repr)
def test_union_patterns_split_into_disjoint_block_sparse_parts(pattern):
    """Strided and fixed run as two parts in their own token orders: together exactly the pattern, few blocks."""
    from vtrep.attention.backends.dense import materialise_mask

    n = 1024
    attend = PatternAttention(pattern, "blocked", block_size=16)
    covered = torch.zeros(n, n, dtype=torch.int)
    for part, order in pattern.parts(n):
        mask = materialise_mask(part, n, n) if order is None else part.mask_mod(None, None, order[:, None],
                                                                                order[None, :])
        inverse = torch.arange(n) if order is None else torch.argsort(order)
        covered += mask[inverse][:, inverse].int()
    assert torch.equal(covered, materialise_mask(pattern, n, n).int())  # disjoint, and their union
    density = sum(layout.density for layout, _ in attend._parts(n, "cpu"))
    assert density < 0.3


def test_positioned_layouts_are_reused_only_for_equal_positions():
    attend, reference = PatternAttention(LocalWindow(2), "blocked", block_size=8), PatternAttention(LocalWindow(2))
    q, k, v = random_qkv(30)
    for seed in (0, 0, 1):  # the same positions twice (reused), then other positions (rebuilt)
        generator = torch.Generator().manual_seed(seed)
        positions = torch.stack([torch.randperm(90, generator=generator)[:30].sort().values for _ in range(2)])
        torch.testing.assert_close(attend(q, k, v, positions), reference(q, k, v, positions))


@pytest.mark.slow
def test_flex_inference_on_cpu_with_positions_equals_dense():
    positions = torch.stack([torch.randperm(400)[:301].sort().values for _ in range(2)])
    q, k, v = (torch.randn(2, 3, 301, 16) for _ in range(3))
    with torch.no_grad():
        fast = PatternAttention(LocalWindow(5), "flex")(q, k, v, positions)
        reference = PatternAttention(LocalWindow(5), "dense")(q, k, v, positions)
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=1e-5)
