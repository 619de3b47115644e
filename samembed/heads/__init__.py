"""Heads trained on cached embeddings; each module registers one or two."""

from . import knn, logreg, pooled, sam_conv, sam_vit, scratch  # noqa: F401  (registration)
from . import seg_conv, seg_vit, unet  # noqa: F401  (registration: segmentation)
from .registry import HEADS, SEGMENTATION_HEADS, Head, available_heads, get_head, register_head

__all__ = ["HEADS", "Head", "SEGMENTATION_HEADS", "available_heads", "get_head", "register_head"]
