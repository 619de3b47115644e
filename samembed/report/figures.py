"""The classification figures and the training curves: ``draw_*`` returns the matplotlib figure
(tests measure its layout), ``plot_*`` saves it as PNG and PDF (:func:`figure_style.save`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .figure_style import finish, new_figure, save, series_style, wrap
from .names import series_labels

BAND_LIMIT = 3  # up to this many series the spread is a translucent band; beyond, error bars (bands turn to mud)


def dodge(xs: np.ndarray, k: int, n: int, log: bool) -> np.ndarray:
    """Series ``k`` of ``n`` moved sideways by a fraction of the gap between x values, so that
    equal values do not hide each other (the offset is at most a sixth of the smallest gap)."""
    if n < 2 or xs.size == 0:
        return xs
    values = np.unique(xs)
    if log:
        gap = np.diff(np.log(values)).min() if values.size > 1 else 0.5
        return xs * np.exp((k - (n - 1) / 2) * gap / 3 / (n - 1))
    gap = np.diff(values).min() if values.size > 1 else 1.0
    return xs + (k - (n - 1) / 2) * gap / 3 / (n - 1)


def _legend(fig: Figure, axes, width: float) -> None:
    handles, labels = axes[0].get_legend_handles_labels()
    longest = max((len(label) for label in labels), default=1)
    ncols = max(1, min(len(labels), int(width * 72 / (0.6 * 8) // (longest + 6))))
    fig.legend(handles, labels, loc="outside lower center", ncols=ncols, fontsize=8, frameon=False)


def spread_text(n_seeds: pd.Series) -> str:
    """What a split-sweep point and its band are."""
    low, high = int(n_seeds.min()), int(n_seeds.max())
    seeds = f"{low}–{high} seeds" if low != high else (f"{low} seeds" if low > 1 else "one seed")
    if high < 2:
        return f"mean of {seeds}, no spread"
    return f"mean of {seeds}, ± 1 std over seeds (cut to 0–100 %)"


def draw_split_sweep(summary: pd.DataFrame, title: str, x: str = "train_fraction", names: dict | None = None,
                     synthetic: bool = False) -> Figure:
    """Accuracy and macro F1 (mean over seeds; spread: ± 1 sample std over seeds, cut to 0-100 %)
    against ``x`` (the training fraction, or ``split_value``: images per class on a log axis), one
    series per configuration, each with its own colour, marker and line style, dodged sideways."""
    labels = series_labels(summary, names)
    order = sorted(labels.unique())
    width = 11.0
    fig = new_figure(width, 4.4 + 0.2 * -(-len(order) // 3))
    axes = fig.subplots(1, 2, sharex=True)
    log = x != "train_fraction"
    scale = 100.0 if not log else 1.0
    band = len(order) <= BAND_LIMIT
    for k, label in enumerate(order):
        rows = summary[labels == label].sort_values(x)
        xs = dodge(rows[x].to_numpy(float) * scale, k, len(order), log)
        style = series_style(k)
        for ax, metric in zip(axes, ("accuracy", "macro_f1")):
            mean = rows[f"{metric}_mean"].to_numpy(float) * 100
            std = np.nan_to_num(rows[f"{metric}_std"].to_numpy(float)) * 100
            low, high = np.clip(mean - std, 0, 100), np.clip(mean + std, 0, 100)
            ax.plot(xs, mean, markersize=5, linewidth=1.4, label=label, **style)
            if not std.any():
                continue
            if band:
                ax.fill_between(xs, low, high, color=style["color"], alpha=0.15, linewidth=0)
            else:
                ax.errorbar(xs, mean, yerr=[mean - low, high - mean], fmt="none", ecolor=style["color"],
                            elinewidth=1, capsize=2, alpha=0.8)
    spread = spread_text(summary["n_seeds"])
    for ax, name in zip(axes, ("accuracy", "macro F1")):
        ax.set_xlabel("training images (% of labelled)" if not log else "training images per class")
        ax.set_ylabel(f"{name} (%)")
        ax.set_title(wrap(f"{name}: {spread}", width / 2, 10), fontsize=10)
        ax.grid(alpha=0.3)
    if log:  # shots per class: ticks at the values run
        values = sorted(summary[x].unique())
        for ax in axes:
            ax.set_xscale("log")
            ax.set_xticks(values, [f"{v:g}" for v in values])
            ax.minorticks_off()
    _legend(fig, axes, width)
    return finish(fig, title, synthetic)


def draw_difference_sweep(rows: pd.DataFrame, title: str, baseline: str, x: str = "train_fraction",
                          order: list[str] | None = None, synthetic: bool = False) -> Figure:
    """The split sweep's companion: each configuration's difference to the baseline (``series``
    against ``x``), in percentage points, with its paired 95 % bootstrap interval over the
    evaluated images as error bars (``<metric>_diff``, ``_diff_boot95_low``, ``_high``). ``order``:
    the split sweep's series (the baseline's included), so each keeps its look and place there."""
    order = order or sorted(rows["series"].unique())
    width = 11.0
    fig = new_figure(width, 4.4 + 0.2 * -(-len(order) // 3))
    axes = fig.subplots(1, 2, sharex=True)
    log = x != "train_fraction"
    scale = 100.0 if not log else 1.0
    for k, label in enumerate(order):
        part = rows[rows["series"] == label].sort_values(x)
        if not len(part):
            continue
        xs = dodge(part[x].to_numpy(float) * scale, k, len(order), log)
        style = series_style(k)
        for ax, metric in zip(axes, ("accuracy", "macro_f1")):
            diff = part[f"{metric}_diff"].to_numpy(float) * 100
            low = part[f"{metric}_diff_boot95_low"].to_numpy(float) * 100
            high = part[f"{metric}_diff_boot95_high"].to_numpy(float) * 100
            ax.errorbar(xs, diff, yerr=[diff - low, high - diff], markersize=5, linewidth=1.4, elinewidth=1,
                        capsize=2, label=label, **style)
    for ax, name in zip(axes, ("accuracy", "macro F1")):
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xlabel("training images (% of labelled)" if not log else "training images per class")
        ax.set_ylabel(f"{name} difference (percentage points)")
        ax.set_title(wrap(f"{name}: minus {baseline}, paired 95 % image interval", width / 2, 10), fontsize=10)
        ax.grid(alpha=0.3)
    if log:
        values = sorted(rows[x].unique())
        for ax in axes:
            ax.set_xscale("log")
            ax.set_xticks(values, [f"{v:g}" for v in values])
            ax.minorticks_off()
    _legend(fig, axes, width)
    return finish(fig, title, synthetic)


def draw_difference_forest(rows: pd.DataFrame, metrics: list[tuple[str, str]], title: str,
                           synthetic: bool = False) -> Figure:
    """One row per compared pair (``series``; ``style``: the index of its look, as in the
    figures beside it), one panel per metric (``(column prefix, name)``): the difference in
    percentage points with its paired 95 % bootstrap interval, and zero."""
    labels = list(rows["series"])
    longest = max((len(label) for label in labels), default=10)
    label_width = min(4.5, 0.075 * longest + 0.3)
    width = label_width + 3.2 * len(metrics)
    fig = new_figure(width, 1.7 + 0.32 * len(labels))
    axes = np.atleast_1d(fig.subplots(1, len(metrics), sharey=True))
    ys = np.arange(len(labels))[::-1]
    for ax, (metric, name) in zip(axes, metrics):
        diff = rows[f"{metric}_diff"].to_numpy(float) * 100
        low = rows[f"{metric}_diff_boot95_low"].to_numpy(float) * 100
        high = rows[f"{metric}_diff_boot95_high"].to_numpy(float) * 100
        looks = rows["style"].to_numpy(int) if "style" in rows else np.arange(len(rows))
        for k, y in enumerate(ys):
            style = series_style(looks[k])
            ax.errorbar(diff[k], y, xerr=[[diff[k] - low[k]], [high[k] - diff[k]]], fmt=style["marker"],
                        color=style["color"], markersize=5, elinewidth=1.2, capsize=2)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_xlabel(wrap(f"{name} difference (pp)", 3.0, 9), fontsize=9)
        ax.grid(alpha=0.3, axis="x")
    axes[0].set_yticks(ys, [wrap(label, label_width, 8) for label in labels], fontsize=8)
    axes[0].set_ylim(-0.7, len(labels) - 0.3)
    return finish(fig, title, synthetic)


def draw_training_curves(record: dict, title: str, synthetic: bool = False) -> Figure:
    """Training and validation loss and accuracy (or Dice) per epoch of one run; whole epochs on
    the axis, the kept epoch marked."""
    curves = record["curves"]
    epochs = curves["epoch"]
    score = "dice" if "val_dice" in curves else "acc"  # segmentation runs keep Dice, classification accuracy
    width = 11.0
    fig = new_figure(width, 4.4)
    loss_ax, acc_ax = fig.subplots(1, 2, sharex=True)
    for ax, quantity in ((loss_ax, "loss"), (acc_ax, score)):
        scale = 100 if quantity != "loss" else 1
        for k, part in enumerate(("train", "val")):
            ax.plot(epochs, np.asarray(curves[f"{part}_{quantity}"]) * scale, markersize=3 if len(epochs) > 15 else 5,
                    label=("training", "validation")[k], **series_style(k))
        best = record["metrics"].get("best_epoch")
        if best:
            ax.axvline(best, color="grey", linestyle=":", linewidth=1, label=f"kept: epoch {best}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel({"loss": "binary cross-entropy + Dice loss" if score == "dice" else "cross-entropy loss",
                       "acc": "accuracy (%)", "dice": "Dice on the mask grid (%)"}[quantity])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    return finish(fig, title, synthetic)


def draw_confusion(matrix: np.ndarray, class_names: list[str], title: str, synthetic: bool = False) -> Figure:
    """Heat map of a confusion matrix (rows: true class, columns: predicted); colours are the row
    share (recall), numbers the counts."""
    matrix = np.asarray(matrix)
    n = len(class_names)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    side = max(5.0, 0.5 * n + 3.0)
    fig = new_figure(side + 1.6, side + 0.6)
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), class_names, rotation=45, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticks(range(n), class_names, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if n <= 30:
        size = 7 if n <= 12 else 5
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=size,
                            color="white" if share[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, label="share of the true class", shrink=0.8)
    return finish(fig, title, synthetic, fontsize=10)


def plot_split_sweep(summary: pd.DataFrame, path: Path, title: str, x: str = "train_fraction", **kw) -> list[Path]:
    return save(draw_split_sweep(summary, title, x, **kw), path)


def plot_difference_sweep(rows: pd.DataFrame, path: Path, title: str, baseline: str, x: str = "train_fraction",
                          **kw) -> list[Path]:
    return save(draw_difference_sweep(rows, title, baseline, x, **kw), path)


def plot_difference_forest(rows: pd.DataFrame, metrics, path: Path, title: str, **kw) -> list[Path]:
    return save(draw_difference_forest(rows, metrics, title, **kw), path)


def plot_training_curves(record: dict, path: Path, title: str, **kw) -> list[Path]:
    return save(draw_training_curves(record, title, **kw), path)


def plot_confusion(matrix: np.ndarray, class_names: list[str], path: Path, title: str, **kw) -> list[Path]:
    return save(draw_confusion(matrix, class_names, title, **kw), path)
