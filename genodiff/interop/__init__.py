"""genodiff.interop"""
