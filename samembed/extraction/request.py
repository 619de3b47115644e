"""Every option of one extraction in one frozen object, which the CLI, the library
(:func:`samembed.extract`), a study file's ``[[encoders]]`` tables and torchrun's ranks all build
or take. A new extraction option is a field here (with the check a study file applies to it), its
use in :func:`~samembed.extraction.plan.plan_extraction` or the encoding, and its CLI flag.

Options that only some dataset takes (the ``scene`` dataset's ``chip_size``) are declared by that
dataset's registration (:func:`~samembed.datasets.registry.register_dataset`) and travel in
``dataset_options``."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from ..checks import Check, flag, share, text, whole
from ..datasets import DatasetIndex
from ..datasets.registry import get_dataset
from ..errors import UsageError
from ..paths import DEFAULT_CACHE_DIR
from ..plugins import DEFAULT_ENCODER


def _known_encoder(value) -> str | None:
    from ..encoders.base import available_encoders

    names = available_encoders()
    return None if isinstance(value, str) and value in names else f"a known encoder ({', '.join(names)})"


def _option(default, check: Check | None = None, *, plan: bool = True):
    """A field: ``check`` is what a study file's value must pass (``None``: not in study files);
    ``plan``: the option decides what is stored (it goes to ``plan_extraction``), else it only
    says how the encoding runs."""
    return field(default=default, metadata={"check": check, "plan": plan})


@dataclass(frozen=True)
class ExtractionRequest:
    """One dataset through one encoder into the cache (:func:`samembed.extract` documents each option)."""

    dataset: str | DatasetIndex
    data_dir: str | Path | None = _option(None)
    name: str | None = _option(None)
    download: bool = _option(False)
    encoder: str = _option(DEFAULT_ENCODER, _known_encoder)
    model: str | None = _option(None, text)
    checkpoint: str | Path | None = _option(None, text)
    img_size: int | None = _option(None, whole(1))
    grid: int | None = _option(None, whole(1))
    device: str = _option("auto")
    cache_dir: str | Path = _option(DEFAULT_CACHE_DIR)
    shard_images: int | None = _option(None, whole(1))
    resize_on_device: bool | None = _option(None, flag)
    bands: str | None = _option(None, text)
    stretch: str | None = _option(None, text)
    prompt_features: bool = _option(False, flag)
    attention: str = _option("auto", text)
    min_data_share: float | None = _option(None, share)
    dataset_options: tuple[tuple[str, object], ...] = _option(())  # declared by the dataset: (name, value)
    batch_size: int | None = _option(None, whole(1), plan=False)
    workers: int | None = _option(None, whole(0), plan=False)
    skip_bad: bool = _option(False, flag, plan=False)
    compile: bool = _option(False, flag, plan=False)
    overwrite: bool = _option(False, plan=False)
    progress: bool = _option(True, plan=False)

    @classmethod
    def of(cls, dataset: str | DatasetIndex, **options) -> ExtractionRequest:
        """The request for ``dataset`` with ``options``: this class's fields, and the options the
        dataset's registration declares (``None`` values are left out); anything else is refused
        in one line naming what the dataset takes."""
        names = {f.name for f in fields(cls)}
        own = {k: v for k, v in options.items() if k in names}
        extra = {k: v for k, v in options.items() if k not in names and v is not None}
        if extra:
            declared = dataset_option_names(dataset)
            wrong = sorted(set(extra) - set(declared))
            if wrong:
                takes = f"it takes {', '.join(declared)}" if declared else "it takes no options of its own"
                raise UsageError(f"{_flag(wrong[0])} is not an option of the {_dataset_name(dataset)} dataset ({takes})")
        given = dict(own.pop("dataset_options", ()) or ())
        return cls(dataset, **own, dataset_options=tuple(sorted({**given, **extra}.items())))

    def plan_options(self) -> dict:
        """The keyword arguments of :func:`~samembed.extraction.plan.plan_extraction`."""
        options = {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("plan", True)}
        options["dataset_options"] = dict(self.dataset_options)
        return options


def dataset_option_names(dataset: str | DatasetIndex) -> tuple[str, ...]:
    """The options the dataset's registration declares (an indexed dataset takes none: they
    were given when it was indexed)."""
    if isinstance(dataset, DatasetIndex):
        return ()
    return tuple(get_dataset(dataset).options)


def study_checks() -> dict[str, Check]:
    """The keys of a study file's ``[[encoders]]`` table and their checks: every option of an
    extraction that a study may set per encoder."""
    return {f.name: f.metadata["check"] for f in fields(ExtractionRequest) if f.metadata.get("check") is not None}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _dataset_name(dataset: str | DatasetIndex) -> str:
    return dataset.name if isinstance(dataset, DatasetIndex) else str(dataset)
