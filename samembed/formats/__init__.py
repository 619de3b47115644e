"""Embeddings where the ecosystem reads them (docs/cache-format.md, "Interchange formats"):
GeoParquet rows (:func:`export_geoparquet`), the cache group itself made xarray-ready with the
``geoemb:`` convention (:func:`upgrade_group`), and STAC Items with the ``emb:`` extension
(:func:`write_stac`). pyarrow and shapely come with the ``geo`` extra."""

from ..lazy import lazy_attributes

__getattr__ = lazy_attributes(__name__, {
    "export_geoparquet": ".geoparquet", "upgrade_group": ".geoemb", "geoemb_attributes": ".geoemb",
    "write_stac": ".stac",
})

__all__ = ["export_geoparquet", "geoemb_attributes", "upgrade_group", "write_stac"]
