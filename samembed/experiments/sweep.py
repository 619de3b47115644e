"""``train_head`` and ``sweep``: the library functions behind ``samembed train-head`` and
``samembed sweep``. The cache group's task decides which experiment runs them
(:func:`~samembed.experiments.base.open_experiment`)."""

from __future__ import annotations

from itertools import product

from tqdm.auto import tqdm

from ..cache.reader import matching_groups
from ..errors import UsageError, warn
from ..splits import SplitSpec
from .base import open_experiment
from .records import readable_runs, record_problem
from .request import TrainingRequest


def sweep(
    dataset: str | None = None, *, heads: list[str] = ("linear",), splits: list[float | str] = (0.2,),
    shots: list[int] | None = None, seeds: int | list[int] = 1, progress: bool = True, **training,
) -> list[dict]:
    """Train every head on every split (validation fractions, ``standard``, or ``shots`` per class)
    and seed from the cache of ``dataset`` (``None``: the cache's only dataset); append one record
    per run to the runs store and return
    the new records. Runs already in the store are skipped. ``seeds`` is a count (0..n-1) or a list.
    ``encoder`` may name several cache groups (comma-separated names or prefixes: every composite
    of one encoder, say); each runs the same plans. On a segmentation cache the heads are decoders
    (and ``unet``); ``checkpoint`` is the SAM checkpoint for ``sam-vit`` when it is not where the
    extraction found it. ``epochs`` are trained exactly unless ``min_steps`` is given too; by
    default a torch head trains its kind's epochs and at least its kind's step floor (docs/heads.md).
    ``training`` are the :class:`~samembed.experiments.request.TrainingRequest` fields (encoder,
    feature, epochs, lr, batch_size, min_steps, device, cache_dir, runs_dir, data_dir, download,
    checkpoint)."""
    request = TrainingRequest.of(dataset, **training)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise UsageError("--seeds must be at least 1")
    specs = [SplitSpec.parse(None, k) for k in shots] if shots else [SplitSpec.parse(s, None) for s in splits]
    groups = [None] if request.encoder is None else matching_groups(request.cache_dir, dataset, request.encoder)
    experiments = [open_experiment(dataset, cache_dir=request.cache_dir, group=g, **request.experiment_options())
                   for g in groups]
    plans = [[e.plan(h, s, seed, request.feature, **request.settings()) for h, s, seed in product(heads, specs, seed_list)]
             for e in experiments]
    records = []
    with tqdm(total=sum(map(len, plans)), unit="run", desc="sweep", disable=not progress, dynamic_ncols=True) as bar:
        for experiment, todo in zip(experiments, plans):
            bar.update(sum(experiment.store.contains(experiment.run_id(p)) for p in todo))
            records += experiment.run(todo, on_done=lambda record: bar.update(1))
    return records


def train_head(
    dataset: str | None = None, *, head: str = "linear", split: float | str | None = None, shots: int | None = None,
    seed: int = 0, **training,
) -> dict:
    """Train one head on one split and seed of the cache of ``dataset`` (``None``: the cache's
    only dataset); returns its run record (also appended to the store).
    When the same run is already recorded, nothing is trained: a warning says when it was
    recorded and its record is returned (refused in one line if that record cannot be read).
    Without a split, a dataset with a published split (road) uses it for segmentation.
    ``training`` are the :class:`~samembed.experiments.request.TrainingRequest` fields."""
    request = TrainingRequest.of(dataset, **training)
    experiment = open_experiment(dataset, request.encoder, cache_dir=request.cache_dir, **request.experiment_options())
    if split is None and shots is None and experiment.default_split is not None:
        spec = experiment.default_split
    else:
        spec = SplitSpec.parse(split, shots)
    plan = experiment.plan(head, spec, seed, request.feature, **request.settings())
    new = experiment.run([plan])
    if new:
        return new[0]
    run_id, store = experiment.run_id(plan), experiment.store
    record = store.record(run_id)
    if (problem := record_problem(record)) is not None:
        raise UsageError(f"run {run_id} is in {store.path} but its record cannot be read ({problem}); delete its "
                         "line (or fix it) and run again to train it anew")
    readable_runs([record], store.path)  # says so if its metrics are NaN or a newer samembed wrote it
    warn(f"run {run_id} ({plan.head}, split {plan.split.name}, seed {plan.seed}) was already recorded on "
         f"{record.get('created') or 'an unknown date'} in {store.path}; nothing was trained, its record is shown")
    return record
