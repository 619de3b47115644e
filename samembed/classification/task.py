"""The classification task: heads predict one class per image, scored on the evaluated split."""

from __future__ import annotations

from ..experiments.base import Experiment, RunData, RunPlan, register_task
from ..experiments.kinds import Outcome
from .metrics import classification_metrics


@register_task
class ClassificationExperiment(Experiment):
    """Classification heads on one cache group (docs/heads.md)."""

    task = "classification"

    def score(self, plan: RunPlan, data: RunData, outcome: Outcome, run_id: str) -> tuple[dict, dict]:
        return classification_metrics(self.labels[data.evaluate], outcome.predictions, self.class_names), {}
