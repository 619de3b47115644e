"""Head registry. A head is one file that registers itself with ``@register_head``: its name, the
task it serves, its kind and a factory. The kind (:mod:`samembed.experiments.kinds`) says what the
head trains on and how, and so what its factory takes:

- classification ``pooled`` (``linear``, ``mlp``): ``(in_dim, num_classes, seeds) -> nn.Module`` mapping
  (R, B, D) to (R, B, classes): R = len(seeds) independent runs stacked in every parameter's first
  dimension, so a sweep trains many splits and seeds in one vectorised pass.
- classification ``grid`` (``sam-conv``, ``sam-vit``): ``(in_shape (C, G, G), num_classes) -> nn.Module``
  mapping (B, C, G, G) to (B, classes).
- classification ``scratch`` (``cnn``, ``resnet18``): ``(num_classes) -> nn.Module`` mapping raw images
  (B, 3, 64, 64) (pixel values 0-255) to (B, classes); trained from scratch.
- classification ``classic`` (``logreg``, ``knn``):
  ``fit_predict(x_train (n, D) float32, y_train (n,), x_eval (m, D), *, num_classes, seed) -> (pred (m,), info)``,
  choosing its own hyper-parameter on a held-out part of the training set and saying so in ``info``.
- segmentation ``decoder`` (``sam-conv``, ``sam-vit``): ``(in_shape (C, G, G), checkpoint: Path | None) -> nn.Module``
  mapping the cached map (B, C, G, G) to mask logits (B, 1, 4G, 4G); ``uses_checkpoint`` heads
  get the checkpoint the cache was extracted with.
- segmentation ``raw`` (``unet``): ``() -> nn.Module`` mapping raw images (B, 3, M, M) uint8 to mask
  logits (B, 1, M, M); trained from scratch, not from the cache.

The same name may mean a classifier and a decoder: each task has its registry. This module
imports no torch, so listing heads costs nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..plugins import BUILTIN
from ..registry import Registry


@dataclass(frozen=True)
class Head:
    name: str
    task: str
    kind: str
    factory: Callable
    summary: str
    uses_checkpoint: bool = False
    settings: dict | None = None  # training settings where the head differs from its kind's defaults


_REGISTRIES: dict[str, Registry[Head]] = {}


def heads_of(task: str) -> Registry[Head]:
    """The head registry of ``task``."""
    if task not in _REGISTRIES:
        _REGISTRIES[task] = Registry(f"{task} head" if task != "classification" else "head",
                                     BUILTIN.get(f"head/{task}", {}))
    return _REGISTRIES[task]


def register_head(name: str, kind: str, summary: str, task: str = "classification",
                  uses_checkpoint: bool = False, settings: dict | None = None) -> Callable[[Callable], Callable]:
    """``settings``: training settings (``TrainSettings`` fields) where the head's defaults differ
    from its kind's."""

    def decorate(factory: Callable) -> Callable:
        heads_of(task).add(name, Head(name, task, kind, factory, summary, uses_checkpoint, settings))
        return factory

    return decorate


def get_head(name: str, task: str = "classification") -> Head:
    return heads_of(task).get(name)


def available_heads(task: str = "classification") -> list[str]:
    return heads_of(task).names()
