"""The values an experiment and its head kinds hand each other: a run's plan and training
settings (:class:`RunPlan`, :class:`TrainSettings`), its data (:class:`RunData`) and what fitting
it produced (:class:`Outcome`). One module, below both experiments/base.py and experiments/kinds.py."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..splits import SplitSpec


@dataclass(frozen=True)
class TrainSettings:
    """Training settings of a torch head (part of its run id). ``min_steps`` is a floor on
    optimizer steps: a training set too small to give that many steps in ``epochs`` epochs trains
    as many more whole epochs as it takes (0: exactly ``epochs``)."""

    epochs: int = 20
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    warmup_epochs: float = 1.0
    min_steps: int = 0
    lr_grid: tuple[float, ...] = ()  # if set, each run's peak lr is chosen from it on a held-out part (``lr`` where none can be held out)

    def as_dict(self) -> dict:
        """The settings as run ids and records hold them. A field added after release 0.1.0 is
        left out while it has the value that trains as that release did, so the runs of that
        release keep their ids and any run it changes gets a new one."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()
                if ADDED_SETTINGS.get(k, object()) != v}


# Settings added after release 0.1.0, with the value that trains as that release did.
ADDED_SETTINGS = {"min_steps": 0, "lr_grid": ()}


@dataclass
class Outcome:
    """What fitting one run hands to its task to score and record. ``predictions`` is the task's
    (classification: (m,) predicted classes of the evaluated images; segmentation: a function
    from image indices to predicted masks); ``info`` goes into the record's ``head_info``;
    ``record`` holds fields the kind adds to the record (merged into its sections)."""

    predictions: Any
    seconds: float
    curves: dict[str, list[float]] = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    record: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RunPlan:
    """One run: a head on a feature, a split and a seed. ``settings`` are the training settings of
    torch heads (``None`` for heads that set their own hyper-parameters)."""

    head: str
    split: SplitSpec
    seed: int = 0
    feature: str | None = None  # filled in by the kind: a pooled array, "grid", "images" or "none"
    settings: TrainSettings | None = None


def plan_dict(plan: RunPlan) -> dict:
    """The plan as its run id and records hold it."""
    return {"head": plan.head, "feature": plan.feature, "split": plan.split.name, "seed": plan.seed,
            "settings": plan.settings.as_dict() if plan.settings is not None else None}


@dataclass(frozen=True)
class RunData:
    """One run: training and validation indices into the cache, its seed, and the indices its
    reported metric comes from (``evaluate``: the test part of a split that has one, else the
    validation part)."""

    train: np.ndarray
    val: np.ndarray
    evaluate: np.ndarray
    seed: int
