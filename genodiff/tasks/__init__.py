"""genodiff.tasks"""
