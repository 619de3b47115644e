"""Optimisation pieces shared by the training loops: the learning-rate schedule, and AdamW for
parameters stacked over independent runs."""

from __future__ import annotations

import math

import torch


def cosine_with_warmup(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class StackedAdamW:
    """AdamW (decoupled weight decay, as ``torch.optim.AdamW``) for parameters whose first
    dimension indexes R independent runs. Each run has its own learning rate and step count, and
    a run that is not ``active`` at a step keeps its weights and moments untouched, so runs of
    different lengths trained together end exactly where they would alone."""

    def __init__(self, params, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01):
        self.params = [p for p in params if p.requires_grad]
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        runs = self.params[0].shape[0]
        self.steps = torch.zeros(runs, device=self.params[0].device)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, lr: torch.Tensor, active: torch.Tensor) -> None:
        """``lr`` (R,) learning rates, ``active`` (R,) bool."""
        b1, b2 = self.betas
        self.steps += active.float()
        t = self.steps.clamp_min(1)
        for p, m, v in zip(self.params, self.m, self.v):
            shape = (-1,) + (1,) * (p.dim() - 1)
            on = active.view(shape)
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            m.copy_(torch.where(on, b1 * m + (1 - b1) * g, m))
            v.copy_(torch.where(on, b2 * v + (1 - b2) * g * g, v))
            m_hat = m / (1 - b1 ** t).view(shape)
            v_hat = v / (1 - b2 ** t).view(shape)
            step_lr = (lr * active.float()).view(shape)
            p.mul_(1 - step_lr * self.weight_decay)
            p.sub_(step_lr * m_hat / (v_hat.sqrt() + self.eps))
