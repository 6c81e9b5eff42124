"""SAE metrics, each with its definition in its module's docstring.

- :mod:`~vtrep.sae.metrics.quality`: reconstruction and sparsity (L0, MSE, FVU, cosine, dead / dense latents)
  and planted-dictionary recovery.
- :mod:`~vtrep.sae.metrics.absorption`: feature absorption and splitting against a planted parent/child dictionary.
"""

from vtrep.sae.metrics.quality import SAEMetrics, dictionary_recovery
from vtrep.sae.metrics.absorption import absorption_metrics

__all__ = ["SAEMetrics", "dictionary_recovery", "absorption_metrics"]
