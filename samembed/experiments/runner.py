"""Running heads on one cache group: plans in, run records out.

The cache is opened and its embeddings loaded once; pooled torch heads of all splits and seeds
train together (vectorised), grid and classic heads one run at a time. Every finished run appends
one record to the runs store; runs already there are skipped, so an interrupted sweep resumes."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from ..cache import open_cache
from ..cache.signature import run_versions
from ..devices import resolve_device
from ..datasets import load_dataset
from ..errors import DataNotFoundError, UsageError
from ..heads.scratch import RAW_INPUT_SIZE
from ..hashing import short_hash
from ..heads import get_head
from .features import ArraySource, GridSource, load_raw_images
from .metrics import classification_metrics
from .records import RunsStore, warn_recorded_elsewhere
from .splits import Split, few_shot_split, file_list_split, stratified_split
from .training import RunData, TrainSettings, train_grid, train_stacked

POOLED_FEATURES = ("neck", "trunk")


@dataclass(frozen=True)
class RunPlan:
    """One run: a head on a feature, a split (``val=0.2``, ``shots=5``, ``standard``) and a seed.
    ``settings`` applies to torch heads; classic heads choose their own hyper-parameter."""

    head: str
    split: str
    seed: int = 0
    feature: str | None = None  # default: neck for pooled and classic heads, grid for grid heads
    settings: TrainSettings = TrainSettings()

    def resolved(self, task: str = "classification", pooled: tuple[str, ...] = POOLED_FEATURES) -> RunPlan:
        """The plan with its feature filled in: the first of ``pooled`` (the cache group's pooled
        arrays) for pooled and classic heads, ``grid`` for heads on the map, ``images`` for heads
        trained from scratch on the raw images."""
        kind = get_head(self.head, task).kind
        fixed = {"grid": "grid", "decoder": "grid", "raw": "images", "scratch": "images"}.get(kind)
        if fixed:
            if self.feature not in (None, fixed):
                what = "the grid map; drop --feature or use a pooled head" if fixed == "grid" else "the raw images; drop --feature"
                raise UsageError(f"head '{self.head}' trains on {what}")
            return replace(self, feature=fixed)
        feature = self.feature or pooled[0]
        if feature not in pooled:
            raise UsageError(f"--feature must be one of {', '.join(pooled)} for head '{self.head}', not '{feature}'")
        return replace(self, feature=feature, settings=self.settings if kind != "classic" else None)


def parse_split(split: str | float | None, shots: int | None) -> str:
    """The split name from the CLI's ``--split F|standard`` and ``--shots K``."""
    if shots is not None:
        if split is not None:
            raise UsageError("give either --split or --shots, not both")
        if shots < 1:
            raise UsageError(f"--shots must be at least 1, not {shots}")
        return f"shots={shots}"
    if split is None:
        raise UsageError("give --split F (validation fraction, e.g. 0.2), --split standard, or --shots K")
    if str(split) == "standard":
        return "standard"
    try:
        fraction = float(split)
    except ValueError:
        raise UsageError(f"--split must be a fraction between 0 and 1 or 'standard', not '{split}'") from None
    if not 0 < fraction < 1:
        raise UsageError(f"--split is the validation fraction and must lie strictly between 0 and 1, not {split}")
    return f"val={fraction:g}"


class Experiment:
    """Heads on one cache group, writing records to one runs store."""

    def __init__(self, cache_dir: str | Path, dataset: str, encoder: str | None = None,
                 runs_dir: str | Path = "experiments", device: str = "auto", data_dir: str | Path | None = None,
                 download: bool = False, memory_budget: int | None = None):
        self.group = open_cache(cache_dir, dataset, encoder).require_complete()
        self.store = RunsStore(runs_dir)
        self.device = resolve_device(device)
        self.data_dir, self.download, self.memory_budget = data_dir, download, memory_budget
        self.labels = self.group.read("labels").astype(np.int64)
        self.usable = self.group.read("ok")
        self.class_names = self.group.class_names
        self._pooled: dict[str, torch.Tensor] = {}
        self._grid: GridSource | None = None
        self._raw: ArraySource | None = None
        self._splits: dict[tuple[str, int], Split] = {}

    # -- data, loaded once --------------------------------------------------------------------

    def pooled(self, feature: str) -> torch.Tensor:
        if feature not in self._pooled:
            self._pooled[feature] = torch.as_tensor(self.group.read(feature), device=self.device).float()
        return self._pooled[feature]

    def grid(self) -> GridSource:
        if self._grid is None:
            self._grid = GridSource(self.group.group["grid"], budget=self.memory_budget)
        return self._grid

    def raw_images(self) -> ArraySource:
        """The dataset's images (resized and padded to 64 x 64) for the baselines trained from
        scratch, read once from where the extraction found them (or ``data_dir``)."""
        if self._raw is None:
            root = Path(self.data_dir) if self.data_dir is not None else Path(self.group.attrs.get("data_root", ""))
            index = load_dataset(self.group.dataset, root, self.download)
            if index.fingerprint() != self.group.signature["dataset_fingerprint"]:
                raise DataNotFoundError(f"the files in {root} are not the ones {self.group.store}/{self.group.name} "
                                        "was extracted from; pass --data-dir to the same dataset")
            self._raw = ArraySource(load_raw_images(index, self.usable, RAW_INPUT_SIZE, progress=True))
        return self._raw

    def split(self, name: str, seed: int) -> Split:
        key = (name, seed if name != "standard" else 0)
        if key not in self._splits:
            if name == "standard":
                from ..datasets.eurosat import standard_split_lists

                if self.group.dataset != "eurosat":
                    raise UsageError("--split standard exists for eurosat only; use --split F or --shots K")
                ids = list(self.group.read("image_ids"))
                split = file_list_split(ids, standard_split_lists(self.data_dir, self.download))
            elif name.startswith("shots="):
                split = few_shot_split(self.labels, int(name[6:]), seed, self.usable, self.class_names)
            else:
                split = stratified_split(self.labels, float(name[4:]), seed, self.usable, self.class_names)
            self._splits[key] = split
        return self._splits[key]

    # -- running ------------------------------------------------------------------------------

    def resolve(self, plan: RunPlan) -> RunPlan:
        return plan.resolved("classification", tuple(self.group.attrs.get("pooled", POOLED_FEATURES)))

    def run_id(self, plan: RunPlan) -> str:
        return run_id_of(self.group, plan, self.usable)

    def run(self, plans: list[RunPlan], on_done: Callable[[dict], None] | None = None) -> list[dict]:
        """Run every plan not yet in the runs store; returns the new records (also appended)."""
        plans = [self.resolve(p) for p in plans]
        done = self.store.run_ids()
        todo = [p for p in plans if self.run_id(p) not in done]
        records = []

        def finish(plan: RunPlan, split: Split, data: RunData, predictions: np.ndarray, curves, extra, seconds):
            record = self._record(plan, split, data, predictions, curves, extra, seconds)
            if not self.store.append(record):
                warn_recorded_elsewhere(record, self.store)
                return
            records.append(record)
            if on_done:
                on_done(record)

        stacked: dict[tuple, list[RunPlan]] = {}
        for plan in todo:
            kind = get_head(plan.head).kind
            if kind == "pooled":
                stacked.setdefault((plan.head, plan.feature, plan.settings), []).append(plan)
                continue
            split = self.split(plan.split, plan.seed)
            data = self._run_data(split, plan.seed)
            t0 = time.perf_counter()
            if kind in ("grid", "scratch"):
                torch.manual_seed(plan.seed)
                if kind == "grid":
                    source = self.grid()
                    model = get_head(plan.head).factory(tuple(source.array.shape[1:]), len(self.class_names))
                else:
                    source = self.raw_images()
                    model = get_head(plan.head).factory(len(self.class_names))
                result = train_grid(model, source, self.labels, data, plan.settings, self.device)
                predictions, curves, extra = result.predictions, result.curves, {}
            else:
                x = self.pooled(plan.feature).cpu().numpy()
                predictions, extra = get_head(plan.head).factory(
                    x[data.train], self.labels[data.train], x[data.evaluate], num_classes=len(self.class_names),
                    seed=plan.seed)
                curves = {}
            finish(plan, split, data, predictions, curves, extra, time.perf_counter() - t0)
        for (head, feature, settings), group in stacked.items():
            splits = [self.split(p.split, p.seed) for p in group]
            datas = [self._run_data(s, p.seed) for s, p in zip(splits, group)]
            t0 = time.perf_counter()
            torch.manual_seed(0)
            model = get_head(head).factory(self.pooled(feature).shape[1], len(self.class_names),
                                           seeds=[p.seed for p in group]).to(self.device)
            results = train_stacked(model, self.pooled(feature), torch.as_tensor(self.labels, device=self.device),
                                    datas, settings)
            seconds = (time.perf_counter() - t0) / len(group)  # the pass is shared: each run's share
            for plan, split, data, result in zip(group, splits, datas, results):
                finish(plan, split, data, result.predictions, result.curves, {"trained_with": len(group)}, seconds)
        return records

    def _run_data(self, split: Split, seed: int) -> RunData:
        return RunData(split.train, split.val, split.test if len(split.test) else split.val, seed)

    def _record(self, plan, split, data, predictions, curves, extra, seconds) -> dict:
        evaluated_on = "test" if len(split.test) else "val"
        metrics = classification_metrics(self.labels[data.evaluate], predictions, self.class_names)
        return {
            "run_id": self.run_id(plan),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "config": {**_plan_dict(plan), "device": str(self.device), "uses_encoder": plan.feature != "images"},
            "cache": {"store": str(self.group.store), "group": self.group.name, "dataset": self.group.dataset,
                      "signature": self.group.signature},
            "split": {"name": split.name, "seed": split.seed, "n_train": len(split.train), "n_val": len(split.val),
                      "n_test": len(split.test), "indices_hash": split.indices_hash},
            "metrics": {**metrics, "evaluated_on": evaluated_on, "selection": _selection(plan, extra)},
            "head_info": extra,
            "curves": curves,
            "seconds": round(seconds, 4),
            "versions": run_versions(),
        }


def run_id_of(group, plan: RunPlan, usable: np.ndarray) -> str:
    """A run's id: its plan and what it trained on. Heads on embeddings depend on the cache
    group's signature; heads trained from scratch on raw images only on the dataset's files, so
    the same baseline run is found whichever cache group it was started from."""
    if plan.feature == "images":  # also what the cache decides for them: usable images, mask targets
        return short_hash({"dataset_fingerprint": group.signature["dataset_fingerprint"],
                           "usable": short_hash(usable.tolist()),
                           "mask_size": group.signature.get("mask_size"), **_plan_dict(plan)})
    return short_hash({"cache": short_hash(group.signature), "group": group.name, **_plan_dict(plan)})


def _plan_dict(plan: RunPlan) -> dict:
    d = {"head": plan.head, "feature": plan.feature, "split": plan.split, "seed": plan.seed}
    d["settings"] = asdict(plan.settings) if plan.settings is not None else None
    return d


def _selection(plan: RunPlan, extra: dict) -> str:
    if plan.settings is None:
        return extra.get("selection", "chosen on a held-out part of the training set")
    return "none: last epoch after a fixed number of epochs"
