"""vtrep: self-supervised representation learning on video and time series.

Axis vocabulary used in every docstring:
``B`` batch · ``C`` channels · ``T`` frames or timesteps · ``H W`` height, width ·
``t h w`` token grid · ``N`` tokens (``Nv`` visible, ``Nm`` masked) · ``D`` width ·
``P`` patch length (pixels per patch times channels) · ``K`` SAE latents · ``k`` active latents.

Importing the package does nothing but define the version; import submodules for the API.
"""

__version__ = "0.1.0"
