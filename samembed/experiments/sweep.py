"""``train_head`` and ``sweep``: the library functions behind ``samembed train-head`` and
``samembed sweep``."""

from __future__ import annotations

from itertools import product
from pathlib import Path

from tqdm.auto import tqdm

from ..cache import open_cache
from ..errors import UsageError
from ..heads import get_head
from ..paths import DEFAULT_CACHE_DIR
from .records import DEFAULT_RUNS_DIR
from .runner import Experiment, RunPlan, parse_split
from .training import TrainSettings

# Per-kind defaults: pooled heads are cheap and converge slowly without a schedule tail; grid heads
# cost far more per epoch.
DEFAULT_EPOCHS = {"pooled": 30, "grid": 15, "scratch": 30, "decoder": 20, "raw": 40}
DEFAULT_LR = {"pooled": 1e-3, "grid": 3e-4, "scratch": 1e-3, "decoder": 3e-4, "raw": 1e-3}
DEFAULT_BATCH = {"pooled": 256, "grid": 256, "scratch": 128, "decoder": 8, "raw": 8}


def _settings(head: str, epochs: int | None, lr: float | None, batch_size: int | None,
              task: str = "classification") -> TrainSettings:
    kind = get_head(head, task).kind
    if kind == "classic":
        return TrainSettings()
    epochs = DEFAULT_EPOCHS[kind] if epochs is None else epochs
    if epochs < 1 or (batch_size is not None and batch_size < 1) or (lr is not None and lr <= 0):
        raise UsageError("--epochs and --batch-size must be at least 1 and --lr positive")
    return TrainSettings(epochs=epochs, lr=lr or DEFAULT_LR[kind], batch_size=batch_size or DEFAULT_BATCH[kind])


def open_experiment(dataset: str, encoder: str | None, runs_dir, device: str, cache_dir, data_dir, download,
                    checkpoint=None):
    """An :class:`Experiment` (classification) or a :class:`SegmentationExperiment`, by the cache."""
    group = open_cache(cache_dir, dataset, encoder)
    if group.task == "segmentation":
        from ..segmentation.runner import SegmentationExperiment

        return SegmentationExperiment(group, runs_dir, device, data_dir, checkpoint)
    return Experiment(cache_dir, dataset, encoder, runs_dir, device, data_dir, download)


def sweep(
    dataset: str = "eurosat", *, encoder: str | None = None, heads: list[str] = ("linear",),
    splits: list[float | str] = (0.2,), shots: list[int] | None = None, seeds: int | list[int] = 1,
    feature: str | None = None, epochs: int | None = None, lr: float | None = None, batch_size: int | None = None,
    device: str = "auto", cache_dir: str | Path = DEFAULT_CACHE_DIR, runs_dir: str | Path = DEFAULT_RUNS_DIR,
    data_dir: str | Path | None = None, download: bool = False, progress: bool = True,
    checkpoint: str | Path | None = None,
) -> list[dict]:
    """Train every head on every split (validation fractions, or ``shots`` per class) and seed
    from the cache of ``dataset``; append one record per run to the runs store and return the
    new records. Runs already in the store are skipped. ``seeds`` is a count (0..n-1) or a list.
    On a segmentation cache the heads are decoders (and ``unet``); ``checkpoint`` is the SAM
    checkpoint for ``sam-vit`` when it is not where the extraction found it."""
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise UsageError("--seeds must be at least 1")
    split_names = [parse_split(None, k) for k in shots] if shots else [parse_split(s, None) for s in splits]
    experiment = open_experiment(dataset, encoder, runs_dir, device, cache_dir, data_dir, download, checkpoint)
    task = experiment.group.task
    plans = [RunPlan(h, s, seed, feature, _settings(h, epochs, lr, batch_size, task))
             for h, s, seed in product(heads, split_names, seed_list)]
    with tqdm(total=len(plans), unit="run", desc="sweep", disable=not progress, dynamic_ncols=True) as bar:
        done = experiment.store.run_ids()
        todo = [p for p in plans if experiment.run_id(experiment.resolve(p)) not in done]
        bar.update(len(plans) - len(todo))
        return experiment.run(todo, on_done=lambda record: bar.update(1))


def train_head(
    dataset: str = "eurosat", *, encoder: str | None = None, head: str = "linear", split: float | str | None = None,
    shots: int | None = None, seed: int = 0, feature: str | None = None, epochs: int | None = None,
    lr: float | None = None, batch_size: int | None = None, device: str = "auto",
    cache_dir: str | Path = DEFAULT_CACHE_DIR, runs_dir: str | Path = DEFAULT_RUNS_DIR,
    data_dir: str | Path | None = None, download: bool = False, checkpoint: str | Path | None = None,
) -> dict:
    """Train one head on one split and seed; returns its run record (also appended to the store,
    or the existing record when the same run is already there). On a segmentation cache with a
    fixed split (road) the split defaults to ``standard``."""
    experiment = open_experiment(dataset, encoder, runs_dir, device, cache_dir, data_dir, download, checkpoint)
    task = experiment.group.task
    if split is None and shots is None and task == "segmentation":
        split = "standard"
    split_name = parse_split(split, shots)
    plan = RunPlan(head, split_name, seed, feature, _settings(head, epochs, lr, batch_size, task))
    run_id = experiment.run_id(experiment.resolve(plan))
    new = experiment.run([plan])
    if new:
        return new[0]
    return next(r for r in experiment.store.records() if r["run_id"] == run_id)
