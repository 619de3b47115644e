"""Writing prompt masks: a PNG per mask for plain images; for chips of georeferenced scenes a
GeoTIFF on the scene's grid (the chip's window, the scene's CRS and transform) and the mask's
polygons in map coordinates as GeoJSON, one file per scene; and ``masks.csv``, a row per mask.

Masks are written as they are answered (:class:`MaskWriter`), so a run of many prompts holds none
of them. Every file is written whole (a temporary name, then a rename); the GeoJSON files and
``masks.csv`` grow in their temporary files and are renamed when the run ends, so an interrupted
run leaves the masks it wrote and no half list.

File names (:class:`MaskNames`) say which image and prompt a mask is for, and are unique and
bounded: a short hash of the image id and prompt name is added where the readable name would not
tell two masks apart or would be too long."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import whole_file, write_whole
from ..errors import storage_error

#: The longest file-name stem written (characters, all ASCII): with an extension and the
#: temporary name's additions it stays well within the 255 bytes of common file systems.
MAX_STEM = 120
HASH_CHARS = 8
INDEX_NAME = "masks.csv"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _readable(text: str) -> str:
    return _UNSAFE.sub("_", text)


def image_stem(image_id: str) -> str:
    """The readable part of an image's file names: its file name without the extension, and a
    chip's ``#`` part after an underscore, in safe characters."""
    path, _, chip = image_id.partition("#")
    return _readable(Path(path).stem + (f"_{chip}" if chip else ""))


def _hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:HASH_CHARS]


def bounded(stem: str, *key: str, force: bool = False) -> str:
    """``stem``, with ``-<hash of key>`` added when ``force`` or when it is longer than
    :data:`MAX_STEM` (then cut to make room)."""
    if not force and len(stem) <= MAX_STEM:
        return stem
    return f"{stem[:MAX_STEM - HASH_CHARS - 1]}-{_hash(*key)}"


class MaskNames:
    """File-name stems for the masks of one run: ``<image>_<prompt>``, readable, unique, bounded.

    The hash suffix (of the exact image id and prompt name) is added when the image's readable
    part is shared by another image of the cache (the same file name in two class folders), when
    the prompt's name had characters replaced, when the stem would pass :data:`MAX_STEM`, or when
    it would meet a stem already used in this run on a case-blind file system. The same image and
    prompt on the same cache get the same name in every run."""

    def __init__(self, image_ids):
        self._shared = {stem for stem, n in Counter(image_stem(i).casefold() for i in image_ids).items() if n > 1}
        self._used: dict[str, tuple[str, str]] = {}

    def stem(self, image_id: str, prompt_name: str) -> str:
        image = image_stem(image_id)
        prompt = _readable(prompt_name)
        stem = f"{image}_{prompt}"
        force = image.casefold() in self._shared or prompt != prompt_name
        stem = bounded(stem, image_id, prompt_name, force=force)
        if self._used.setdefault(stem.casefold(), (image_id, prompt_name)) != (image_id, prompt_name):
            stem = bounded(stem, image_id, prompt_name, force=True)
            self._used.setdefault(stem.casefold(), (image_id, prompt_name))
        return stem


def scene_stems(scenes) -> dict[str, str]:
    """The stem of each scene's GeoJSON file (``<scene>_masks``), unique and bounded as mask names."""
    scenes = sorted(set(scenes))
    shared = {s for s, n in Counter(image_stem(s).casefold() for s in scenes).items() if n > 1}
    return {s: bounded(image_stem(s) + "_masks", s, force=image_stem(s).casefold() in shared) for s in scenes}


def write_png(mask: np.ndarray, path: Path) -> Path:
    """(H, W) bool -> a one-band PNG, 255 where the mask is."""
    return write_whole(path, lambda tmp: Image.fromarray(mask.astype(np.uint8) * 255).save(tmp, format="PNG"))


def write_geotiff(mask: np.ndarray, path: Path, crs: str | None, transform) -> Path:
    """(H, W) bool -> a one-band uint8 GeoTIFF (1 where the mask is) with ``crs`` (WKT) and the
    ``transform`` of its pixel grid (an ``affine.Affine``)."""
    import rasterio

    def write(tmp: Path) -> None:
        with rasterio.open(tmp, "w", driver="GTiff", width=mask.shape[1], height=mask.shape[0], count=1, dtype="uint8",
                           crs=crs, transform=transform, nodata=None) as dst:
            dst.write(mask.astype(np.uint8)[None])

    return write_whole(path, write)


def mask_polygons(mask: np.ndarray, transform) -> list[dict]:
    """The polygons of a (H, W) bool mask in map coordinates (GeoJSON geometries)."""
    from rasterio import features

    return [geometry for geometry, value in features.shapes(mask.astype(np.uint8), mask=mask, transform=transform)
            if value == 1]


def crs_member(crs: str | None) -> dict | None:
    """The ``crs`` member naming a scene's CRS (WKT) in written GeoJSON: an EPSG URN where the CRS
    has an EPSG code, else its WKT, as GeoJSON readers assume WGS 84 otherwise."""
    if not crs:
        return None
    from rasterio.crs import CRS

    epsg = CRS.from_wkt(crs).to_epsg()
    return {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{epsg}" if epsg else crs}}


class MaskWriter:
    """Writes each prompt's mask as it is answered into the folder ``out``: ``<stem>.png``; for a
    chip of a georeferenced scene also ``<stem>.tif`` and its polygons in ``<scene>_masks.geojson``;
    and a row in ``masks.csv``. Use as a context manager: on a clean exit the GeoJSON files and
    ``masks.csv`` are renamed into place, after an error they are removed (the masks stay)."""

    def __init__(self, out: Path, predictor):
        self.out = Path(out)
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise storage_error(err, f"creating {self.out}") from None
        group = predictor.group
        self.names = MaskNames(predictor.image_ids)
        self.georef = group.attrs.get("georef")
        self.locator = self.scenes = None
        if self.georef:
            from ..datasets.scene import MapLocator

            self.scenes = [str(s) for s in group.read("scene")]
            self.locator = MapLocator(self.georef, self.scenes, group.read("window"))
            self.scene_stems = scene_stems(self.scenes)
        self._stack = contextlib.ExitStack()
        self._geojson: dict[str, list] = {}  # scene -> [path, open file, features written]

    def __enter__(self) -> MaskWriter:
        self._stack.__enter__()
        try:
            self._index_file = self._open(self.out / INDEX_NAME)
            self._index = csv.writer(self._index_file)
            self._index.writerow(["image", "prompt", "pixels", "score", "files", "prompt_crs"])
        except BaseException:
            self._stack.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> bool:
        if exc[0] is None:
            for _, file, _ in self._geojson.values():
                file.write("]}\n")
        try:
            return self._stack.__exit__(*exc)
        except OSError as err:
            raise storage_error(err, f"writing {self.out}") from None

    def _open(self, path: Path):
        tmp = self._stack.enter_context(whole_file(path))
        return self._stack.enter_context(open(tmp, "w", newline=""))

    def write(self, result) -> None:
        """Write ``result``'s mask (a :class:`~samembed.prompting.run.PromptResult`) and list its files in it."""
        answer = result.answer
        name = answer.prompt.name or f"prompt{result.number}"
        stem = self.names.stem(result.image_id, name)
        try:
            result.files.append(write_png(answer.mask, self.out / f"{stem}.png"))
            crs = self.locator.crs(result.index) if self.locator is not None else None
            if crs is not None:
                transform = self.locator.transform(result.index)
                result.files.append(write_geotiff(answer.mask, self.out / f"{stem}.tif", crs, transform))
                result.files.append(self._add_polygons(result, name, crs, transform))
            self._index.writerow([result.image_id, name, result.pixels, f"{answer.score:.6f}",
                                  " ".join(p.name for p in result.files), result.crs or ""])
        except OSError as err:
            raise storage_error(err, f"writing the masks of {result.image_id} into {self.out}") from None

    def _add_polygons(self, result, name: str, crs: str, transform) -> Path:
        scene = self.scenes[result.index]
        if scene not in self._geojson:
            path = self.out / f"{self.scene_stems[scene]}.geojson"
            file = self._open(path)
            member = crs_member(crs)
            file.write('{"type": "FeatureCollection", ' + (f'"crs": {json.dumps(member)}, ' if member else "")
                       + '"features": [\n')
            self._geojson[scene] = [path, file, 0]
        entry = self._geojson[scene]
        path, file = entry[0], entry[1]
        properties = {"prompt": name, "image": result.image_id, "score": round(result.answer.score, 6)}
        if result.crs:
            properties["prompt_crs"] = result.crs
        for geometry in mask_polygons(result.answer.mask, transform):
            file.write((",\n" if entry[2] else "")
                       + json.dumps({"type": "Feature", "geometry": geometry, "properties": properties}))
            entry[2] += 1
        return path
