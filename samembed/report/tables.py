"""The report's tables, as pandas DataFrames built from run records. Column names are stable and
documented in docs/report.md; the CSV files are these frames written as they are."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from ..hashing import short_hash
from ..splits import SplitSpec

# The columns that make one summary row: runs that agree on all of them differ only by seed.
SUMMARY_KEYS = ["dataset", "encoder", "img_size", "head", "feature", "settings", "split", "evaluated_on", "cache_id"]
METRICS = ["accuracy", "macro_f1"]
SETTINGS_FIELDS = ["epochs", "lr", "batch_size", "warmup_epochs", "weight_decay"]


def runs_table(records: list[dict]) -> pd.DataFrame:
    """One row per run record, configuration and metrics flattened (columns in docs/report.md)."""
    rows = [_run_row(r) for r in records]
    frame = pd.DataFrame(rows)
    return frame.sort_values(["dataset", "encoder", "head", "feature", "split_kind", "split_value", "seed", "created"],
                             kind="stable", ignore_index=True)


def _run_row(record: dict) -> dict:
    config, cache, split, metrics = record["config"], record["cache"], record["split"], record["metrics"]
    encoder_signature = cache["signature"].get("encoder", {})
    settings = config.get("settings") or {}
    kind, value = split_kind_value(split["name"])
    n_labelled = split["n_train"] + split["n_val"]
    from_cache = config.get("uses_encoder", True)
    row = {
        "run_id": record["run_id"],
        "created": record.get("created", ""),
        "dataset": cache["dataset"],
        "encoder": cache["group"] if from_cache else FROM_SCRATCH,
        "img_size": encoder_signature.get("img_size") if from_cache else None,
        "cache_id": cache_id(record),
        "head": config["head"],
        "feature": config["feature"],
        "settings": settings_label(settings),
        "split": split["name"],
        "split_kind": kind,
        "split_value": value,
        # The fraction of the labelled images (train + validation) the head was trained on.
        "train_fraction": split["n_train"] / n_labelled if n_labelled else math.nan,
        "seed": config["seed"],
        "n_train": split["n_train"],
        "n_val": split["n_val"],
        "n_test": split["n_test"],
        "evaluated_on": metrics["evaluated_on"],
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "selection": metrics.get("selection", ""),
        "seconds": record.get("seconds", math.nan),
        "device": config.get("device", ""),
        "indices_hash": split["indices_hash"],
    }
    for field in SETTINGS_FIELDS:
        row[field] = settings.get(field, math.nan)
    for package, version in sorted(record.get("versions", {}).items()):
        row[f"version_{package}"] = version
    return row


FROM_SCRATCH = "none (from scratch)"


def cache_id(record: dict) -> str:
    """What the run trained on: a hash of the cache signature, or, for a model trained from
    scratch on the raw images, ``dataset-`` and the dataset's fingerprint."""
    if record["config"].get("uses_encoder", True):
        return short_hash(record["cache"]["signature"])
    return "dataset-" + record["cache"]["signature"]["dataset_fingerprint"]


def split_kind_value(name: str) -> tuple[str, float]:
    """``val=0.2`` -> ("val", 0.2); ``shots=5`` -> ("shots", 5.0); ``standard`` -> ("standard", nan)."""
    spec = SplitSpec.from_name(name)
    return spec.kind, spec.value_or_nan


def settings_label(settings: dict) -> str:
    """A short readable label of a torch head's training settings; "" for classic heads."""
    if not settings:
        return ""
    return f"epochs={settings['epochs']} lr={settings['lr']:g} batch={settings['batch_size']}"


def confidence_interval(values, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval for the mean of ``values`` (seeds as independent samples); (nan, nan)
    for fewer than two values, and (mean, mean) when they are all equal."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return math.nan, math.nan
    mean, sem = x.mean(), x.std(ddof=1) / math.sqrt(x.size)
    half = float(stats.t.ppf(0.5 + level / 2, df=x.size - 1)) * sem
    return float(mean - half), float(mean + half)


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per :data:`SUMMARY_KEYS` combination: ``n_seeds``, ``train_fraction`` and, for
    each metric, ``<metric>_mean``, ``_std`` (sample, ddof 1), ``_ci95_low``, ``_ci95_high``,
    ``_min``, ``_max``, plus ``run_ids`` (space separated)."""
    rows = []
    for key, group in runs.groupby(SUMMARY_KEYS, sort=False, dropna=False):
        row = dict(zip(SUMMARY_KEYS, key))
        row["split_kind"], row["split_value"] = group["split_kind"].iloc[0], group["split_value"].iloc[0]
        row["n_seeds"] = int(group["seed"].nunique())
        row["train_fraction"] = float(group["train_fraction"].median())  # equal over seeds; median keeps it exact
        for metric in METRICS:
            values = group[metric].to_numpy(float)
            low, high = confidence_interval(values)
            row[f"{metric}_mean"] = float(values.mean())
            row[f"{metric}_std"] = float(values.std(ddof=1)) if values.size > 1 else math.nan
            row[f"{metric}_ci95_low"], row[f"{metric}_ci95_high"] = low, high
            row[f"{metric}_min"], row[f"{metric}_max"] = float(values.min()), float(values.max())
        row["seconds_mean"] = float(group["seconds"].mean())
        row["run_ids"] = " ".join(group["run_id"])
        rows.append(row)
    columns = SUMMARY_KEYS + ["split_kind", "split_value", "n_seeds", "train_fraction"] + [
        f"{m}_{s}" for m in METRICS for s in ("mean", "std", "ci95_low", "ci95_high", "min", "max")
    ] + ["seconds_mean", "run_ids"]
    return pd.DataFrame(rows, columns=columns)


def per_class_table(summary: pd.DataFrame, records_by_id: dict[str, dict]) -> pd.DataFrame:
    """Per summary row and class: mean and sample std over seeds of precision, recall and F1,
    and the mean support (evaluated images of that class)."""
    rows = []
    for _, srow in summary.iterrows():
        records = [records_by_id[i] for i in srow["run_ids"].split()]
        classes = list(records[0]["metrics"]["per_class"])
        for name in classes:
            row = {k: srow[k] for k in SUMMARY_KEYS}
            row["n_seeds"], row["class"] = srow["n_seeds"], name
            for stat in ("precision", "recall", "f1"):
                values = np.array([r["metrics"]["per_class"][name][stat] for r in records], dtype=float)
                row[f"{stat}_mean"] = float(values.mean())
                row[f"{stat}_std"] = float(values.std(ddof=1)) if values.size > 1 else math.nan
            row["support_mean"] = float(np.mean([r["metrics"]["per_class"][name]["support"] for r in records]))
            rows.append(row)
    columns = SUMMARY_KEYS + ["n_seeds", "class"] + [
        f"{s}_{t}" for s in ("precision", "recall", "f1") for t in ("mean", "std")] + ["support_mean"]
    return pd.DataFrame(rows, columns=columns)


def confusion_table(runs: pd.DataFrame, records_by_id: dict[str, dict]) -> pd.DataFrame:
    """Every run's confusion matrix in long form: one row per (run, true class, predicted class)
    with the ``count`` of evaluated images; zero cells included."""
    rows = []
    for _, run in runs.iterrows():
        metrics = records_by_id[run["run_id"]]["metrics"]
        classes = list(metrics["per_class"])
        for i, true in enumerate(classes):
            for j, predicted in enumerate(classes):
                rows.append({"run_id": run["run_id"], "dataset": run["dataset"], "encoder": run["encoder"],
                             "head": run["head"], "feature": run["feature"], "split": run["split"],
                             "seed": run["seed"], "true_class": true, "predicted_class": predicted,
                             "count": int(metrics["confusion_matrix"][i][j])})
    return pd.DataFrame(rows, columns=["run_id", "dataset", "encoder", "head", "feature", "split", "seed",
                                       "true_class", "predicted_class", "count"])


def summed_confusion(run_ids: list[str], records_by_id: dict[str, dict]) -> tuple[np.ndarray, list[str]]:
    """The (n, n) confusion matrix summed over ``run_ids`` and the class names of its rows."""
    records = [records_by_id[i] for i in run_ids]
    matrix = np.sum([np.asarray(r["metrics"]["confusion_matrix"], dtype=np.int64) for r in records], axis=0)
    return matrix, list(records[0]["metrics"]["per_class"])
