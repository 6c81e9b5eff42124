"""Planted hierarchical dictionary: parent and child atoms where a child never appears without its parent.

The synthetic analogue of feature absorption (Chanin et al. 2024, "A is for Absorption"): a parent concept
("starts with S") is present whenever one of its children ("short", "snake") is. Atoms are random unit
vectors in ``d``: ``num_parents`` parents first, then ``children_per_parent`` children of each parent
(atom ``num_parents + p·children_per_parent + j`` is child ``j`` of parent ``p``). Each row:

1. ``active_parents`` distinct parents are drawn (Zipf-like frequencies when ``zipf`` > 0, parent ``p``
   with weight ``(p + 1)^−zipf``);
2. each drawn parent, independently with probability ``child_prob``, also activates one of its children
   (uniformly) — so child ⇒ parent on every row, and a parent without a child also occurs;
3. every active atom gets a magnitude uniform in [0.5, 1.5]; ``x = c · A + σ·noise``.

The ground truth travels with the data: ``atoms (A, d)``, ``codes (n, A)`` (the true magnitudes, 0 where
inactive) and ``parent_of (A,)`` (−1 for a parent, the parent's atom index for a child);
:mod:`vtrep.sae.metrics.absorption` measures absorption and splitting against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from datamodules.features.planted import HeldOutRows


@dataclass
class PlantedHierarchy:
    """Rows and their ground truth: ``x (n, d)``, ``codes (n, A)``, ``atoms (A, d)``, ``parent_of (A,)`` long."""

    x: torch.Tensor
    codes: torch.Tensor
    atoms: torch.Tensor
    parent_of: torch.Tensor

    @property
    def is_parent(self) -> torch.Tensor:
        """``(A,)`` bool: the parent atoms."""
        return self.parent_of < 0


def parent_map(num_parents: int, children_per_parent: int) -> torch.Tensor:
    """``(A,)``: −1 for the ``num_parents`` parents, then each child's parent index (children grouped by parent)."""
    children = torch.arange(num_parents).repeat_interleave(children_per_parent)
    return torch.cat([torch.full((num_parents,), -1, dtype=torch.long), children])


def planted_hierarchy(num_samples: int, d: int = 64, num_parents: int = 16, children_per_parent: int = 4,
                      active_parents: int = 2, child_prob: float = 0.75, noise: float = 0.0, zipf: float = 0.0,
                      seed: int = 0) -> PlantedHierarchy:
    """Rows built from a planted parent/child dictionary (module docstring)."""
    if not 0 < active_parents <= num_parents:
        raise ValueError(f"active_parents must be in [1, num_parents={num_parents}], got {active_parents}")
    if children_per_parent < 1:
        raise ValueError(f"children_per_parent must be >= 1, got {children_per_parent}")
    if not 0 <= child_prob <= 1:
        raise ValueError(f"child_prob must be in [0, 1], got {child_prob}")
    generator = torch.Generator().manual_seed(seed)
    parent_of = parent_map(num_parents, children_per_parent)
    atoms = torch.randn(len(parent_of), d, generator=generator)
    atoms = atoms / atoms.norm(dim=1, keepdim=True)
    weights = torch.arange(1, num_parents + 1, dtype=torch.float64).pow(-zipf)
    parents = torch.multinomial(weights.expand(num_samples, -1), active_parents, replacement=False,
                                generator=generator)
    with_child = torch.rand(num_samples, active_parents, generator=generator) < child_prob
    which = torch.randint(children_per_parent, (num_samples, active_parents), generator=generator)
    children = num_parents + parents * children_per_parent + which
    codes = torch.zeros(num_samples, len(parent_of))
    codes.scatter_(1, parents, torch.rand(num_samples, active_parents, generator=generator) + 0.5)
    child_magnitudes = (torch.rand(num_samples, active_parents, generator=generator) + 0.5) * with_child
    codes.scatter_(1, children, child_magnitudes)
    x = codes @ atoms + noise * torch.randn(num_samples, d, generator=generator)
    return PlantedHierarchy(x, codes, atoms, parent_of)


class PlantedHierarchyDataModule(HeldOutRows):
    """Hierarchical planted activations for ``SAETask`` (rows as :class:`~datamodules.features.planted.PlantedRows`).

    The last ``val_fraction`` of the rows validate; ``atoms``, ``parent_of`` and ``val_codes`` (the held-out
    rows' true codes) are the ground truth for the absorption metrics.

    Args:
        num_samples, d, num_parents, children_per_parent, active_parents, child_prob, noise, zipf, seed:
            as :func:`planted_hierarchy`.
        batch_size: rows per batch (per process under DDP).
        val_fraction: share of the rows held out.
    """

    def __init__(self, num_samples: int = 8192, d: int = 64, num_parents: int = 16, children_per_parent: int = 4,
                 active_parents: int = 2, child_prob: float = 0.75, noise: float = 0.0, zipf: float = 0.0,
                 seed: int = 0, batch_size: int = 256, val_fraction: float = 0.125) -> None:
        super().__init__()
        self.save_hyperparameters()
        data = planted_hierarchy(num_samples, d, num_parents, children_per_parent, active_parents, child_prob,
                                 noise, zipf, seed)
        cut = self.hold_out(data.x, val_fraction, batch_size)
        self.atoms, self.parent_of, self.val_codes = data.atoms, data.parent_of, data.codes[cut:]
