"""The kinds of classification heads: ``pooled`` torch heads stacked over runs, ``grid`` torch heads
on the map, ``scratch`` baselines on the raw images, and ``classic`` heads (scikit-learn style)."""

from __future__ import annotations

import time

import torch

from ..experiments.base import RunData
from ..experiments.kinds import HeadKind, Outcome, TrainSettings, register_kind
from ..heads.selection import accuracy, hold_out, pick_best
from ..experiments.optim import schedule_for
from .training import batch_for, train_candidates, train_grid, train_stacked

RAW_INPUT_SIZE = 64  # the from-scratch baselines see the images at EuroSAT's own size


class Pooled(HeadKind):
    """Torch heads on a pooled vector; every run of one head, feature and settings trains in one
    vectorised pass (each run's numbers equal those of the run trained alone). A head with an
    ``lr_grid`` first trains every run once per learning rate on 80 % of its training set, stacked,
    keeps the rate most accurate on the other 20 % (:func:`~samembed.heads.selection.hold_out`,
    as ``logreg`` chooses C), then trains on the whole training set with it."""

    name, task, input, batched = "pooled", "classification", "pooled", True
    defaults = TrainSettings(epochs=30, lr=1e-3, batch_size=256, min_steps=1000)

    def fit(self, experiment, plans):
        settings = plans[0].settings
        datas = [experiment.run_data(experiment.split(p.split, p.seed), p.seed) for p in plans]
        x = experiment.pooled(plans[0].feature)
        y = torch.as_tensor(experiment.labels, device=experiment.device)
        t0 = time.perf_counter()
        chosen = [{"lr": settings.lr} for _ in plans]
        if settings.lr_grid:
            chosen = self._choose_lr(experiment, plans, datas, x, y)
        model = self._model(experiment, plans, x)
        results = train_stacked(model, x, y, datas, settings, lrs=[c["lr"] for c in chosen])
        seconds = (time.perf_counter() - t0) / len(plans)  # the pass is shared: each run's share
        for plan, result, choice in zip(plans, results, chosen):
            info = {"trained_with": len(plans), **(choice if settings.lr_grid else {})}
            yield plan, Outcome(result.predictions, seconds, result.curves, info, {"training": result.training})

    def _model(self, experiment, plans, x):
        torch.manual_seed(0)
        return experiment.head(plans[0].head).factory(x.shape[1], len(experiment.class_names),
                                                      seeds=[p.seed for p in plans]).to(experiment.device)

    def _choose_lr(self, experiment, plans, datas, x, y) -> list[dict]:
        """Per run: the learning rate of ``lr_grid`` most accurate on its held-out part (ties go
        to the earlier), with the held-out accuracies; ``settings.lr`` where none can be held out."""
        settings = plans[0].settings
        chosen: list[dict] = [{} for _ in plans]
        held_out: list[tuple[int, RunData]] = []
        for r, (plan, data) in enumerate(zip(plans, datas)):
            held = hold_out(experiment.labels[data.train], plan.seed)
            if isinstance(held, str):
                chosen[r] = {"lr": settings.lr, "lr_selection": f"lr={settings.lr:g} without selection: {held}",
                             "held_out_accuracy": {}}
            else:
                fit, val = data.train[held[0]], data.train[held[1]]
                held_out.append((r, RunData(fit, val, val, plan.seed)))
        if held_out:
            grid = list(settings.lr_grid)
            model = self._model(experiment, [plans[r] for _ in grid for r, _ in held_out], x)
            results = train_candidates(model, x, y, [run for _, run in held_out], settings, grid)
            for s, (r, run) in enumerate(held_out):
                truth = experiment.labels[run.evaluate]
                accuracies = {lr: accuracy(results[g][s].predictions, truth) for g, lr in enumerate(grid)}
                chosen[r] = {"lr": float(pick_best(accuracies)), "lr_selection": LR_SELECTION,
                             "held_out_accuracy": {f"{lr:g}": a for lr, a in accuracies.items()},
                             "held_out_steps": results[0][s].training["steps"]}
        return chosen

    def selection(self, outcome, evaluated_on):
        said = super().selection(outcome, evaluated_on)
        return f"{said}; {outcome.info['lr_selection']}" if "lr_selection" in outcome.info else said


LR_SELECTION = "lr chosen on a held-out 20% of the training set"


class Grid(HeadKind):
    """Torch heads on the cached grid map, one run at a time."""

    name, task, input = "grid", "classification", "grid"
    defaults = TrainSettings(epochs=15, lr=3e-4, batch_size=256)

    def model(self, experiment, plan):
        return experiment.head(plan.head).factory(tuple(experiment.grid().array.shape[1:]), len(experiment.class_names))

    def source(self, experiment):
        return experiment.grid()

    def steps(self, experiment, plan):
        n = len(experiment.split(plan.split, plan.seed).train)
        return schedule_for(n, batch_for(n, plan.settings), plan.settings).total

    def fit(self, experiment, plans):
        (plan,) = plans
        data = experiment.run_data(experiment.split(plan.split, plan.seed), plan.seed)
        torch.manual_seed(plan.seed)
        source = self.source(experiment)
        model = self.model(experiment, plan)
        t0 = time.perf_counter()
        result = train_grid(model, source, experiment.labels, data, plan.settings, experiment.device,
                            experiment.pace(plan))
        yield plan, Outcome(result.predictions, time.perf_counter() - t0, result.curves, {},
                            {"training": result.training})


class Scratch(Grid):
    """Baselines trained from scratch on the raw images, with the heads' splits."""

    name, task, input = "scratch", "classification", "images"
    defaults = TrainSettings(epochs=30, lr=1e-3, batch_size=128)

    def model(self, experiment, plan):
        return experiment.head(plan.head).factory(len(experiment.class_names))

    def source(self, experiment):
        return experiment.raw_images(RAW_INPUT_SIZE)


class Classic(HeadKind):
    """Heads that choose their own hyper-parameter on a held-out part of the training set. A head
    whose ``fit_predict`` has a ``many`` (``knn``: one Gram matrix for every run) fits all runs of
    a sweep in one call; the others run one at a time."""

    name, task, input = "classic", "classification", "pooled"

    def batches(self, head) -> bool:
        return hasattr(head.factory, "many")

    def fit(self, experiment, plans):
        head = experiment.head(plans[0].head)
        x = experiment.pooled(plans[0].feature).cpu().numpy()
        datas = [experiment.run_data(experiment.split(p.split, p.seed), p.seed) for p in plans]
        if hasattr(head.factory, "many"):
            t0 = time.perf_counter()
            results = head.factory.many(x, experiment.labels, [(d.train, d.evaluate, p.seed) for p, d in zip(plans, datas)],
                                        num_classes=len(experiment.class_names))
            seconds = (time.perf_counter() - t0) / len(plans)  # the pass is shared: each run's share
            for plan, (predictions, info) in zip(plans, results):
                yield plan, Outcome(predictions, seconds, {}, {**info, "trained_with": len(plans)})
            return
        for plan, data in zip(plans, datas):
            t0 = time.perf_counter()
            predictions, info = head.factory(x[data.train], experiment.labels[data.train], x[data.evaluate],
                                             num_classes=len(experiment.class_names), seed=plan.seed)
            yield plan, Outcome(predictions, time.perf_counter() - t0, {}, info)


for kind in (Pooled(), Grid(), Scratch(), Classic()):
    register_kind(kind)
