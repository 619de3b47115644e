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
    """Standardise with per-run statistics, then ``first`` (a :class:`StackedLinear`), then
    ``rest``. :meth:`standardise_with` sets run r's buffers ``scale`` = 1 / std and ``shift`` =
    -mean / std, both (R, 1, D).

    The standardisation is folded into the first layer: x (scale W) + (shift W + b) is
    (x scale + shift) W + b, and autograd carries the gradient through the fold to W and b, so
    training is that of the standardised input without writing a standardised copy of each batch."""

    def __init__(self, runs: int, in_dim: int, first: StackedLinear, rest: nn.Module | None = None):
        super().__init__()
        self.register_buffer("scale", torch.ones(runs, 1, in_dim))
        self.register_buffer("shift", torch.zeros(runs, 1, in_dim))
        self.first = first
        self.rest = rest if rest is not None else nn.Identity()

    @torch.no_grad()
    def standardise_with(self, r: int | list[int], x_train: torch.Tensor) -> None:
        """Use the mean and standard deviation of ``x_train`` (n, D) for run r (or runs)."""
        std = x_train.std(0).clamp_min(1e-6)
        self.scale[r, 0] = 1 / std
        self.shift[r, 0] = -x_train.mean(0) / std

    def forward(self, x: torch.Tensor, shared: int = 1) -> torch.Tensor:
        """(R, B, D) -> (R, B, out); with ``shared`` = G, x is (R / G, B, D) and feeds runs s,
        s + R/G, ..., each row block read once by one wider product."""
        weight = self.first.weight * self.scale.transpose(1, 2)  # (R, D, H): row d scaled by scale[d]
        bias = torch.baddbmm(self.first.bias, self.shift, self.first.weight)  # (R, 1, H)
        if shared == 1:
            return self.rest(torch.baddbmm(bias, x, weight))
        runs, (s, b, d), h = weight.shape[0], x.shape, weight.shape[-1]
        wide = weight.view(shared, s, d, h).permute(1, 2, 0, 3).reshape(s, d, shared * h)
        out = torch.bmm(x, wide).view(s, b, shared, h).permute(2, 0, 1, 3).reshape(runs, b, h)
        return self.rest(out + bias)


def _generators(seeds: list[int]) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


# The peak learning rate a linear head needs depends on the data, not its size: well separated
# classes want large weights (0.1), noisy ones stop early (0.001); so each run chooses it.
LINEAR_LR_GRID = (1e-3, 1e-2, 1e-1)


@register_head("linear", kind="pooled", settings={"lr_grid": LINEAR_LR_GRID},
               summary="linear classifier on the standardised pooled vector, lr chosen on a held-out 20% of the training set")
def linear_head(in_dim: int, num_classes: int, seeds: list[int]) -> StackedHead:
    return StackedHead(len(seeds), in_dim, StackedLinear(in_dim, num_classes, _generators(seeds)))


@register_head("mlp", kind="pooled", summary="one hidden layer of 512 with GELU on the standardised pooled vector")
def mlp_head(in_dim: int, num_classes: int, seeds: list[int], hidden: int = 512) -> StackedHead:
    gens = _generators(seeds)
    first = StackedLinear(in_dim, hidden, gens)
    return StackedHead(len(seeds), in_dim, first, nn.Sequential(nn.GELU(), StackedLinear(hidden, num_classes, gens)))
