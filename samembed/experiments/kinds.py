"""Head kinds: what a kind of head trains on, its defaults, how its runs are fitted and what their
records hold. A head names its kind (:func:`samembed.heads.register_head`); a kind belongs to one
task and registers itself here. Adding a kind (a zero-shot prompt "head" that trains nothing, say)
is one module: a :class:`HeadKind` subclass and :func:`register_kind`, and its line in
:mod:`samembed.plugins`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from ..errors import UsageError
from ..plugins import BUILTIN
from ..registry import Registry
from .plans import Outcome, RunPlan, TrainSettings  # noqa: F401  (Outcome: kinds import it from here too)

if TYPE_CHECKING:
    from .base import Experiment

Input = Literal["pooled", "grid", "images", "none"]


class HeadKind(ABC):
    """A kind of head. Subclasses set the class attributes and implement :meth:`fit`."""

    name: str
    task: str
    input: Input  # what its heads read: a pooled vector, the grid map, the raw images, or nothing
    needs: tuple[str, ...] = ()  # what it reads of its task's experiment beyond every experiment's (Experiment.offers)
    defaults: TrainSettings | None = None  # None: the kind sets its own hyper-parameters (or trains nothing)
    batched: bool = False  # runs of one head, feature and settings are fitted together in one call

    def resolve(self, plan: RunPlan, pooled: tuple[str, ...]) -> RunPlan:
        """``plan`` with its feature filled in: the first of the group's ``pooled`` arrays for
        heads on a pooled vector, else the one thing the kind reads."""
        if self.input == "pooled":
            feature = plan.feature or pooled[0]
            if feature not in pooled:
                raise UsageError(f"--feature must be one of {', '.join(pooled)} for head '{plan.head}', not '{feature}'")
            return replace(plan, feature=feature, settings=plan.settings if self.defaults else None)
        fixed = {"grid": "grid", "images": "images", "none": "none"}[self.input]
        if plan.feature not in (None, fixed):
            what = {"grid": "the grid map; drop --feature or use a pooled head", "images": "the raw images; drop --feature",
                    "none": "no feature; drop --feature"}[self.input]
            raise UsageError(f"head '{plan.head}' trains on {what}")
        return replace(plan, feature=fixed)

    def settings(self, epochs: int | None, lr: float | None, batch_size: int | None,
                 min_steps: int | None = None, head: dict | None = None) -> TrainSettings | None:
        """The training settings of a run: the given values, else the head's own defaults
        (``head``: fields that differ from its kind's), else the kind's. Given ``epochs`` are
        trained exactly (no step floor) unless ``min_steps`` is given too; a given ``lr`` is used
        as it is (no choice from the head's ``lr_grid``)."""
        if self.defaults is None:
            return None
        defaults = replace(self.defaults, **(head or {}))
        if (epochs is not None and epochs < 1) or (batch_size is not None and batch_size < 1) or \
                (lr is not None and lr <= 0) or (min_steps is not None and min_steps < 0):
            raise UsageError("--epochs and --batch-size must be at least 1, --min-steps at least 0 and --lr positive")
        if epochs is not None and min_steps is None:
            min_steps = 0
        given = (("epochs", epochs), ("lr", lr), ("batch_size", batch_size), ("min_steps", min_steps),
                 ("lr_grid", () if lr is not None else None))
        return replace(defaults, **{k: v for k, v in given if v is not None})

    def batches(self, head) -> bool:
        """Whether runs of ``head`` (a :class:`~samembed.heads.Head`) are fitted together."""
        return self.batched

    def steps(self, experiment: Experiment, plan: RunPlan) -> int | None:
        """The optimizer steps ``plan`` will take (for estimating a sweep's time), or ``None``."""
        return None

    @abstractmethod
    def fit(self, experiment: Experiment, plans: list[RunPlan]) -> Iterator[tuple[RunPlan, Outcome]]:
        """Fit ``plans`` (one, or several for a ``batched`` kind) and yield each with its outcome."""

    def selection(self, outcome: Outcome, evaluated_on: str) -> str:
        """What the record says about how the reported model was chosen."""
        if self.defaults is None:
            return outcome.info.get("selection", "chosen on a held-out part of the training set")
        return "none: last epoch after a fixed number of epochs"


KINDS: Registry[HeadKind] = Registry("head kind", BUILTIN["head kind"])


def register_kind(kind: HeadKind) -> HeadKind:
    """Add ``kind`` (an instance) to the registry under its name."""
    return KINDS.add(kind.name, kind)
