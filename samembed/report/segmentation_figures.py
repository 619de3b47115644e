"""The segmentation figures: per-image metric distributions and example predictions (``draw_*``
returns the figure, ``plot_*`` saves it as PNG and PDF)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .figure_style import finish, new_figure, save, series_style, wrap

# matplotlib 3.10 replaced boxplot's vert=False by orientation="horizontal" (and deprecates vert)
_HORIZONTAL = ({"orientation": "horizontal"} if tuple(int(v) for v in matplotlib.__version__.split(".")[:2]) >= (3, 10)
               else {"vert": False})
BOX_METRICS = (("pixel_accuracy", "pixel accuracy"), ("dice", "Dice = road F1"), ("iou", "IoU"))


def draw_boxplots(per_image: pd.DataFrame, title: str, names: dict[str, str] | None = None,
                  synthetic: bool = False) -> Figure:
    """Per-image pixel accuracy, Dice (= road F1) and IoU of every evaluated image of every seed:
    one horizontal box per model (``names``: its label in the figure), the models' names once, on
    the left, so that none overlaps another however many there are."""
    names = names or {}
    models = sorted(per_image["model"].unique())
    labels = [names.get(m, m) for m in models]
    longest = max(len(label) for label in labels)
    label_width = min(4.0, 0.07 * longest + 0.3)
    fig = new_figure(label_width + 9.0, 1.9 + 0.42 * len(models))
    axes = fig.subplots(1, 3, sharey=True)
    ys = np.arange(1, len(models) + 1)[::-1]
    for ax, (metric, name) in zip(axes, BOX_METRICS):
        data = [per_image.loc[per_image["model"] == m, metric].to_numpy(float) * 100 for m in models]
        parts = ax.boxplot(data, positions=ys, showmeans=True, widths=0.55,
                           patch_artist=True, meanprops={"marker": "^", "markerfacecolor": "white",
                                                         "markeredgecolor": "black", "markersize": 5},
                           **_HORIZONTAL)
        for k, box in enumerate(parts["boxes"]):
            box.set_facecolor(series_style(k)["color"])
            box.set_alpha(0.45)
        ax.set_xlabel(f"{name} per image (%)")
        ax.set_xlim(-2, 102)
        ax.grid(alpha=0.3, axis="x")
    axes[0].set_yticks(ys, [wrap(label, label_width, 8) for label in labels], fontsize=8)
    return finish(fig, title, synthetic)


def draw_examples(images: list[np.ndarray], truths: list[np.ndarray], predictions: dict[str, list[np.ndarray]],
                  names: list[str], title: str, prompts: dict[str, list[list[dict]]] | None = None,
                  labels: dict[str, str] | None = None, synthetic: bool = False) -> Figure:
    """A grid: one row per image (RGB, ground truth, each model's prediction). ``prompts`` gives,
    per zero-shot model and image, the prompts it was given (``points``, ``labels``, ``box``): drawn
    on its prediction (+ foreground point, x background point, rectangle box). ``labels``: each
    model's name in the figure."""
    prompts, labels = prompts or {}, labels or {}
    columns = ["image", "ground truth", *predictions]
    side = 2.4
    fig = new_figure(side * len(columns), side * len(images) + 1.0)
    axes = np.atleast_2d(fig.subplots(len(images), len(columns)))
    for r in range(len(images)):
        panels = [images[r], truths[r], *[predictions[m][r] for m in predictions]]
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel, cmap=None if panel.ndim == 3 else "gray", vmin=0, vmax=1 if panel.ndim == 2 else None,
                      interpolation="nearest")
            model = columns[c]
            for given in prompts.get(model, [[]] * len(images))[r] if c >= 2 else []:
                for (x, y), label in zip(given["points"], given["labels"]):
                    ax.plot(x, y, "+" if label else "x", color="lime" if label else "red", markersize=6, mew=1.5)
                if given.get("box"):
                    x0, y0, x1, y1 = given["box"]
                    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="yellow", linewidth=1))
            ax.set_xlim(-0.5, panel.shape[1] - 0.5)
            ax.set_ylim(panel.shape[0] - 0.5, -0.5)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(wrap(labels.get(model, model), side * 0.95, 8), fontsize=8)
        axes[r, 0].set_ylabel(wrap(names[r], side * 0.6, 8), fontsize=8)
    return finish(fig, title, synthetic)


def plot_boxplots(per_image: pd.DataFrame, path: Path, title: str, **kw) -> list[Path]:
    return save(draw_boxplots(per_image, title, **kw), path)


def plot_examples(images, truths, predictions, names, path: Path, title: str, **kw) -> list[Path]:
    return save(draw_examples(images, truths, predictions, names, title, **kw), path)
