"""The kinds of classification heads: ``pooled`` torch heads stacked over runs, ``grid`` torch heads
on the map, ``scratch`` baselines on the raw images, and ``classic`` heads (scikit-learn style)."""

from __future__ import annotations

import time

import torch

from ..experiments.kinds import HeadKind, Outcome, TrainSettings, register_kind
from .training import train_grid, train_stacked

RAW_INPUT_SIZE = 64  # the from-scratch baselines see the images at EuroSAT's own size


class Pooled(HeadKind):
    """Torch heads on a pooled vector; every run of one head, feature and settings trains in one
    vectorised pass (each run's numbers equal those of the run trained alone)."""

    name, task, input, batched = "pooled", "classification", "pooled", True
    defaults = TrainSettings(epochs=30, lr=1e-3, batch_size=256)

    def fit(self, experiment, plans):
        splits = [experiment.split(p.split, p.seed) for p in plans]
        datas = [experiment.run_data(s, p.seed) for s, p in zip(splits, plans)]
        x = experiment.pooled(plans[0].feature)
        t0 = time.perf_counter()
        torch.manual_seed(0)
        model = experiment.head(plans[0].head).factory(x.shape[1], len(experiment.class_names),
                                                       seeds=[p.seed for p in plans]).to(experiment.device)
        results = train_stacked(model, x, torch.as_tensor(experiment.labels, device=experiment.device), datas,
                                plans[0].settings)
        seconds = (time.perf_counter() - t0) / len(plans)  # the pass is shared: each run's share
        for plan, result in zip(plans, results):
            yield plan, Outcome(result.predictions, seconds, result.curves, {"trained_with": len(plans)})


class Grid(HeadKind):
    """Torch heads on the cached grid map, one run at a time."""

    name, task, input = "grid", "classification", "grid"
    defaults = TrainSettings(epochs=15, lr=3e-4, batch_size=256)

    def model(self, experiment, plan):
        return experiment.head(plan.head).factory(tuple(experiment.grid().array.shape[1:]), len(experiment.class_names))

    def source(self, experiment):
        return experiment.grid()

    def fit(self, experiment, plans):
        (plan,) = plans
        data = experiment.run_data(experiment.split(plan.split, plan.seed), plan.seed)
        torch.manual_seed(plan.seed)
        source = self.source(experiment)
        model = self.model(experiment, plan)
        t0 = time.perf_counter()
        result = train_grid(model, source, experiment.labels, data, plan.settings, experiment.device)
        yield plan, Outcome(result.predictions, time.perf_counter() - t0, result.curves, {})


class Scratch(Grid):
    """Baselines trained from scratch on the raw images, with the heads' splits."""

    name, task, input = "scratch", "classification", "images"
    defaults = TrainSettings(epochs=30, lr=1e-3, batch_size=128)

    def model(self, experiment, plan):
        return experiment.head(plan.head).factory(len(experiment.class_names))

    def source(self, experiment):
        return experiment.raw_images(RAW_INPUT_SIZE)


class Classic(HeadKind):
    """Heads that choose their own hyper-parameter on a held-out part of the training set."""

    name, task, input = "classic", "classification", "pooled"

    def fit(self, experiment, plans):
        (plan,) = plans
        data = experiment.run_data(experiment.split(plan.split, plan.seed), plan.seed)
        x = experiment.pooled(plan.feature).cpu().numpy()
        t0 = time.perf_counter()
        predictions, info = experiment.head(plan.head).factory(
            x[data.train], experiment.labels[data.train], x[data.evaluate], num_classes=len(experiment.class_names),
            seed=plan.seed)
        yield plan, Outcome(predictions, time.perf_counter() - t0, {}, info)


for kind in (Pooled(), Grid(), Scratch(), Classic()):
    register_kind(kind)
