"""The report's figures, drawn with matplotlib's object API (no pyplot state, no display needed)
and saved as PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..atomic import write_whole

DPI = 120


def curve_labels(summary: pd.DataFrame) -> pd.Series:
    """A legend label per summary row: ``encoder · head (feature)``, with the training settings
    or cache id added only where they are needed to tell two lines apart."""
    base = summary["encoder"] + " · " + summary["head"] + " (" + summary["feature"] + ")"
    labels = base.copy()
    for extra, fmt in (("settings", " [{}]"), ("cache_id", " cache {}")):
        variants = summary.groupby(base)[extra].transform("nunique")
        labels = labels.where(variants <= 1, labels + summary[extra].map(fmt.format))
    return labels


def plot_split_sweep(summary: pd.DataFrame, path: Path, title: str, x: str = "train_fraction") -> Path:
    """Accuracy and macro F1 (mean over seeds, band: mean ± sample std) against ``x`` (the
    training fraction, or ``split_value`` for shots per class), one line per encoder and head."""
    labels = curve_labels(summary)
    legend_rows = -(-labels.nunique() // 3)
    fig = Figure(figsize=(11, 4.2 + 0.22 * legend_rows), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, 2, sharex=True)
    scale = 100.0 if x == "train_fraction" else 1.0
    for label in sorted(labels.unique()):
        rows = summary[labels == label].sort_values(x)
        xs = rows[x].to_numpy(float) * scale
        for ax, metric in zip(axes, ("accuracy", "macro_f1")):
            mean = rows[f"{metric}_mean"].to_numpy(float) * 100
            std = np.nan_to_num(rows[f"{metric}_std"].to_numpy(float)) * 100
            (line,) = ax.plot(xs, mean, marker="o", markersize=4, label=label)
            ax.fill_between(xs, mean - std, mean + std, color=line.get_color(), alpha=0.18, linewidth=0)
    seeds = summary["n_seeds"]
    spread = f"mean over {seeds.min()}–{seeds.max()} seeds" if seeds.min() != seeds.max() else f"mean over {seeds.min()} seed(s)"
    for ax, name in zip(axes, ("accuracy", "macro F1")):
        ax.set_xlabel("training images (% of labelled)" if x == "train_fraction" else "training images per class")
        ax.set_ylabel(f"{name} (%)")
        ax.set_title(f"{name}: {spread}, band ± 1 std", fontsize=10)
        ax.grid(alpha=0.3)
    if x != "train_fraction":  # shots per class: log axis, ticks at the values run
        values = sorted(summary[x].unique())
        for ax in axes:
            ax.set_xscale("log")
            ax.set_xticks(values, [f"{v:g}" for v in values])
            ax.minorticks_off()
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=min(3, len(names)), fontsize=8, frameon=False)
    fig.suptitle(title)
    return _save(fig, path)


def plot_training_curves(record: dict, path: Path, title: str) -> Path:
    """Training and validation loss and accuracy per epoch of one run (``record['curves']``)."""
    curves = record["curves"]
    epochs = curves["epoch"]
    score = "dice" if "val_dice" in curves else "acc"  # segmentation runs keep Dice, classification accuracy
    fig = Figure(figsize=(11, 4.2), dpi=DPI, layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2, sharex=True)
    for ax, quantity in ((loss_ax, "loss"), (acc_ax, score)):
        scale = 100 if quantity != "loss" else 1
        ax.plot(epochs, np.asarray(curves[f"train_{quantity}"]) * scale, marker=".", label="training")
        ax.plot(epochs, np.asarray(curves[f"val_{quantity}"]) * scale, marker=".", label="validation")
        best = record["metrics"].get("best_epoch")
        if best:
            ax.axvline(best, color="grey", linestyle=":", linewidth=1, label=f"kept: epoch {best}")
        ax.set_xlabel("epoch")
        ax.set_ylabel({"loss": "binary cross-entropy + Dice loss" if score == "dice" else "cross-entropy loss",
                       "acc": "accuracy (%)", "dice": "Dice on the mask grid (%)"}[quantity])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    fig.suptitle(title)
    return _save(fig, path)


def plot_confusion(matrix: np.ndarray, class_names: list[str], path: Path, title: str) -> Path:
    """Heat map of a confusion matrix (rows: true class, columns: predicted); colours are the row
    share (recall), numbers the counts."""
    matrix = np.asarray(matrix)
    n = len(class_names)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    side = max(5.0, 0.55 * n + 2.5)
    fig = Figure(figsize=(side + 1.2, side), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), class_names, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if share[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, label="share of the true class")
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    return write_whole(path, lambda tmp: fig.savefig(tmp, format="png"))


def plot_segmentation_boxplots(per_image: pd.DataFrame, path: Path, title: str) -> Path:
    """Box plots of per-image pixel accuracy, Dice (= road F1) and IoU, one box per model
    (every evaluated image of every seed)."""
    models = sorted(per_image["model"].unique())
    fig = Figure(figsize=(max(9, 3.2 * len(models)), 4.6), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, (metric, name) in zip(axes, (("pixel_accuracy", "pixel accuracy"), ("dice", "Dice = road F1"),
                                         ("iou", "IoU"))):
        data = [per_image.loc[per_image["model"] == m, metric].to_numpy(float) * 100 for m in models]
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(range(1, len(models) + 1), models, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel(f"{name} per image (%)")
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(title)
    return _save(fig, path)


def plot_segmentation_examples(images: list[np.ndarray], truths: list[np.ndarray],
                               predictions: dict[str, list[np.ndarray]], names: list[str], path: Path,
                               title: str, prompts: dict[str, list[list[dict]]] | None = None) -> Path:
    """A grid: one row per image (RGB, ground truth, each model's prediction). ``prompts`` gives,
    per zero-shot model and image, the prompts it was given (``points``, ``labels``, ``box``): drawn
    on its prediction (+ foreground point, x background point, rectangle box)."""
    from matplotlib.patches import Rectangle

    prompts = prompts or {}
    columns = ["image", "ground truth", *predictions]
    fig = Figure(figsize=(2.6 * len(columns), 2.6 * len(images) + 0.6), dpi=DPI, layout="constrained")
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
                ax.set_title(model, fontsize=8)
        axes[r, 0].set_ylabel(names[r], fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)
