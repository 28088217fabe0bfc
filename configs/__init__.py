"""Hydra configs, shipped inside the wheel as the package ``genodiff.configs``."""
