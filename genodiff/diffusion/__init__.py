"""genodiff.diffusion"""
