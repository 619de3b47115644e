"""``linear`` and ``mlp``: heads on a pooled vector (neck or trunk), stacked over R runs.

Every parameter carries the run in its first dimension and each run is initialised from its own
seed, so R heads (different splits, seeds) train in one vectorised pass and each run's numbers
equal those of the run trained alone (no dropout: its random masks would couple the runs). The
input is standardised with each run's own training mean and standard deviation."""

from __future__ import annotations

import math

import torch
from torch import nn

from .registry import register_head


class StackedLinear(nn.Module):
    """R independent linear maps (R, B, D) -> (R, B, out), run r initialised from ``generators[r]``
    as ``nn.Linear`` would be."""

    def __init__(self, in_dim: int, out_dim: int, generators: list[torch.Generator]):
        super().__init__()
        bound = 1 / math.sqrt(in_dim)
        runs = len(generators)
        self.weight = nn.Parameter(torch.empty(runs, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(runs, 1, out_dim))
        with torch.no_grad():
            for r, g in enumerate(generators):
                self.weight[r].uniform_(-bound, bound, generator=g)
                self.bias[r].uniform_(-bound, bound, generator=g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class StackedHead(nn.Module):
    """Standardise with per-run statistics, then ``body``. :meth:`standardise_with` sets run r's
    buffers ``scale`` = 1 / std and ``shift`` = -mean / std, both (R, 1, D)."""

    def __init__(self, runs: int, in_dim: int, body: nn.Module):
        super().__init__()
        self.register_buffer("scale", torch.ones(runs, 1, in_dim))
        self.register_buffer("shift", torch.zeros(runs, 1, in_dim))
        self.body = body

    @torch.no_grad()
    def standardise_with(self, r: int, x_train: torch.Tensor) -> None:
        """Use the mean and standard deviation of ``x_train`` (n, D) for run r."""
        std = x_train.std(0).clamp_min(1e-6)
        self.scale[r, 0] = 1 / std
        self.shift[r, 0] = -x_train.mean(0) / std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(torch.addcmul(self.shift, x, self.scale))


def _generators(seeds: list[int]) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


@register_head("linear", kind="pooled", summary="linear classifier on the standardised pooled vector")
def linear_head(in_dim: int, num_classes: int, seeds: list[int]) -> StackedHead:
    return StackedHead(len(seeds), in_dim, StackedLinear(in_dim, num_classes, _generators(seeds)))


@register_head("mlp", kind="pooled", summary="one hidden layer of 512 with GELU on the standardised pooled vector")
def mlp_head(in_dim: int, num_classes: int, seeds: list[int], hidden: int = 512) -> StackedHead:
    gens = _generators(seeds)
    body = nn.Sequential(StackedLinear(in_dim, hidden, gens), nn.GELU(), StackedLinear(hidden, num_classes, gens))
    return StackedHead(len(seeds), in_dim, body)
