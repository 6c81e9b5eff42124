"""SAE metrics, each with its definition in its module's docstring.

- :mod:`~vtrep.sae.metrics.quality`: reconstruction and sparsity (L0, MSE, FVU, cosine, dead / dense latents)
  and planted-dictionary recovery.
"""

from vtrep.sae.metrics.quality import SAEMetrics, dictionary_recovery

__all__ = ["SAEMetrics", "dictionary_recovery"]
