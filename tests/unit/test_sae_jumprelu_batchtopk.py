"""JumpReLU (straight-through estimators) and BatchTopK (batch-level top-k, fixed eval threshold) SAEs."""

from __future__ import annotations

import math

import pytest
import torch

from vtrep.sae.batchtopk import BatchTopKSAE, batch_topk_codes
from vtrep.sae.jumprelu import JumpReLUSAE


def _jumprelu(d=3, K=4, **kwargs) -> JumpReLUSAE:
    torch.manual_seed(0)
    return JumpReLUSAE(d, K, **kwargs).double()


# -- JumpReLU ------------------------------------------------------------------------------------------
def test_jumprelu_forward_matches_hand_computation():
    model = _jumprelu(bandwidth=0.1)
    with torch.no_grad():
        model.b_enc.copy_(torch.tensor([0.1, -0.2, 0.0, 0.3], dtype=torch.float64))
        model.b_dec.copy_(torch.tensor([0.5, -0.5, 0.25], dtype=torch.float64))
        model.log_threshold.copy_(torch.tensor([0.2, 0.5, 0.05, 1.0], dtype=torch.float64).log())
        model.input_scale.fill_(2.0)
    x = torch.randn(5, 3, dtype=torch.float64)
    pre = (x / 2.0 - model.b_dec) @ model.W_enc + model.b_enc
    theta = torch.tensor([0.2, 0.5, 0.05, 1.0], dtype=torch.float64)
    expected = torch.where(pre > theta, pre, torch.zeros_like(pre))
    codes = model.encode(x)
    torch.testing.assert_close(codes, expected)
    torch.testing.assert_close(model(x), 2.0 * (expected @ model.W_dec + model.b_dec))

    # a fixed small example: below-threshold (including positive) values are zeroed, above kept as is
    fixed = torch.tensor([[0.3, 0.49, -1.0, 1.5], [0.1, 0.6, 0.04, 0.99]], dtype=torch.float64)
    torch.testing.assert_close(model.activate(fixed),
                               torch.tensor([[0.3, 0.0, 0.0, 1.5], [0.0, 0.6, 0.0, 0.0]], dtype=torch.float64))


def _grad_example():
    theta = torch.tensor([0.3, 0.5, 0.2], dtype=torch.float64)
    # eps = 0.1: window |pre - theta| < 0.05
    pre = torch.tensor([[0.32, 0.40, 0.19],     # in window (above), out (below), in window (below)
                        [0.28, 0.54, 0.90],     # in window (below), in window (above), out (above)
                        [-1.0, 0.56, 0.249]],   # out, out (above), in window (above)
                       dtype=torch.float64)
    window = ((pre - theta).abs() < 0.05).double()
    assert window.sum() == 5  # the example exercises both sides of the window and both sides of θ
    return theta, pre, window


def test_jumprelu_activation_pseudo_gradients_match_formula():
    eps = 0.1
    model = _jumprelu(d=2, K=3, bandwidth=eps)
    theta, pre_values, window = _grad_example()
    with torch.no_grad():
        model.log_threshold.copy_(theta.log())
    pre = pre_values.clone().requires_grad_(True)
    upstream = torch.tensor([[1.0, -2.0, 0.5], [3.0, 0.7, -1.0], [2.0, 4.0, -0.3]], dtype=torch.float64)
    codes = model.activate(pre)
    (codes * upstream).sum().backward()

    above = (pre_values > theta).double()
    torch.testing.assert_close(codes.detach(), pre_values * above)
    torch.testing.assert_close(pre.grad, above * upstream)
    grad_theta = (-(theta / eps) * window * upstream).sum(dim=0)
    torch.testing.assert_close(model.log_threshold.grad, theta * grad_theta)
    # explicitly: latent 0 has window entries at rows 0 and 1 with upstream 1 and 3
    torch.testing.assert_close(model.log_threshold.grad[0], torch.tensor(0.3 * -(0.3 / eps) * (1.0 + 3.0),
                                                                         dtype=torch.float64))

    # the same STE reaches a raw threshold tensor directly
    from vtrep.sae.jumprelu import jumprelu
    raw = theta.clone().requires_grad_(True)
    (jumprelu(pre_values, raw, eps) * upstream).sum().backward()
    torch.testing.assert_close(raw.grad, grad_theta)


def test_jumprelu_l0_term_value_and_pseudo_gradients():
    eps, coef = 0.1, 0.01
    model = _jumprelu(d=2, K=3, bandwidth=eps, l0_coef=coef)
    theta, pre_values, window = _grad_example()
    with torch.no_grad():
        model.log_threshold.copy_(theta.log())
    pre = pre_values.clone().requires_grad_(True)
    parts = model.sparsity_loss(None, pre, None, None)
    assert set(parts) == {"l0"}
    n = pre_values.shape[0]
    expected_l0 = (pre_values > theta).double().sum() / n
    torch.testing.assert_close(parts["l0"].detach(), coef * expected_l0)
    parts["l0"].backward()
    assert pre.grad is None or torch.equal(pre.grad, torch.zeros_like(pre))
    grad_theta = coef / n * (-(1.0 / eps) * window).sum(dim=0)
    torch.testing.assert_close(model.log_threshold.grad, theta * grad_theta)
    assert (model.log_threshold.grad < 0).all()  # every latent has a window entry: raising θ lowers L0


def test_jumprelu_loss_combines_mse_and_l0():
    model = _jumprelu(d=4, K=8, threshold_init=0.5, l0_coef=0.02)
    x = torch.randn(6, 4, dtype=torch.float64)
    out = model.loss(x)
    assert set(out.parts) == {"mse", "l0"}
    torch.testing.assert_close(out.loss, out.parts["mse"] + out.parts["l0"])
    torch.testing.assert_close(out.parts["l0"], 0.02 * (out.codes != 0).double().sum(dim=1).mean())
    out.loss.backward()
    assert model.log_threshold.grad is not None and model.W_enc.grad is not None
    assert model.config == {"d_in": 4, "num_latents": 8, "threshold_init": 0.5, "bandwidth": 0.001,
                            "l0_coef": 0.02}


@pytest.mark.parametrize("kwargs, name", [
    ({"threshold_init": 0.0}, "threshold_init"),
    ({"threshold_init": -1.0}, "threshold_init"),
    ({"bandwidth": 0.0}, "bandwidth"),
    ({"bandwidth": float("nan")}, "bandwidth"),
    ({"l0_coef": -0.1}, "l0_coef"),
    ({"l0_coef": "1"}, "l0_coef"),
])
def test_jumprelu_rejects_bad_args(kwargs, name):
    with pytest.raises(ValueError, match=name):
        JumpReLUSAE(3, 4, **kwargs)


def test_jumprelu_from_weights():
    torch.manual_seed(1)
    d, K = 3, 5
    W_enc, b_enc = torch.randn(d, K, dtype=torch.float64), torch.randn(K, dtype=torch.float64)
    W_dec, b_dec = torch.randn(K, d, dtype=torch.float64), torch.randn(d, dtype=torch.float64)
    theta = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5], dtype=torch.float64)
    model = JumpReLUSAE.from_weights(W_enc, b_enc, W_dec, b_dec, theta, input_scale=3.0, bandwidth=0.01)
    assert model.W_enc.dtype == torch.float64 and model.bandwidth == 0.01
    torch.testing.assert_close(model.threshold.detach(), theta)
    x = torch.randn(4, d, dtype=torch.float64)
    pre = (x / 3.0 - b_dec) @ W_enc + b_enc
    codes = pre * (pre > theta)
    torch.testing.assert_close(model.encode(x).detach(), codes)
    torch.testing.assert_close(model(x).detach(), 3.0 * (codes @ W_dec + b_dec))
    with pytest.raises(ValueError, match="threshold"):
        JumpReLUSAE.from_weights(W_enc, b_enc, W_dec, b_dec, torch.zeros(K, dtype=torch.float64))
    with pytest.raises(ValueError, match="threshold"):
        JumpReLUSAE.from_weights(W_enc, b_enc, W_dec, b_dec, torch.ones(K + 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="W_dec"):
        JumpReLUSAE.from_weights(W_enc, b_enc, W_dec.t(), b_dec, theta)


# -- BatchTopK -----------------------------------------------------------------------------------------
def _batchtopk(d=4, K=8, k=2, **kwargs) -> BatchTopKSAE:
    torch.manual_seed(0)
    return BatchTopKSAE(d, K, k=k, aux_k=0, **kwargs).double()


def test_batch_topk_keeps_the_k_times_n_largest():
    torch.manual_seed(2)
    n, K, k = 5, 8, 2
    pre = torch.randn(n, K, dtype=torch.float64) + 0.5
    assert (pre > 0).sum() > k * n  # generic input: more positives than kept slots
    codes = batch_topk_codes(pre, k)
    kept = codes != 0
    assert int(kept.sum()) == k * n
    torch.testing.assert_close(codes[kept], pre[kept])
    assert pre[kept].min() > pre[~kept].max()
    torch.testing.assert_close(codes[kept].sort().values, pre.flatten().topk(k * n).values.sort().values)
    # per-input counts vary (it is a batch, not a per-row, top-k) while the total is fixed
    assert kept.sum(dim=1).tolist() != [k] * n


def test_batchtopk_training_codes_through_the_model():
    model = _batchtopk(d=4, K=8, k=3).train()
    x = torch.randn(6, 4, dtype=torch.float64)
    pre = model.pre_activation(model.scale_input(x))
    codes = model.encode(x)
    assert int((codes != 0).sum()) == 3 * 6
    assert pre[codes != 0].min() > pre[codes == 0].max()


def test_batchtopk_training_output_depends_on_the_batch_but_eval_does_not():
    model = _batchtopk(d=4, K=8, k=1)
    lone = torch.tensor([[0.5, 0.2, -0.1, 0.0, 0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    loud = torch.tensor([[0.0, 0.0, 0.0, 0.9, 0.8, 0.7, 0.0, 0.0]], dtype=torch.float64)
    model.train()
    assert model.activate(lone)[0, 0] == 0.5
    assert model.activate(torch.cat([lone, loud]))[0].abs().sum() == 0  # crowded out by the other input

    with torch.no_grad():
        model.threshold.fill_(0.3)
    model.eval()
    torch.testing.assert_close(model.activate(torch.cat([lone, loud]))[0], model.activate(lone)[0])
    torch.testing.assert_close(model.activate(lone)[0],
                               torch.tensor([0.5, 0, 0, 0, 0, 0, 0, 0], dtype=torch.float64))

    x = torch.randn(7, 4, dtype=torch.float64)
    other = torch.randn(3, 4, dtype=torch.float64) * 5
    alone = model.encode(x[:1])
    torch.testing.assert_close(model.encode(x)[:1], alone)
    torch.testing.assert_close(model.encode(torch.cat([other, x[:1]]))[-1:], alone)
    pre = model.pre_activation(model.scale_input(x))
    torch.testing.assert_close(model.encode(x), pre * (pre > 0.3))


def test_batchtopk_threshold_is_the_stated_ema():
    m = 0.9
    model = _batchtopk(d=4, K=8, k=2, threshold_momentum=m).train()
    assert float(model.threshold) == 0.0
    torch.manual_seed(3)
    x1, x2, x3 = (torch.randn(5, 4, dtype=torch.float64) for _ in range(3))
    out1 = model.loss(x1)
    min1 = out1.codes[out1.codes > 0].min()
    torch.testing.assert_close(model.threshold, min1)  # first update copies
    out2 = model.loss(x2)
    min2 = out2.codes[out2.codes > 0].min()
    expected = m * min1 + (1 - m) * min2
    torch.testing.assert_close(model.threshold, expected)
    assert int(model.threshold_updates) == 2
    assert not torch.isclose(model.threshold, min2)  # really an average, not the last value
    model.eval()
    model.loss(x3)  # eval loss does not move the threshold
    torch.testing.assert_close(model.threshold, expected)


def test_batchtopk_to_jumprelu_matches_eval_outputs():
    model = _batchtopk(d=4, K=8, k=2, threshold_momentum=0.5).train()
    torch.manual_seed(4)
    data = torch.randn(20, 4, dtype=torch.float64) * 3
    model.fit_input_scale(data)
    assert not math.isclose(float(model.input_scale), 1.0)
    with pytest.raises(ValueError, match="threshold"):
        model.to_jumprelu()
    for batch in data.split(5):
        model.loss(batch)
    model.eval()
    jump = model.to_jumprelu(bandwidth=0.01)
    assert isinstance(jump, JumpReLUSAE) and jump.bandwidth == 0.01
    torch.testing.assert_close(jump.threshold.detach(), model.threshold.expand(8))
    torch.testing.assert_close(jump.input_scale, model.input_scale)
    x = torch.randn(9, 4, dtype=torch.float64) * 3
    with torch.no_grad():
        codes = model.encode(x)
        assert (codes == 0).any() and (codes != 0).any()
        torch.testing.assert_close(jump.encode(x), codes)
        torch.testing.assert_close(jump(x), model(x))
    # a copy, not shared storage
    with torch.no_grad():
        jump.W_enc.add_(1.0)
    assert not torch.allclose(jump.W_enc, model.W_enc)


def test_batchtopk_config():
    model = BatchTopKSAE(4, 8, k=3, threshold_momentum=0.95, aux_k=2)
    assert model.config == {"d_in": 4, "num_latents": 8, "k": 3, "aux_k": 2, "aux_coef": 1 / 32,
                            "dead_after_tokens": 10_000_000, "threshold_momentum": 0.95}


@pytest.mark.parametrize("kwargs, name", [
    ({"k": 0}, "k"),
    ({"k": 9}, "k"),
    ({"k": 2.0}, "k"),
    ({"k": True}, "k"),
    ({"threshold_momentum": 1.0}, "threshold_momentum"),
    ({"threshold_momentum": -0.1}, "threshold_momentum"),
    ({"threshold_momentum": "0.9"}, "threshold_momentum"),
    ({"num_latents": 0}, "num_latents"),
])
def test_batchtopk_rejects_bad_args(kwargs, name):
    args = {"d_in": 4, "num_latents": 8, "k": 2, **kwargs}
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        BatchTopKSAE(**args)
