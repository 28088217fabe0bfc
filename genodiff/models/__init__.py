"""genodiff.models"""
