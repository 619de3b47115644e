"""``prompt`` and ``iter_prompts``: the library functions behind ``samembed prompt``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ..cache import open_cache
from ..errors import UsageError
from ..paths import DEFAULT_CACHE_DIR
from ..threads import cpu_threads
from .crs import crs_name, reproject
from .outputs import MaskWriter
from .predictor import CachePredictor, PromptMask
from .prompts import Prompt, command_line_prompt, read_prompts

#: Runs with more prompts than this show a progress bar (and the command prints a summary
#: instead of a line per prompt).
PROGRESS_FROM = 20


@dataclass
class PromptResult:
    """A prompt's mask on one image, and the files written for it. ``number`` is the prompt's
    position in the input; ``crs`` says, for map coordinates, which CRS they were taken to be in
    and the scene's CRS they were placed in (``None`` for pixel coordinates)."""

    image_id: str
    index: int
    answer: PromptMask
    files: list[Path] = field(default_factory=list)
    number: int = 0
    crs: str | None = None

    @property
    def pixels(self) -> int:
        return int(self.answer.mask.sum())


@dataclass(frozen=True)
class _Located:
    index: int  # the cache index of the image (or chip) the prompt is on
    prompt: Prompt  # in that image's pixels
    crs: str | None  # the CRS the map coordinates were taken to be in, and the scene's


class _Placer:
    """Finds the image a prompt is on and gives the prompt in its pixels; map coordinates are
    reprojected from the CRS they are declared in (a GeoJSON file's) to the scene's, else are
    taken to be in the scene's CRS."""

    def __init__(self, predictor: CachePredictor):
        self.predictor, group = predictor, predictor.group
        self.georef = group.attrs.get("georef")
        self.locator = None
        if self.georef:
            from ..datasets.scene import MapLocator

            self.locator = MapLocator(self.georef, group.read("scene"), group.read("window"))
        self.by_crs: dict[str | None, list[str]] = {}  # a scene's CRS (WKT) -> its scenes, in the cache's order
        for scene, info in (self.georef or {}).items():
            self.by_crs.setdefault(info["crs"], []).append(scene)

    def __call__(self, prompt: Prompt) -> _Located:
        predictor, locator = self.predictor, self.locator
        if not prompt.in_map:
            if prompt.image is None:
                raise UsageError("name the image the prompt is on: --image ID (ids are paths relative to the dataset)")
            return _Located(predictor.index_of(prompt.image), prompt, None)
        if locator is None:
            raise UsageError(f"{predictor.group.dataset} is not a dataset of georeferenced chips; give pixel "
                             "coordinates of an image (drop --map)")
        if prompt.crs is None:
            i, _, _ = locator.locate(*prompt.anchor)
            predictor.check_usable(i)
            said = f"{crs_name(locator.crs(i))} (the scene's CRS)" if locator.crs(i) else None
            return _Located(i, prompt.in_pixels(locator.transform(i), predictor.image_ids[i]), said)
        if None in self.by_crs or "" in self.by_crs:
            scene = (self.by_crs.get(None) or self.by_crs[""])[0]
            raise UsageError(f"{scene} has no CRS, so coordinates in {prompt.crs.describe()} cannot be placed on it; "
                             "give pixel coordinates of a chip instead")
        moved = {}
        for scene_crs, scenes in self.by_crs.items():  # each scene tried in its own CRS, in the cache's order
            moved[scene_crs] = reproject(prompt, scene_crs)
            for scene in scenes:
                try:
                    i, _, _ = locator.locate(*moved[scene_crs].anchor, scene=scene)
                except UsageError:
                    continue
                predictor.check_usable(i)
                said = f"{prompt.crs.describe()}, reprojected to {crs_name(scene_crs)} (the scene's CRS)"
                return _Located(i, moved[scene_crs].in_pixels(locator.transform(i), predictor.image_ids[i]), said)
        x, y = prompt.anchor
        there = "; ".join(f"({p.anchor[0]:.1f}, {p.anchor[1]:.1f}) in {crs_name(c)}" for c, p in list(moved.items())[:3])
        raise UsageError(f"{'prompt ' + prompt.name if prompt.name else 'the prompt'} at ({x:g}, {y:g}) in "
                         f"{prompt.crs.describe()} lies outside every chip: it is at {there}")


def _prompts(points, boxes, prompts_file, image, in_map) -> list[Prompt]:
    if prompts_file is not None:
        if points or boxes:
            raise UsageError("give prompts either on the command line (--point, --box) or in --prompts, not both")
        prompts = read_prompts(prompts_file, image, in_map)
        if not prompts:
            raise UsageError(f"{prompts_file} holds no prompts")
        return prompts
    return [command_line_prompt(points, boxes, image, in_map)]


class PromptAnswers:
    """The checked prompts of one call, answered when iterated: each :class:`PromptResult` is
    yielded as it is answered, image by image in the cache's order (``number`` is its position in
    the input), and with ``out`` its mask is written at once (:class:`~samembed.prompting.outputs.MaskWriter`),
    so memory does not grow with the prompts as long as the caller keeps no results. ``len()`` is
    the number of prompts; ``crs`` lists what map coordinates were taken to be in (empty for
    pixel coordinates). CPU threads follow the idle cores (:func:`samembed.threads.cpu_threads`)
    while it is iterated; ``progress`` shows a bar for more than :data:`PROGRESS_FROM` prompts."""

    def __init__(self, predictor: CachePredictor, located: list[_Located], multimask: bool, out: Path | None,
                 progress: bool, overlay: bool = False):
        self.predictor, self.located, self.multimask, self.out, self.progress = (predictor, located, multimask, out,
                                                                                   progress)
        self.overlay = overlay
        self.crs = sorted({where.crs for where in located if where.crs})
        self.images = len({where.index for where in located})

    def __len__(self) -> int:
        return len(self.located)

    def __iter__(self) -> Iterator[PromptResult]:
        predictor, located = self.predictor, self.located
        by_image: dict[int, list[int]] = {}
        for k, where in enumerate(located):
            by_image.setdefault(where.index, []).append(k)
        writer = MaskWriter(self.out, predictor) if self.out is not None else contextlib.nullcontext()
        show = self.progress and len(located) > PROGRESS_FROM
        with cpu_threads(predictor.device), writer, tqdm(total=len(located), unit="prompt", desc="prompt",
                                                          disable=not show, dynamic_ncols=True) as bar:
            for i in sorted(by_image):
                members = by_image[i]
                answers = predictor.answers(i, [located[k].prompt for k in members], self.multimask)
                sheet = []  # with an overlay, one image's results wait for its sheet
                for k, answer in zip(members, answers):
                    result = PromptResult(predictor.image_ids[i], i, answer, number=k, crs=located[k].crs)
                    if self.out is not None:
                        writer.write(result)
                    bar.update(1)
                    if self.overlay:
                        sheet.append(result)
                    else:
                        yield result
                if sheet:
                    from .overlay import write_overlays  # matplotlib: loaded only when a sheet is drawn

                    write_overlays(sheet, self.out, predictor)
                    yield from sheet


def iter_prompts(
    dataset: str, *, encoder: str | None = None, image: str | None = None, points: list[str] = (),
    boxes: list[str] = (), prompts_file: str | Path | None = None, in_map: bool = False, multimask: bool = True,
    out: str | Path | None = None, cache_dir: str | Path = DEFAULT_CACHE_DIR, checkpoint: str | Path | None = None,
    device: str = "cpu", progress: bool = False, overlay: bool = False,
) -> PromptAnswers:
    """Prompts on cached images, checked now and answered as the result is iterated
    (:class:`PromptAnswers`), with SAM's (or, on a SAM 2 cache made with ``prompt_features``,
    SAM 2's) prompt encoder and mask decoder.

    The prompt is ``points`` (``"X,Y"`` or ``"X,Y,LABEL"``) and at most one of ``boxes``
    (``"X0,Y0,X1,Y1"``) on ``image``, or every prompt of ``prompts_file`` (CSV or GeoJSON: see
    :func:`~samembed.prompting.prompts.read_prompts`). Coordinates are the original image's pixels;
    with ``in_map``, a scene's map coordinates in the scene's CRS; in a GeoJSON file, map
    coordinates in WGS 84 longitude, latitude (RFC 7946) or the CRS its ``crs`` member names,
    reprojected to the scene's. A map prompt goes to the chip that holds its first point (or its
    box's centre). Every prompt is checked before any is answered. With ``out`` each mask is
    written as a PNG, and for chips of a georeferenced scene also as a GeoTIFF on the scene's grid
    and GeoJSON polygons in map coordinates, and listed in ``masks.csv``. With ``overlay`` (and
    ``out``) each image also gets a sheet of its prompts and masks drawn over it
    (:mod:`samembed.prompting.overlay`)."""
    if overlay and out is None:
        raise UsageError("the overlay is a file: give the folder to write it to (--out)")
    prompts = _prompts(points, boxes, prompts_file, image, in_map)
    predictor = CachePredictor(open_cache(cache_dir, dataset, encoder), checkpoint, device)
    place = _Placer(predictor)
    located = [place(p) for p in prompts]
    for where in located:
        where.prompt.check_inside(predictor.orig_hw[where.index])
    return PromptAnswers(predictor, located, multimask, Path(out) if out is not None else None, progress, overlay)


def prompt(dataset: str, **kwargs) -> list[PromptResult]:
    """Every result of :func:`iter_prompts` (the same keyword arguments), in the order the prompts
    were given. It holds every mask: for thousands of prompts iterate over :func:`iter_prompts`."""
    return sorted(iter_prompts(dataset, **kwargs), key=lambda result: result.number)
