"""Sparse autoencoders on frozen encoder features: one shared base, one file per variant."""

from vtrep.sae.abstopk import AbsTopKSAE
from vtrep.sae.archetypal import ArchetypalSAE
from vtrep.sae.atm import ATMSAE
from vtrep.sae.base import SAEOutput, SparseAutoencoder, geometric_median
from vtrep.sae.batchtopk import BatchTopKSAE
from vtrep.sae.jumprelu import JumpReLUSAE
from vtrep.sae.matryoshka import MatryoshkaSAE
from vtrep.sae.metrics import SAEMetrics, dictionary_recovery
from vtrep.sae.relu_l1 import ReLUL1SAE
from vtrep.sae.topk import TopKSAE

__all__ = ["SAEOutput", "SparseAutoencoder", "TopKSAE", "BatchTopKSAE", "JumpReLUSAE", "ReLUL1SAE", "MatryoshkaSAE",
           "AbsTopKSAE", "ArchetypalSAE", "ATMSAE", "SAEMetrics", "dictionary_recovery", "geometric_median"]
