"""The retrieval table of the report: runs of the ``retrieval`` head (samembed.search.retrieval)
with precision@k and mean average precision, beside the accuracy of the best classification head
on the same cache group, split and evaluated part."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .markdown import pct, table
from .tables import BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED, SUMMARY_KEYS, confidence_interval

METRICS = (("precision_at_k", "precision@k"), ("mean_average_precision", "mAP"))
TEXT = ("Retrieval: each evaluated image a query against the training part, ranked by cosine on the pooled vector "
        "(nothing trained). precision@k: the share of the query's k nearest training images of its class; mAP: "
        "average precision of its class over the whole ranking, averaged over the queries. In percent: mean ± "
        "sample standard deviation over seeds, [95 % Student-t interval over seeds], (95 % bootstrap interval over "
        "the evaluated queries, 1,000 resamples). Beside them: the accuracy of the retrieval's nearest neighbour "
        "(1-NN) and of the most accurate classification head on the same cache group, split and evaluated images.")
HEAD = ["dataset", "encoder", "feature", "split", "evaluated on", "seeds", "k",
        "precision@k % mean ± std [seeds 95 %] (queries 95 %)", "mAP % mean ± std [seeds 95 %] (queries 95 %)",
        "1-NN accuracy %", "best classifier: accuracy %"]


def _per_query(records: list[dict]) -> list[tuple[np.ndarray, np.ndarray]]:
    from ..search.retrieval import recorded_retrieval

    return [recorded_retrieval(r["metrics"]) for r in records]


def _bootstrap(values: list[np.ndarray]) -> tuple[float, float]:
    """Percentile interval of the mean over runs of each run's mean over resampled queries."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    total = np.zeros(BOOTSTRAP_SAMPLES)
    for v in values:
        total += v[rng.integers(0, len(v), (BOOTSTRAP_SAMPLES, len(v)))].mean(1)
    low, high = np.percentile(total / len(values), [2.5, 97.5])
    return float(low), float(high)


def retrieval_table(summary: pd.DataFrame, by_id: dict[str, dict]) -> pd.DataFrame:
    """One row per summary row of the retrieval head (whose records hold ``metrics.retrieval``)."""
    rows = []
    for _, srow in summary.iterrows():
        records = [by_id[i] for i in srow["run_ids"].split()]
        if not all(r["metrics"].get("retrieval") for r in records):
            continue
        row = {key: srow[key] for key in SUMMARY_KEYS}
        row.update(split_kind=srow["split_kind"], n_seeds=int(srow["n_seeds"]),
                   k=int(records[0]["metrics"]["retrieval"]["k"]), nn_accuracy_mean=float(srow["accuracy_mean"]))
        queries = _per_query(records)
        for metric, position in (("precision_at_k", 0), ("mean_average_precision", 1)):
            name = metric if metric == "mean_average_precision" else f"precision_at_{row['k']}"
            values = np.array([r["metrics"][name] for r in records])  # as recorded (float64, not the float16 copies)
            row[f"{metric}_mean"] = float(values.mean())
            row[f"{metric}_std"] = float(values.std(ddof=1)) if values.size > 1 else math.nan
            row[f"{metric}_ci95_low"], row[f"{metric}_ci95_high"] = confidence_interval(values)
            row[f"{metric}_boot95_low"], row[f"{metric}_boot95_high"] = _bootstrap([q[position] for q in queries])
        same = summary[(summary["dataset"] == srow["dataset"]) & (summary["cache_id"] == srow["cache_id"])
                       & (summary["encoder"] == srow["encoder"]) & (summary["split"] == srow["split"])
                       & (summary["evaluated_on"] == srow["evaluated_on"]) & (summary["head"] != srow["head"])]
        best = same.sort_values("accuracy_mean", ascending=False, kind="stable").head(1)
        row["best_classifier"] = f"{best['head'].iloc[0]} ({best['feature'].iloc[0]})" if len(best) else ""
        row["best_classifier_accuracy_mean"] = float(best["accuracy_mean"].iloc[0]) if len(best) else math.nan
        row["run_ids"] = srow["run_ids"]
        rows.append(row)
    columns = SUMMARY_KEYS + ["split_kind", "n_seeds", "k"] + [
        f"{m}_{s}" for m, _ in METRICS for s in ("mean", "std", "ci95_low", "ci95_high", "boot95_low", "boot95_high")
    ] + ["nn_accuracy_mean", "best_classifier", "best_classifier_accuracy_mean", "run_ids"]
    return pd.DataFrame(rows, columns=columns)


def _cell(row, metric: str) -> str:
    text = f"{pct(row[f'{metric}_mean'])} ± {pct(row[f'{metric}_std'])}"
    if not math.isnan(row[f"{metric}_ci95_low"]):
        text += f" [{pct(row[f'{metric}_ci95_low'])}, {pct(row[f'{metric}_ci95_high'])}]"
    return text + f" ({pct(row[f'{metric}_boot95_low'])}–{pct(row[f'{metric}_boot95_high'])})"


def retrieval_markdown(frame: pd.DataFrame) -> str:
    rows = [[r["dataset"], r["encoder"], r["feature"], r["split"], r["evaluated_on"], r["n_seeds"], r["k"],
             _cell(r, "precision_at_k"), _cell(r, "mean_average_precision"), pct(r["nn_accuracy_mean"]),
             f"{pct(r['best_classifier_accuracy_mean'])} {r['best_classifier']}".strip() if r["best_classifier"]
             else "–"]
            for _, r in frame.sort_values(["dataset", "encoder", "feature", "split"], kind="stable").iterrows()]
    return table(HEAD, rows)
