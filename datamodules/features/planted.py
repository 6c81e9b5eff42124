"""Synthetic SAE training data with a known answer: activations built from a planted sparse dictionary.

``x = c · A + σ·noise``: ``A (num_atoms, d)`` random unit atoms, each row of ``c`` has ``active``
non-zero entries at random atoms with magnitudes uniform in [0.5, 1.5] (atoms used with a Zipf-like
frequency when ``zipf`` > 0, as real features are). An SAE that recovers ``A`` has decoder rows
close to every atom (:func:`vtrep.sae.metrics.dictionary_recovery`).
"""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.common.epoch_shuffle import shuffled_loader_kwargs


def planted_activations(num_samples: int, d: int = 64, num_atoms: int = 256, active: int = 8, noise: float = 0.0,
                        zipf: float = 0.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x (num_samples, d), atoms (num_atoms, d))``."""
    if not 0 < active <= num_atoms:
        raise ValueError(f"active must be in [1, num_atoms={num_atoms}], got {active}")
    generator = torch.Generator().manual_seed(seed)
    atoms = torch.randn(num_atoms, d, generator=generator)
    atoms = atoms / atoms.norm(dim=1, keepdim=True)
    weights = torch.arange(1, num_atoms + 1, dtype=torch.float64).pow(-zipf)
    chosen = torch.multinomial(weights.expand(num_samples, -1), active, replacement=False, generator=generator)
    magnitudes = torch.rand(num_samples, active, generator=generator) + 0.5
    codes = torch.zeros(num_samples, num_atoms).scatter_(1, chosen, magnitudes)
    x = codes @ atoms + noise * torch.randn(num_samples, d, generator=generator)
    return x, atoms


class PlantedRows(Dataset):
    """Rows of :func:`planted_activations` as ``{"features": (d,), "meta": (1,) row number}``."""

    def __init__(self, x: torch.Tensor, first_row: int = 0) -> None:
        self.x, self.first_row = x, first_row

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"features": self.x[index], "meta": torch.tensor([self.first_row + index])}


class HeldOutRows(L.LightningDataModule):
    """Shared by the planted datamodules: rows split into training and the held-out last ``val_fraction``."""

    def hold_out(self, x: torch.Tensor, val_fraction: float, batch_size: int) -> int:
        """Split ``x (n, d)``; returns the first held-out row."""
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        cut = len(x) - int(round(val_fraction * len(x)))
        self.train_set, self.val_set = PlantedRows(x[:cut]), PlantedRows(x[cut:], first_row=cut)
        self.batch_size, self.width = batch_size, x.shape[1]
        return cut

    @property
    def feature_width(self) -> int:
        """The rows' width ``d``: ``vtrep fit`` gives it to the SAE as ``d_in`` (``vtrep.cli_links``)."""
        return self.width

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, drop_last=True,
                          **shuffled_loader_kwargs(self.train_set))

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size)


class PlantedDataModule(HeldOutRows):
    """Planted-dictionary activations for ``SAETask``: a quick SAE run with a known answer, and DDP checks.

    The last ``val_fraction`` of the rows validate. Training order: :class:`~datamodules.common.epoch_shuffle.EpochShuffle`
    (under DDP Lightning splits its permutation between ranks).

    Args:
        num_samples, d, num_atoms, active, noise, zipf, seed: as :func:`planted_activations`.
        batch_size: rows per batch (per process under DDP).
        val_fraction: share of the rows held out.
    """

    def __init__(self, num_samples: int = 8192, d: int = 64, num_atoms: int = 256, active: int = 8,
                 noise: float = 0.0, zipf: float = 0.0, seed: int = 0, batch_size: int = 256,
                 val_fraction: float = 0.125) -> None:
        super().__init__()
        self.save_hyperparameters()
        x, self.atoms = planted_activations(num_samples, d, num_atoms, active, noise, zipf, seed)
        self.hold_out(x, val_fraction, batch_size)
