"""genodiff.ops"""
