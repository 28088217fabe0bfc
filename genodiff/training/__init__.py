"""genodiff.training"""
