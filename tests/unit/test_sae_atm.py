"""ATMSAE: TopK base + adaptive temporal masking (EMA importance, θ = μ + c·σ, p = 1 − exp(−r(θ − I)/θ))."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch

from vtrep.io.pretrained import build_from_config
from vtrep.sae import ATMSAE, TopKSAE
from vtrep.sae.atm import mask_probability
from vtrep.sae.io import export_saelens, load_sae, save_sae


def tiny(**kwargs) -> ATMSAE:
    torch.manual_seed(0)
    return ATMSAE(**{"d_in": 6, "num_latents": 12, "k": 3, "aux_k": 0, "warmup_steps": 1, **kwargs}).double()


def test_eval_is_the_deterministic_topk_and_training_masks_only_below_k():
    sae = tiny()
    x = torch.randn(64, 6, dtype=torch.float64)
    reference = TopKSAE(6, 12, k=3, aux_k=0).double()
    reference.load_state_dict(sae.state_dict(), strict=False)
    sae.eval()
    out = sae.loss(x)
    torch.testing.assert_close(out.codes, reference.encode(x))
    torch.testing.assert_close(sae.loss(x).x_hat, out.x_hat)  # eval: no randomness
    assert int(sae.importance_updates) == 0  # statistics update only in training
    sae.train()
    torch.testing.assert_close(sae.encode(x), reference.encode(x))  # encode never masks
    for _ in range(3):
        out = sae.loss(x)
    base = reference.encode(x)
    assert ((out.codes == 0) | (out.codes == base)).all() and ((out.codes != 0) <= (base != 0)).all()
    assert out.l0 < 3.0  # past the warm-up some of the k codes are masked


def test_gradients_reach_the_encoder_and_decoder_and_decoder_rows_stay_unit():
    sae = tiny(aux_k=3, dead_after_tokens=1)
    optimizer = torch.optim.Adam(sae.parameters(), lr=0.05)
    for _ in range(4):
        out = sae.loss(torch.randn(32, 6, dtype=torch.float64))
        assert set(out.parts) <= {"mse", "auxk"}
        out.loss.backward()
        for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
            assert getattr(sae, name).grad is not None and getattr(sae, name).grad.abs().sum() > 0
        sae.remove_parallel_gradient()
        assert (sae.W_dec.grad * sae.W_dec).sum(dim=1).abs().max() < 1e-12
        optimizer.step()
        optimizer.zero_grad()
        sae.normalise_decoder()
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(12, dtype=torch.float64))
    assert "auxk" in out.parts


def test_masked_latents_get_no_gradient_from_that_input():
    sae = tiny(threshold_std=10.0, mask_rate=50.0)  # after one update nearly every latent is masked
    x = torch.randn(8, 6, dtype=torch.float64)
    sae.loss(x)
    out = sae.loss(x)
    out.loss.backward()
    silent = (out.codes == 0).all(dim=0)
    assert silent.any() and torch.all(sae.b_enc.grad[silent] == 0)


def test_statistics_follow_their_definitions():
    sae = tiny(importance_momentum=0.5)
    x = torch.randn(16, 6, dtype=torch.float64)
    centred = x - sae.b_dec.detach()
    codes = sae.encode(x).detach()
    sae.loss(x)  # first update copies the batch values
    torch.testing.assert_close(sae.magnitude_ema, codes.mean(0))
    torch.testing.assert_close(sae.frequency_ema, (codes > 0).double().mean(0))
    contribution = (codes * (centred @ sae.W_dec.detach().t())).sum(0) / centred.pow(2).sum()
    torch.testing.assert_close(sae.contribution_ema, contribution)
    first = sae.frequency_ema.clone()
    y = torch.randn(16, 6, dtype=torch.float64)
    codes_y = sae.encode(y).detach()
    sae.loss(y)
    torch.testing.assert_close(sae.frequency_ema, 0.5 * first + 0.5 * (codes_y > 0).double().mean(0))
    assert int(sae.importance_updates) == 2
    parts = [sae.magnitude_ema, sae.frequency_ema, sae.contribution_ema.clamp_min(0)]
    torch.testing.assert_close(sae.importance(), sum(p / p.mean() for p in parts) / 3)


def test_mask_probability_follows_the_stated_formula_on_hand_set_importances():
    importance = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0], dtype=torch.float64)
    mu, sigma = 1.0, math.sqrt(0.5)  # population std of the five values
    for c, r in ((1.0, 1.0), (0.5, 2.0), (-0.5, 1.0)):
        theta = mu + c * sigma
        expected = [1 - math.exp(-r * (theta - i) / theta) if i < theta else 0.0 for i in importance.tolist()]
        torch.testing.assert_close(mask_probability(importance, c, r), torch.tensor(expected, dtype=torch.float64))
    assert torch.all(mask_probability(torch.ones(4), 1.0, 1.0) == 0)  # equal importances: nothing below θ

    sae = tiny(num_latents=5, k=2, threshold_std=1.0, mask_rate=1.0, warmup_steps=3)
    with torch.no_grad():  # importance = (3·I)/3 = I when the three statistics are I / mean(I)
        for name in ("magnitude_ema", "frequency_ema", "contribution_ema"):
            getattr(sae, name).copy_(importance)
    assert torch.all(sae.mask_probabilities() == 0)  # still warming up
    sae.importance_updates.fill_(3)
    torch.testing.assert_close(sae.mask_probabilities(), mask_probability(importance, 1.0, 1.0))
    # the empirical masking rate of an always-chosen latent matches its probability
    p = sae.mask_probabilities()
    torch.manual_seed(1)
    with torch.no_grad():
        sae.W_enc.zero_()
        sae.b_enc.copy_(torch.tensor([5.0, 4.0, 0.0, 0.0, 0.0], dtype=torch.float64))  # latents 0, 1 always chosen
    sae.importance_momentum = 1.0 - 1e-12  # keep the hand-set statistics
    kept = torch.stack([sae.loss(torch.zeros(200, 6, dtype=torch.float64)).codes[:, :2] != 0 for _ in range(10)])
    torch.testing.assert_close(1 - kept.double().mean(dim=(0, 1)), p[:2], atol=0.03, rtol=0)


def test_masking_follows_the_seed():
    def run(seed):
        sae = tiny()
        torch.manual_seed(seed)
        x = torch.randn(32, 6, dtype=torch.float64)
        sae.loss(x)
        return sae.loss(x).codes

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_state_dict_config_and_saved_artefact_round_trip(tmp_path):
    sae = tiny(threshold_std=0.5, mask_rate=2.0, warmup_steps=7)
    for _ in range(3):
        sae.loss(torch.randn(16, 6, dtype=torch.float64))
    assert sae.config == {"d_in": 6, "num_latents": 12, "k": 3, "importance_momentum": 0.99, "threshold_std": 0.5,
                          "mask_rate": 2.0, "warmup_steps": 7, "aux_k": 0, "aux_coef": 1 / 32,
                          "dead_after_tokens": 10_000_000}
    rebuilt = build_from_config({"class_path": "vtrep.sae.ATMSAE", "config": sae.config})
    assert type(rebuilt) is ATMSAE and rebuilt.config == sae.config
    rebuilt.double().load_state_dict(sae.state_dict())
    for name in ("magnitude_ema", "frequency_ema", "contribution_ema", "importance_updates"):
        assert torch.equal(getattr(rebuilt, name), getattr(sae, name))
    x = torch.randn(10, 6, dtype=torch.float64)
    loaded = load_sae(save_sae(sae, tmp_path / "sae"))
    assert type(loaded) is ATMSAE and int(loaded.importance_updates) == 3
    torch.testing.assert_close(loaded.frequency_ema.double(), sae.frequency_ema, check_dtype=False)
    torch.testing.assert_close(loaded(x.float()).double(), sae.eval()(x), atol=1e-5, rtol=1e-5)
    assert export_saelens(sae, tmp_path / "lens").is_dir()  # its inference form, a SAELens topk


@pytest.mark.parametrize("kwargs, name", [({"importance_momentum": 1.0}, "importance_momentum"),
                                          ({"mask_rate": -1.0}, "mask_rate"),
                                          ({"threshold_std": float("nan")}, "threshold_std"),
                                          ({"warmup_steps": -1}, "warmup_steps")])
def test_bad_arguments_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ATMSAE(6, 12, k=3, **kwargs)


def test_sae_task_fits_atm_on_planted_hierarchy(tmp_path):
    from datamodules.features.planted_hierarchy import PlantedHierarchyDataModule
    from vtrep.tasks import SAETask

    torch.manual_seed(0)
    data = PlantedHierarchyDataModule(num_samples=2048, d=16, num_parents=4, children_per_parent=2, batch_size=128)
    task = SAETask(ATMSAE(16, 32, k=3, warmup_steps=5, dead_after_tokens=2048), lr=3e-3, density_report=False)
    trainer = L.Trainer(max_steps=40, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                        limit_val_batches=0)
    trainer.fit(task, data)
    assert int(task.sae.importance_updates) == 40
    assert task.sae.frequency_ema.sum() == pytest.approx(3.0, abs=1e-4)  # TopK fires k latents per input
    exported = load_sae(tmp_path / "sae")
    assert type(exported) is ATMSAE
    x = data.val_set.x[:20]
    torch.testing.assert_close(exported(x), task.sae.eval()(x), rtol=1e-4, atol=1e-5)
