"""Evaluation: score model behaviour on toolsft test episodes and on public benchmarks (BFCL).

Kept free of heavy imports so that scoring predictions made elsewhere needs no torch.
"""
