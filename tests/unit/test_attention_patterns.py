"""Attention patterns against hand-written rules, and the dense reference backend against explicit softmax."""

import math

import pytest
import torch

from vtrep.attention import (DividedSpace, DividedTime, FixedPattern, LocalWindow, StridedPattern, dense_attention,
                             materialise_mask)


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
