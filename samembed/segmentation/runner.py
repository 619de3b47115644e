"""Segmentation runs on one cache group: decoders on the cached maps and the UNet baseline on the
raw images, with the same splits and targets, written to the same runs store.

Metrics are computed at each evaluated image's original resolution against its mask file:
probabilities on the mask grid are upsampled bilinearly to the input square, the image's part is
cut out and resized to the original size, and thresholded at 0.5. Predicted masks are saved as
PNG files under ``<runs_dir>/predictions/<run_id>/``."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..atomic import write_whole
from ..cache import CacheGroup
from ..cache.signature import run_versions
from ..datasets import load_dataset
from ..devices import resolve_device
from ..errors import CheckpointError, DataNotFoundError, UsageError
from ..hashing import sha256sum
from ..experiments.features import ArraySource, GridSource, load_raw_images
from ..experiments.records import RunsStore, warn_recorded_elsewhere
from ..experiments.runner import RunPlan, _plan_dict, run_id_of
from ..experiments.splits import Split, stratified_split
from ..experiments.training import RunData
from ..heads import get_head
from ..datasets.masks import read_mask
from .geometry import canvas_to_original
from .metrics import pixel_counts, segmentation_metrics
from .training import MaskData, predict_logits, train_segmenter


class SegmentationExperiment:
    """Segmentation heads on one cache group, writing records to one runs store."""

    def __init__(self, group: CacheGroup, runs_dir: str | Path, device: str = "auto",
                 data_dir: str | Path | None = None, checkpoint: str | Path | None = None,
                 memory_budget: int | None = None):
        self.group = group.require_complete()
        self.store = RunsStore(runs_dir)
        self.device = resolve_device(device)
        self.memory_budget = memory_budget
        root = Path(data_dir) if data_dir is not None else Path(group.attrs.get("data_root", ""))
        self.index = load_dataset(group.dataset, root)
        if self.index.fingerprint() != group.signature["dataset_fingerprint"]:
            raise DataNotFoundError(f"the files in {root} are not the ones {group.store}/{group.name} was extracted "
                                    "from; pass --data-dir to the same dataset")
        self.checkpoint = checkpoint if checkpoint is not None else group.attrs.get("checkpoint")
        self.labels = group.read("labels").astype(np.int64)
        self.usable = group.read("ok")
        self.subsets = group.read("subset") if "subset" in group.group else None
        self.orig_hw = group.read("orig_hw")
        self.masks = MaskData(group.read("mask"), group.read("valid_hw"), group.img_size)
        self._grid: GridSource | None = None
        self._images: ArraySource | None = None

    # -- data ----------------------------------------------------------------------------------

    def split(self, name: str, seed: int) -> Split:
        if name == "standard":
            if self.subsets is None:
                raise UsageError(f"{self.group.dataset} has no fixed split; use --split F (validation fraction)")
            parts = [np.flatnonzero((self.subsets == s) & self.usable) for s in ("train", "val", "test")]
            return Split("standard", 0, *parts)
        if name.startswith("val="):
            return stratified_split(self.labels, float(name[4:]), seed, self.usable, self.group.class_names)
        raise UsageError(f"segmentation takes --split F or --split standard, not '{name}'")

    def source(self, kind: str):
        """The decoders' input (the cached maps) or the UNet's (raw images on the mask grid)."""
        if kind == "decoder":
            if self._grid is None:
                self._grid = GridSource(self.group.group["grid"], budget=self.memory_budget)
            return self._grid
        if self._images is None:
            self._images = ArraySource(load_raw_images(self.index, self.usable, self.masks.targets.shape[-1]))
        return self._images

    # -- running -------------------------------------------------------------------------------

    def resolve(self, plan: RunPlan) -> RunPlan:
        return plan.resolved("segmentation")

    def run_id(self, plan: RunPlan) -> str:
        return run_id_of(self.group, plan, self.usable)

    def run(self, plans: list[RunPlan], on_done: Callable[[dict], None] | None = None) -> list[dict]:
        plans = [self.resolve(p) for p in plans]
        done = self.store.run_ids()
        records = []
        for plan in plans:
            if self.run_id(plan) in done:
                continue
            head = get_head(plan.head, "segmentation")
            split = self.split(plan.split, plan.seed)
            data = RunData(split.train, split.val, split.test if len(split.test) else split.val, plan.seed)
            torch.manual_seed(plan.seed)
            source = self.source(head.kind)
            if head.kind == "decoder":
                if plan.head == "sam-vit":
                    self._check_checkpoint()
                model = head.factory(tuple(self.group.group["grid"].shape[1:]), self.checkpoint)
            else:
                model = head.factory()
            t0 = time.perf_counter()
            result = train_segmenter(model, source, self.masks, data, plan.settings, self.device)
            record = self._record(plan, split, data, result, source, time.perf_counter() - t0)
            if not self.store.append(record):
                warn_recorded_elsewhere(record, self.store)
                continue
            records.append(record)
            if on_done:
                on_done(record)
        return records

    def _check_checkpoint(self) -> None:
        """The mask decoder must come from the checkpoint whose image encoder made the cache."""
        wanted = self.group.signature.get("encoder", {}).get("checkpoint_sha256")
        if self.checkpoint is None or wanted is None or not Path(self.checkpoint).is_file():
            return  # the decoder's factory says what is missing
        if sha256sum(Path(self.checkpoint)) != wanted:
            raise CheckpointError(f"{self.checkpoint} is not the checkpoint {self.group.name} was extracted with "
                                  f"(sha256 {wanted[:12]}...); pass that one with --checkpoint")

    def _evaluate(self, model, source, indices: np.ndarray, out_dir: Path) -> list[dict]:
        """Per-image pixel counts at the original resolution; predicted masks saved as PNG."""
        out_dir.mkdir(parents=True, exist_ok=True)
        rows = []
        for idx, xb in source.batches(indices, 4, None):
            probs = torch.sigmoid(predict_logits(model, xb, self.device)).cpu()
            for k, i in enumerate(idx):
                hw = tuple(int(v) for v in self.orig_hw[i])
                pred = (canvas_to_original(probs[k, 0], hw, self.group.img_size) > 0.5).numpy()
                truth = read_mask(self.index.mask_path(i), self.index.mask_encoding)
                image_id = self.index.image_ids[i]
                name = Path(image_id).with_suffix(".png").name
                write_whole(out_dir / name, lambda tmp: Image.fromarray(pred.astype(np.uint8) * 255).save(tmp, format="PNG"))
                rows.append({"image_id": image_id, "prediction": name, **pixel_counts(pred, truth)})
        return rows

    def _record(self, plan: RunPlan, split: Split, data: RunData, result, source, seconds: float) -> dict:
        run_id = self.run_id(plan)
        evaluated_on = "test" if len(split.test) else "val"
        predictions = self.store.root / "predictions" / run_id
        t0 = time.perf_counter()
        metrics = segmentation_metrics(self._evaluate(result.model, source, data.evaluate, predictions))
        selection = (f"best epoch ({result.best_epoch}) by validation Dice; reported on the test split"
                     if evaluated_on == "test" else
                     f"best epoch ({result.best_epoch}) by Dice on the validation split, which is also the "
                     "split reported: the metric is selected on it")
        head = get_head(plan.head, "segmentation")
        return {
            "run_id": run_id,
            "task": "segmentation",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "config": {**_plan_dict(plan), "device": str(self.device), "uses_encoder": head.kind == "decoder",
                       "mask_size": int(self.masks.targets.shape[-1])},
            "cache": {"store": str(self.group.store), "group": self.group.name, "dataset": self.group.dataset,
                      "signature": self.group.signature, "data_root": str(self.index.root)},
            "split": {"name": split.name, "seed": split.seed, "n_train": len(split.train), "n_val": len(split.val),
                      "n_test": len(split.test), "indices_hash": split.indices_hash},
            "metrics": {**metrics, "evaluated_on": evaluated_on, "selection": selection,
                        "best_epoch": result.best_epoch,
                        "resolution": "original image pixels; micro_* pool all pixels, mean_* average per image"},
            "curves": result.curves,
            "predictions_dir": str(predictions),
            "seconds": round(seconds, 4),
            "seconds_per_epoch": round(result.seconds_per_epoch, 4),
            "evaluation_seconds": round(time.perf_counter() - t0, 4),
            "versions": run_versions(),
        }
