"""genodiff.data"""
