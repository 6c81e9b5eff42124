"""Linear probing of a frozen encoder with MAE's protocol.

Features are the encoder's pooled outputs, extracted once without augmentation. The classifier is
MAE's ``BatchNorm1d(affine=False, eps=1e-6)`` followed by a ``Linear`` layer initialised with
``trunc_normal(std=0.01)``, trained with SGD (momentum 0.9, no weight decay), linear warmup and
cosine decay, ``lr = base_lr × batch / 256``.

Deviations from MAE, and why: MAE uses LARS because it probes with batches of 16384; with the
small batches of small datasets plain SGD behaves the same (LARS's trust ratio is near one for a
single linear layer behind BatchNorm). MAE also augments during probing; training on cached
features without augmentation is the common cheap variant and is what we report.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from vtrep.optim.schedule import WarmupCosine


class LinearProbe(nn.Module):
    """``BatchNorm1d`` without affine parameters, then ``Linear``: ``(B, D) -> (B, classes)``."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(dim, affine=False, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(features))


@dataclass
class ProbeResult:
    top1: float
    train_top1: float
    num_train: int
    num_eval: int


@torch.no_grad()
def extract_features(encoder: nn.Module, loader: DataLoader, device: str | torch.device = "cpu"
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled features ``(n, D)`` and labels ``(n,)`` of every clip in ``loader``."""
    encoder = encoder.to(device).eval()
    features, labels = [], []
    for video, label in loader:
        features.append(encoder(video.to(device)).float().cpu())
        labels.append(torch.as_tensor(label))
    if not features:
        raise ValueError("the feature loader yielded no clips")
    return torch.cat(features), torch.cat(labels).long()


def accuracy(probe: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    probe.eval()
    with torch.no_grad():
        return (probe(x).argmax(dim=1) == y).float().mean().item()


def train_linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, num_classes: int, epochs: int = 100,
                       batch_size: int = 64, base_lr: float = 0.1, warmup_epochs: int = 10,
                       seed: int = 0) -> LinearProbe:
    """The probe trained on ``train_x (n, D)``: same seed, same inputs → same weights."""
    if train_x.shape[0] < 2:
        raise ValueError(f"need at least 2 training clips for a probe (BatchNorm), got {train_x.shape[0]}")
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = LinearProbe(train_x.shape[1], num_classes)
    batch_size = min(batch_size, train_x.shape[0])
    steps_per_epoch = train_x.shape[0] // batch_size
    optimizer = torch.optim.SGD(probe.parameters(), lr=base_lr * batch_size / 256, momentum=0.9, weight_decay=0.0)
    total = epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, WarmupCosine(total, min(total, warmup_epochs * steps_per_epoch)))
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        probe.train()
        order = torch.randperm(train_x.shape[0], generator=generator)
        for step in range(steps_per_epoch):
            idx = order[step * batch_size:(step + 1) * batch_size]
            loss = loss_fn(probe(train_x[idx]), train_y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    return probe.eval()


def fit_linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, eval_x: torch.Tensor, eval_y: torch.Tensor,
                     num_classes: int, epochs: int = 100, batch_size: int = 64, base_lr: float = 0.1,
                     warmup_epochs: int = 10, seed: int = 0) -> ProbeResult:
    """Train the probe on ``train_x (n, D)`` and report top-1 on ``eval_x``."""
    probe = train_linear_probe(train_x, train_y, num_classes, epochs, batch_size, base_lr, warmup_epochs, seed)
    return ProbeResult(accuracy(probe, eval_x, eval_y), accuracy(probe, train_x, train_y),
                       train_x.shape[0], eval_x.shape[0])
