"""Prompts: points with labels and boxes, in an image's pixels or a scene's map coordinates, from
the command line or from a CSV or GeoJSON file; checked before anything runs: labels exactly 0 or
1, finite coordinates, at most :data:`MAX_POINTS` points a prompt."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import UsageError
from .crs import MapCRS, geojson_crs

#: The most points one prompt may hold. SAM was trained with a box or a point and then up to 8
#: corrective points a mask (Kirillov et al. 2023, "Segment Anything", appendix A: 11 rounds of
#: interactive sampling), and the decoder's attention grows with the points (100,000 points in
#: one prompt asked for 320 GB); 64 leaves room for long click sessions.
MAX_POINTS = 64


def label_of(value, where: str) -> int:
    """A point's label: exactly 0 or 1 (an int or a float equal to one), never rounded or cut."""
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if number is None or number not in (0, 1):
        raise UsageError(f"{where}: a point's label is 1 (foreground) or 0 (background), not {value!r}")
    return int(number)


@dataclass(frozen=True)
class Prompt:
    """One prompt of SAM: ``points`` (x, y) with ``labels`` (1 foreground, 0 background) and/or a
    ``box`` (x0, y0, x1, y1), in pixels of the original image (x along a row, y down the rows) or,
    with ``in_map``, in the map coordinates of a scene. ``image`` names the image (or the chip);
    ``name`` is the prompt's id in a prompts file. ``crs`` is the CRS of map coordinates where it
    is not the scene's own (a GeoJSON file's)."""

    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()
    box: tuple[float, float, float, float] | None = None
    image: str | None = None
    name: str = ""
    in_map: bool = False
    crs: MapCRS | None = None

    def __post_init__(self):
        where = f"prompt {self.name}: " if self.name else ""
        if not self.points and self.box is None:
            raise UsageError(f"{where}a prompt needs at least one point or a box")
        if len(self.points) > MAX_POINTS:
            raise UsageError(f"{where}{len(self.points)} points in one prompt; a prompt takes at most {MAX_POINTS} "
                             "(SAM was trained with a few): split them into several prompts")
        if len(self.points) != len(self.labels):
            raise UsageError(f"{where}{len(self.points)} points but {len(self.labels)} labels")
        bad = next((label for label in self.labels if label not in (0, 1) or isinstance(label, bool)), None)
        if bad is not None:
            raise UsageError(f"{where}a point's label is 1 (foreground) or 0 (background), not {bad!r}")
        object.__setattr__(self, "labels", tuple(int(label) for label in self.labels))
        numbers = [v for p in self.points for v in p] + list(self.box or ())
        if not all(math.isfinite(v) for v in numbers):
            raise UsageError(f"{where}coordinates are finite numbers, not {next(v for v in numbers if not math.isfinite(v))}")
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            if not (x0 < x1 and (y0 < y1 if not self.in_map else y0 != y1)):
                raise UsageError(f"{where}the box {list(self.box)} has its corners swapped or is empty: give "
                                 "x0,y0,x1,y1 with x0 < x1 and y0 < y1 (top-left, then bottom-right)")

    def check_inside(self, orig_hw) -> None:
        """One line if a point or the box lies outside an image of (height, width) pixels."""
        h, w = int(orig_hw[0]), int(orig_hw[1])
        where = f"prompt {self.name} " if self.name else "the prompt "
        for x, y in self.points:
            if not (0 <= x < w and 0 <= y < h):
                raise UsageError(f"{where}has the point ({x:g}, {y:g}) outside the image of {self.image} "
                                 f"({w} x {h} pixels: x in 0-{w}, y in 0-{h})")
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
                raise UsageError(f"{where}has the box {[round(v, 3) for v in self.box]} outside the image of "
                                 f"{self.image} ({w} x {h} pixels)")

    def to_dict(self) -> dict:
        return {"points": [list(p) for p in self.points], "labels": list(self.labels),
                "box": list(self.box) if self.box is not None else None}

    def in_pixels(self, transform, image: str) -> Prompt:
        """This map-coordinate prompt (in the scene's CRS) in the pixels of the chip whose
        transform is ``transform`` (an ``affine.Affine``: chip pixel -> map)."""
        inverse = ~transform
        points = tuple(tuple(float(v) for v in inverse @ p) for p in self.points)
        box = None
        if self.box is not None:
            (c0, r0), (c1, r1) = inverse @ self.box[:2], inverse @ self.box[2:]
            box = (min(c0, c1), min(r0, r1), max(c0, c1), max(r0, r1))
        return replace(self, points=points, box=box, image=image, in_map=False)

    @property
    def anchor(self) -> tuple[float, float]:
        """The point that decides which chip a map-coordinate prompt belongs to: its first point,
        else the centre of its box."""
        if self.points:
            return self.points[0]
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2, (y0 + y1) / 2


def _numbers(text: str, count: tuple[int, ...], option: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in count:
        raise UsageError(f"{option} takes {' or '.join(map(str, count))} comma-separated numbers, not '{text}'")
    return values


def command_line_prompt(points: list[str] = (), boxes: list[str] = (), image: str | None = None,
                        in_map: bool = False) -> Prompt:
    """The one prompt of ``--point X,Y[,LABEL]`` (label 1 by default) and ``--box X0,Y0,X1,Y1``."""
    if len(boxes) > 1:
        raise UsageError("one prompt takes one --box (SAM's prompts hold at most one); put several prompts in a "
                         "--prompts file")
    parsed = [_numbers(p, (2, 3), "--point") for p in points]
    box = tuple(_numbers(boxes[0], (4,), "--box")) if boxes else None
    labels = tuple(label_of(p[2], f"--point {text}") if len(p) == 3 else 1 for p, text in zip(parsed, points))
    return Prompt(tuple((p[0], p[1]) for p in parsed), labels, box, image, in_map=in_map)


def read_prompts(path: str | Path, image: str | None = None, in_map: bool = False) -> list[Prompt]:
    """The prompts of a CSV file (a row per point or box: columns ``x, y, label`` or ``x0, y0, x1,
    y1``, optionally ``image`` and ``prompt``; rows with the same ``prompt`` form one prompt; each
    row is its own prompt without that column) or a GeoJSON file (map coordinates: Point features,
    ``label`` in their properties, and boxes as the bounds of Polygon features; a ``prompt``
    property groups them; WGS 84 longitude, latitude as RFC 7946 says, unless a ``crs`` member
    names another CRS: :func:`~samembed.prompting.crs.geojson_crs`)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no prompts file {path}")
    if path.suffix.lower() in (".geojson", ".json"):
        return _read_geojson(path, image)
    return _read_csv(path, image, in_map)


def _group(rows: list[tuple[str, str | None, tuple | None, int | None, tuple | None]], in_map: bool,
           where: str, crs: MapCRS | None = None) -> list[Prompt]:
    """Prompts from (prompt id, image, point, label, box) rows, in the order of their first row."""
    grouped: dict[str, dict] = {}
    for key, image, point, label, box in rows:
        entry = grouped.setdefault(key, {"points": [], "labels": [], "box": None, "image": image})
        if entry["image"] != image:
            raise UsageError(f"{where}: prompt {key} names two images, {entry['image']} and {image}")
        if point is not None:
            entry["points"].append(point)
            entry["labels"].append(label)
        if box is not None:
            if entry["box"] is not None:
                raise UsageError(f"{where}: prompt {key} has two boxes; SAM's prompts hold at most one")
            entry["box"] = box
    prompts = []
    for key, e in grouped.items():
        if len(e["points"]) > MAX_POINTS:  # before a prompt of them is made
            raise UsageError(f"{where}: prompt {key} has {len(e['points'])} points; a prompt takes at most "
                             f"{MAX_POINTS} (SAM was trained with a few): split them into several prompts")
        prompts.append(Prompt(tuple(e["points"]), tuple(e["labels"]), e["box"], e["image"], name=key, in_map=in_map,
                              crs=crs))
    return prompts


def _read_csv(path: Path, image: str | None, in_map: bool) -> list[Prompt]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or [])
        if not ({"x", "y"} <= columns or {"x0", "y0", "x1", "y1"} <= columns):
            raise UsageError(f"{path} needs columns x, y (points) or x0, y0, x1, y1 (boxes); it has "
                             f"{', '.join(sorted(columns)) or 'none'}")
        rows = []
        for n, row in enumerate(reader, start=2):
            def number(key):
                value = (row.get(key) or "").strip()
                try:
                    parsed = float(value) if value else None
                except ValueError:
                    parsed = math.nan
                if parsed is not None and not math.isfinite(parsed):
                    raise UsageError(f"{path} line {n}: {key} is '{value[:40]}', not a finite number")
                return parsed

            point = (number("x"), number("y"))
            box = tuple(number(k) for k in ("x0", "y0", "x1", "y1"))
            has_point, has_box = None not in point, None not in box
            if not has_point and not has_box:
                raise UsageError(f"{path} line {n} holds neither a point (x, y) nor a box (x0, y0, x1, y1)")
            label = label_of(number("label"), f"{path} line {n}") if number("label") is not None else 1
            key = (row.get("prompt") or "").strip() or f"row{n}"
            rows.append((key, (row.get("image") or "").strip() or image, point if has_point else None, label,
                         box if has_box else None))
    return _group(rows, in_map, str(path))


def _read_geojson(path: Path, image: str | None) -> list[Prompt]:
    try:
        data = json.loads(path.read_text())
        features = data["features"] if data.get("type") == "FeatureCollection" else [data]
    except (ValueError, KeyError, AttributeError):
        raise UsageError(f"{path} is not a GeoJSON FeatureCollection") from None
    crs = geojson_crs(data, str(path))
    rows = []
    for n, feature in enumerate(features):
        geometry, properties = feature.get("geometry") or {}, feature.get("properties") or {}
        key = str(properties.get("prompt", f"feature{n}"))
        kind = geometry.get("type")
        if kind not in ("Point", "Polygon"):
            raise UsageError(f"{path}: feature {n} is a {kind}; prompts are Points (with a label) and Polygons "
                             "(their bounds are the box)")
        try:
            if kind == "Point":
                x, y = np.asarray(geometry["coordinates"], dtype=float)[:2]
                label = label_of(properties.get("label", 1), f"{path}: feature {n}")
                rows.append((key, image, (float(x), float(y)), label, None))
            else:  # the outer ring's bounds; holes (rings of other lengths) do not change them
                ring = np.asarray(geometry["coordinates"][0], dtype=float)[:, :2]
                rows.append((key, image, None, None, (float(ring[:, 0].min()), float(ring[:, 1].min()),
                                                      float(ring[:, 0].max()), float(ring[:, 1].max()))))
        except (KeyError, IndexError, TypeError, ValueError):
            raise UsageError(f"{path}: feature {n} ({kind}) has malformed coordinates") from None
        numbers = [*(rows[-1][2] or ()), *(rows[-1][4] or ())]
        if not all(math.isfinite(v) for v in numbers):  # JSON readers take NaN and Infinity
            raise UsageError(f"{path}: feature {n} ({kind}) has coordinates that are not finite numbers")
    return _group(rows, True, str(path), crs)

