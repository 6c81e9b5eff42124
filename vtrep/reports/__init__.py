"""Pictures a researcher looks at: reconstruction grids, mask views."""

from vtrep.reports.recon_grid import masked_pixels, reconstruction_grid, save_grid

__all__ = ["reconstruction_grid", "masked_pixels", "save_grid"]
