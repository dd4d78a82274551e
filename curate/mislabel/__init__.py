"""Mislabel detection: cross-validated (out-of-fold) probabilities, confident learning,
embedding-neighbour agreement and training dynamics, written as ``check="mislabel"`` findings."""
