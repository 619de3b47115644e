"""The classification task: heads predict one class per image, scored on the evaluated split."""

from __future__ import annotations

import numpy as np

from ..errors import UsageError
from ..experiments.base import Experiment, RunData, RunPlan, register_task
from ..experiments.kinds import Outcome
from ..splits import Split, SplitSpec
from .metrics import classification_metrics, predictions_field


@register_task
class ClassificationExperiment(Experiment):
    """Classification heads on one cache group (docs/heads.md)."""

    task = "classification"

    def split(self, spec: SplitSpec, seed: int) -> Split:
        """The split, refused in one line when it cannot be scored honestly: a dataset with one
        class (every prediction would be right), or a split that leaves a class of the dataset
        out of training (the head cannot predict it) or out of the evaluated images (its recall
        is undefined and macro F1 would count it as 0), as a fixed split or a class whose images
        all failed extraction can. (Fraction and shot splits already need images of every class
        on both sides: :func:`samembed.splits.make_split`.)"""
        split = super().split(spec, seed)
        checked = self.__dict__.setdefault("_checked_splits", set())
        if split.indices_hash in checked:
            return split
        present = np.unique(self.labels[self.usable])
        if len(present) < 2:
            only = self.class_names[int(present[0])] if len(present) else "none"
            raise UsageError(f"{self.group.dataset} has one class ({only}) among its usable images: a classifier "
                             "needs at least two, or every prediction is trivially right")
        data = self.run_data(split, seed)
        named = np.arange(len(self.class_names))  # a class without a usable image is left out of both
        for part, idx in (("training", data.train), ("the evaluated images", data.evaluate)):
            missing = np.setdiff1d(named, self.labels[idx])
            if len(missing):
                names = ", ".join(self.class_names[int(c)] for c in missing[:5]) + (" ..." if len(missing) > 5 else "")
                raise UsageError(f"split {spec.name} (seed {seed}) leaves class(es) {names} out of {part}: "
                                 "use a split that keeps every class on both sides, or more images of those classes")
        checked.add(split.indices_hash)
        return split

    @classmethod
    def summary(cls, record: dict) -> str:
        m, c = record["metrics"], record["config"]
        return (f"{c['head']} on {c['feature']}, split {c['split']}, seed {c['seed']}: "
                f"{m['evaluated_on']} accuracy {m['accuracy']:.4f}, macro F1 {m['macro_f1']:.4f}")

    def score(self, plan: RunPlan, data: RunData, outcome: Outcome, run_id: str) -> tuple[dict, dict]:
        truth = self.labels[data.evaluate]
        metrics = classification_metrics(truth, outcome.predictions, self.class_names)
        metrics["predictions"] = predictions_field(truth, outcome.predictions, len(self.class_names))
        return metrics, {}
