"""Paired differences between configurations evaluated on the same images, for any task.

Two configurations are compared on the seeds they share where both runs evaluated the same images
(equal ``split.indices_hash`` on the same dataset files, and the same image truths): the
difference of each metric is averaged over those seeds, with a paired bootstrap interval
(:func:`~samembed.report.resampling.paired_difference`) and, from :data:`MIN_TEST_SEEDS` seeds on,
a paired t test over the seeds, Holm-adjusted over every pair the report compares on that dataset
(docs/report.md, "Paired differences")."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from ..splits import SplitSpec
from .resampling import (MIN_TEST_SEEDS, SAMPLES, SEED, Statistic, difference_interval, holm, resampled_together,
                         seed_test, whole)

#: ``samples(record) -> (statistic, truth) | None``: a run's per-image statistic and the truth of
#: its evaluated images (compared between the two runs of a pair), or ``None`` if the record holds
#: no per-image data.
Samples = Callable[[dict], tuple[Statistic, object] | None]


@dataclass
class Configuration:
    """One configuration of the report (a summary row): its ``label`` in tables, what it is, the
    mean of its primary metric (``score``) and its runs by seed."""

    label: str
    dataset: str
    split: str
    evaluated_on: str
    encoder: str
    head: str
    score: float
    runs: dict[int, dict] = field(default_factory=dict)

    @property
    def where(self) -> tuple[str, str, str]:
        return self.dataset, self.split, self.evaluated_on


@dataclass
class Comparisons:
    """The ``table`` of differences (one row per pair, columns in docs/report.md), why pairs that
    might have been compared were not (``not_compared``: one line each), and the configurations
    whose runs hold no per-image data to pair (``unpairable``, as ``label (split)``)."""

    table: pd.DataFrame
    not_compared: list[str]
    baseline: str | None = None
    unpairable: list[str] = field(default_factory=list)


def _images(record: dict) -> tuple:
    """What identifies the images a run evaluated: its dataset's files and its split's indices."""
    signature = record["cache"].get("signature", {})
    return record["cache"]["dataset"], signature.get("dataset_fingerprint"), record["split"]["indices_hash"]


def _shared_seeds(a: Configuration, b: Configuration) -> list[int]:
    return [s for s in sorted(set(a.runs) & set(b.runs)) if _images(a.runs[s]) == _images(b.runs[s])]


def _correction(a: Configuration, seeds: list[int]) -> float:
    """Nadeau & Bengio's ``n_test / n_train`` for ``val=F`` splits (each seed draws its own
    validation images from one pool, so the seeds' training sets overlap); 0 otherwise."""
    if SplitSpec.from_name(a.split).kind != "val":
        return 0.0
    splits = [a.runs[s]["split"] for s in seeds]
    return float(np.mean([s["n_val"] / s["n_train"] for s in splits if s["n_train"]] or [0.0]))


def _test_name(a: Configuration, seeds: list[int]) -> str:
    if len(seeds) < MIN_TEST_SEEDS:
        return ""
    return "paired t, Nadeau-Bengio corrected" if _correction(a, seeds) else "paired t"


def compare(a: Configuration, b: Configuration, samples: Samples, boot: dict[str, np.ndarray],
            metrics: tuple[str, ...]) -> dict | str:
    """The row of the difference ``a - b``, or the reason they cannot be compared (one line).
    ``samples`` gives every run of both; ``boot`` each run's (S, M) values on the resamples of its
    images (the same resamples for every run on the same images: :func:`comparisons`)."""
    seeds = _shared_seeds(a, b)
    if not seeds:
        common = sorted(set(a.runs) & set(b.runs))
        why = ("they share no seed" if not common else
               "their runs evaluated other images on every shared seed (their split indices differ)")
        return f"{a.label} and {b.label} ({a.split}): {why}"
    per_seed, boot_a, boot_b, sizes = [], [], [], []
    for s in seeds:
        run_a, run_b = a.runs[s], b.runs[s]
        (stat_a, truth_a), (stat_b, truth_b) = samples(run_a), samples(run_b)
        if len(truth_a) != len(truth_b) or not np.array_equal(np.asarray(truth_a), np.asarray(truth_b)):
            return f"{a.label} and {b.label} ({a.split}, seed {s}): the truths of their evaluated images differ"
        per_seed.append(whole(stat_a, len(truth_a)) - whole(stat_b, len(truth_b)))
        boot_a.append(boot[run_a["run_id"]])
        boot_b.append(boot[run_b["run_id"]])
        sizes.append(len(truth_a))
    low, high = difference_interval(boot_a, boot_b)
    per_seed = np.asarray(per_seed)
    row = {"dataset": a.dataset, "split": a.split, "evaluated_on": a.evaluated_on, "a": a.label, "b": b.label,
           "n_seeds": len(seeds), "seeds": " ".join(str(s) for s in seeds), "n_images": int(np.mean(sizes)),
           "test": _test_name(a, seeds)}
    correction = _correction(a, seeds)
    for k, metric in enumerate(metrics):
        row[f"{metric}_diff"] = float(per_seed[:, k].mean())
        row[f"{metric}_diff_boot95_low"] = float(low[k])
        row[f"{metric}_diff_boot95_high"] = float(high[k])
        row[f"{metric}_p"] = seed_test(per_seed[:, k], correction)
    return row


def _resample_shared(pairs: list, samples: Samples) -> dict[str, np.ndarray]:
    """Each run's (S, M) bootstrap values, every run on the same images scored on the same
    resamples (drawn once per set of images, with a generator seeded by that set: the same
    report every time, and the same draw for a pair whichever other runs are reported)."""
    needed: dict[tuple, dict[str, dict]] = {}
    for a, b in pairs:
        for s in _shared_seeds(a, b):
            for run in (a.runs[s], b.runs[s]):
                n = len(samples(run)[1])
                needed.setdefault((*_images(run), n), {})[run["run_id"]] = run
    boot = {}
    for key, runs in needed.items():
        rng = np.random.default_rng([SEED, zlib.crc32(repr(key).encode())])
        values = resampled_together([samples(r)[0] for r in runs.values()], key[-1], SAMPLES, rng)
        boot.update(zip(runs, values))
    return boot


def pairs_of(configurations: list[Configuration], baseline: str | None = None) -> tuple[list, list[str]]:
    """The (a, b) pairs to compare, and lines saying which configurations lack a baseline.

    Without ``baseline``: every two configurations on the same dataset, split and evaluated part,
    ``a`` the one with the higher score. With it: each configuration against the baseline's on its
    split, where the baseline is the configuration whose head or encoder is ``baseline`` (an
    encoder also by prefix; see :func:`_counterpart`)."""
    by_where: dict[tuple, list[Configuration]] = {}
    for c in configurations:
        by_where.setdefault(c.where, []).append(c)
    pairs, missing = [], []
    for where, group in by_where.items():
        if baseline is None:
            for x, y in combinations(group, 2):
                pairs.append((x, y) if (x.score, y.label) >= (y.score, x.label) else (y, x))
            continue
        bases = [c for c in group if _is_baseline(c, baseline)]
        for c in group:
            if c in bases:
                continue
            base = _counterpart(c, bases, baseline)
            if base is None:
                missing.append(f"{c.label} ({c.split}): " + (
                    "no baseline configuration on this split" if not bases else
                    "no baseline configuration with its head" if bases[0].head != baseline else
                    "several baseline configurations fit; filter the report (--encoder)"))
            else:
                pairs.append((c, base))
    return pairs, missing


def _is_baseline(c: Configuration, name: str) -> bool:
    return c.head == name or c.encoder == name or c.encoder.startswith(name)


def _counterpart(c: Configuration, bases: list[Configuration], name: str) -> Configuration | None:
    """The baseline configuration ``c`` is compared with: for an encoder baseline, the one with
    ``c``'s head (a difference of encoders, not of heads); for a head baseline, the one on ``c``'s
    encoder, or the only one there is (a model from scratch, a head run on one encoder)."""
    if bases and bases[0].head != name:  # an encoder baseline
        same = [b for b in bases if b.head == c.head]
    else:
        same = [b for b in bases if b.encoder == c.encoder] or (bases if len(bases) == 1 else [])
    return same[0] if len(same) == 1 else None


def comparisons(configurations: list[Configuration], samples: Samples, metrics: tuple[str, ...],
                baseline: str | None = None) -> Comparisons:
    """Every comparable pair's differences (:func:`pairs_of`), Holm-adjusted per dataset and metric
    over the pairs compared (``<metric>_p_holm``). A configuration with a run recorded without
    per-image data is left out, with a line saying so."""
    memo: dict[str, object] = {}

    def cached(record: dict):
        if record["run_id"] not in memo:
            memo[record["run_id"]] = samples(record)
        return memo[record["run_id"]]

    pairable = [c for c in configurations if all(cached(r) is not None for r in c.runs.values())]
    unpairable = [f"{c.label} ({c.split})" for c in configurations if c not in pairable]
    pairs, not_compared = pairs_of(pairable, baseline)
    boot = _resample_shared(pairs, cached)
    rows = []
    for a, b in pairs:
        got = compare(a, b, cached, boot, metrics)
        if isinstance(got, str):
            not_compared.append(got)
        else:
            rows.append(got)
    columns = ["dataset", "split", "evaluated_on", "a", "b", "n_seeds", "seeds", "n_images", "test"] + [
        f"{m}_{s}" for m in metrics for s in ("diff", "diff_boot95_low", "diff_boot95_high", "p", "p_holm")]
    table = pd.DataFrame(rows, columns=columns)
    for metric in metrics:
        for _, index in table.groupby("dataset", sort=False).groups.items():
            table.loc[index, f"{metric}_p_holm"] = holm(table.loc[index, f"{metric}_p"].to_numpy(float))
    return Comparisons(table, not_compared, baseline, unpairable)
