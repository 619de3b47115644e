"""One experiment: heads on one cache group, written to one runs store.

:class:`Experiment` is what every task shares: it opens and checks the cache, makes splits, names
runs (:func:`run_id_of`), skips runs already recorded (by this process or another), fits each
plan through its head's kind (:mod:`samembed.experiments.kinds`) and writes one record per run
with the same envelope. A task (classification, segmentation) is a subclass that scores outcomes
and adds its own fields; it registers itself with :func:`register_task`, and :func:`open_experiment`
picks it by the cache group's task."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..cache import CacheGroup, open_cache
from ..cache.signature import run_versions
from ..datasets import get_dataset, load_dataset
from ..devices import resolve_device
from ..errors import DataNotFoundError, UsageError, warn
from ..hashing import short_hash
from ..heads import Head, get_head
from ..paths import DEFAULT_CACHE_DIR
from ..plugins import BUILTIN
from ..registry import Registry
from ..splits import Split, SplitSpec, make_split
from ..threads import cpu_threads
from .features import ArraySource, GridSource, load_raw_images
from .kinds import KINDS, HeadKind
from .plans import Outcome, RunData, RunPlan, TrainSettings, plan_dict  # noqa: F401  (their home before plans.py)
from .records import DEFAULT_RUNS_DIR, RunsStore, warn_recorded_elsewhere


# A sweep's time is estimated after this many steps and seconds of a head's first run, and said
# when the head's runs will take at least PACE_WARN_SECONDS.
PACE_STEPS, PACE_SECONDS, PACE_WARN_SECONDS = 3, 2.0, 180.0


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class ExperimentOptions:
    """Where an experiment writes and finds things, and how it runs."""

    runs_dir: str | Path = DEFAULT_RUNS_DIR
    device: str = "auto"
    data_dir: str | Path | None = None  # the dataset, if not where extraction found it
    download: bool = False  # may fetch what a split needs (EuroSAT's standard lists)
    checkpoint: str | Path | None = None  # the weights, if not where extraction found them
    memory_budget: int | None = None  # bytes of embeddings held in memory (default: half the RAM)


def run_id_of(group: CacheGroup, plan: RunPlan, usable: np.ndarray, blank: np.ndarray | None = None) -> str:
    """A run's id: its plan and what it trained on. Heads on embeddings depend on the cache
    group's signature; heads trained from scratch on raw images only on the dataset's files, so
    the same baseline run is found whichever cache group it was started from. ``blank``: the
    images left out as blank (no data); where there are some, they are part of the id, since
    samembed before them trained on them under the same signature; elsewhere ids are as they were."""
    if plan.feature == "images":  # also what the cache decides for them: usable images, mask targets
        return short_hash({"dataset_fingerprint": group.signature["dataset_fingerprint"],
                           "usable": short_hash(usable.tolist()),
                           "mask_size": group.signature.get("mask_size"), **plan_dict(plan)})
    left_out = {} if blank is None or not blank.any() else {
        "blank_left_out": short_hash(np.flatnonzero(blank).tolist())}
    return short_hash({"cache": short_hash(group.signature), "group": group.name, **left_out, **plan_dict(plan)})


class Experiment:
    """Heads on one complete cache group. Subclasses (tasks) set :attr:`task` and
    :attr:`split_kinds` and implement :meth:`score`."""

    task: str
    split_kinds: tuple[str, ...] = ("val", "shots", "standard")
    # What the task's experiment offers its head kinds beyond what every experiment has (labels,
    # splits, pooled and grid features, raw images): a kind that needs more (HeadKind.needs) is
    # refused in one line for a task that does not offer it.
    offers: tuple[str, ...] = ()

    def __init__(self, group: CacheGroup, options: ExperimentOptions = ExperimentOptions()):
        self.group = group.require_complete()
        self.options = options
        self.store = RunsStore(options.runs_dir)
        self.device = resolve_device(options.device)
        self.labels = group.read("labels").astype(np.int64)
        blank = group.blank()  # no data: left out like unreadable images
        self.usable = group.read("ok") & ~blank
        self.blank = blank
        if group.blank_at_read and blank.any():  # stored as ok before: say why they are left out
            warn(f"{int(blank.sum())} image(s) of {group.where} hold no data (every cell of their data_share is 0; "
                 "the group was written before such images were flagged): left out of training and evaluation")
        self.class_names = group.class_names
        self._splits: dict[tuple[str, int], Split] = {}
        self._pooled: dict = {}
        self._grid: GridSource | None = None
        self._raw: dict[int, ArraySource] = {}
        self._index = None
        self._pending: dict[str, int] = {}  # optimizer steps of each head's runs still to train in run()
        self._paced: set[str] = set()  # heads whose time was estimated
        self._kept: dict[str, object] = {}  # objects kinds build once per experiment (keep())
        self.threads: int | None = None  # CPU threads of the current run() (samembed.threads)

    # -- plans ---------------------------------------------------------------------------------

    def head(self, name: str) -> Head:
        return get_head(name, self.task)

    def kind(self, head: str) -> HeadKind:
        kind = KINDS.get(self.head(head).kind)
        lacking = [need for need in kind.needs if need not in self.offers]
        if lacking:
            raise UsageError(f"the {kind.name} kind of {head} needs {', '.join(lacking)}, which a {self.task} "
                             "experiment does not offer")
        return kind

    def keep(self, key: str, make: Callable[[], object]):
        """The object kinds share under ``key`` for this experiment (a prompt predictor, ...):
        ``make()`` on first use, the same object after."""
        if key not in self._kept:
            self._kept[key] = make()
        return self._kept[key]

    def plan(self, head: str, split: SplitSpec, seed: int = 0, feature: str | None = None, *,
             epochs: int | None = None, lr: float | None = None, batch_size: int | None = None,
             min_steps: int | None = None) -> RunPlan:
        """A resolved plan: the head's feature and training settings filled in from its kind."""
        kind = self.kind(head)
        settings = kind.settings(epochs, lr, batch_size, min_steps, self.head(head).settings)
        return self.resolve(RunPlan(head, split, seed, feature, settings))

    def resolve(self, plan: RunPlan) -> RunPlan:
        if plan.split.kind not in self.split_kinds:
            raise UsageError(f"{self.task} takes {' or '.join(self._split_words())}, not '{plan.split.name}'")
        return self.kind(plan.head).resolve(plan, tuple(self.group.attrs.get("pooled", ("neck", "trunk"))))

    def _split_words(self) -> list[str]:
        return [{"val": "--split F", "shots": "--shots K", "standard": "--split standard"}[k] for k in self.split_kinds]

    @property
    def default_split(self) -> SplitSpec | None:
        """The split of ``train-head`` when none is given (``None``: one must be given)."""
        return None

    def run_id(self, plan: RunPlan) -> str:
        return run_id_of(self.group, plan, self.usable, self.blank)

    # -- data, read once ----------------------------------------------------------------------

    def split(self, spec: SplitSpec, seed: int) -> Split:
        key = (spec.name, seed if spec.kind != "standard" else 0)
        if key not in self._splits:
            parts = image_ids = None
            if spec.kind == "standard":
                dataset = get_dataset(self.group.dataset, self.group.attrs.get("dataset_options", {}).get("source"))
                if dataset.fixed_split is None:
                    raise UsageError(f"{self.group.dataset} publishes no standard split; use "
                                     f"{' or '.join(w for w in self._split_words() if w != '--split standard')}")
                image_ids = list(self.group.read("image_ids"))
                subsets = self.group.read("subset") if "subset" in self.group.group else None
                parts = dataset.fixed_split(image_ids, subsets, self.data_dir, self.options.download)
            self._splits[key] = make_split(spec, seed, self.labels, self.usable, self.class_names, parts, image_ids)
        return self._splits[key]

    def run_data(self, split: Split, seed: int) -> RunData:
        return RunData(split.train, split.val, split.test if len(split.test) else split.val, seed)

    @property
    def data_dir(self) -> Path | None:
        return Path(self.options.data_dir) if self.options.data_dir is not None else None

    def pooled(self, feature: str):
        """The pooled array ``feature`` as a float32 tensor on the device."""
        import torch

        if feature not in self._pooled:
            self._pooled[feature] = torch.as_tensor(self.group.read(feature), device=self.device).float()
        return self._pooled[feature]

    def grid(self) -> GridSource:
        if self._grid is None:
            self._grid = GridSource(self.group.array("grid"), budget=self.options.memory_budget)
        return self._grid

    def dataset(self):
        """The dataset the cache was extracted from (where extraction found it, or ``data_dir``),
        checked to hold the same files."""
        if self._index is None:
            root = self.data_dir if self.data_dir is not None else Path(self.group.attrs.get("data_root", ""))
            index = load_dataset(self.group.dataset, root, self.options.download,
                                 **self.group.attrs.get("dataset_options", {}))
            if index.fingerprint() != self.group.signature["dataset_fingerprint"]:
                raise DataNotFoundError(f"the files in {root} are not the ones {self.group.store}/{self.group.name} "
                                        "was extracted from; pass --data-dir to the same dataset")
            self._index = index
        return self._index

    def raw_images(self, size: int) -> ArraySource:
        """The dataset's images resized and padded to ``size`` like the encoder's input, for
        models trained from scratch; read once."""
        if size not in self._raw:
            self._raw[size] = ArraySource(load_raw_images(self.dataset(), self.usable, size, progress=True))
        return self._raw[size]

    # -- running ------------------------------------------------------------------------------

    def run(self, plans: list[RunPlan], on_done: Callable[[dict], None] | None = None) -> list[dict]:
        """Run every plan not yet in the runs store; returns the new records (also appended).
        Plans of batched kinds (stacked pooled heads) are fitted together after the others, and
        their records appended together (one write, one fsync)."""
        plans = list({self.run_id(p): p for p in map(self.resolve, plans)}.values())
        records: list[dict] = []
        single: list[RunPlan] = []
        batched: dict[tuple, list[RunPlan]] = {}
        for plan in plans:
            if self.store.contains(self.run_id(plan)):  # recorded earlier, or meanwhile by another process
                continue
            if self.kind(plan.head).batches(self.head(plan.head)):
                batched.setdefault((plan.head, plan.feature, plan.settings), []).append(plan)
            else:
                single.append(plan)
        self._pending = {}
        for plan in single:
            steps = self.kind(plan.head).steps(self, plan)
            if steps:
                self._pending[plan.head] = self._pending.get(plan.head, 0) + steps
        if not single and not batched:  # all recorded: no thread count to measure
            return records
        with cpu_threads(self.device) as threads:
            self.threads = threads
            for plan in single:
                if not self.store.contains(self.run_id(plan)):
                    self._fit(self.kind(plan.head), [plan], records, on_done)
            for group in batched.values():
                todo = [p for p in group if not self.store.contains(self.run_id(p))]
                if todo:
                    self._fit(self.kind(todo[0].head), todo, records, on_done)
        return records

    def _fit(self, kind: HeadKind, plans: list[RunPlan], records: list[dict], on_done) -> None:
        made = [self.record(plan, kind, outcome) for plan, outcome in kind.fit(self, plans)]
        self.group.check_generation()  # numbers read from a group being rebuilt are never recorded
        appended = {id(r) for r in self.store.append_many(made)}
        for record in made:
            if id(record) not in appended:
                warn_recorded_elsewhere(record, self.store)
                continue
            records.append(record)
            if on_done:
                on_done(record)
        if plans and plans[0].head in self._pending:
            self._pending[plans[0].head] -= sum(r.get("training", {}).get("steps", 0) for r in made)

    def pace(self, plan: RunPlan) -> Callable[[int, int, float], None] | None:
        """For a training loop (``pace(steps done, steps of the run, seconds so far)``): after the
        first few steps of the first run of a head, say once how long that head's runs left in
        this :meth:`run` will take, when it is more than a few minutes."""
        pending = self._pending.get(plan.head)
        if not pending or plan.head in self._paced:
            return None

        def pace(done: int, total: int, seconds: float) -> None:
            if plan.head in self._paced or done < PACE_STEPS or seconds < PACE_SECONDS:
                return
            self._paced.add(plan.head)
            per_step = seconds / done
            whole = per_step * pending
            if whole >= PACE_WARN_SECONDS:
                warn(f"{plan.head} trains at {per_step:.2f} s a step on {self.device} here ({total} steps: about "
                     f"{_duration(per_step * total)} for this run); its runs in this sweep will take about "
                     f"{_duration(whole)} (estimated from its first {done} steps"
                     + ("; grid heads at this scale are a GPU job, docs/benchmarks.md)" if self.device.type == "cpu"
                        else ")"))

        return pace

    def record(self, plan: RunPlan, kind: HeadKind, outcome: Outcome) -> dict:
        """The run's record: the envelope every task shares, the task's metrics and extras."""
        split = self.split(plan.split, plan.seed)
        data = self.run_data(split, plan.seed)
        evaluated_on = "test" if len(split.test) else "val"
        run_id = self.run_id(plan)
        metrics, extras = self.score(plan, data, outcome, run_id)
        record = {
            "run_id": run_id,
            "task": self.task,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "config": {**plan_dict(plan), "device": str(self.device), "uses_encoder": kind.input != "images",
                       **({"threads": self.threads} if self.threads else {})},
            "cache": {"store": str(self.group.store), "group": self.group.name, "dataset": self.group.dataset,
                      "signature": self.group.signature, "generation": self.group.generation},
            "split": {"name": split.name, "seed": split.seed, "n_train": len(split.train), "n_val": len(split.val),
                      "n_test": len(split.test), "indices_hash": split.indices_hash},
            "metrics": {**metrics, "evaluated_on": evaluated_on, "selection": kind.selection(outcome, evaluated_on)},
            "head_info": outcome.info,
            "curves": outcome.curves,
            "seconds": round(outcome.seconds, 4),
            "versions": run_versions(),
        }
        for fields in (outcome.record, extras):  # the kind's and the task's own fields
            for key, value in fields.items():
                merge = isinstance(value, dict) and isinstance(record.get(key), dict)
                record[key] = {**record[key], **value} if merge else value
        return record

    def score(self, plan: RunPlan, data: RunData, outcome: Outcome, run_id: str) -> tuple[dict, dict]:
        """(metrics of ``outcome`` on ``data.evaluate``, extra record fields) of the task."""
        raise NotImplementedError

    @classmethod
    def summary(cls, record: dict) -> str:
        """One line that says what the run was and how it scored (``train-head`` and ``sweep``
        print it); tasks name their headline metrics, this default lists every number."""
        m, c = record["metrics"], record["config"]
        numbers = ", ".join(f"{k} {v:.4f}" for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
        return f"{c['head']} on {c['feature']}, split {c['split']}, seed {c['seed']}: {m.get('evaluated_on', '')} {numbers}"


TASKS: Registry[type[Experiment]] = Registry("task", BUILTIN["task"])


def register_task(cls: type[Experiment]) -> type[Experiment]:
    """Class decorator: the experiment of the cache groups whose task is ``cls.task``."""
    TASKS.add(cls.task, cls)
    return cls


def open_experiment(dataset: str, encoder: str | None = None, *, cache_dir: str | Path = DEFAULT_CACHE_DIR,
                    group: CacheGroup | None = None, **options) -> Experiment:
    """The experiment on the cache group of ``dataset`` and ``encoder`` (or on ``group``), by the
    group's task. ``options`` are :class:`ExperimentOptions` fields."""
    group = group if group is not None else open_cache(cache_dir, dataset, encoder)
    return TASKS.get(group.task)(group, replace(ExperimentOptions(), **options))


