"""The segmentation task: heads predict a binary mask per image, scored at each evaluated image's
original resolution against its mask file; predicted masks are saved as PNG files under
``<runs_dir>/predictions/<run_id>/``."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import write_whole
from ..datasets import get_dataset
from ..encoders.geometry import Geometry
from ..experiments.base import Experiment, RunData, RunPlan, register_task
from ..experiments.kinds import Outcome
from ..splits import SplitSpec
from .metrics import pixel_counts, segmentation_metrics
from .training import MaskData

RESOLUTION = "original image pixels; micro_* pool all pixels, mean_* average per image"


def prediction_name(image_id: str) -> str:
    """The PNG file name of an image's predicted mask (a chip's carries its window's origin)."""
    path, _, window = image_id.partition("#")
    return Path(path).stem + (f"_{window.replace(',', '_')}" if window else "") + ".png"


@register_task
class SegmentationExperiment(Experiment):
    """Segmentation heads on one cache group, with the same splits and targets for decoders on the
    cached map and models trained from scratch (docs/heads.md)."""

    task = "segmentation"
    split_kinds = ("val", "standard")
    offers = ("index", "orig_hw", "masks", "geometry", "checkpoint")

    def __init__(self, group, options):
        super().__init__(group, options)
        self.index = self.dataset()  # the masks are the truth
        self.orig_hw = group.read("orig_hw")
        self.masks = MaskData(group.read("mask"), group.read("valid_hw"), group.img_size)
        self.geometry = Geometry.from_signature(group.signature["encoder"])

    @property
    def default_split(self) -> SplitSpec | None:
        source = self.group.attrs.get("dataset_options", {}).get("source")  # a named dataset's kind
        return SplitSpec("standard") if get_dataset(self.group.dataset, source).fixed_split is not None else None

    def checkpoint(self) -> Path | None:
        """The SAM checkpoint the cache was extracted with (``--checkpoint``, else where extraction
        found it), refused if it is another one; the head says what is missing."""
        return self.group.checkpoint(self.options.checkpoint)

    @classmethod
    def summary(cls, record: dict) -> str:
        m, c = record["metrics"], record["config"]
        kept = f", epoch {m['best_epoch']} kept" if m.get("best_epoch") else ""
        return (f"{c['head']} on {c['feature']}, split {c['split']}, seed {c['seed']}: {m['evaluated_on']} road Dice "
                f"{m['micro_dice']:.4f} (all pixels), {m['mean_dice']:.4f} (mean per image), IoU {m['micro_iou']:.4f}"
                f"{kept}")

    def score(self, plan: RunPlan, data: RunData, outcome: Outcome, run_id: str) -> tuple[dict, dict]:
        predictions = self.store.root / "predictions" / run_id
        t0 = time.perf_counter()
        metrics = segmentation_metrics(self._evaluate(outcome.predictions, data.evaluate, predictions))
        extras = {
            "config": {"mask_size": int(self.masks.targets.shape[-1])},
            "cache": {"data_root": str(self.index.root), **({"dataset_options": self.index.options}
                                                               if self.index.options else {})},
            "metrics": {"resolution": RESOLUTION},
            "predictions_dir": str(predictions),
            "evaluation_seconds": round(time.perf_counter() - t0, 4),
        }
        return metrics, extras

    def _evaluate(self, masks, indices: np.ndarray, out_dir: Path) -> list[dict]:
        """Per-image pixel counts at the original resolution; predicted masks saved as PNG."""
        out_dir.mkdir(parents=True, exist_ok=True)
        rows = []
        for i, pred, *extra in masks(indices):  # a kind may add fields per image (zero-shot: its prompts)
            truth = self.index.mask(i)
            image_id = self.index.image_ids[i]
            name = prediction_name(image_id)
            write_whole(out_dir / name, lambda tmp: Image.fromarray(pred.astype(np.uint8) * 255).save(tmp, format="PNG"))
            rows.append({"image_id": image_id, "prediction": name, **pixel_counts(pred, truth), **(extra[0] if extra else {})})
        return rows
