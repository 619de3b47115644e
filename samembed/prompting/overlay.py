"""The prompt overlay: a sheet per image that shows the image as the encoder saw it (through its
composite and stretch), then one panel per prompt answered on it with the prompt drawn (+
foreground point, x background point, rectangle box), the mask outlined and filled, and SAM's
predicted IoU, as the study shows its prompted masks (PNG, and PDF beside it for papers).

:func:`draw_sheet` draws one sheet from an image, its prompts and masks (no cache needed);
:func:`write_overlays` is the hook ``prompt(..., overlay=True)`` calls."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np

from ..atomic import write_whole
from ..cache.synthetic import synthetic_signature
from ..errors import SamembedError, UsageError

PANEL = 3.2  # inches per panel
COLUMNS = 4  # panels per row
MARK = "[synthetic data: a randomly initialised model; these masks say nothing about SAM]"


def draw_sheet(image: np.ndarray, masks: list[np.ndarray], prompts: list[dict], scores: list[float], title: str,
               image_note: str = "", names: list[str] | None = None, synthetic: bool = False):
    """A matplotlib figure: ``image`` (H, W, 3) uint8 alone, then per prompt ``k`` the image with
    ``masks[k]`` (H, W) bool outlined and filled, ``prompts[k]`` (``points`` [(x, y)], ``labels``
    [1 or 0], ``box`` (x0, y0, x1, y1) or ``None``, in the image's pixels) and its predicted IoU
    ``scores[k]``. ``image_note`` says how the image was made (composite, stretch)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    names = names or [f"prompt {k}" for k in range(len(masks))]
    panels = 1 + len(masks)
    columns = min(COLUMNS, panels)
    rows = -(-panels // columns)
    fig = Figure(figsize=(PANEL * columns, PANEL * rows + 0.9), dpi=120, layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    fill = ListedColormap(["#00e5ff"])
    width = PANEL * 0.95
    for k, ax in enumerate(axes):
        ax.set_axis_off()
        if k >= panels:
            continue
        ax.imshow(image, interpolation="nearest")
        if k == 0:
            ax.set_title(_wrap(f"image{f' ({image_note})' if image_note else ''}; next: + foreground point, x "
                               "background point, yellow box, cyan mask", width), fontsize=8)
            continue
        mask, given = masks[k - 1], prompts[k - 1]
        ax.imshow(np.ma.masked_where(~mask, np.ones(mask.shape)), cmap=fill, alpha=0.35, interpolation="nearest")
        if mask.any() and not mask.all():
            ax.contour(mask.astype(float), levels=[0.5], colors="#00e5ff", linewidths=1.2)
        for (x, y), label in zip(given.get("points", ()), given.get("labels", ())):
            ax.plot(x, y, "+" if label else "x", color="lime" if label else "red", markersize=9, mew=2)
        if given.get("box") is not None:
            x0, y0, x1, y1 = given["box"]
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="yellow", linewidth=1.5))
        ax.set_xlim(-0.5, image.shape[1] - 0.5)
        ax.set_ylim(image.shape[0] - 0.5, -0.5)
        ax.set_title(_wrap(f"{names[k - 1]}: predicted IoU {scores[k - 1]:.3f}, {int(mask.sum())} pixels", width),
                     fontsize=8)
    text = _wrap(title, PANEL * columns * 0.95, 11)
    if synthetic:
        text += "\n" + _wrap(MARK, PANEL * columns * 0.95, 11)
    fig.suptitle(text, fontsize=11)
    return fig


def _wrap(text: str, inches: float, fontsize: float = 8) -> str:
    return "\n".join(textwrap.wrap(text, max(12, int(inches * 72 / (0.6 * fontsize))), break_on_hyphens=False))


def save_sheet(fig, path: Path) -> list[Path]:
    """``fig`` as ``path`` (PNG) and a PDF beside it, each written whole."""
    return [write_whole(path, lambda tmp: fig.savefig(tmp, format="png")),
            write_whole(path.with_suffix(".pdf"), lambda tmp: fig.savefig(tmp, format="pdf"))]


def composite_note(signature: dict) -> str:
    """How the cache's images were made from the files: the composite's bands and stretch, or
    the 8-bit image as stored."""
    stored = signature.get("composite")
    if not stored:
        return "as stored"
    stretch = stored["stretch"]
    kind = stretch["kind"]
    if "low" in stretch:
        ranges = sorted({(lo, hi) for lo, hi in zip(stretch["low"], stretch["high"])})
        kind += " " + ", ".join(f"{lo:g}–{hi:g}" for lo, hi in ranges[:3])
    elif "percentiles" in stretch:
        kind += " {:g}–{:g} %".format(*stretch["percentiles"])
    return f"{stored.get('preset') or '/'.join(stored['bands'])}, stretch {kind}"


def cache_image(group, index: int) -> np.ndarray:
    """(H, W, 3) uint8 image ``index`` of a cache group as its encoder saw it, read from the dataset
    where extraction found it (its composite and stretch applied)."""
    from ..datasets import load_dataset
    from ..datasets.composite import Composite
    from ..datasets.inputs import InputReader

    root = Path(group.attrs.get("data_root", ""))
    try:
        dataset = load_dataset(group.dataset, root, **group.attrs.get("dataset_options", {}))
        stored = group.signature.get("composite")
        position = list(dataset.image_ids).index(str(group.read("image_ids")[index]))
        return InputReader(dataset, Composite.from_signature(stored) if stored else None)(position)[0]
    except (SamembedError, ValueError) as err:
        raise UsageError(f"--overlay draws the prompted images, and {group.dataset}'s images are not readable where "
                         f"the cache was extracted from ({root}): {str(err).splitlines()[0][:160]}") from None


def write_overlays(results: list, out: Path, predictor) -> list[Path]:
    """One sheet per image of ``results`` (:class:`~samembed.prompting.run.PromptResult`), as
    ``<image id>_overlay.png`` and ``.pdf`` in ``out`` (the id's folders and chip number joined by
    ``_``, its suffix dropped: ``Test_image_image11_overlay.png``); each result lists its sheet
    among its files."""
    group = predictor.group
    note, synthetic = composite_note(group.signature), synthetic_signature(group.signature)
    by_image: dict[int, list] = {}
    for result in results:
        by_image.setdefault(result.index, []).append(result)
    written = []
    for index, members in by_image.items():
        image = cache_image(group, index)
        answers = [m.answer for m in members]
        prompts = [{"points": a.prompt.points, "labels": a.prompt.labels, "box": a.prompt.box} for a in answers]
        names = [a.prompt.name or f"prompt {results.index(m)}" for a, m in zip(answers, members)]
        fig = draw_sheet(image, [a.mask for a in answers], prompts, [a.score for a in answers],
                         f"{members[0].image_id} · {group.dataset} · {group.name}", note, names, synthetic)
        image_id = members[0].image_id
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(Path(image_id.split("#")[0]).with_suffix("")) +
                      ("_" + image_id.split("#")[1] if "#" in image_id else ""))
        paths = save_sheet(fig, out / f"{stem}_overlay.png")
        for m in members:
            m.files.extend(paths)
        written += paths
    return written
