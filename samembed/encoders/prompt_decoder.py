"""The hook through which an encoder answers prompts: its own prompt encoder and mask decoder, run
on the maps the cache stores (docs/encoders.md, "Prompts"). Generic code (prompting/) only ever
calls this interface; an encoder that answers prompts returns one from
:meth:`~samembed.encoders.base.EncoderSpec.prompt_decoder`."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch


class PromptDecoder(ABC):
    """Prompts and a cached image embedding in, low-resolution mask logits out.

    ``embed_dim`` is the channel count C of the image embedding it takes (checked against the
    cache). Points and boxes arrive on the input square, as the model's own predictor maps them
    (:class:`~samembed.encoders.geometry.Geometry`)."""

    embed_dim: int

    @abstractmethod
    def __call__(self, embedding: torch.Tensor, maps: list[torch.Tensor],
                 points: tuple[torch.Tensor, torch.Tensor] | None, boxes: torch.Tensor | None,
                 multimask: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``embedding`` (1, C, G, G) float32; ``maps`` the other stored maps the decoder reads, in
        the order of the spec's ``prompt_maps()`` (each (1, c, s, s)); ``points`` ((P, n, 2)
        float32 coordinates, (P, n) int32 labels: 1 foreground, 0 background) or None; ``boxes``
        (P, 4) float32 x0, y0, x1, y1 or None. Returns (P, k, 4G, 4G) logits and (P, k) predicted
        IoUs, k = 3 with ``multimask`` else 1."""
