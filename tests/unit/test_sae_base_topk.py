"""SAE base (decoder norms, bias init, input scaling) and the TopK SAE with AuxK."""

import pytest
import torch

from vtrep.sae import TopKSAE, geometric_median


def tiny(**kwargs) -> TopKSAE:
    torch.manual_seed(0)
    return TopKSAE(**{"d_in": 6, "num_latents": 12, "k": 3, **kwargs}).double()


def test_decoder_rows_stay_unit_norm_through_training_steps():
    sae = tiny()
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(12, dtype=torch.float64))
    optimizer = torch.optim.Adam(sae.parameters(), lr=0.05)
    for _ in range(5):
        sae.loss(torch.randn(32, 6, dtype=torch.float64)).loss.backward()
        sae.remove_parallel_gradient()
        # what is left of each row's gradient is orthogonal to the row
        assert (sae.W_dec.grad * sae.W_dec).sum(dim=1).abs().max() < 1e-12
        optimizer.step()
        optimizer.zero_grad()
        sae.normalise_decoder()
        torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(12, dtype=torch.float64))


def test_geometric_median_resists_outliers_and_minimises_summed_distance():
    torch.manual_seed(0)
    cluster = torch.randn(200, 3, dtype=torch.float64) * 0.1 + torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    points = torch.cat([cluster, torch.full((20, 3), 100.0, dtype=torch.float64)])
    median = geometric_median(points, iterations=500)
    assert (median - torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)).norm() < 0.1
    assert (points.mean(0) - median).norm() > 5  # the mean is dragged by the outliers
    total = lambda c: (points - c).norm(dim=1).sum()  # noqa: E731
    for direction in torch.eye(3, dtype=torch.float64):
        assert total(median) <= total(median + 1e-3 * direction) and total(median) <= total(median - 1e-3 * direction)


def test_decoder_bias_from_the_data_and_input_scale_normalise_the_inputs():
    sae = tiny()
    x = torch.randn(500, 6, dtype=torch.float64) * 7 + 3
    scale = sae.fit_input_scale(x)
    torch.testing.assert_close((x / scale).pow(2).sum(dim=1).mean(), torch.tensor(6.0, dtype=torch.float64))
    sae.init_decoder_bias(x, method="mean")
    torch.testing.assert_close(sae.b_dec.detach(), (x / scale).mean(0))
    with pytest.raises(ValueError, match="method must be"):
        sae.init_decoder_bias(x, method="median")


def test_folding_the_input_scale_keeps_outputs_and_codes():
    sae = tiny()
    x = torch.randn(40, 6, dtype=torch.float64) * 5
    sae.fit_input_scale(x)
    sae.init_decoder_bias(x)
    codes, out = sae.encode(x), sae(x)
    sae.fold_input_scale()
    assert float(sae.input_scale) == 1.0
    torch.testing.assert_close(sae.encode(x), codes)
    torch.testing.assert_close(sae(x), out)


def test_topk_codes_match_a_hand_computation_and_gradients_reach_only_active_latents():
    sae = tiny(aux_k=0)
    x = torch.randn(5, 6, dtype=torch.float64)
    pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    expected = torch.zeros_like(pre)
    for row in range(5):
        top = pre[row].argsort(descending=True)[:3]
        expected[row, top] = pre[row, top].clamp_min(0)
    codes = sae.encode(x)
    torch.testing.assert_close(codes, expected)
    assert ((codes != 0).sum(dim=1) <= 3).all()
    out = sae.loss(x)
    torch.testing.assert_close(out.loss, (expected @ sae.W_dec + sae.b_dec - x).pow(2).mean())
    out.loss.backward()
    active = (codes != 0).any(dim=0)
    assert torch.all(sae.b_enc.grad[~active] == 0) and torch.all(sae.b_enc.grad[active] != 0)


def test_auxk_reconstructs_the_detached_residual_from_dead_latents_only():
    sae = tiny(aux_k=2, dead_after_tokens=100)
    x = torch.randn(8, 6, dtype=torch.float64)
    with torch.no_grad():
        sae.tokens_since_fired[:] = 0
        sae.tokens_since_fired[[0, 4, 7]] = 1000  # dead
    sae.eval()  # keep the counter as set
    out = sae.loss(x)
    assert set(out.parts) == {"mse", "auxk"}
    pre = sae.pre_activation(x)
    codes = sae.activate(pre)
    residual = (x - (codes @ sae.W_dec + sae.b_dec)).detach()
    dead_pre = pre.detach().clone()
    dead_pre[:, [i for i in range(12) if i not in (0, 4, 7)]] = float("-inf")
    aux = torch.zeros_like(pre)
    for row in range(8):
        top = dead_pre[row].argsort(descending=True)[:2]
        aux[row, top] = pre[row, top].clamp_min(0)
    expected = (aux @ sae.W_dec - residual).pow(2).sum() / (residual - residual.mean(0)).pow(2).sum()
    torch.testing.assert_close(out.parts["auxk"], expected / 32)
    sae.zero_grad()
    out.parts["auxk"].backward()
    live = torch.ones(12, dtype=torch.bool)
    live[[0, 4, 7]] = False
    assert torch.all(sae.b_enc.grad[live] == 0) and sae.b_enc.grad[~live].abs().sum() > 0
    assert torch.all(sae.W_dec.grad[live] == 0)  # the residual target is detached: live latents get nothing


def test_dead_counter_advances_in_training_and_resets_on_firing():
    sae = tiny(dead_after_tokens=10)
    sae.train()
    x = torch.randn(4, 6, dtype=torch.float64)
    codes = sae.encode(x)
    sae.loss(x)
    fired = (codes > 0).any(0)
    assert torch.all(sae.tokens_since_fired[fired] == 0) and torch.all(sae.tokens_since_fired[~fired] == 4)
    sae.loss(x)
    sae.loss(x)
    assert torch.equal(sae.dead, ~fired)  # 12 >= 10 silent inputs


@pytest.mark.parametrize("kwargs, message", [
    (dict(k=0), "k must be an integer in"), (dict(k=13), "k must be an integer in"),
    (dict(num_latents=0), "num_latents must be a positive integer"), (dict(aux_k=-1), "aux_k must be >= 0"),
])
def test_bad_topk_settings_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TopKSAE(**{"d_in": 6, "num_latents": 12, "k": 3, **kwargs})


def test_wrong_input_width_is_named():
    with pytest.raises(ValueError, match=r"expects inputs \(n, 6\), got \(3, 5\)"):
        tiny().encode(torch.randn(3, 5, dtype=torch.float64))
