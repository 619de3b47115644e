"""SAM's prompt encoder and mask decoder from a checkpoint in the official format, for any input
size: the modules that turn points, boxes and an image embedding into masks.

The checkpoint's tensors give every size but one: the number of attention heads of the mask
decoder's transformer is not stored; SAM uses 8 in every published model (and samembed's tiny
checkpoints do too)."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from segment_anything.modeling import MaskDecoder, PromptEncoder, TwoWayTransformer

from ..errors import CheckpointError
from .prompt_decoder import PromptDecoder
from .sam_checkpoint import load_prompt_and_mask_decoder

DECODER_HEADS = 8


def _count(sd: dict, pattern: str) -> int:
    return len({m.group(1) for k in sd if (m := re.match(pattern, k))})


def build_mask_decoder(sd: dict[str, torch.Tensor]) -> MaskDecoder:
    """segment_anything's ``MaskDecoder`` with the ``mask_decoder.*`` tensors of ``sd``."""
    if "mask_decoder.hf_token.weight" in sd:  # SAM-HQ: its decoder also reads early ViT features, not cached
        raise CheckpointError("the checkpoint holds SAM-HQ's mask decoder, which also reads early image-encoder "
                              "features that the cache does not store; use a SAM checkpoint's decoder (--checkpoint)")
    dim = sd["mask_decoder.iou_token.weight"].shape[1]
    decoder = MaskDecoder(
        num_multimask_outputs=sd["mask_decoder.mask_tokens.weight"].shape[0] - 1,
        transformer=TwoWayTransformer(
            depth=_count(sd, r"mask_decoder\.transformer\.layers\.(\d+)\."), embedding_dim=dim,
            mlp_dim=sd["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0], num_heads=DECODER_HEADS),
        transformer_dim=dim, iou_head_depth=_count(sd, r"mask_decoder\.iou_prediction_head\.layers\.(\d+)\."),
        iou_head_hidden_dim=sd["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0],
    )
    decoder.load_state_dict({k[len("mask_decoder."):]: v.clone() for k, v in sd.items() if k.startswith("mask_decoder.")})
    return decoder


def build_prompt_encoder(sd: dict[str, torch.Tensor], grid: int, img_size: int) -> PromptEncoder:
    """segment_anything's ``PromptEncoder`` with the ``prompt_encoder.*`` tensors of ``sd``, for a
    ``grid`` x ``grid`` image embedding of an ``img_size`` input square."""
    dim = sd["prompt_encoder.no_mask_embed.weight"].shape[1]
    encoder = PromptEncoder(embed_dim=dim, image_embedding_size=(grid, grid), input_image_size=(img_size, img_size),
                            mask_in_chans=sd["prompt_encoder.mask_downscaling.3.weight"].shape[0])
    encoder.load_state_dict({k[len("prompt_encoder."):]: v.clone() for k, v in sd.items()
                             if k.startswith("prompt_encoder.")})
    return encoder


def load_prompt_modules(checkpoint: Path, grid: int, img_size: int,
                        device: torch.device = torch.device("cpu")) -> tuple[PromptEncoder, MaskDecoder]:
    """The checkpoint's prompt encoder and mask decoder, frozen, in eval mode on ``device``."""
    sd = load_prompt_and_mask_decoder(Path(checkpoint))
    modules = build_prompt_encoder(sd, grid, img_size), build_mask_decoder(sd)
    for module in modules:
        module.to(device).eval().requires_grad_(False)
    return modules


class SamPromptDecoder(PromptDecoder):
    """SAM's prompt encoder and mask decoder, called exactly as ``SamPredictor.predict`` calls them."""

    def __init__(self, checkpoint: Path, grid: int, img_size: int, device: torch.device):
        self.prompt_encoder, self.mask_decoder = load_prompt_modules(checkpoint, grid, img_size, device)
        self.embed_dim = self.prompt_encoder.embed_dim
        self._pe = self.prompt_encoder.get_dense_pe()

    def __call__(self, embedding, maps, points, boxes, multimask):
        sparse, dense = self.prompt_encoder(points=points, boxes=boxes, masks=None)
        return self.mask_decoder(image_embeddings=embedding, image_pe=self._pe, sparse_prompt_embeddings=sparse,
                                 dense_prompt_embeddings=dense, multimask_output=multimask)
