"""SAM's prompt encoder and mask decoder on the image embeddings of a cache group: a prompt answered
in milliseconds, with no image encoder.

For one image, every prompt goes through the checkpoint's ``PromptEncoder`` and ``MaskDecoder``
exactly as ``SamPredictor.predict`` sends it (coordinates mapped onto the input square, shifted to
pixel centres, a padding point when there is no box), batched: prompts with the same number of
points and the same use of a box share decoder calls of up to ``PROMPTS_PER_CALL``. Masks return to the original image as
``Sam.postprocess_masks`` does (bilinear to the square, the image's part, bilinear to the original
size) and are thresholded at logit 0; with several masks per prompt the one with the highest
predicted IoU is kept, as SAM's users do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..cache import CacheGroup
from ..encoders.geometry import Geometry
from ..encoders.sam_prompt import load_prompt_modules
from ..errors import CheckpointError, UsageError
from .prompts import Prompt


@dataclass
class PromptMask:
    """The answer to one prompt: ``mask`` (H, W) bool at the original resolution, its predicted
    IoU ``score``, which of the decoder's masks it is (``choice``), every mask's predicted IoU
    (``scores``) and the low-resolution logits (k, 4G, 4G) the masks come from."""

    prompt: Prompt
    mask: np.ndarray
    score: float
    choice: int
    scores: list[float]
    low_res_logits: np.ndarray


#: Prompts per decoder call. The decoder copies the image embedding once per prompt, so larger
#: batches only add memory: on the CPU the time per prompt is flat from 1 to 8 and grows beyond
#: (docs/benchmarks.md, prompting).
PROMPTS_PER_CALL = 8


class CachePredictor:
    """Answers prompts on the images of ``group`` (a cache group that holds SAM's whole image
    embedding) with the prompt encoder and mask decoder of the checkpoint it was extracted with
    (``checkpoint`` overrides where it is found)."""

    def __init__(self, group: CacheGroup, checkpoint: str | Path | None = None, device: str | torch.device = "cpu"):
        signature = group.signature
        encoder = signature.get("encoder", {})
        if encoder.get("encoder") != "sam":
            raise UsageError(f"{group.name} was extracted with {encoder.get('encoder')}; prompts need SAM's image "
                             "embedding (extract with --encoder sam)")
        geometry = Geometry(int(encoder["img_size"]), int(encoder.get("arch", {}).get("patch_size", 16)))
        if int(signature["grid"]) != geometry.map_size:
            raise UsageError(f"{group.store.name}/{group.name} holds the feature map pooled to {signature['grid']} x "
                             f"{signature['grid']}; prompts need the whole map: extract again with --grid "
                             f"{geometry.map_size} (a new cache group)")
        path = group.checkpoint(checkpoint)
        if path is None or not path.is_file():
            raise CheckpointError(f"prompts use the prompt encoder and mask decoder of the checkpoint "
                                  f"{group.name} was extracted with{f' ({path})' if path else ''}, and it is not "
                                  "there; pass it with --checkpoint")
        self.group, self.geometry, self.device = group, geometry, torch.device(device)
        self.prompt_encoder, self.mask_decoder = load_prompt_modules(path, geometry.map_size, geometry.img_size,
                                                                     self.device)
        channels = group.group["grid"].shape[1]
        if self.prompt_encoder.embed_dim != channels:
            raise CheckpointError(f"{path}'s prompt encoder takes {self.prompt_encoder.embed_dim} channels but the "
                                  f"cache holds {channels}; pass the checkpoint the cache was extracted with")
        self.orig_hw = group.read("orig_hw")
        self.image_ids = [str(i) for i in group.read("image_ids")]
        self._positions = {image_id: i for i, image_id in enumerate(self.image_ids)}
        self._ok = group.read("ok")
        self._pe = self.prompt_encoder.get_dense_pe()

    def index_of(self, image_id: str) -> int:
        """The cache index of ``image_id``; one line naming an example id if it is not there."""
        if image_id not in self._positions:
            raise UsageError(f"unknown image id '{image_id}' in {self.group.name}; ids are paths relative to the "
                             f"dataset, like '{self.image_ids[0]}'")
        i = self._positions[image_id]
        if not self._ok[i]:
            raise UsageError(f"{image_id} was skipped as unreadable at extraction; it has no embedding")
        return i

    def embedding(self, i: int) -> torch.Tensor:
        """(1, C, G, G) float32 image embedding of image ``i`` (stored as float16)."""
        return torch.as_tensor(self.group.group["grid"][i:i + 1], device=self.device).float()

    @torch.inference_mode()
    def logits(self, i: int, prompts: list[Prompt], multimask: bool = True,
               embedding: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(P, k, 4G, 4G) low-resolution mask logits and (P, k) predicted IoUs of ``prompts`` (in
        image ``i``'s pixels) on image ``i``; k = 3 with ``multimask``, else 1."""
        embedding = self.embedding(i) if embedding is None else embedding
        hw = self.orig_hw[i]
        k = 3 if multimask else 1
        size = 4 * self.geometry.map_size
        low_res = torch.empty(len(prompts), k, size, size, device=self.device)
        iou = torch.empty(len(prompts), k, device=self.device)
        groups: dict[tuple[int, bool], list[int]] = {}
        for p, prompt in enumerate(prompts):
            groups.setdefault((len(prompt.points), prompt.box is not None), []).append(p)
        chunks = [(key, members[s:s + PROMPTS_PER_CALL]) for key, members in groups.items()
                  for s in range(0, len(members), PROMPTS_PER_CALL)]
        for (n_points, has_box), members in chunks:
            points = boxes = None
            if n_points:
                coords = self.geometry.points_to_input(np.array([prompts[p].points for p in members], float), hw)
                labels = np.array([prompts[p].labels for p in members], dtype=np.int64)
                points = (torch.as_tensor(coords, dtype=torch.float, device=self.device),
                          torch.as_tensor(labels, dtype=torch.int, device=self.device))
            if has_box:
                box = self.geometry.boxes_to_input(np.array([prompts[p].box for p in members], float), hw)
                boxes = torch.as_tensor(box, dtype=torch.float, device=self.device)
            sparse, dense = self.prompt_encoder(points=points, boxes=boxes, masks=None)
            masks, scores = self.mask_decoder(image_embeddings=embedding, image_pe=self._pe,
                                              sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                              multimask_output=multimask)
            low_res[members], iou[members] = masks, scores
        return low_res, iou

    def predict(self, i: int, prompts: list[Prompt], multimask: bool = True) -> list[PromptMask]:
        """The mask of each prompt on image ``i`` at the original resolution."""
        low_res, iou = self.logits(i, prompts, multimask)
        hw = self.orig_hw[i]
        out = []
        for p, prompt in enumerate(prompts):
            choice = int(iou[p].argmax())
            logits = self.geometry.input_to_original(low_res[p, choice].cpu(), hw)
            out.append(PromptMask(prompt, (logits > 0).numpy(), float(iou[p, choice]), choice,
                                  [float(v) for v in iou[p]], low_res[p].cpu().numpy()))
        return out
