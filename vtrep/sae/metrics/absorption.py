"""Feature absorption and splitting against a planted parent/child dictionary (definitions below).

Absorption (Chanin et al. 2024, "A is for Absorption"; SAEBench's absorption metric): a parent concept
is present on an input, but the SAE latent that stands for it stays silent, because a latent for one of
its children has absorbed the parent direction and fires instead. Here the ground truth is known
(``datamodules.features.planted_hierarchy``): atoms ``(A, d)``, ``parent_of (A,)`` (−1 for a parent, else
the parent's atom index) and the true codes ``(n, A)`` of the evaluated rows. The SAE is given by its
decoder rows ``W_dec (K, d)`` and its codes ``(n, K)`` on those rows; ``cos(j, a)`` is the cosine between
decoder row ``j`` and atom ``a``.

- **Matching.** Atom ``a``'s latent is ``ℓ(a) = argmaxⱼ cos(j, a)`` (its best-matching decoder row).
- **Absorption.** For a parent ``p`` and an input ``n`` on which ``p`` and at least one child ``c`` of
  ``p`` are active (true code > 0), the input is *absorbed* when ``codes[n, ℓ(p)] = 0`` and some other
  latent ``j ≠ ℓ(p)`` fires (``codes[n, j] > 0``) that is aligned with an active child, ``cos(j, c) ≥
  child_cos``, and carries the parent direction, ``cos(j, p) ≥ parent_cos`` (SAEBench's reading: the
  latent that fires instead holds the parent's projection). ``absorption_rate`` is the mean over parents
  (those with at least one such input) of the absorbed fraction of their parent-with-child inputs.
- ``parent_miss_with_child`` / ``parent_miss_alone``: the same mean of the fraction where ``ℓ(p)`` is
  silent, on inputs with ``p`` and a child active / with ``p`` active and none of its children — the
  first bounds absorption from above whatever fires instead; the second is the control (a weak parent
  latent misses both, an absorbed one misses only the first).
- **Splitting.** ``latents_per_parent``: mean over parents of the number of latents with
  ``cos(j, p) ≥ split_cos``; ``split_parents``: the fraction of parents with more than one.
- **Recovery**, :func:`~vtrep.sae.metrics.quality.dictionary_recovery` on the parent atoms and on the
  child atoms separately: ``parent_recovery``, ``child_recovery``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vtrep.sae.metrics.quality import dictionary_recovery


def _mean_rate(hits: torch.Tensor, cases: torch.Tensor) -> float:
    """Mean over columns with at least one case of ``hits/cases`` (``nan`` when no column has one)."""
    counted = cases.sum(0)
    seen = counted > 0
    if not bool(seen.any()):
        return float("nan")
    return float(((hits & cases).sum(0)[seen].double() / counted[seen]).mean())


@torch.no_grad()
def absorption_metrics(codes: torch.Tensor, decoder: torch.Tensor, true_codes: torch.Tensor, atoms: torch.Tensor,
                       parent_of: torch.Tensor, parent_cos: float = 0.3, child_cos: float = 0.3,
                       split_cos: float = 0.8) -> dict[str, float]:
    """The module docstring's metrics of an SAE with ``decoder (K, d)`` and ``codes (n, K)`` on rows whose true
    codes are ``true_codes (n, A)`` over ``atoms (A, d)`` with ``parent_of (A,)``."""
    if codes.shape[0] != true_codes.shape[0] or len({true_codes.shape[1], atoms.shape[0], parent_of.shape[0]}) != 1:
        raise ValueError(f"codes {tuple(codes.shape)}, true_codes {tuple(true_codes.shape)}, atoms "
                         f"{tuple(atoms.shape)} and parent_of {tuple(parent_of.shape)} do not match")
    decoder, true_codes, atoms, parent_of = (t.detach().cpu() for t in (decoder, true_codes, atoms, parent_of))
    parents = (parent_of < 0).nonzero().flatten()
    children = (parent_of >= 0).nonzero().flatten()
    cos = F.normalize(atoms.double(), dim=1) @ F.normalize(decoder.double(), dim=1).t()  # (A, K)
    best = cos.argmax(dim=1)
    column = torch.full((len(parent_of),), -1, dtype=torch.long)
    column[parents] = torch.arange(len(parents))
    child_parent = column[parent_of[children]]  # each child's parent as a column among the parents
    to_parent = F.one_hot(child_parent, len(parents)).double()  # (C, P)

    fires = codes.detach().cpu() != 0
    parent_active = true_codes[:, parents] > 0  # (n, P)
    child_active = true_codes[:, children] > 0  # (n, C)
    parent_silent = ~fires[:, best[parents]]  # (n, P)
    carriers = (cos[children] >= child_cos) & (cos[parent_of[children]] >= parent_cos)  # (C, K)
    carriers[torch.arange(len(children)), best[parent_of[children]]] = False  # never ℓ(p) itself
    carried = (fires.double() @ carriers.t().double()) > 0  # (n, C): a carrier of that child fires
    with_child = parent_active & ((child_active.double() @ to_parent) > 0)
    absorbed = parent_silent & (((child_active & carried).double() @ to_parent) > 0)
    alone = parent_active & ~with_child

    per_parent = (cos[parents] >= split_cos).sum(dim=1)
    return {
        "absorption_rate": _mean_rate(absorbed, with_child),
        "parent_miss_with_child": _mean_rate(parent_silent, with_child),
        "parent_miss_alone": _mean_rate(parent_silent, alone),
        "latents_per_parent": float(per_parent.double().mean()),
        "split_parents": float((per_parent > 1).double().mean()),
        "parent_recovery": dictionary_recovery(decoder, atoms[parents]),
        "child_recovery": dictionary_recovery(decoder, atoms[children]),
    }
