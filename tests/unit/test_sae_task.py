"""SAE metrics against their definitions, and SAETask training on a planted dictionary through Lightning."""

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from datamodules.features.planted import planted_activations
from vtrep.sae import SAEMetrics, TopKSAE, dictionary_recovery
from vtrep.tasks import SAETask


def test_metrics_follow_their_stated_definitions_across_batches():
    torch.manual_seed(0)
    x = torch.randn(10, 4) + 3.0  # a large mean: FVU is relative to the variance, not to ||x||^2
    x_hat = x + 0.1 * torch.randn(10, 4)
    codes = torch.zeros(10, 5)
    codes[:, 0] = 1.0  # fires on every input: dense
    codes[:3, 1] = 2.0  # 30% of inputs: dense at threshold 0.1
    codes[0, 2] = 1.0  # 10%: not above the threshold
    metrics = SAEMetrics(5)
    metrics.update(x[:4], x_hat[:4], codes[:4])
    metrics.update(x[4:], x_hat[4:], codes[4:])
    got = metrics.compute()
    fvu = ((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    assert got["fvu"] == pytest.approx(float(fvu), rel=1e-6)
    assert got["explained_variance"] == pytest.approx(1 - float(fvu), rel=1e-6)
    assert got["mse"] == pytest.approx(float(((x - x_hat) ** 2).mean()), rel=1e-6)
    assert got["cosine"] == pytest.approx(float(torch.cosine_similarity(x, x_hat, dim=1).mean()), rel=1e-6)
    assert got["l0"] == pytest.approx(1.4)
    assert got["dead_fraction"] == pytest.approx(2 / 5) and got["dense_fraction"] == pytest.approx(2 / 5)
    with pytest.raises(ValueError, match="no inputs seen"):
        SAEMetrics(5).compute()


def test_dictionary_recovery_is_one_for_the_atoms_and_low_for_noise():
    _, atoms = planted_activations(10, d=32, num_atoms=20, active=2)
    assert dictionary_recovery(atoms[torch.randperm(20)] * 3, atoms) == pytest.approx(1.0)
    assert dictionary_recovery(torch.randn(20, 32), atoms) < 0.8


def test_sae_task_recovers_a_planted_dictionary_and_keeps_unit_decoder_rows(tmp_path):
    x, atoms = planted_activations(8192, d=16, num_atoms=32, active=3, seed=0)
    torch.manual_seed(0)
    task = SAETask(TopKSAE(16, 64, k=3, dead_after_tokens=4096), lr=3e-3)
    train = DataLoader(TensorDataset(x[:6144]), batch_size=256, shuffle=True)
    val = DataLoader(TensorDataset(x[6144:]), batch_size=1024)
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(task, train, val)
    assert bool(task.initialised)
    from vtrep.sae.io import load_sae

    exported = load_sae(tmp_path / "sae")  # written at the end of fit, input scale folded
    torch.testing.assert_close(exported(x[:50]), task.sae.eval()(x[:50]), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(task.sae.W_dec.norm(dim=1), torch.ones(64))
    logged = trainer.callback_metrics
    assert logged["val/l0"] <= 3.0 and logged["val/fvu"] < 0.2
    assert dictionary_recovery(task.sae.W_dec, atoms) > 0.95


def test_sae_task_names_a_bad_batch():
    task = SAETask(TopKSAE(4, 8, k=2))
    with pytest.raises(ValueError, match="SAE batches are \\(n, d\\) feature vectors, got shape \\(2, 3, 4\\)"):
        task.training_step(torch.randn(2, 3, 4), 0)


def test_density_report_is_drawn_each_validation_and_sent_to_the_logger(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    from vtrep.reports.sae_density import firing_density_image

    logged = []

    class ImageLogger(CSVLogger):  # takes images as WandbLogger does
        def log_image(self, key, images, step):
            logged.append((key, tuple(images[0].shape), step))

    x, _ = planted_activations(1024, d=8, num_atoms=16, active=2, seed=0)
    task = SAETask(TopKSAE(8, 32, k=2), lr=1e-3)
    logger = ImageLogger(tmp_path, name="sae")
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=logger, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(task, DataLoader(TensorDataset(x[:768]), batch_size=128), DataLoader(TensorDataset(x[768:]), 256))
    pictures = sorted((tmp_path / "sae" / "version_0" / "sae_reports").glob("density_step_*.png"))
    assert [p.name for p in pictures] == ["density_step_0000006.png", "density_step_0000012.png"]
    assert [(key, step) for key, _, step in logged] == [("val/latent_density", 6), ("val/latent_density", 12)]
    assert logged[0][1][0] == 3
    # the dead bar: a latent that never fired shows up in red, on the left of the axis
    image = firing_density_image(torch.tensor([0, 0, 5, 50]), 100)
    red = (image[0] > 0.7) & (image[1] < 0.3) & (image[2] < 0.3)
    assert red.any() and red.nonzero()[:, 1].float().mean() < image.shape[2] / 2
    with pytest.raises(ValueError, match="count must be a positive number of inputs, got 0"):
        firing_density_image(torch.tensor([1]), 0)
