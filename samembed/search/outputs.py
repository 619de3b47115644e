"""What ``samembed search`` writes from a :class:`~samembed.search.api.SearchResult`, each file
whole (written to a temporary name, then renamed):

- ``hits.csv``: the ranked hits (rank, row, id, score, label, and cell_y, cell_x, x, y for cells)
  and the group searched (``group``), so the file can be given back as queries;
- for georeferenced chips, ``hits.geojson`` (footprints: the chip, or the cell; the scene's CRS
  named in a ``crs`` member as GDAL and QGIS write it) and ``hits.parquet`` (GeoParquet 1.1: WKB
  polygons, the CRS as PROJJSON; needs pyarrow, the ``search`` extra);
- for a cell search on a scene, ``heatmap.tif``: the heat map, one float32 band on the scene's grid
  of cells, NaN as nodata, and ``heatmap.png``, a picture of it in map coordinates with the
  queries' and the top hits' cells marked;
- ``contact_sheet.png``: the top hits' images (from the dataset, as the encoder saw them) with
  rank, id and score; the cell of a cell hit outlined."""

from __future__ import annotations

import json
import re
import struct
import textwrap
from pathlib import Path

import numpy as np

from ..atomic import write_whole
from ..errors import SamembedError, UsageError, storage_error, warn
from ..cache.synthetic import synthetic_signature

SHEET_HITS = 20
SHEET_COLUMNS = 5
SYNTHETIC_MARK = "[synthetic data: generated embeddings or a random-weight model]"


def write_outputs(result, group, out: str | Path, *, sheet: int = SHEET_HITS, geoparquet: bool = True,
                  data_dir: str | Path | None = None) -> list[Path]:
    """Write ``result`` (of a search of ``group``) into the folder ``out``; returns the files.
    ``data_dir``: the dataset, for the contact sheet, if not where extraction found it."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; search writes a folder of files: pass a folder (created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise storage_error(err, f"creating {out}") from None
    hits = result.hits.copy()
    hits["group"] = group.name
    files = [write_whole(out / "hits.csv", lambda tmp: hits.to_csv(tmp, index=False))]
    if group.attrs.get("georef"):
        from .geo import Georef
        from .space import Space

        georef = Georef(Space(group, "cell" if "cell_y" in hits else "image"))
        polygons = [georef.cell_polygon(r, y, x) if "cell_y" in hits else georef.chip_polygon(r)
                    for r, y, x in zip(hits["row"], hits.get("cell_y", hits["row"]), hits.get("cell_x", hits["row"]))]
        scenes = [georef.scenes[r] for r in hits["row"]]
        wkt = georef.georef[scenes[0]]["crs"] if scenes else None
        files.append(_geojson(out / "hits.geojson", hits, polygons, wkt))
        if geoparquet:
            files += _geoparquet(out / "hits.parquet", hits, polygons, wkt)
    if result.heat_map is not None:
        files.append(_heat_tiff(out / "heatmap.tif", result))
        files.append(heat_png(out / "heatmap.png", result, hits, synthetic_signature(group.signature)))
    if sheet and len(hits):
        files.append(contact_sheet(out / "contact_sheet.png", group, hits.head(sheet), result.description, data_dir))
    return files


def _properties(row) -> dict:
    keep = {}
    for key, value in row.items():
        if key in ("x", "y"):
            continue
        keep[key] = value.item() if hasattr(value, "item") else value
    return keep


def _geojson(path: Path, hits, polygons, wkt) -> Path:
    from ..prompting.outputs import crs_member

    features = [{"type": "Feature", "properties": _properties(row),
                 "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in ring]]}}
                for (_, row), ring in zip(hits.iterrows(), polygons)]
    member = crs_member(wkt)
    data = {"type": "FeatureCollection", **({"crs": member} if member else {}), "features": features}
    return write_whole(path, lambda tmp: tmp.write_text(json.dumps(data)))


def _wkb_polygon(ring) -> bytes:
    """OGC WKB (little-endian) of a one-ring polygon."""
    return struct.pack("<BII", 1, 3, 1) + struct.pack("<I", len(ring)) + b"".join(struct.pack("<dd", *p) for p in ring)


def _geoparquet(path: Path, hits, polygons, wkt) -> list[Path]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        warn('hits.parquet (GeoParquet) needs pyarrow: pip install "samembed[search]"; hits.geojson holds the same')
        return []
    from rasterio.crs import CRS

    table = pa.Table.from_pandas(hits, preserve_index=False)
    table = table.append_column("geometry", pa.array([_wkb_polygon(r) for r in polygons], pa.binary()))
    column = {"encoding": "WKB", "geometry_types": ["Polygon"]}
    if wkt:
        column["crs"] = CRS.from_wkt(wkt).to_dict(projjson=True)
    else:
        column["crs"] = None  # GeoParquet: null means an undefined CRS (omitting it would mean WGS 84)
    if polygons:
        xs = [p[0] for ring in polygons for p in ring]
        ys = [p[1] for ring in polygons for p in ring]
        column["bbox"] = [min(xs), min(ys), max(xs), max(ys)]
    geo = {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": column}}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"geo": json.dumps(geo).encode()})
    return [write_whole(path, lambda tmp: pq.write_table(table, tmp))]


def _heat_tiff(path: Path, result) -> Path:
    import rasterio
    from affine import Affine

    heat = result.heat_map.astype(np.float32)
    crs = result.crs

    def write(tmp: Path) -> None:
        with rasterio.open(tmp, "w", driver="GTiff", width=heat.shape[1], height=heat.shape[0], count=1,
                           dtype="float32", crs=crs, transform=Affine(*result.heat_transform), nodata=np.nan) as dst:
            dst.write(heat, 1)
            dst.set_band_description(1, "similarity")
            dst.update_tags(description=result.description[:1000])

    return write_whole(path, write)


def heat_png(path: Path, result, hits, synthetic: bool) -> Path:
    """A picture of the heat map in map coordinates: the top 10 hits ringed, positives that are
    map points marked +."""
    from matplotlib.figure import Figure

    a, _, c, _, e, f = result.heat_transform
    h, w = result.heat_map.shape
    extent = (c, c + a * w, f + e * h, f)
    fig = Figure(figsize=(7.5, 7.5 * h / w + 1.4), dpi=120, layout="constrained")
    ax = fig.subplots()
    shown = ax.imshow(result.heat_map, extent=extent, cmap="magma", interpolation="nearest")
    fig.colorbar(shown, ax=ax, shrink=0.8, label="score")
    top = hits.head(10)
    if "x" in top:
        ax.scatter(top["x"], top["y"], s=90, facecolors="none", edgecolors="cyan", linewidths=1.4,
                   label="top 10 hits")
    for point in re.findall(r"map point \(([-0-9.e+]+), ([-0-9.e+]+)\)", result.description):
        ax.plot(float(point[0]), float(point[1]), "+", color="lime", markersize=14, mew=2.5)
    ax.set_xlabel(f"x ({result.crs or 'map units'})")
    ax.set_ylabel("y")
    ax.ticklabel_format(useOffset=False, style="plain")
    ax.legend(loc="lower right", fontsize=8)
    title = "\n".join(textwrap.wrap(result.description + " (+: the query)", 110))
    if synthetic:
        title += "\n" + SYNTHETIC_MARK
    ax.set_title(title, fontsize=7)
    return write_whole(path, lambda tmp: fig.savefig(tmp, format="png"))


class _Images:
    """The dataset's images as the encoder saw them, read once per search; ``None`` (and one
    warning) when the dataset is not readable where the cache was extracted from."""

    def __init__(self, group, data_dir=None):
        self.group, self.reader, self.position, self.problem = group, None, {}, None
        try:
            from ..datasets import load_dataset
            from ..datasets.composite import Composite
            from ..datasets.inputs import InputReader

            root = Path(data_dir) if data_dir is not None else Path(group.attrs.get("data_root", ""))
            dataset = load_dataset(group.dataset, root, **group.attrs.get("dataset_options", {}))
            stored = group.signature.get("composite")
            self.reader = InputReader(dataset, Composite.from_signature(stored) if stored else None)
            self.position = {name: i for i, name in enumerate(dataset.image_ids)}
        except (SamembedError, ValueError, OSError, KeyError) as err:
            self.problem = str(err).splitlines()[0][:120] if str(err) else type(err).__name__

    def __call__(self, image_id: str) -> np.ndarray | None:
        if self.reader is None or image_id not in self.position:
            return None
        try:
            pixels = np.asarray(self.reader(self.position[image_id])[0])
        except (SamembedError, OSError, ValueError):
            return None
        if pixels.dtype != np.uint8:  # bands as stored: the first three, stretched 2-98 %
            x = pixels[..., :3].astype(np.float64)
            low, high = np.nanpercentile(x, [2, 98])
            pixels = (np.clip((x - low) / max(high - low, 1e-9), 0, 1) * 255).astype(np.uint8)
        return pixels if pixels.ndim == 3 and pixels.shape[-1] == 3 else np.repeat(pixels[..., :1], 3, axis=-1)


def contact_sheet(path: Path, group, hits, description: str, data_dir: str | Path | None = None) -> Path:
    """A PNG of the ``hits`` (top first) with rank, id and score; a cell hit's cell outlined."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from .space import Space

    images = _Images(group, data_dir)
    cells = "cell_y" in hits
    side = Space(group, "cell").side if cells else None
    columns = min(SHEET_COLUMNS, len(hits))
    rows = -(-len(hits) // columns)
    fig = Figure(figsize=(2.4 * columns, 2.6 * rows + 1.0), dpi=110, layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    missing = 0
    for ax, (_, hit) in zip(axes, hits.iterrows()):
        image = images(hit["id"])
        label = f" ({hit['label']})" if hit.get("label") not in (None, "") and hit.get("label") == hit.get("label") else ""
        ax.set_title("\n".join(textwrap.wrap(f"#{hit['rank']} {hit['id']}{label}", 30)[:2]) + f"\nscore {hit['score']:.3f}",
                     fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
        if image is None:
            missing += 1
            ax.text(0.5, 0.5, "image not readable", ha="center", va="center", fontsize=7, transform=ax.transAxes)
            continue
        ax.imshow(image, interpolation="nearest")
        if cells:
            step_y, step_x = _cell_step(group, image.shape, side)
            ax.add_patch(Rectangle((hit["cell_x"] * step_x - 0.5, hit["cell_y"] * step_y - 0.5), step_x, step_y,
                                   fill=False, edgecolor="yellow", linewidth=1.5))
    for ax in axes[len(hits):]:
        ax.set_axis_off()
    title = "\n".join(textwrap.wrap(description, int(2.4 * columns * 72 / 6)))
    if synthetic_signature(group.signature):
        title += "\n" + SYNTHETIC_MARK
    fig.suptitle(title, fontsize=8)
    if missing:
        warn(f"the contact sheet shows {missing} hit(s) without their image: {group.dataset}'s images are not "
             f"readable (pass --data-dir: {images.problem or 'image not found'})")
    return write_whole(path, lambda tmp: fig.savefig(tmp, format="png"))


def _cell_step(group, shape, side: int) -> tuple[float, float]:
    """(height, width) in image pixels of one grid cell of an image of ``shape``."""
    from ..encoders.geometry import Geometry
    from .space import cell_pixels

    encoder = group.signature.get("encoder", {})
    geometry = Geometry.from_signature(encoder) if encoder.get("img_size") else None
    return cell_pixels(geometry, side, shape[:2])
