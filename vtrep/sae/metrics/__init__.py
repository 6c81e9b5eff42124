"""SAE metrics, each with its definition in its module's docstring.

- :mod:`~vtrep.sae.metrics.quality`: reconstruction and sparsity (L0, MSE, FVU, cosine, dead / dense latents)
  and planted-dictionary recovery.
- :mod:`~vtrep.sae.metrics.absorption`: feature absorption and splitting against a planted parent/child dictionary.
- :mod:`~vtrep.sae.metrics.temporal`: temporal coherence, position coding (η²), static vs dynamic scores;
  :mod:`~vtrep.sae.metrics.sparse_probing`: k-sparse probing of pooled codes (SAEBench's protocol).
"""

from vtrep.sae.metrics.quality import SAEMetrics, dictionary_recovery
from vtrep.sae.metrics.absorption import absorption_metrics
from vtrep.sae.metrics import sparse_probing, temporal  # noqa: F401

__all__ = ["SAEMetrics", "dictionary_recovery", "absorption_metrics"]
