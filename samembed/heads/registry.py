"""Head registry. A head is one file that registers itself with ``@register_head``.

Three kinds, by what they train on and how:

- ``pooled`` torch heads (``linear``, ``mlp``): a factory ``(in_dim, num_classes, seeds) -> nn.Module``
  whose module maps (R, B, D) to (R, B, classes): R = len(seeds) independent runs stacked in every parameter's
  first dimension, so a sweep trains many splits and seeds in one vectorised pass.
- ``grid`` torch heads (``sam-conv``, ``sam-vit``): a factory ``(in_shape (C, G, G), num_classes) -> nn.Module``
  mapping (B, C, G, G) to (B, classes).
- ``scratch`` classification baselines (``cnn``, ``resnet18``): a factory ``(num_classes) -> nn.Module``
  mapping raw images (B, 3, 64, 64) (pixel values 0-255) to (B, classes); trained from scratch.
- ``classic`` heads (``logreg``, ``knn``): a function
  ``fit_predict(x_train (n, D) float32, y_train (n,), x_eval (m, D), *, num_classes, seed) -> (pred (m,), info)``
  that chooses its own hyper-parameter on a held-out part of the training set and says so in ``info``.

Segmentation heads live in their own registry (the same names may mean a classifier and a decoder):

- ``decoder`` (``sam-conv``, ``sam-vit``): a factory ``(in_shape (C, G, G), checkpoint: Path | None) -> nn.Module``
  mapping the cached map (B, C, G, G) to mask logits (B, 1, 4G, 4G).
- ``raw`` (``unet``): a factory ``() -> nn.Module`` mapping raw images (B, 3, M, M) uint8 to mask logits
  (B, 1, M, M); trained from scratch, not from the cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

from ..registry import Registry

Kind = Literal["pooled", "grid", "classic", "scratch", "decoder", "raw"]
Task = Literal["classification", "segmentation"]


@dataclass(frozen=True)
class Head:
    name: str
    kind: Kind
    factory: Callable
    summary: str


HEADS: Registry[Head] = Registry("head")
SEGMENTATION_HEADS: Registry[Head] = Registry("segmentation head")
_REGISTRIES = {"classification": HEADS, "segmentation": SEGMENTATION_HEADS}


def register_head(name: str, kind: Kind, summary: str, task: Task = "classification") -> Callable[[Callable], Callable]:
    def decorate(factory: Callable) -> Callable:
        _REGISTRIES[task].register(name)(Head(name, kind, factory, summary))
        return factory

    return decorate


def get_head(name: str, task: Task = "classification") -> Head:
    return _REGISTRIES[task].get(name)


available_heads = HEADS.names
