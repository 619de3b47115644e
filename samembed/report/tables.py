"""The report's tables, as pandas DataFrames built from run records. Column names are stable and
documented in docs/report.md; the CSV files are these frames written as they are."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from ..hashing import short_hash
from ..splits import SplitSpec
from .classification_stats import macro_f1_present

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
    lr = "|".join(f"{v:g}" for v in settings["lr_grid"]) + " (chosen)" if settings.get("lr_grid") else f"{settings['lr']:g}"
    floor = f" min_steps={settings['min_steps']}" if settings.get("min_steps") else ""
    return f"epochs={settings['epochs']}{floor} lr={lr} batch={settings['batch_size']}"


def confidence_interval(values, level: float = 0.95, bounds: tuple[float, float] = (0.0, 1.0)) -> tuple[float, float]:
    """Student-t interval for the mean of ``values`` (seeds as independent samples), cut to
    ``bounds`` (a metric's range: with 2 or 3 seeds the t interval can reach past 0 or 1, which
    no mean can); (nan, nan) for fewer than two values, and (mean, mean) when they are all equal."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return math.nan, math.nan
    mean, sem = x.mean(), x.std(ddof=1) / math.sqrt(x.size)
    half = float(stats.t.ppf(0.5 + level / 2, df=x.size - 1)) * sem
    low, high = bounds
    return float(max(low, mean - half)), float(min(high, mean + half))


BOOTSTRAP_SAMPLES = 1000  # resamples of the evaluated images
BOOTSTRAP_SEED = 0  # fixed, so a report is the same every time it is written


def bootstrap_interval(confusions: list, level: float = 0.95, samples: int = BOOTSTRAP_SAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of the mean over runs of each of :data:`METRICS`, from the
    runs' (C, C) confusion matrices (rows: true class): every resample draws each run's evaluated
    images again with replacement (as many as it has; an image's (true, predicted) pair is all
    accuracy and macro F1 depend on, so drawing the cells of the confusion matrix is drawing the
    images) and averages the runs' metrics. With one run it is that run's interval over its
    images; it says how much the figure depends on which images were evaluated, not on seeds.
    A resample's macro F1 averages the classes present in its truth
    (:func:`~samembed.report.classification_stats.macro_f1_present`), so a classifier right on
    every image has an interval of zero width."""
    rng = np.random.default_rng(seed)
    accuracy, macro_f1 = np.zeros(samples), np.zeros(samples)
    for matrix in confusions:
        m = np.asarray(matrix, dtype=np.int64)
        c, n = m.shape[0], int(m.sum())
        drawn = rng.multinomial(n, m.ravel() / n, size=samples).reshape(samples, c, c)  # (S, C, C)
        tp = np.einsum("sii->si", drawn).astype(float)  # (S, C)
        accuracy += tp.sum(1) / n
        macro_f1 += macro_f1_present(tp, drawn.sum(2), drawn.sum(1))  # true (rows), predicted (columns)
    tail = 100 * (1 - level) / 2
    return {name: tuple(float(v) for v in np.percentile(values / len(confusions), [tail, 100 - tail]))
            for name, values in (("accuracy", accuracy), ("macro_f1", macro_f1))}


def summary_table(runs: pd.DataFrame, records_by_id: dict[str, dict] | None = None) -> pd.DataFrame:
    """One row per :data:`SUMMARY_KEYS` combination: ``n_seeds``, ``train_fraction`` and, for
    each metric, ``<metric>_mean``, ``_std`` (sample, ddof 1), ``_ci95_low``, ``_ci95_high``
    (over seeds, within [0, 1]), ``_min``, ``_max``, plus ``run_ids`` (space separated); with
    ``records_by_id``, also ``<metric>_boot95_low``, ``_boot95_high`` (:func:`bootstrap_interval`
    over the evaluated images) and ``batch_size`` (the batch the runs trained with)."""
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
        if records_by_id is not None:
            records = [records_by_id[i] for i in group["run_id"]]
            boot = bootstrap_interval([r["metrics"]["confusion_matrix"] for r in records])
            for metric in METRICS:
                row[f"{metric}_boot95_low"], row[f"{metric}_boot95_high"] = boot[metric]
            row["batch_size"] = trained_batch(records)
        rows.append(row)
    columns = SUMMARY_KEYS + ["split_kind", "split_value", "n_seeds", "train_fraction"] + [
        f"{m}_{s}" for m in METRICS for s in ("mean", "std", "ci95_low", "ci95_high", "min", "max")
    ] + ["seconds_mean", "run_ids"]
    if records_by_id is not None:
        columns += [f"{m}_boot95_{s}" for m in METRICS for s in ("low", "high")] + ["batch_size"]
    return pd.DataFrame(rows, columns=columns)


def trained_batch(records: list[dict]) -> str:
    """The batch the runs trained with, as their records say (``training.batch_size``; a run of
    60 images trains in batches of 60, not the settings' 256): one number, ``a-b`` when the runs
    differ, ``""`` where no record says (heads without batches, records of release 0.1.0)."""
    sizes = sorted({r["training"]["batch_size"] for r in records if "batch_size" in r.get("training", {})})
    if not sizes:
        return ""
    return str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"


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
