"""What ``train-head`` and ``sweep`` share, in one frozen object that the CLI, the library
(:func:`samembed.train_head`, :func:`samembed.sweep`) and a study file's ``[sweep]`` table build:
which cache group, the head's training settings (each ``None``: the head kind's default,
docs/heads.md) and where runs are recorded. A new training option is a field here (with the check
a study file applies to it), its use in the experiment, and its flag in cli/options.py."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from ..checks import Check, positive, text, whole
from ..errors import UsageError
from ..paths import DEFAULT_CACHE_DIR
from .records import DEFAULT_RUNS_DIR


def _option(default, check: Check | None = None):
    return field(default=default, metadata={"check": check})


@dataclass(frozen=True)
class TrainingRequest:
    dataset: str | None = None  # the cache's only dataset by default
    encoder: str | None = None  # cache group(s): names or prefixes
    feature: str | None = _option(None, text)  # pooled heads: the pooled array
    epochs: int | None = _option(None, whole(1))
    lr: float | None = _option(None, positive)
    batch_size: int | None = _option(None, whole(1))
    min_steps: int | None = _option(None, whole(0))
    device: str = "auto"
    cache_dir: str | Path = DEFAULT_CACHE_DIR
    runs_dir: str | Path = DEFAULT_RUNS_DIR
    data_dir: str | Path | None = None  # the dataset, if not where extraction found it
    download: bool = False  # may fetch what a split needs (EuroSAT's standard lists)
    checkpoint: str | Path | None = None  # the weights, if not where extraction found them

    @classmethod
    def of(cls, dataset: str | None, **options) -> TrainingRequest:
        """The request with ``options`` (its fields); an unknown one is refused in one line."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise UsageError(f"'{unknown[0]}' is not a training option; the options are {', '.join(names[1:])}")
        return cls(dataset, **options)

    def settings(self) -> dict:
        """The head's training settings, for :meth:`~samembed.experiments.base.Experiment.plan`."""
        return dict(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, min_steps=self.min_steps)

    def experiment_options(self) -> dict:
        """The :class:`~samembed.experiments.base.ExperimentOptions` of the experiment."""
        return dict(runs_dir=self.runs_dir, device=self.device, data_dir=self.data_dir, download=self.download,
                    checkpoint=self.checkpoint)


def study_checks() -> dict[str, Check]:
    """The training keys of a study file's ``[sweep]`` table and their checks."""
    return {f.name: f.metadata["check"] for f in fields(TrainingRequest) if f.metadata.get("check") is not None}
