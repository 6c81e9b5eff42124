"""Sparse autoencoders on frozen encoder features: one shared base, one file per variant."""

from vtrep.sae.base import SAEOutput, SparseAutoencoder, geometric_median
from vtrep.sae.topk import TopKSAE

__all__ = ["SAEOutput", "SparseAutoencoder", "TopKSAE", "geometric_median"]
