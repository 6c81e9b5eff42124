"""Attention patterns against hand-written rules, and the dense reference backend against explicit softmax."""

import math

import pytest
import torch

from vtrep.attention import (
    DividedSpace,
    DividedTime,
    FixedPattern,
    LocalWindow,
    StridedPattern,
    dense_attention,
    materialise_mask,
)


def rule_mask(rule, n: int) -> torch.Tensor:
    return torch.tensor([[bool(rule(i, j)) for j in range(n)] for i in range(n)])


CASES = [
    (LocalWindow(2), lambda i, j: abs(i - j) <= 2),
    (LocalWindow(1, tokens_per_step=3), lambda i, j: abs(i // 3 - j // 3) <= 1),
    (LocalWindow(2, causal=True), lambda i, j: 0 <= i - j <= 2),
    (StridedPattern(4), lambda i, j: abs(i - j) < 4 or (i - j) % 4 == 0),
    (StridedPattern(3, causal=True), lambda i, j: j <= i and (i - j < 3 or (i - j) % 3 == 0)),
    (FixedPattern(4, summary=1), lambda i, j: i // 4 == j // 4 or j % 4 == 3),
    (FixedPattern(5, summary=2, causal=True), lambda i, j: j <= i and (i // 5 == j // 5 or j % 5 >= 3)),
    (DividedSpace(tokens_per_step=4), lambda i, j: i // 4 == j // 4),
    (DividedTime(tokens_per_step=4), lambda i, j: i % 4 == j % 4),
    (DividedTime(tokens_per_step=4, causal=True), lambda i, j: i % 4 == j % 4 and j // 4 <= i // 4),
]


@pytest.mark.parametrize("pattern, rule", CASES, ids=[repr(p) for p, _ in CASES])
def test_pattern_matches_its_rule_and_keeps_the_diagonal(pattern, rule):
    mask = materialise_mask(pattern, 23, 23)
    assert torch.equal(mask, rule_mask(rule, 23))
    assert mask.diagonal().all()
    # FlexAttention calls mask_mod with 0-dim index tensors
    assert bool(pattern.mask_mod(0, 0, torch.tensor(7), torch.tensor(3))) == bool(rule(7, 3))


@pytest.mark.parametrize("pattern", [p for p, _ in CASES], ids=[repr(p) for p, _ in CASES])
def test_dense_backend_equals_explicit_masked_softmax(pattern):
    q, k, v = (torch.randn(2, 3, 19, 8, dtype=torch.float64, requires_grad=True) for _ in range(3))
    out = dense_attention(q, k, v, pattern)
    mask = materialise_mask(pattern, 19, 19)
    scores = (q @ k.transpose(-1, -2) / math.sqrt(8)).masked_fill(~mask, float("-inf"))
    expected = scores.softmax(-1) @ v
    torch.testing.assert_close(out, expected)
    grads = torch.autograd.grad(out.sum(), (q, k, v))
    expected_grads = torch.autograd.grad(expected.sum(), (q, k, v))
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("build, message", [
    (lambda: LocalWindow(0), "window must be a positive integer, got 0"),
    (lambda: StridedPattern(-2), "stride must be a positive integer, got -2"),
    (lambda: FixedPattern(0), "block must be a positive integer, got 0"),
    (lambda: FixedPattern(4, summary=5), "summary=5 must be <= block=4"),
    (lambda: DividedSpace(tokens_per_step=0), "tokens_per_step must be a positive integer, got 0"),
])
def test_bad_sizes_are_rejected_at_construction(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_sparse_patterns_keep_few_keys_on_long_sequences():
    n = 1024
    assert materialise_mask(LocalWindow(8), n, n).float().mean() < 0.02
    assert materialise_mask(StridedPattern(32), n, n).float().mean() < 0.1


@pytest.mark.parametrize("pattern", [p for p, _ in CASES], ids=[repr(p) for p, _ in CASES])
@pytest.mark.parametrize("length, block", [(37, 8), (50, 16), (9, 16)])
def test_blocked_backend_equals_dense_on_outputs_and_gradients(pattern, length, block):
    from vtrep.attention.backends.blocked import blocked_attention
    from vtrep.attention.backends.layout import block_layout

    q, k, v = (torch.randn(2, 3, length, 8, dtype=torch.float64, requires_grad=True) for _ in range(3))
    fast = blocked_attention(q, k, v, block_layout(pattern, length, length, block))
    reference = dense_attention(q, k, v, pattern)
    torch.testing.assert_close(fast, reference)
    weights = torch.randn_like(reference)  # a non-uniform upstream gradient
    for got, want in zip(torch.autograd.grad((fast * weights).sum(), (q, k, v)),
                         torch.autograd.grad((reference * weights).sum(), (q, k, v))):
        torch.testing.assert_close(got, want)


def test_blocked_layout_keeps_only_nearby_blocks_for_a_local_window():
    from vtrep.attention.backends.layout import block_layout

    layout = block_layout(LocalWindow(16), 4096, 4096, block_size=64)
    assert layout.key_blocks.shape == (1, 1, 64, 3)  # own block and one on each side
    with pytest.raises(ValueError, match="block_size must be a positive integer"):
        block_layout(LocalWindow(16), 100, 100, block_size=0)
