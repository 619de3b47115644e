"""``samembed export --format geoparquet``: one row per usable image or chip, every pooled vector
as a fixed-size list column, and for georeferenced data the footprint as WKB in ``geometry``
with GeoParquet 1.1 file metadata (https://geoparquet.org/releases/v1.1.0/: PROJJSON CRS, a
``bbox`` covering column). Non-georeferenced data gives plain Parquet. Written through pyarrow
one row group at a time, so memory stays bounded however many chips there are; written whole
(a temporary file, then a rename) like every output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..atomic import write_whole
from ..cache.reader import CacheGroup
from ..errors import UsageError, storage_error
from .footprints import Footprints, footprints
from .provenance import provenance, require_geo

GEOPARQUET_VERSION = "1.1.0"
DTYPES = ("float32", "float16")  # float32: the stored float16 widened exactly; float16: as stored


def export_geoparquet(group: CacheGroup, out: str | Path, *, dtype: str = "float32", require_geometry: bool = False,
                      crs: str | None = None, rows_per_group: int = 65536) -> Path:
    """Write ``group``'s usable images (:meth:`CacheGroup.usable`) to the Parquet file ``out``.
    ``dtype`` of the vectors: ``float32`` (the stored float16 widened, exactly) or ``float16`` (as
    stored). ``require_geometry`` refuses data without georeferencing; ``crs`` reprojects every
    footprint to one CRS (needed when the images lie in several)."""
    require_geo()
    if dtype not in DTYPES:
        raise UsageError(f"--dtype must be float32 or float16, not '{dtype}'")
    group.require_complete()
    out = Path(out)
    if out.exists():
        raise UsageError(f"{out} exists; remove it or choose another --out (an export never replaces a file)")
    feet = footprints(group, crs)
    if require_geometry and not feet.any:
        raise UsageError(f"{group.where} has no georeferencing ({feet.source}); drop --require-geometry for plain "
                         "Parquet without a geometry column")
    usable = np.flatnonzero(group.usable())
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return write_whole(out, lambda tmp: _write(tmp, group, usable, feet, dtype, rows_per_group))
    except OSError as err:
        raise storage_error(err, f"writing {out}") from None


def _write(path: Path, group: CacheGroup, rows: np.ndarray, feet: Footprints, dtype: str, per_group: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pooled = list(group.attrs.get("pooled", []))
    ids, labels = np.asarray(group.read("image_ids"), dtype=object), group.read("labels").astype(np.int32)
    names = np.asarray([*group.class_names, None], dtype=object)  # a label outside the classes: no name
    subsets = np.asarray(group.read("subset"), dtype=object) if "subset" in group.arrays else None
    geometry = feet.any
    schema = _schema(group, pooled, dtype, geometry, subsets is not None)
    bounds = [np.inf, np.inf, -np.inf, -np.inf]
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for start in range(0, len(rows), per_group):
            part = rows[start:start + per_group]
            label = labels[part]
            columns = {"id": pa.array(ids[part], pa.string()), "row": pa.array(part, pa.int64()),
                       "label": pa.array(label),
                       "class_name": pa.array(names[np.where((label >= 0) & (label < len(names) - 1), label, -1)],
                                              pa.string())}
            if subsets is not None:
                columns["split"] = pa.array(subsets[part], pa.string())
            for name in pooled:
                columns[name] = _vectors(group, name, part, dtype)
            if geometry:
                columns["geometry"], columns["bbox"] = _geometry(feet.corners[part], bounds)
            writer.write_table(pa.table(columns, schema=schema))
        writer.add_key_value_metadata(_metadata(group, rows, feet, dtype, bounds if geometry else None))
    group.check_generation()  # not one file from two generations of the group


def _schema(group: CacheGroup, pooled: list[str], dtype: str, geometry: bool, split: bool):
    import pyarrow as pa

    value = pa.float16() if dtype == "float16" else pa.float32()
    fields = [pa.field("id", pa.string(), False), pa.field("row", pa.int64(), False), pa.field("label", pa.int32()),
              pa.field("class_name", pa.string())]
    if split:
        fields.append(pa.field("split", pa.string()))
    fields += [pa.field(name, pa.list_(value, int(group.arrays[name].shape[1]))) for name in pooled]
    if geometry:
        fields += [pa.field("geometry", pa.binary()),
                   pa.field("bbox", pa.struct([(k, pa.float64()) for k in ("xmin", "ymin", "xmax", "ymax")]))]
    return pa.schema(fields)


def _vectors(group: CacheGroup, name: str, part: np.ndarray, dtype: str):
    """The (k, D) vectors of rows ``part`` (checked reads of whole blocks) as a fixed-size list array."""
    import pyarrow as pa

    lo, hi = int(part.min()), int(part.max()) + 1
    block = group.array(name)[lo:hi][part - lo]
    values = block.astype(np.float32) if dtype == "float32" else block.astype(np.float16)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


def _geometry(corners: np.ndarray, bounds: list[float]):
    """WKB polygons and their bounding boxes of ``corners`` (k, 4, 2) (null where NaN); widens ``bounds``."""
    import pyarrow as pa
    import shapely

    present = np.isfinite(corners).all(axis=(1, 2))
    wkb = shapely.to_wkb(shapely.polygons(np.where(present[:, None, None], corners, 0.0)))
    lo, hi = corners.min(axis=1), corners.max(axis=1)  # (k, 2)
    missing = pa.array(~present)
    boxes = pa.StructArray.from_arrays([pa.array(v) for v in (lo[:, 0], lo[:, 1], hi[:, 0], hi[:, 1])],
                                       names=["xmin", "ymin", "xmax", "ymax"], mask=missing)
    if present.any():
        bounds[:] = [min(bounds[0], lo[present, 0].min()), min(bounds[1], lo[present, 1].min()),
                     max(bounds[2], hi[present, 0].max()), max(bounds[3], hi[present, 1].max())]
    return pa.array(np.where(present, wkb, None), pa.binary()), boxes


def _metadata(group: CacheGroup, rows: np.ndarray, feet: Footprints, dtype: str, bounds) -> dict[str, str]:
    meta = {"samembed": json.dumps({
        **provenance(group), "vector_dtype": dtype,
        "vector_rule": "the stored float16 widened exactly" if dtype == "float32" else "as stored",
        "rows": int(len(rows)), "left_out": int(group.num_images - len(rows)),
        "left_out_rule": "images skipped as unreadable or blank (no data) are left out; 'row' is the cache row",
        "footprints": feet.source})}
    if bounds is not None:
        from rasterio.crs import CRS

        column = {"encoding": "WKB", "geometry_types": ["Polygon"], "bbox": [float(b) for b in bounds],
                  "covering": {"bbox": {k: ["bbox", k] for k in ("xmin", "ymin", "xmax", "ymax")}}}
        if feet.crs is not None:
            column["crs"] = CRS.from_wkt(feet.crs).to_dict(projjson=True)
        meta["geo"] = json.dumps({"version": GEOPARQUET_VERSION, "primary_column": "geometry",
                                  "columns": {"geometry": column}})
    return meta
