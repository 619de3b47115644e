"""The cache group as the ecosystem reads it without samembed: the ``geoemb:`` convention's
attributes (geo-embeddings/embeddings-zarr-convention, v1; registered under ``zarr_conventions``
as the convention asks) and, for xarray, coordinate arrays: ``image`` (the image ids, the
dimension coordinate of every per-image array) and ``class_name``, with ``labels`` and
``class_name`` named in each array's ``coordinates`` attribute (CF's rule, which xarray decodes).
Scene groups add the GeoZarr ``proj:`` and ``spatial:`` attributes of their scene's grid.

:func:`upgrade_group` adds all of it to a group in place, metadata and two small arrays only: the
stored embeddings and the group's signature are never touched, so run ids and resumes are as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..cache.integrity import compressors, writable
from ..cache.layout import COMPRESSOR
from ..cache.reader import CacheGroup
from ..cache.store import writer_lock
from ..version import __version__
from .provenance import model_url

CONVENTION = {
    "schema_url": "https://raw.githubusercontent.com/geo-embeddings/embeddings-zarr-convention/refs/tags/v1/schema.json",
    "spec_url": "https://github.com/geo-embeddings/embeddings-zarr-convention/blob/v1/README.md",
    "uuid": "61c12cc5-0e28-4056-999a-480cf3fb7e4c",
    "name": "geoemb:",
    "description": "Geoembeddings convention for geospatial embedding arrays with model provenance",
}
COORDINATES = ("image", "class_name")  # arrays the upgrade adds
NOT_PER_IMAGE = ("done",)  # per-image arrays that are bookkeeping, not data: no coordinates attribute


def geoemb_attributes(group: CacheGroup) -> dict:
    """The group attributes of the ``geoemb:`` convention (and GeoZarr's for a one-CRS scene)."""
    attrs, signature = group.attrs, group.signature
    encoder = signature.get("encoder", {})
    pooled = list(attrs.get("pooled", []))
    dims = int(group.arrays[pooled[0]].shape[1]) if pooled else int(group.arrays["grid"].shape[1])
    root = Path(attrs.get("data_root", ".")).resolve()
    out = {
        "zarr_conventions": [CONVENTION],
        "geoemb:type": "chip",
        "geoemb:dimensions": dims,
        "geoemb:model": model_url(encoder.get("encoder")),
        "geoemb:source_data": [root.as_uri()],
        "geoemb:data_type": str(signature.get("dtype", "float16")),
        "geoemb:chip_layout": _chip_layout(group),
        "geoemb:build_version": f"samembed {__version__}",
    }
    georef = attrs.get("georef") or {}
    gsd = {abs(float(s["transform"][0])) for s in georef.values() if s.get("crs")}
    if len(gsd) == 1:
        out["geoemb:gsd"] = gsd.pop()
    crs = {s["crs"] for s in georef.values() if s.get("crs")}
    if len(crs) == 1:
        from rasterio.crs import CRS

        code = CRS.from_wkt(next(iter(crs))).to_epsg()
        out.update({"proj:code": f"EPSG:{code}"} if code else {"proj:wkt2": next(iter(crs))})
        if len(georef) == 1:  # one scene: its grid
            scene = next(iter(georef.values()))
            out.update({"spatial:dimensions": ["y", "x"], "spatial:transform": list(scene["transform"][:6]),
                        "spatial:shape": [int(scene["height"]), int(scene["width"])]})
    return out


def _chip_layout(group: CacheGroup) -> dict:
    options = group.attrs.get("dataset_options", {})
    if group.attrs.get("georef") and options.get("chip_size"):
        size = int(options["chip_size"])
        stride = size - int(options.get("chip_overlap") or 0)
        return {"layout_type": "regular_grid", "chip_size": [size, size], "stride": [stride, stride]}
    hw = group.read("orig_hw")
    stored = hw[group.images_done()] if len(hw) else hw
    h, w = (int(v) for v in (stored.max(axis=0) if len(stored) else (1, 1)))
    return {"layout_type": "irregular", "chip_size": [max(h, 1), max(w, 1)]}


def is_upgraded(group: CacheGroup) -> bool:
    return ("geoemb:type" in group.attrs and all(name in group.arrays for name in COORDINATES)
            and not _dimension_renames(group.arrays))


def _dimension_renames(arrays: dict) -> dict[str, tuple[str, ...]]:
    """New dimension names for arrays whose dimension shares a name with another array's of
    another size (``trunk``'s 768 channels beside the map's 256, the mask's 4G rows beside the
    map's G): xarray needs one size per name. The grid map keeps its names; others get
    ``<array>_<dim>``."""
    sizes: dict[str, int] = {}
    renames = {}
    for name in sorted(arrays, key=lambda n: (n != "grid", n)):
        dims = tuple(arrays[name].metadata.dimension_names or ())
        new = tuple(d if sizes.setdefault(d, size) == size else f"{name}_{d}"
                    for d, size in zip(dims, arrays[name].shape))
        if new != dims:
            renames[name] = new
    return renames


def upgrade_group(group: CacheGroup) -> bool:
    """Add the convention's attributes and the xarray coordinates to ``group`` (a local or
    object-store cache) in place, under the store's writer lock; ``False`` if it had them."""
    if is_upgraded(group):
        return False
    location = group.location
    dataset = group.store_name.removesuffix(".zarr")
    attrs = geoemb_attributes(group)
    ids, labels, names = group.read("image_ids"), group.read("labels"), group.class_names
    class_name = np.array([names[int(v)] if 0 <= v < len(names) else "" for v in labels], dtype=object)
    with writer_lock(location, dataset, "adding the geoemb: attributes"):
        target = location.open_store(dataset, mode="a", path=group.name)
        n = len(ids)
        for name, values in (("image", np.asarray(ids, dtype=object)), ("class_name", class_name)):
            if name not in target:
                target.create_array(name, shape=(n,), dtype=str, chunks=(max(1, min(n, 1 << 16)),),
                                    dimension_names=("image",), compressors=compressors(COMPRESSOR, True),
                                    fill_value="")
                writable(target[name])[:] = values
        for name, dims in _dimension_renames(dict(target.arrays())).items():
            _rename_dimensions(target[name], dims)
        for name, array in target.arrays():
            dims = array.metadata.dimension_names or ()
            if dims and dims[0] == "image" and name not in (*COORDINATES, *NOT_PER_IMAGE, "labels"):
                array.attrs["coordinates"] = "labels class_name"
        target.attrs.update(attrs)
    return True


def _rename_dimensions(array, dims: tuple[str, ...]) -> None:
    """Rewrite ``array``'s metadata with ``dims`` as its dimension names (metadata only)."""
    import dataclasses

    from zarr.core.sync import sync

    sync(array._async_array._save_metadata(dataclasses.replace(array.metadata, dimension_names=dims),
                                           ensure_parents=False))
