"""Experiments on cached embeddings: splits, training loops and sweeps."""
