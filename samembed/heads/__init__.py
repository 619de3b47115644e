"""Heads trained on cached embeddings: the registry (built-in heads are listed in
:mod:`samembed.plugins` and imported when first used)."""

from .registry import Head, available_heads, get_head, heads_of, register_head

__all__ = ["Head", "available_heads", "get_head", "heads_of", "register_head"]
