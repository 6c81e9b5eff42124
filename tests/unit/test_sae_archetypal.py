"""Relaxed Archetypal SAE: constraint projection, effective dictionary, hand-checked loss and gradients,
k-means candidates, save/load, argument checks, and training under SAETask."""

import math

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from vtrep.sae import ArchetypalSAE, TopKSAE
from vtrep.sae.archetypal import kmeans
from vtrep.sae.io import export_saelens, import_saelens, load_sae, save_sae
from vtrep.tasks import SAETask

D, K, NC = 5, 12, 8


def fitted(**kwargs) -> tuple[ArchetypalSAE, torch.Tensor]:
    """A float64 model with scale, decoder bias and candidates fitted on a random sample."""
    torch.manual_seed(0)
    sae = ArchetypalSAE(**{"d_in": D, "num_latents": K, "k": 3, "n_candidates": NC, **kwargs}).double()
    x = torch.randn(64, D, dtype=torch.float64) * 3 + 1
    sae.fit_input_scale(x)
    sae.init_decoder_bias(x)
    sae.init_from_data(x)
    return sae, x


def adam_steps(sae, x, steps=5, lr=0.05, project=True):
    optimizer = torch.optim.Adam(sae.parameters(), lr=lr)
    for _ in range(steps):
        out = sae.loss(x)
        optimizer.zero_grad()
        out.loss.backward()
        sae.remove_parallel_gradient()
        optimizer.step()
        if project:
            sae.normalise_decoder()


def assert_row_stochastic(w):
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(dim=1), torch.ones(w.shape[0], dtype=w.dtype))


# -- constraints -----------------------------------------------------------------------------------
def test_projection_restores_row_stochastic_weights_and_bounded_relaxation():
    sae, x = fitted(delta=0.05)
    adam_steps(sae, x, steps=3, project=False)
    with torch.no_grad():
        sae.relaxation[0] = sae.relaxation[0] * (0.0125 / sae.relaxation[0].norm())  # inside the bound: kept
    w, lam = sae.archetype_weights.detach().clone(), sae.relaxation.detach().clone()
    # the raw optimiser steps leave the constraint set, so the checks below can fail
    assert (w < 0).any() and not torch.allclose(w.clamp_min(0).sum(dim=1), torch.ones(K, dtype=torch.float64))
    assert (lam.norm(dim=1) > 0.05).any()
    expected_w = w.clamp_min(0) / w.clamp_min(0).sum(dim=1, keepdim=True)
    expected_lam = lam * (0.05 / lam.norm(dim=1, keepdim=True)).clamp(max=1)
    sae.normalise_decoder()
    torch.testing.assert_close(sae.archetype_weights.detach(), expected_w)
    torch.testing.assert_close(sae.relaxation.detach(), expected_lam)
    torch.testing.assert_close(sae.relaxation.detach()[0], lam[0])
    assert_row_stochastic(sae.archetype_weights.detach())
    assert sae.relaxation.detach().norm(dim=1).max() <= 0.05 * (1 + 1e-12)


@pytest.mark.parametrize("delta", [0.0, 0.05, 1.0])
def test_constraints_hold_after_every_projected_step(delta):
    sae, x = fitted(delta=delta)
    optimizer = torch.optim.Adam(sae.parameters(), lr=0.05)
    for _ in range(6):
        sae.loss(x).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        sae.normalise_decoder()
        assert_row_stochastic(sae.archetype_weights.detach())
        assert sae.relaxation.detach().norm(dim=1).max() <= delta * (1 + 1e-12)
    assert (sae.archetype_weights.detach() > 0).sum(dim=1).gt(1).any()  # atoms did move off the one-hot start


def test_a_row_without_positive_entry_becomes_the_vertex_of_its_largest_entry():
    sae, _ = fitted()
    with torch.no_grad():
        sae.archetype_weights[2] = -torch.arange(1.0, NC + 1, dtype=torch.float64)  # largest: index 0
        sae.archetype_weights[2, 5] = -0.5
    sae.normalise_decoder()
    assert torch.equal(sae.archetype_weights[2].detach(), torch.eye(NC, dtype=torch.float64)[5])
    assert_row_stochastic(sae.archetype_weights.detach())


def test_remove_parallel_gradient_leaves_gradients_alone():
    sae, x = fitted()
    sae.loss(x).loss.backward()
    before = {name: p.grad.clone() for name, p in sae.named_parameters()}
    sae.remove_parallel_gradient()
    for name, p in sae.named_parameters():
        assert torch.equal(p.grad, before[name]), name


# -- the dictionary, loss and gradients --------------------------------------------------------------
def test_effective_dictionary_is_the_convex_combination_plus_relaxation_times_multiplier():
    sae, x = fitted()
    adam_steps(sae, x)
    with torch.no_grad():
        sae.log_multiplier.fill_(0.3)
    w, c, lam = sae.archetype_weights.detach(), sae.candidates, sae.relaxation.detach()
    assert (lam != 0).any()
    for i in range(K):
        atom = sum(w[i, j] * c[j] for j in range(NC)) + lam[i]
        torch.testing.assert_close(sae.W_dec[i].detach(), atom * math.exp(0.3))
    assert "W_dec" not in dict(sae.named_parameters())
    assert {"archetype_weights", "relaxation", "log_multiplier"} <= set(dict(sae.named_parameters()))


def test_loss_and_gradients_match_a_hand_computation():
    sae, x = fitted(aux_k=0)
    adam_steps(sae, x)  # off the initialisation: mixed W rows, non-zero relaxation, m != 0
    sae.zero_grad()
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.3)
    x = torch.randn(7, D, dtype=torch.float64) * 3 + 1
    out = sae.loss(x)
    out.loss.backward()

    p = {name: q.detach().clone().requires_grad_(True) for name, q in sae.named_parameters()}
    scale, c = sae.input_scale, sae.candidates
    pre = (x / scale - p["b_dec"]) @ p["W_enc"] + p["b_enc"]
    order = pre.detach().argsort(dim=1, descending=True)[:, :3]  # top-k by a full sort
    mask = torch.zeros_like(pre, dtype=torch.bool).scatter(1, order, True)
    codes = torch.where(mask, pre, torch.zeros_like(pre)).relu()
    atoms = (p["archetype_weights"] @ c + p["relaxation"]) * p["log_multiplier"].exp()
    mse = ((codes @ atoms + p["b_dec"] - x / scale) ** 2).mean()
    mse.backward()

    assert set(out.parts) == {"mse"}
    torch.testing.assert_close(out.loss, mse)
    torch.testing.assert_close(out.codes, codes)
    for name, q in sae.named_parameters():
        assert q.grad is not None and (q.grad != 0).any(), name
        torch.testing.assert_close(q.grad, p[name].grad, msg=name)


def test_auxk_reconstructs_through_the_effective_dictionary():
    sae, x = fitted(aux_k=2, dead_after_tokens=1)
    sae.train()
    out = sae.loss(x[:2])  # 2 inputs × k=3 leave most of the 12 latents dead
    assert "auxk" in out.parts and out.parts["auxk"] > 0
    out.parts["auxk"].backward()
    assert (sae.archetype_weights.grad != 0).any() and (sae.relaxation.grad != 0).any()


def test_encoder_is_tied_to_the_initial_dictionary():
    sae, _ = fitted()
    atoms = sae.W_dec.detach()
    # W_enc[:, i] = D_i / ‖D_i‖²: a lone input x = D_i gets pre-activation 1 on latent i
    torch.testing.assert_close(sae.W_enc.detach().t(), atoms / atoms.pow(2).sum(dim=1, keepdim=True))
    torch.testing.assert_close((atoms * sae.W_enc.detach().t()).sum(dim=1), torch.ones(K, dtype=torch.float64))
    assert not sae.relaxation.detach().any() and float(sae.log_multiplier.detach()) == 0.0


def test_initial_atoms_are_distinct_candidates_then_two_candidate_mixtures():
    sae, _ = fitted()  # K = 12 > n_c = 8
    w = sae.archetype_weights.detach()
    assert torch.equal(w[:NC], torch.eye(NC, dtype=torch.float64))
    assert ((w[NC:] > 0).sum(dim=1) == 2).all()
    assert_row_stochastic(w)
    atoms = sae.W_dec.detach()
    assert torch.cdist(atoms, atoms).add(torch.eye(K, dtype=torch.float64)).min() > 1e-6  # no duplicate atom


# -- candidates ----------------------------------------------------------------------------------------
def planted_clusters(seed=0):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[4.0, 0, 0], [-4.0, 0, 0], [0, 4.0, 0], [0, 0, -4.0]], dtype=torch.float64)
    labels = torch.arange(400) % 4
    return centres[labels] + 0.1 * torch.randn(400, 3, generator=generator, dtype=torch.float64), centres


def test_kmeans_finds_planted_cluster_centres_deterministically():
    x, centres = planted_clusters()
    torch.manual_seed(1)
    found = kmeans(x, 4, iterations=10)
    assert torch.cdist(centres, found).min(dim=1).values.max() < 0.05
    torch.manual_seed(1)
    assert torch.equal(kmeans(x, 4, iterations=10), found)


def test_candidates_are_centroids_of_the_scaled_centred_inputs():
    x, centres = planted_clusters()
    torch.manual_seed(0)
    sae = ArchetypalSAE(3, 6, k=2, n_candidates=4).double()
    sae.fit_input_scale(x)
    with torch.no_grad():
        sae.b_dec.copy_(torch.tensor([0.5, -0.25, 1.0], dtype=torch.float64))
    sae.init_candidates(x)
    expected = centres / sae.input_scale - sae.b_dec.detach()
    assert torch.cdist(expected, sae.candidates).min(dim=1).values.max() < 0.05
    assert bool(sae.candidates_fitted)


def test_init_from_data_fits_candidates_only_the_first_time():
    sae, x = fitted()
    candidates = sae.candidates.clone()
    sae.init_from_data(x * 2 + 5)
    assert torch.equal(sae.candidates, candidates)
    sae.init_candidates(x * 2 + 5)  # an explicit call refits
    assert not torch.equal(sae.candidates, candidates)


# -- saving --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("use_multiplier", [True, False])
def test_save_load_round_trip_gives_equal_outputs(use_multiplier, tmp_path):
    sae, x = fitted(use_multiplier=use_multiplier)
    sae = sae.float()
    adam_steps(sae, x.float())
    sae.eval()
    scale = float(sae.input_scale)
    assert scale != 1.0
    save_sae(sae, tmp_path / "sae")
    loaded = load_sae(tmp_path / "sae")
    assert type(loaded) is ArchetypalSAE and loaded.config == sae.config and float(loaded.input_scale) == 1.0
    assert float(sae.input_scale) == scale
    probe = torch.randn(32, D) * 3 + 1
    torch.testing.assert_close(loaded.encode(probe), sae.encode(probe), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loaded(probe), sae(probe), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loaded.relaxation, sae.relaxation)  # folding leaves Λ (and its bound) alone


def test_saelens_export_is_the_effective_topk_dictionary(tmp_path):
    sae, x = fitted()
    sae = sae.float()
    adam_steps(sae, x.float())
    sae.eval()
    loaded = import_saelens(export_saelens(sae, tmp_path / "saelens"))
    assert type(loaded) is TopKSAE
    probe = torch.randn(32, D) * 3 + 1
    torch.testing.assert_close(loaded(probe), sae(probe), atol=1e-5, rtol=1e-5)


# -- arguments -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "name"), [
    ({"n_candidates": 0}, "n_candidates"), ({"n_candidates": -3}, "n_candidates"),
    ({"n_candidates": 2.5}, "n_candidates"), ({"n_candidates": True}, "n_candidates"),
    ({"delta": -0.1}, "delta"), ({"delta": math.nan}, "delta"), ({"delta": math.inf}, "delta"),
    ({"delta": "1"}, "delta"), ({"use_multiplier": 1}, "use_multiplier"), ({"k": 0}, "k must"),
    ({"k": True}, "k must"), ({"k": K + 1}, "k must"),
])
def test_bad_arguments_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ArchetypalSAE(D, K, **{"k": 3, **kwargs})


def test_too_small_a_sample_and_bad_iterations_are_refused():
    sae = ArchetypalSAE(D, K, k=3, n_candidates=NC)
    with pytest.raises(ValueError, match="n_candidates=8"):
        sae.init_candidates(torch.randn(NC - 1, D))
    with pytest.raises(ValueError, match="iterations"):
        sae.init_candidates(torch.randn(NC, D), iterations=-1)
    with pytest.raises(ValueError, match=f"expects inputs \\(n, {D}\\)"):
        sae.init_candidates(torch.randn(NC, D + 1))


def test_using_the_model_before_candidates_are_set_says_so():
    sae = ArchetypalSAE(D, K, k=3, n_candidates=NC)
    for use in (lambda: sae.encode(torch.randn(2, D)), lambda: sae.loss(torch.randn(2, D)), lambda: sae.W_dec):
        with pytest.raises(RuntimeError, match="init_candidates"):
            use()


def test_config_rebuilds_the_model():
    sae = ArchetypalSAE(D, K, k=3, n_candidates=NC, delta=0.5, use_multiplier=False, aux_k=1)
    assert sae.config == {"d_in": D, "num_latents": K, "k": 3, "aux_k": 1, "aux_coef": 1 / 32,
                          "dead_after_tokens": 10_000_000, "n_candidates": NC, "delta": 0.5,
                          "use_multiplier": False}
    assert ArchetypalSAE(**sae.config).config == sae.config
    assert "log_multiplier" not in dict(sae.named_parameters()) and "log_multiplier" in dict(sae.named_buffers())


# -- training under SAETask ----------------------------------------------------------------------------
def test_sae_task_trains_it_and_keeps_the_constraints(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(1024, 8) @ torch.randn(8, 8) + 2.0
    task = SAETask(ArchetypalSAE(8, 16, k=4, n_candidates=32, delta=0.5), lr=1e-2)
    # the sanity validation runs before the first-batch initialisation fits the candidates: SAETask skips it
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(task, DataLoader(TensorDataset(x[:768]), batch_size=128, shuffle=True),
                DataLoader(TensorDataset(x[768:]), batch_size=256))
    sae = task.sae
    assert bool(task.initialised) and bool(sae.candidates_fitted)
    assert_row_stochastic(sae.archetype_weights.detach())
    assert sae.relaxation.detach().norm(dim=1).max() <= 0.5 * (1 + 1e-6)
    assert (sae.relaxation.detach() != 0).any()  # the relaxation was trained
    logged = trainer.callback_metrics
    assert logged["val/l0"] <= 4.0 and logged["val/fvu"] < 0.5
