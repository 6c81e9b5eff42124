"""Synthetic SAE training data with a known answer: activations built from a planted sparse dictionary.

``x = c · A + σ·noise``: ``A (num_atoms, d)`` random unit atoms, each row of ``c`` has ``active``
non-zero entries at random atoms with magnitudes uniform in [0.5, 1.5] (atoms used with a Zipf-like
frequency when ``zipf`` > 0, as real features are). An SAE that recovers ``A`` has decoder rows
close to every atom (:func:`vtrep.sae.metrics.dictionary_recovery`).
"""

from __future__ import annotations

import torch


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
