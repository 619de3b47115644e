"""Similarity search over one cache group: "find more like these" on images, chips and map cells
(docs/search.md). :func:`search` is the library entry point; ``samembed search`` wraps it."""

from __future__ import annotations

from ..lazy import lazy_attributes

__all__ = ["search", "MapPoint", "SearchResult", "write_outputs"]

__getattr__ = lazy_attributes(__name__, {
    "search": ".api", "SearchResult": ".api", "MapPoint": ".queries", "write_outputs": ".outputs",
})
