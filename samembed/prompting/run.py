"""``prompt``: the library function behind ``samembed prompt``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..cache import open_cache
from ..errors import UsageError, storage_error
from ..paths import DEFAULT_CACHE_DIR
from .outputs import mask_polygons, mask_stem, write_geojson, write_geotiff, write_png
from .predictor import CachePredictor, PromptMask
from .prompts import Prompt, command_line_prompt, read_prompts


@dataclass
class PromptResult:
    """A prompt's mask on one image, and the files written for it."""

    image_id: str
    index: int
    answer: PromptMask
    files: list[Path] = field(default_factory=list)

    @property
    def pixels(self) -> int:
        return int(self.answer.mask.sum())


def _locate(predictor: CachePredictor, prompt: Prompt) -> tuple[int, Prompt]:
    """(cache index, the prompt in that image's pixels) of ``prompt``."""
    group = predictor.group
    if prompt.in_map:
        if "georef" not in group.attrs:
            raise UsageError(f"{group.dataset} is not a dataset of georeferenced chips; give pixel coordinates of an "
                             "image (drop --map)")
        from ..datasets.scene import MapLocator

        locator = MapLocator(group.attrs["georef"], group.read("scene"), group.read("window"))
        i, _, _ = locator.locate(*prompt.anchor)
        return i, prompt.in_pixels(locator.transform(i), predictor.image_ids[i])
    if prompt.image is None:
        raise UsageError("name the image the prompt is on: --image ID (ids are paths relative to the dataset)")
    return predictor.index_of(prompt.image), prompt


def prompt(
    dataset: str, *, encoder: str | None = None, image: str | None = None, points: list[str] = (),
    boxes: list[str] = (), prompts_file: str | Path | None = None, in_map: bool = False, multimask: bool = True,
    out: str | Path | None = None, cache_dir: str | Path = DEFAULT_CACHE_DIR, checkpoint: str | Path | None = None,
    device: str = "cpu", overlay: bool = False,
) -> list[PromptResult]:
    """Answer prompts on cached images with SAM's (or, on a SAM 2 cache made with
    ``prompt_features``, SAM 2's) prompt encoder and mask decoder.

    The prompt is ``points`` (``"X,Y"`` or ``"X,Y,LABEL"``) and at most one of ``boxes``
    (``"X0,Y0,X1,Y1"``) on ``image``, or every prompt of ``prompts_file`` (CSV or GeoJSON: see
    :func:`~samembed.prompting.prompts.read_prompts`). Coordinates are the original image's pixels,
    or with ``in_map`` (and GeoJSON) a scene's map coordinates: each prompt goes to the chip that
    holds its first point (or its box's centre). Every prompt is checked before any is answered;
    with ``out`` each mask is written as a PNG, and for chips of a georeferenced scene also as a
    GeoTIFF on the scene's grid and GeoJSON polygons in map coordinates. With ``overlay`` (and
    ``out``) each image also gets a sheet of its prompts and masks drawn over it
    (:mod:`samembed.prompting.overlay`)."""
    if overlay and out is None:
        raise UsageError("the overlay is a file: give the folder to write it to (--out)")
    if prompts_file is not None:
        if points or boxes:
            raise UsageError("give prompts either on the command line (--point, --box) or in --prompts, not both")
        prompts = read_prompts(prompts_file, image, in_map)
    else:
        prompts = [command_line_prompt(points, boxes, image, in_map)]
    predictor = CachePredictor(open_cache(cache_dir, dataset, encoder), checkpoint, device)
    located = [_locate(predictor, p) for p in prompts]
    for i, p in located:
        p.check_inside(predictor.orig_hw[i])
    by_image: dict[int, list[int]] = {}
    for k, (i, _) in enumerate(located):
        by_image.setdefault(i, []).append(k)
    results: list[PromptResult | None] = [None] * len(located)
    for i, members in by_image.items():
        for k, answer in zip(members, predictor.predict(i, [located[k][1] for k in members], multimask)):
            results[k] = PromptResult(predictor.image_ids[i], i, answer)
    if out is not None:
        _write(results, Path(out), predictor)
        if overlay:
            from .overlay import write_overlays  # matplotlib: loaded only when a sheet is drawn

            write_overlays(results, Path(out), predictor)
    return results


def _write(results: list[PromptResult], out: Path, predictor: CachePredictor) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise storage_error(err, f"creating {out}") from None
    georef = predictor.group.attrs.get("georef")
    locator = scenes = None
    if georef:
        from ..datasets.scene import MapLocator

        scenes = [str(s) for s in predictor.group.read("scene")]
        locator = MapLocator(georef, scenes, predictor.group.read("window"))
    features: dict[str, list[dict]] = {}
    for k, result in enumerate(results):
        stem = mask_stem(result.image_id, result.answer.prompt.name, k)
        result.files.append(write_png(result.answer.mask, out / f"{stem}.png"))
        if locator is not None and locator.crs(result.index) is not None:
            transform = locator.transform(result.index)
            crs = locator.crs(result.index)
            result.files.append(write_geotiff(result.answer.mask, out / f"{stem}.tif", crs, transform))
            features.setdefault(scenes[result.index], []).extend(
                {"type": "Feature", "geometry": geometry,
                 "properties": {"prompt": result.answer.prompt.name or f"prompt{k}", "image": result.image_id,
                                "score": round(result.answer.score, 6)}}
                for geometry in mask_polygons(result.answer.mask, transform))
    for scene, items in features.items():
        crs = georef[scene]["crs"]
        name = Path(scene).stem + "_masks.geojson"
        path = write_geojson(items, out / name, crs)
        for result in results:
            if scenes[result.index] == scene:
                result.files.append(path)
