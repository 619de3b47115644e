"""The retrieval kind in a sweep and its report rows."""

from __future__ import annotations

import numpy as np
import torch

from samembed.cache.synthetic import write_embedding_cache
from samembed.experiments.sweep import sweep
from samembed.report.build import write_report
from samembed.search.retrieval import recorded_retrieval, retrieval_scores


def test_retrieval_scores_equal_a_direct_computation():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (60, 8)).astype(np.float32)
    labels = rng.integers(0, 3, 60)
    queries, database = np.arange(0, 20), np.arange(20, 60)
    hits, ap, nearest = retrieval_scores(torch.from_numpy(x), labels, queries, database, k=5, block=7)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    for q in queries:
        order = database[np.argsort(-(xn[database] @ xn[q]), kind="stable")]
        relevant = labels[order] == labels[q]
        precisions = np.cumsum(relevant) / np.arange(1, len(order) + 1)
        assert hits[q] == relevant[:5].sum()
        assert np.isclose(ap[q], precisions[relevant].mean())
        assert nearest[q] == labels[order[0]]


def test_retrieval_in_a_sweep_and_its_report_rows(tmp_path):
    write_embedding_cache(tmp_path / "cache", noise=1.5)
    records = sweep("eurosat", heads=["retrieval", "knn"], splits=[0.5], seeds=2, cache_dir=tmp_path / "cache",
                    runs_dir=tmp_path / "runs", progress=False, device="cpu")
    retrieval = [r for r in records if r["config"]["head"] == "retrieval"]
    assert len(retrieval) == 2
    for record in retrieval:
        metrics = record["metrics"]
        precision, ap = recorded_retrieval(metrics)
        assert len(ap) == record["split"]["n_val"] == 100
        assert 0 < metrics["mean_average_precision"] < 1 and np.isclose(ap.mean(), metrics["mean_average_precision"],
                                                                        atol=1e-3)
        assert np.isclose(precision.mean(), metrics["precision_at_10"], atol=1e-3)
        assert metrics["selection"].startswith("none: nothing is trained")
    random_cache = tmp_path / "random"  # embeddings that carry no class: precision@10 near chance (1/5)
    write_embedding_cache(random_cache, separable=False)
    chance = sweep("eurosat", heads=["retrieval"], splits=[0.5], seeds=1, cache_dir=random_cache,
                   runs_dir=tmp_path / "runs2", progress=False, device="cpu")[0]["metrics"]["precision_at_10"]
    assert chance < 0.35 < min(r["metrics"]["precision_at_10"] for r in retrieval)

    report = write_report(tmp_path / "runs", tmp_path / "report")
    import pandas as pd

    table = pd.read_csv(tmp_path / "report" / "retrieval.csv")
    assert len(table) == 1 and table["n_seeds"][0] == 2 and table["k"][0] == 10
    assert np.isclose(table["precision_at_k_mean"][0], np.mean([r["metrics"]["precision_at_10"] for r in retrieval]))
    assert table["precision_at_k_boot95_low"][0] < table["precision_at_k_mean"][0] < table["precision_at_k_boot95_high"][0]
    assert table["best_classifier"][0] == "knn (neck)"
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "## Retrieval" in markdown and "| eurosat | fake-enc@64 | neck | val=0.5 |" in markdown
    assert "retrieval" in set(report.summary["head"])  # its 1-NN accuracy sits in the classification summary
