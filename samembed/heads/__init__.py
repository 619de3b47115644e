"""Heads trained on cached embeddings; each module registers one or two."""

from . import knn, logreg, pooled, sam_conv, sam_vit  # noqa: F401  (registration)
from .registry import HEADS, Head, available_heads, get_head, register_head

__all__ = ["HEADS", "Head", "available_heads", "get_head", "register_head"]
