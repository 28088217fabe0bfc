"""Dataset manifests, shipped inside the wheel as the package ``genodiff.data_manifests``."""
