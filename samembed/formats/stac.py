"""``samembed export --format stac``: a STAC Collection (https://github.com/radiantearth/stac-spec,
1.1.0) for a cache group, with the embeddings extension's ``emb:`` fields
(geo-embeddings/embeddings-stac-specification, v0.0.1), and one Item per group (per scene for a
dataset of scene chips) whose ``embeddings`` asset is the Zarr group and, where one was written,
whose ``geoparquet`` asset is the GeoParquet file. Hrefs are relative, so the folder can move or
be synced to object storage beside the cache; a cache on object storage is referenced by URL."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..atomic import write_whole
from ..cache.reader import CacheGroup
from ..errors import UsageError, storage_error
from .footprints import footprints
from .geoemb import geoemb_attributes
from .provenance import provenance, require_geo

STAC_VERSION = "1.1.0"
EMB_EXTENSION = "https://stac-extensions.github.io/embeddings/v0.0.1/schema.json"
PROCESSING_EXTENSION = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
ZARR_TYPE = "application/vnd+zarr"
PARQUET_TYPE = "application/vnd.apache.parquet"


def write_stac(group: CacheGroup, out: str | Path, geoparquet: str | Path | None = None) -> Path:
    """Write ``out/collection.json`` and the Items (``out/<item>.json``); returns the collection's path."""
    require_geo()
    group.require_complete()
    out = Path(out)
    if (out / "collection.json").exists():
        raise UsageError(f"{out / 'collection.json'} exists; remove it or choose another --out (an export never "
                         "replaces a file)")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; STAC is a folder of JSON files: pass a folder (created if missing)")
    items = _items(group, out, Path(geoparquet) if geoparquet else None)
    collection = _collection(group, items)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for item in items:
            write_whole(out / f"{item['id']}.json", lambda tmp, item=item: tmp.write_text(json.dumps(item, indent=1)))
        return write_whole(out / "collection.json", lambda tmp: tmp.write_text(json.dumps(collection, indent=1)))
    except OSError as err:
        raise storage_error(err, f"writing {out}") from None


def _href(target: str | Path, folder: Path) -> str:
    """``target`` relative to ``folder`` for local files, else its URL."""
    if isinstance(target, Path) or "://" not in str(target):
        return Path(os.path.relpath(Path(target).resolve(), folder.resolve())).as_posix()
    return str(target)


def _items(group: CacheGroup, out: Path, geoparquet: Path | None) -> list[dict]:
    wgs84 = footprints(group, "EPSG:4326") if footprints(group).any else None
    created = group.attrs.get("created") or datetime.now(timezone.utc).isoformat(timespec="seconds")
    scenes = group.read("scene") if group.attrs.get("georef") else None
    parts = {str(s): np.flatnonzero(scenes == s) for s in np.unique(scenes)} if scenes is not None \
        else {"": np.arange(group.num_images)}
    usable = group.usable()
    base = f"{group.dataset}-{group.name}".replace("@", "-").replace("+", "-")
    items = []
    for scene, rows in parts.items():
        rows = rows[usable[rows]]
        item_id = base if not scene else f"{base}-{Path(scene).stem}"
        geometry, bbox = _extent(wgs84.corners[rows] if wgs84 is not None else None)
        assets = {"embeddings": {"href": _href(group.store if not isinstance(group.store, Path) else
                                               group.store / group.name, out)
                                 + ("" if isinstance(group.store, Path) else f"/{group.name}"),
                                 "type": ZARR_TYPE, "roles": ["data"],
                                 "title": f"cache group {group.name} of {group.store_name}"}}
        if geoparquet is not None:
            assets["geoparquet"] = {"href": _href(geoparquet, out), "type": PARQUET_TYPE, "roles": ["data"]}
        items.append({
            "type": "Feature", "stac_version": STAC_VERSION, "stac_extensions": [EMB_EXTENSION, PROCESSING_EXTENSION],
            "id": item_id, "geometry": geometry, **({"bbox": bbox} if bbox else {}),
            "properties": {"datetime": created, "processing:datetime": created,
                           "emb:runtime_parameters": {**provenance(group), "images": int(len(rows)),
                                                      **({"scene": scene} if scene else {})}},
            "links": [{"rel": "collection", "href": "./collection.json", "type": "application/json"},
                      {"rel": "parent", "href": "./collection.json", "type": "application/json"},
                      {"rel": "root", "href": "./collection.json", "type": "application/json"}],
            "assets": assets, "collection": base,
        })
    return items


def _extent(corners: np.ndarray | None) -> tuple[dict | None, list[float] | None]:
    """The GeoJSON polygon of the bounding box of ``corners`` (k, 4, 2) in WGS 84, and its bbox."""
    if corners is None or not np.isfinite(corners).all(axis=(1, 2)).any():
        return None, None
    present = corners[np.isfinite(corners).all(axis=(1, 2))]
    x0, y0 = present[..., 0].min(), present[..., 1].min()
    x1, y1 = present[..., 0].max(), present[..., 1].max()
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    return {"type": "Polygon", "coordinates": [[[float(x), float(y)] for x, y in ring]]}, \
        [float(x0), float(y0), float(x1), float(y1)]


def _collection(group: CacheGroup, items: list[dict]) -> dict:
    emb = geoemb_attributes(group)
    boxes = [item["bbox"] for item in items if "bbox" in item]
    spatial = [[min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
                max(b[3] for b in boxes)]] if boxes else [[-180.0, -90.0, 180.0, 90.0]]
    created = items[0]["properties"]["datetime"]
    return {
        "type": "Collection", "stac_version": STAC_VERSION, "stac_extensions": [EMB_EXTENSION],
        "id": items[0]["collection"],
        "description": f"Embeddings of {group.dataset} by {group.name} (samembed cache group)",
        "license": "other",
        "extent": {"spatial": {"bbox": spatial}, "temporal": {"interval": [[created, created]]}},
        "emb:type": emb["geoemb:type"], "emb:dimensions": emb["geoemb:dimensions"],
        "data_type": emb["geoemb:data_type"], **({"gsd": emb["geoemb:gsd"]} if "geoemb:gsd" in emb else {}),
        "emb:chip_layout": _stac_layout(emb["geoemb:chip_layout"]),
        "item_assets": {"embeddings": {"type": ZARR_TYPE, "roles": ["data"]}},
        "links": [{"rel": "root", "href": "./collection.json", "type": "application/json"},
                  {"rel": "emb:model", "href": emb["geoemb:model"]},
                  {"rel": "emb:source-data", "href": emb["geoemb:source_data"][0]}]
        + [{"rel": "item", "href": f"./{item['id']}.json", "type": "application/geo+json"} for item in items],
    }


def _stac_layout(layout: dict) -> dict:
    """The Zarr convention's chip layout in the STAC extension's terms (``irregular`` is a
    ``variable_grid`` there)."""
    kind = {"regular_grid": "regular_grid", "irregular": "variable_grid"}[layout["layout_type"]]
    return {**layout, "layout_type": kind}
