"""The report's segmentation tables, from run records with ``task == "segmentation"``
(columns in docs/report.md)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..segmentation.metrics import METRIC_NAMES
from .markdown import number, table
from .segmentation_stats import image_intervals
from .tables import FROM_SCRATCH, cache_id, confidence_interval

SEG_KEYS = ["dataset", "model", "encoder", "head", "split", "evaluated_on", "cache_id"]


def model_label(record: dict) -> str:
    """``<cache group> · <head>`` for decoders, ``<head> (from scratch)`` for raw-image baselines."""
    head = record["config"]["head"]
    return f"{record['cache']['group']} · {head}" if record["config"].get("uses_encoder", True) else f"{head} (from scratch)"


def seg_runs_table(records: list[dict]) -> pd.DataFrame:
    rows = []
    for r in records:
        m, s = r["metrics"], r["split"]
        row = {"run_id": r["run_id"], "created": r.get("created", ""), "dataset": r["cache"]["dataset"],
               "model": model_label(r), "head": r["config"]["head"], "cache_id": cache_id(r),
               "encoder": r["cache"]["group"] if r["config"].get("uses_encoder", True) else FROM_SCRATCH, "split": s["name"], "seed": r["config"]["seed"],
               "n_train": s["n_train"], "n_val": s["n_val"], "n_test": s["n_test"], "evaluated_on": m["evaluated_on"],
               "best_epoch": m.get("best_epoch"), "mask_size": r["config"].get("mask_size")}
        row.update({f"micro_{k}": m[f"micro_{k}"] for k in METRIC_NAMES})
        row.update({f"mean_{k}": m[f"mean_{k}"] for k in METRIC_NAMES})
        row.update({"seconds": r.get("seconds", math.nan), "seconds_per_epoch": r.get("seconds_per_epoch", math.nan),
                    "epochs": (r["config"].get("settings") or {}).get("epochs"), "selection": m["selection"],
                    "predictions_dir": r.get("predictions_dir", ""), "indices_hash": s["indices_hash"]})
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["dataset", "model", "split", "seed"], kind="stable", ignore_index=True)


def seg_summary_table(runs: pd.DataFrame, records_by_id: dict[str, dict] | None = None) -> pd.DataFrame:
    """Per :data:`SEG_KEYS`: ``n_seeds``, and for every ``micro_*`` and ``mean_*`` metric its mean,
    sample std and 95 % confidence interval over seeds; mean seconds per epoch; with
    ``records_by_id``, after those, every metric's 95 % bootstrap interval over the evaluated
    images (``<metric>_boot95_low``, ``_high``: :func:`~samembed.report.segmentation_stats.image_intervals`)."""
    rows = []
    metrics = [f"{p}_{k}" for p in ("micro", "mean") for k in METRIC_NAMES]
    for key, group in runs.groupby(SEG_KEYS, sort=True, dropna=False):
        row = dict(zip(SEG_KEYS, key))
        row["n_seeds"] = int(group["seed"].nunique())
        for metric in metrics:
            values = group[metric].to_numpy(float)
            row[f"{metric}_mean"] = float(values.mean())
            row[f"{metric}_std"] = float(values.std(ddof=1)) if values.size > 1 else math.nan
            row[f"{metric}_ci95_low"], row[f"{metric}_ci95_high"] = confidence_interval(values)
        row["seconds_per_epoch_mean"] = float(group["seconds_per_epoch"].mean())
        row["run_ids"] = " ".join(group["run_id"])
        if records_by_id is not None:
            boot = image_intervals([records_by_id[i] for i in group["run_id"]])
            for metric in metrics:
                row[f"{metric}_boot95_low"], row[f"{metric}_boot95_high"] = boot[metric]
        rows.append(row)
    return pd.DataFrame(rows)


def seg_per_image_table(runs: pd.DataFrame, records_by_id: dict[str, dict]) -> pd.DataFrame:
    """One row per (run, evaluated image): pixel counts and the image's own metrics."""
    rows = []
    for _, run in runs.iterrows():
        for image in records_by_id[run["run_id"]]["metrics"]["per_image"]:
            rows.append({"run_id": run["run_id"], "dataset": run["dataset"], "model": run["model"],
                         "split": run["split"], "seed": run["seed"], "image_id": image["image_id"],
                         "prediction": image["prediction"], **{k: image[k] for k in ("tp", "fp", "fn", "tn")},
                         **{k: image[k] for k in METRIC_NAMES}})
    return pd.DataFrame(rows)


SEG_SUMMARY_HEAD = ["dataset", "model", "split", "evaluated on", "seeds", "Dice (= F1) all pixels %",
                    "IoU all pixels %", "pixel accuracy %", "Dice per image, mean %", "s/epoch"]


def seg_summary_markdown(summary: pd.DataFrame) -> str:
    """The segmentation summary in percent: mean ± std over seeds, and (in parentheses, where the
    summary has it) the 95 % bootstrap interval over the evaluated images; s/epoch ``–`` for
    models that train no epochs (zero-shot)."""
    def pct(row, m):
        text = f"{100 * row[m + '_mean']:.2f}"
        if not np.isnan(row[m + "_std"]):
            text += f" ± {100 * row[m + '_std']:.2f}"
        if f"{m}_boot95_low" in row and not np.isnan(row[f"{m}_boot95_low"]):
            text += f" ({100 * row[m + '_boot95_low']:.2f}–{100 * row[m + '_boot95_high']:.2f})"
        return text

    rows = [[row["dataset"], row["model"], row["split"], row["evaluated_on"], row["n_seeds"], pct(row, "micro_dice"),
             pct(row, "micro_iou"), pct(row, "micro_pixel_accuracy"), pct(row, "mean_dice"),
             number(row["seconds_per_epoch_mean"])] for _, row in summary.iterrows()]
    return table(SEG_SUMMARY_HEAD, rows)
