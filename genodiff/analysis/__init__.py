"""genodiff.analysis"""
