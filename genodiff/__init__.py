"""genodiff: masked diffusion language models (MDLM) for DNA and text."""

__version__ = "0.1.0"
