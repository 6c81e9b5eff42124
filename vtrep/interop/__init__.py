"""Checkpoints of other code bases in and out of vtrep models, with proof that nothing changed.

* :mod:`~vtrep.interop.videomae_hf` — Hugging Face ``transformers`` VideoMAE (import and export).
* :mod:`~vtrep.interop.videomae_original` — the original MCG-NJU VideoMAE / VideoMAE V2 ``.pth`` layout.
* :mod:`~vtrep.interop.checkpoint` — safe file reading and the :class:`ConversionReport` both return.
"""

from vtrep.interop.checkpoint import ConversionReport
from vtrep.interop.videomae_hf import (
                                       config_from_hf,
                                       hf_to_vtrep,
                                       import_hf_videomae,
                                       pixel_target_from_hf,
                                       save_hf_videomae,
                                       to_hf_pixels,
                                       vtrep_to_hf,
)
from vtrep.interop.videomae_original import (
                                       config_from_original,
                                       import_original_videomae,
                                       original_to_vtrep,
)
from vtrep.io.torch_files import read_state_dict

__all__ = ["ConversionReport", "read_state_dict", "config_from_hf", "hf_to_vtrep", "import_hf_videomae",
           "pixel_target_from_hf", "save_hf_videomae", "to_hf_pixels", "vtrep_to_hf",
           "config_from_original", "import_original_videomae", "original_to_vtrep"]
