"""``run_demo``: the whole pipeline offline, on generated images and a randomly initialised
SAM-format encoder: synthetic dataset, extraction, a small sweep, the report (with every head's
paired difference to knn)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .datasets import make_synthetic_dataset
from .encoders import write_tiny_checkpoint
from .experiments.sweep import sweep
from .extraction import extract
from .report import Report, write_report

NOTE = ("These numbers come from synthetic images and a randomly initialised encoder (samembed demo): "
        "they show that the pipeline works and say nothing about SAM or EuroSAT.")

# Small enough to finish in about a minute on 2 CPU cores, large enough for curves with a spread.
DEMO_IMAGES_PER_CLASS = 50
DEMO_JITTER = 35.0  # classes overlap, so the heads do not all score 100 %
DEMO_IMG_SIZE = 128  # an 8 x 8 feature map
DEMO_GRID = 4  # pooled to 4 x 4, so sam-conv trains in seconds
DEMO_HEADS = ("linear", "mlp", "sam-conv", "logreg", "knn")
DEMO_SPLITS = (0.2, 0.4, 0.6, 0.8)
DEMO_SEEDS = 3
DEMO_BASELINE = "knn"  # the report shows every head's paired difference to the nearest-neighbour probe


@dataclass
class DemoResult:
    out: Path
    report: Report
    seconds: float


def run_demo(out: str | Path = "samembed-demo", *, progress: bool = True,
             say: Callable[[str], None] = lambda message: None) -> DemoResult:
    """Run every stage into ``out`` (data/, tiny_sam.pth, cache/, experiments/, report/) and
    return where the report went. Running it again reuses what is there (the stages resume)."""
    t0 = time.perf_counter()
    out = Path(out)
    say(f"1/4 generating a synthetic EuroSAT-like dataset in {out / 'data'}")
    data = make_synthetic_dataset(out / "data", images_per_class=DEMO_IMAGES_PER_CLASS, jitter=DEMO_JITTER)
    checkpoint = out / "tiny_sam.pth"
    if not checkpoint.exists():
        write_tiny_checkpoint(checkpoint, embed_dim=32, depth=2, num_heads=2, global_attn_indexes=(1,))
    say(f"2/4 extracting embeddings with a tiny random-weight SAM encoder into {out / 'cache'}")
    extract("eurosat", data_dir=data, checkpoint=checkpoint, img_size=DEMO_IMG_SIZE, grid=DEMO_GRID, cache_dir=out / "cache",
            progress=progress)
    say(f"3/4 training {', '.join(DEMO_HEADS)} on {len(DEMO_SPLITS)} splits x {DEMO_SEEDS} seeds")
    sweep("eurosat", heads=list(DEMO_HEADS), splits=list(DEMO_SPLITS), seeds=DEMO_SEEDS, cache_dir=out / "cache",
          runs_dir=out / "experiments", progress=progress)
    say(f"4/4 writing the report to {out / 'report'}")
    report = write_report(out / "experiments", out / "report", note=NOTE, baseline=DEMO_BASELINE)
    return DemoResult(out, report, time.perf_counter() - t0)
