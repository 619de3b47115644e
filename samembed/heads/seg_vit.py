"""``sam-vit`` for segmentation: SAM's own mask decoder (two-way transformer and upsampling),
initialised from the checkpoint's ``mask_decoder`` weights, with learned prompt tokens in place of
a user's points and SAM's "no mask" embedding as the dense prompt; trained from the cache.

segment_anything's ``MaskDecoder.predict_masks`` repeats each image embedding once per prompt
(one image, many prompts); here every image has its own prompt tokens, so the images of a batch
go through the transformer side by side. The decoder is built by
:func:`samembed.encoders.sam_prompt.build_mask_decoder`."""

from __future__ import annotations

from pathlib import Path

import torch
from segment_anything.modeling import MaskDecoder
from segment_anything.modeling.prompt_encoder import PositionEmbeddingRandom
from torch import nn

from ..encoders.sam_checkpoint import load_prompt_and_mask_decoder
from ..encoders.sam_prompt import build_mask_decoder
from ..errors import CheckpointError
from .registry import register_head

PROMPT_TOKENS = 2


class SamMaskDecoderHead(nn.Module):
    """(B, C, G, G) image embeddings -> (B, 1, 4G, 4G) road logits (SAM's first mask output)."""

    def __init__(self, decoder: MaskDecoder, pe: PositionEmbeddingRandom, no_mask: torch.Tensor, grid: int):
        super().__init__()
        self.decoder = decoder
        dim = decoder.transformer_dim
        self.prompt_tokens = nn.Parameter(torch.randn(1, PROMPT_TOKENS, dim) * 0.02)
        self.dense_prompt = nn.Parameter(no_mask.detach().clone().reshape(1, dim, 1, 1))
        with torch.no_grad():
            self.register_buffer("image_pe", pe((grid, grid)).unsqueeze(0), persistent=False)  # (1, C, G, G)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        d = self.decoder
        b, c, h, w = embeddings.shape
        output_tokens = torch.cat([d.iou_token.weight, d.mask_tokens.weight], dim=0)
        tokens = torch.cat([output_tokens.unsqueeze(0).expand(b, -1, -1), self.prompt_tokens.expand(b, -1, -1)], dim=1)
        src = embeddings + self.dense_prompt
        hs, src = d.transformer(src, self.image_pe.expand(b, -1, -1, -1), tokens)
        mask_token = hs[:, 1, :]  # the first mask token: SAM's single-mask output
        upscaled = d.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
        hyper = d.output_hypernetworks_mlps[0](mask_token)  # (B, C/8)
        return (hyper.unsqueeze(1) @ upscaled.flatten(2)).view(b, 1, *upscaled.shape[-2:])


@register_head("sam-vit", kind="decoder", task="segmentation", uses_checkpoint=True,
               summary="SAM's own mask decoder from the checkpoint, learned prompt tokens, trained from the cache")
def sam_vit_decoder(in_shape: tuple[int, int, int], checkpoint: Path | None = None) -> nn.Module:
    if checkpoint is None:
        raise CheckpointError("the sam-vit decoder starts from the checkpoint's mask decoder; pass --checkpoint "
                              "FILE (the checkpoint the cache was extracted with)")
    if not Path(checkpoint).is_file():
        raise CheckpointError(f"{checkpoint}, the checkpoint the cache was extracted with, is not there; pass "
                              "--checkpoint FILE (the same checkpoint) to train the sam-vit decoder")
    sd = load_prompt_and_mask_decoder(Path(checkpoint))
    dim = sd["mask_decoder.iou_token.weight"].shape[1]
    if dim != in_shape[0]:
        raise CheckpointError(f"{checkpoint}'s mask decoder takes {dim} channels but the cache holds {in_shape[0]}; "
                              "pass the checkpoint the cache was extracted with")
    decoder = build_mask_decoder(sd)
    pe = PositionEmbeddingRandom(dim // 2)
    pe.positional_encoding_gaussian_matrix.copy_(sd["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"])
    # The IoU head predicts mask quality for interactive use; it gets no gradient here.
    decoder.iou_prediction_head.requires_grad_(False)
    return SamMaskDecoderHead(decoder, pe, sd["prompt_encoder.no_mask_embed.weight"], in_shape[-1])
