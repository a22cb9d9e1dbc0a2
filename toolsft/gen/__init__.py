"""Schema-driven staged data: sampling, stage generators, augmentation, verification, writers.

Never imports torch: generation runs on any laptop in seconds.
"""
