"""Optimisation pieces shared by the training loops: a run's schedule (batch, steps, epochs, the
step floor, the learning rate at each step, the epochs its curves record), and torch's AdamW for
parameters stacked over independent runs."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def cosine_with_warmup(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@dataclass(frozen=True)
class Schedule:
    """How one run trains: ``batch`` rows a step (an epoch's last step may hold fewer),
    ``steps_per_epoch``, ``epochs`` (the settings' epochs, or more where the step floor asks for
    them), ``warmup`` steps of linear warm-up, then cosine decay to 0 at the last step; the curves
    record at most ``curve_points`` epochs."""

    batch: int
    steps_per_epoch: int
    epochs: int
    warmup: int
    curve_points: int

    @property
    def total(self) -> int:
        """Optimizer steps of the run."""
        return self.steps_per_epoch * self.epochs

    def lr(self, peak: float, step: int) -> float:
        """The learning rate of step ``step`` (0-based)."""
        return peak * cosine_with_warmup(min(step, self.total - 1), self.total, self.warmup)

    def records_epoch(self, epoch: int) -> bool:
        """Whether the curves record epoch ``epoch`` (1-based): every epoch when there are at most
        ``curve_points``, else ``curve_points`` evenly spaced ones ending with the last."""
        if self.epochs <= self.curve_points:
            return True
        return epoch == self.epochs or math.floor(epoch * self.curve_points / self.epochs) > \
            math.floor((epoch - 1) * self.curve_points / self.epochs)

    def summary(self) -> dict:
        """What the run record holds of it (``training``)."""
        return {"batch_size": self.batch, "epochs": self.epochs, "steps": self.total}


def schedule_for(n_train: int, batch: int, settings) -> Schedule:
    """The schedule of a run of ``n_train`` images with batches of ``batch`` (at most ``n_train``
    are used) and ``settings`` (:class:`~samembed.experiments.kinds.TrainSettings`): its epochs, or
    as many more whole epochs as ``settings.min_steps`` optimizer steps take."""
    batch = max(1, min(batch, n_train))
    steps = math.ceil(n_train / batch)
    epochs = max(settings.epochs, math.ceil(settings.min_steps / steps))
    warmup = max(1, round(steps * settings.warmup_epochs))
    return Schedule(batch, steps, epochs, warmup, curve_points=settings.epochs)


class RunGroupsAdamW:
    """torch's AdamW (decoupled weight decay) on parameters whose first dimension indexes
    ``candidates`` x S independent runs (candidate-major). ``groups`` are ``(candidate, start,
    stop)``: runs start .. stop-1 of one candidate that share a learning-rate schedule. Each group
    is a list of views into the stacked parameters with its own moments and step count, updated
    in place by torch's fused AdamW kernel (``torch._fused_adamw_``, what ``torch.optim.AdamW(fused=True)``
    runs, called once per group without the optimizer's per-group bookkeeping; the foreach
    implementation where there is no fused kernel). A group left out of a step keeps its weights
    and moments untouched, so runs of different lengths end exactly where they would alone."""

    def __init__(self, params: list[torch.Tensor], groups: list[tuple[int, int, int]], weight_decay: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, candidates: int = 1):
        self.groups, self.candidates = groups, candidates
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.trailing = [p.shape[1:] for p in params]
        shaped = [p.detach().view(candidates, -1, *p.shape[1:]) for p in params]
        self.views = [[p[g, a:b] for p in shaped] for g, a, b in groups]
        self.m = [[torch.zeros_like(v) for v in views] for views in self.views]
        self.v = [[torch.zeros_like(v) for v in views] for views in self.views]
        self.steps = [[torch.zeros((), dtype=torch.float32, device=v.device) for v in views] for views in self.views]
        self.fused = params[0].device.type in ("cpu", "cuda") and hasattr(torch, "_fused_adamw_")

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor], lrs: list[float | None]) -> None:
        """One step of every group with a learning rate in ``lrs`` (one per group, ``None``: left
        out). ``grads`` ((candidates, k, ...) or (candidates * k, ...)) hold the gradients of
        runs 0 .. k-1 of every candidate, where every group stepped lies within the first k runs."""
        grads = [g.reshape(self.candidates, -1, *shape) for g, shape in zip(grads, self.trailing)]
        b1, b2 = self.betas
        for views, m, v, steps, (c, a, b), lr in zip(self.views, self.m, self.v, self.steps, self.groups, lrs):
            if lr is None:
                continue
            g = [grad[c, a:b] for grad in grads]
            torch._foreach_add_(steps, 1)
            if self.fused:
                torch._fused_adamw_(views, g, m, v, [], steps, lr=lr, beta1=b1, beta2=b2,
                                    weight_decay=self.weight_decay, eps=self.eps, amsgrad=False, maximize=False)
            else:
                _foreach_adamw(views, g, m, v, steps, lr, b1, b2, self.weight_decay, self.eps)


def _foreach_adamw(params, grads, m, v, steps, lr, b1, b2, weight_decay, eps) -> None:
    """torch.optim.AdamW's update with foreach ops (for devices without a fused kernel)."""
    step = steps[0].item()
    torch._foreach_mul_(params, 1 - lr * weight_decay)
    torch._foreach_lerp_(m, grads, 1 - b1)
    torch._foreach_mul_(v, b2)
    torch._foreach_addcmul_(v, grads, grads, 1 - b2)
    denom = torch._foreach_sqrt(v)
    torch._foreach_div_(denom, math.sqrt(1 - b2 ** step))
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, m, denom, -lr / (1 - b1 ** step))
