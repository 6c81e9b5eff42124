"""SAE variants: ReLU + decoder-norm-weighted L1, Matryoshka (nested prefixes), AbsTopK (signed TopK)."""

import math

import pytest
import torch

from vtrep.sae.abstopk import AbsTopKSAE, abs_topk_codes
from vtrep.sae.matryoshka import MatryoshkaSAE, default_prefixes
from vtrep.sae.relu_l1 import ReLUL1SAE

D, K = 4, 8


def leaf_copies(sae):
    """Independent float64 leaf copies of the SAE's parameters, for the hand formulas."""
    return {name: p.detach().clone().requires_grad_(True) for name, p in sae.named_parameters()}


def hand_pre(p, x, scale):
    return (x / scale - p["b_dec"]) @ p["W_enc"] + p["b_enc"]


def hand_topk_relu(pre, k):
    """TopK by a full sort (not ``torch.topk``), ReLU'd."""
    order = pre.argsort(dim=1, descending=True)[:, :k]
    mask = torch.zeros_like(pre, dtype=torch.bool).scatter(1, order, True)
    return torch.where(mask, pre, torch.zeros_like(pre)).relu()


def assert_grads_match(sae, leaves):
    for name, p in sae.named_parameters():
        assert p.grad is not None, name
        assert torch.allclose(p.grad, leaves[name].grad, atol=1e-12, rtol=1e-10), name


# -- ReLU + L1 ----------------------------------------------------------------------------------------
def relu_l1_model(l1_coef=0.3):
    torch.manual_seed(0)
    sae = ReLUL1SAE(D, K, l1_coef=l1_coef).double()
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.5)
        sae.b_dec.normal_(0, 0.3)
        sae.W_dec.mul_(torch.tensor([0.5, 1.0, 2.0, 3.0, 0.25, 1.5, 0.8, 4.0], dtype=torch.float64)[:, None])
        sae.input_scale.fill_(1.7)
    return sae


def test_relu_l1_loss_parts_and_gradients_match_hand_formula():
    sae = relu_l1_model()
    x = torch.randn(6, D, dtype=torch.float64)
    out = sae.loss(x)
    out.loss.backward()

    p = leaf_copies(sae)
    codes = hand_pre(p, x, 1.7).clamp_min(0)
    x_hat = codes @ p["W_dec"] + p["b_dec"]
    mse = ((x_hat - x / 1.7) ** 2).sum() / (6 * D)
    norms = p["W_dec"].pow(2).sum(dim=1).sqrt()
    l1 = 0.3 * sum((codes[i] * norms).sum() for i in range(6)) / 6
    (mse + l1).backward()

    assert (codes > 0).any() and (codes == 0).any()  # both regimes of the ReLU are exercised
    assert set(out.parts) == {"mse", "l1"}
    assert torch.allclose(out.parts["mse"], mse) and torch.allclose(out.parts["l1"], l1)
    assert torch.allclose(out.loss, mse + l1)
    assert torch.allclose(out.codes, codes) and torch.allclose(out.x_hat, x_hat)
    unweighted = 0.3 * codes.sum(dim=1).mean()
    assert not torch.allclose(out.parts["l1"], unweighted)  # the decoder-norm weighting is really applied
    assert_grads_match(sae, p)


def test_relu_l1_weighting_is_invariant_to_trading_code_scale_for_decoder_norm():
    """Scaling latent i's encoder column by c and its decoder row by 1/c leaves x̂ and the penalty unchanged."""
    sae = relu_l1_model()
    x = torch.randn(5, D, dtype=torch.float64)
    before = sae.loss(x)
    c = torch.tensor([2.0, 0.5, 3.0, 1.0, 1.0, 0.25, 4.0, 1.5], dtype=torch.float64)
    with torch.no_grad():
        sae.W_enc.mul_(c)
        sae.b_enc.mul_(c)
        sae.W_dec.div_(c[:, None])
    after = sae.loss(x)
    assert torch.allclose(before.x_hat, after.x_hat)
    assert torch.allclose(before.parts["l1"], after.parts["l1"])


def test_relu_l1_default_coefficient_and_config():
    sae = ReLUL1SAE(D, K)
    assert sae.l1_coef == pytest.approx(5.0 / D)
    assert sae.config == {"d_in": D, "num_latents": K, "l1_coef": pytest.approx(5.0 / D)}
    rebuilt = ReLUL1SAE(**sae.config)
    assert rebuilt.l1_coef == sae.l1_coef
    assert ReLUL1SAE(D, K, l1_coef=0).l1_coef == 0.0


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf, "0.1", True])
def test_relu_l1_rejects_bad_coefficient(bad):
    with pytest.raises(ValueError, match="l1_coef"):
        ReLUL1SAE(D, K, l1_coef=bad)


# -- Matryoshka ---------------------------------------------------------------------------------------
def matryoshka_model(**kwargs):
    torch.manual_seed(1)
    sae = MatryoshkaSAE(D, K, k=3, prefixes=[2, 5], aux_k=0, **kwargs).double()
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.5)
        sae.b_dec.normal_(0, 0.3)
        sae.input_scale.fill_(0.6)
    return sae


def test_matryoshka_prefix_losses_match_hand_reconstructions():
    sae = matryoshka_model()
    assert sae.prefixes == (2, 5, K)
    x = torch.randn(7, D, dtype=torch.float64)
    out = sae.loss(x)
    out.loss.backward()

    p = leaf_copies(sae)
    codes = hand_topk_relu(hand_pre(p, x, 0.6), 3)
    mses = {}
    for m in (2, 5, K):
        x_hat_m = p["b_dec"].expand(7, D).clone()
        for i in range(m):  # explicit sum over the first m latents
            x_hat_m = x_hat_m + codes[:, i:i + 1] * p["W_dec"][i]
        mses[m] = ((x_hat_m - x / 0.6) ** 2).mean()
    total = (mses[2] + mses[5] + mses[K]) / 3
    total.backward()

    assert (codes[:, :2] != 0).any() and (codes[:, 5:] != 0).any()  # every prefix block is in use
    assert set(out.parts) == {"mse", "mse_prefix_2", "mse_prefix_5"}
    assert torch.allclose(out.parts["mse_prefix_2"], mses[2])
    assert torch.allclose(out.parts["mse_prefix_5"], mses[5])
    assert torch.allclose(out.parts["mse"], mses[K])
    assert not torch.allclose(mses[2], mses[K])
    assert torch.allclose(out.loss, total)
    assert torch.allclose(out.codes, codes)
    assert torch.allclose(out.x_hat, sae.decode_scaled(out.codes))
    assert_grads_match(sae, p)


@pytest.mark.parametrize("m", [2, 5])
def test_matryoshka_prefix_gradient_stays_inside_the_prefix(m):
    sae = matryoshka_model()
    x = torch.randn(9, D, dtype=torch.float64)
    out = sae.loss(x)
    assert (out.codes[:, m:] != 0).any()  # later latents do fire, so a leak would show
    out.parts[f"mse_prefix_{m}"].backward()
    assert (sae.W_dec.grad[m:] == 0).all()
    assert (sae.W_enc.grad[:, m:] == 0).all() and (sae.b_enc.grad[m:] == 0).all()
    assert (sae.W_dec.grad[:m] != 0).any()


def test_matryoshka_total_adds_auxk_once_dead_latents_exist():
    sae = matryoshka_model(dead_after_tokens=1)
    sae.aux_k = 2
    sae.train()
    x = torch.randn(2, D, dtype=torch.float64)  # 2 inputs × k=3 fire at most 6 of 8 latents → some are dead
    out = sae.loss(x)
    assert "auxk" in out.parts and out.parts["auxk"] > 0
    mses = [out.parts["mse_prefix_2"], out.parts["mse_prefix_5"], out.parts["mse"]]
    assert torch.allclose(out.loss, sum(mses) / 3 + out.parts["auxk"])


def test_matryoshka_prefix_defaults_completion_and_config():
    assert default_prefixes(32) == [2, 4, 8, 16, 32]
    assert default_prefixes(3) == [1, 3]
    assert MatryoshkaSAE(D, 32, k=4).prefixes == (2, 4, 8, 16, 32)
    sae = MatryoshkaSAE(D, K, k=2, prefixes=(1, 4))
    assert sae.prefixes == (1, 4, K)
    assert sae.config["prefixes"] == [1, 4, K] and sae.config["k"] == 2
    assert MatryoshkaSAE(**sae.config).prefixes == sae.prefixes
    assert MatryoshkaSAE(D, K, k=2, prefixes=[K]).prefixes == (K,)


@pytest.mark.parametrize("bad", [[], [3, 2], [2, 2], [0, 4], [2, K + 1], [2.0, 4], [True, 4], "24", 4])
def test_matryoshka_rejects_bad_prefixes(bad):
    with pytest.raises(ValueError, match="prefixes"):
        MatryoshkaSAE(D, K, k=2, prefixes=bad)


def test_matryoshka_rejects_bad_k():
    with pytest.raises(ValueError, match="k must"):
        MatryoshkaSAE(D, K, k=0)


# -- AbsTopK ------------------------------------------------------------------------------------------
def test_abstopk_keeps_k_largest_magnitudes_with_their_signs():
    torch.manual_seed(2)
    sae = AbsTopKSAE(D, K, k=3).double()
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.5)
    x = torch.randn(10, D, dtype=torch.float64)
    with torch.no_grad():
        pre = sae.pre_activation(sae.scale_input(x))
        codes = sae.encode(x)
    assert ((codes != 0).sum(dim=1) == 3).all()
    for row in range(10):
        ranked = sorted(range(K), key=lambda i: -abs(float(pre[row, i])))
        kept = set(ranked[:3])
        assert set(torch.nonzero(codes[row]).flatten().tolist()) == kept
        for i in range(K):
            assert float(codes[row, i]) == (float(pre[row, i]) if i in kept else 0.0)
    assert (codes < 0).any()  # negative codes do occur


def test_abstopk_prefers_a_large_negative_over_a_small_positive():
    pre = torch.tensor([[-5.0, 1.0, 0.5, 3.0], [0.1, -0.2, 0.3, -0.4]])
    codes = abs_topk_codes(pre, 2)
    assert torch.equal(codes, torch.tensor([[-5.0, 0.0, 0.0, 3.0], [0.0, 0.0, 0.3, -0.4]]))


def test_abstopk_loss_and_gradients_match_hand_formula():
    torch.manual_seed(3)
    sae = AbsTopKSAE(D, K, k=2).double()
    with torch.no_grad():
        sae.b_dec.normal_(0, 0.3)
    x = torch.randn(6, D, dtype=torch.float64)
    out = sae.loss(x)
    out.loss.backward()

    p = leaf_copies(sae)
    pre = hand_pre(p, x, 1.0)
    order = pre.detach().abs().argsort(dim=1, descending=True)[:, :2]
    mask = torch.zeros_like(pre, dtype=torch.bool).scatter(1, order, True)
    codes = torch.where(mask, pre, torch.zeros_like(pre))
    mse = ((codes @ p["W_dec"] + p["b_dec"] - x) ** 2).mean()
    mse.backward()

    assert set(out.parts) == {"mse"}
    assert torch.allclose(out.loss, mse) and torch.allclose(out.codes, codes)
    assert_grads_match(sae, p)


@pytest.mark.parametrize("bad", [0, K + 1, 2.5, True])
def test_abstopk_rejects_bad_k(bad):
    with pytest.raises(ValueError, match="k must"):
        AbsTopKSAE(D, K, k=bad)


def test_abstopk_config():
    sae = AbsTopKSAE(D, K, k=5)
    assert sae.config == {"d_in": D, "num_latents": K, "k": 5}
    assert AbsTopKSAE(**sae.config).k == 5
