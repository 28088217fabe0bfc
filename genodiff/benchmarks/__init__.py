"""genodiff.benchmarks"""
