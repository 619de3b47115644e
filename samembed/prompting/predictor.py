"""The prompt encoder and mask decoder of the cache's own model on the image embeddings of a cache
group: a prompt answered in milliseconds, with no image encoder.

SAM caches: every prompt goes through the checkpoint's ``PromptEncoder`` and ``MaskDecoder``
exactly as ``SamPredictor.predict`` sends it (coordinates mapped onto the input square, shifted to
pixel centres, a padding point when there is no box). SAM 2 caches made with
``--prompt-features``: through SAM 2's own ``sam_prompt_encoder`` and ``sam_mask_decoder`` exactly
as ``SAM2ImagePredictor.predict`` sends them (a box as two corner points with labels 2 and 3 before
the clicks, a padding point always, the two stored higher-resolution maps beside the embedding),
with coordinates stretched onto the square as SAM 2's transforms do. Prompts with the same number of
points and the same use of a box share decoder calls of up to ``PROMPTS_PER_CALL``; many prompts
on one image are answered ``PROMPTS_PER_BATCH`` at a time, so memory does not grow with them
(:meth:`CachePredictor.answers` yields each mask as its batch is done). Masks return to
the original image as the model's predictor does (the geometry's ``input_to_original``: SAM's
bilinear to the square, the image's part, bilinear to the original size; SAM 2's bilinear straight
to the original size) and are thresholded at logit 0; with several masks per prompt the one with
the highest predicted IoU is kept, as SAM's users do."""

from __future__ import annotations

from collections.abc import Iterator
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


#: Prompts per decoder call, by device type (others: ``DEFAULT_PROMPTS_PER_CALL``). The decoder
#: copies the image embedding once per prompt, so on the CPU a larger call only adds memory
#: traffic: 32 prompts on one vit_b image at 1024 on 2 cores ran at 23-25 prompts/s in calls of 1
#: or 2, 22 in calls of 4, 16 of 8 and 11-13 of 16 (docs/benchmarks.md, prompting). On a GPU a
#: larger call keeps the device busy (8: not yet measured there).
PROMPTS_PER_CALL = {"cpu": 2}
DEFAULT_PROMPTS_PER_CALL = 8
#: Prompts whose low-resolution logits are held at once (64 x 3 x 256 x 256 float32: 50 MB at
#: 1024), however many prompts an image has: 3,000 prompts at once held 2.4 GB of logits.
PROMPTS_PER_BATCH = 64


class CachePredictor:
    """Answers prompts on the images of ``group`` (a cache group that holds SAM's whole image
    embedding, or SAM 2's with its two higher-resolution maps) with the prompt encoder and mask
    decoder of the checkpoint it was extracted with (``checkpoint`` overrides where it is found)."""

    def __init__(self, group: CacheGroup, checkpoint: str | Path | None = None, device: str | torch.device = "cpu"):
        signature = group.signature
        encoder = signature.get("encoder", {})
        self.model = encoder.get("encoder")
        if self.model not in ("sam", "sam2"):
            raise UsageError(f"{group.name} was extracted with {self.model}; prompts need SAM's or SAM 2's image "
                             "embedding (extract with --encoder sam or sam2)")
        self.map_names = tuple(signature.get("prompt_maps", {}))  # SAM 2's higher-resolution maps
        if self.model == "sam2" and not self.map_names:
            raise UsageError(f"{group.name} is a SAM 2 cache made without --prompt-features, and SAM 2's mask decoder "
                             "also reads two higher-resolution maps; extract again with --prompt-features --overwrite")
        geometry = Geometry.from_signature(encoder)
        if int(signature["grid"]) != geometry.map_size:
            raise UsageError(f"{group.store_name}/{group.name} holds the feature map pooled to {signature['grid']} x "
                             f"{signature['grid']}; prompts need the whole map: extract again with --grid "
                             f"{geometry.map_size} (a new cache group)")
        path = group.checkpoint(checkpoint)
        if path is None or not path.is_file():
            raise CheckpointError(f"prompts use the prompt encoder and mask decoder of the checkpoint "
                                  f"{group.name} was extracted with{f' ({path})' if path else ''}, and it is not "
                                  "there; pass it with --checkpoint")
        self.group, self.geometry, self.device = group, geometry, torch.device(device)
        if self.model == "sam2":
            from ..encoders import create_encoder

            spec = create_encoder("sam2", checkpoint=path, img_size=geometry.img_size)
            self.prompt_encoder, self.mask_decoder = spec.build_prompt_modules(self.device)
        else:
            self.prompt_encoder, self.mask_decoder = load_prompt_modules(path, geometry.map_size, geometry.img_size,
                                                                         self.device)
        channels = group.group["grid"].shape[1]
        if self.prompt_encoder.embed_dim != channels:
            raise CheckpointError(f"{path}'s prompt encoder takes {self.prompt_encoder.embed_dim} channels but the "
                                  f"cache holds {channels}; pass the checkpoint the cache was extracted with")
        self.orig_hw = group.read("orig_hw")
        self.image_ids = [str(i) for i in group.read("image_ids")]
        self._positions = {image_id: i for i, image_id in enumerate(self.image_ids)}
        self._ok, self._blank = group.read("ok"), group.blank()
        self._usable = self._ok & ~self._blank
        self._pe = self.prompt_encoder.get_dense_pe()

    def index_of(self, image_id: str) -> int:
        """The cache index of ``image_id``; one line naming an example id if it is not there."""
        if image_id not in self._positions:
            raise UsageError(f"unknown image id '{image_id}' in {self.group.name}; ids are paths relative to the "
                             f"dataset, like '{self.image_ids[0]}'")
        return self.check_usable(self._positions[image_id])

    def check_usable(self, i: int) -> int:
        """``i``, or one line if image ``i`` has no embedding to prompt: skipped as unreadable, or
        blank (no data: :meth:`~samembed.cache.reader.CacheGroup.usable`)."""
        if not self._usable[i]:
            why = "holds no data (blank)" if self._blank[i] else "was skipped as unreadable at extraction"
            raise UsageError(f"{self.image_ids[i]} {why}; it has no embedding to prompt")
        return i

    def embedding(self, i: int) -> torch.Tensor:
        """(1, C, G, G) float32 image embedding of image ``i`` (stored as float16)."""
        return torch.as_tensor(self.group.array("grid")[i:i + 1], device=self.device).float()

    def high_res(self, i: int) -> list[torch.Tensor]:
        """SAM 2: the higher-resolution maps of image ``i`` its mask decoder reads, float32
        [(1, 32, 4G, 4G), (1, 64, 2G, 2G)] (stored as float16); SAM: []."""
        return [torch.as_tensor(self.group.array(name)[i:i + 1], device=self.device).float()
                for name in self.map_names]

    @torch.inference_mode()
    def logits(self, i: int, prompts: list[Prompt], multimask: bool = True, embedding: torch.Tensor | None = None,
               high_res: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(P, k, 4G, 4G) low-resolution mask logits and (P, k) predicted IoUs of ``prompts`` (in
        image ``i``'s pixels) on image ``i``; k = 3 with ``multimask``, else 1. ``embedding`` (1, C,
        G, G) and, for SAM 2, ``high_res`` replace the stored ones (float32 features, for tests)."""
        embedding = self.embedding(i) if embedding is None else embedding
        if self.model == "sam2":
            high_res = self.high_res(i) if high_res is None else high_res
        hw = self.orig_hw[i]
        k = 3 if multimask else 1
        size = 4 * self.geometry.map_size
        low_res = torch.empty(len(prompts), k, size, size, device=self.device)
        iou = torch.empty(len(prompts), k, device=self.device)
        groups: dict[tuple[int, bool], list[int]] = {}
        for p, prompt in enumerate(prompts):
            groups.setdefault((len(prompt.points), prompt.box is not None), []).append(p)
        per_call = PROMPTS_PER_CALL.get(self.device.type, DEFAULT_PROMPTS_PER_CALL)
        chunks = [(key, members[s:s + per_call]) for key, members in groups.items()
                  for s in range(0, len(members), per_call)]
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
            if self.model == "sam2":
                masks, scores = self._sam2(embedding, high_res, points, boxes, multimask)
            else:
                sparse, dense = self.prompt_encoder(points=points, boxes=boxes, masks=None)
                masks, scores = self.mask_decoder(image_embeddings=embedding, image_pe=self._pe,
                                                  sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                                  multimask_output=multimask)
            low_res[members], iou[members] = masks, scores
        return low_res, iou

    def _sam2(self, embedding: torch.Tensor, high_res: list[torch.Tensor], points, boxes, multimask: bool):
        """One call of SAM 2's prompt encoder and mask decoder, as ``SAM2ImagePredictor._predict``:
        a box becomes two points labelled 2 and 3 placed before the clicks, the prompt encoder gets
        no box (so it pads every prompt with a padding point), and the decoder repeats the image's
        features for a batch of prompts. Returns (P, k, 4G, 4G) logits and (P, k) IoUs."""
        if boxes is not None:
            corners = boxes.reshape(-1, 2, 2)
            labels = torch.tensor([[2, 3]], dtype=torch.int, device=self.device).repeat(len(corners), 1)
            points = (corners, labels) if points is None else (torch.cat([corners, points[0]], dim=1),
                                                               torch.cat([labels, points[1]], dim=1))
        sparse, dense = self.prompt_encoder(points=points, boxes=None, masks=None)
        masks, scores, _, _ = self.mask_decoder(image_embeddings=embedding, image_pe=self._pe,
                                                sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                                multimask_output=multimask, repeat_image=points[0].shape[0] > 1,
                                                high_res_features=high_res)
        return masks, scores

    def predict(self, i: int, prompts: list[Prompt], multimask: bool = True) -> list[PromptMask]:
        """The mask of each prompt on image ``i`` at the original resolution."""
        return list(self.answers(i, prompts, multimask))

    def answers(self, i: int, prompts: list[Prompt], multimask: bool = True) -> Iterator[PromptMask]:
        """The mask of each prompt on image ``i`` at the original resolution, in order, yielded as
        each batch of :data:`PROMPTS_PER_BATCH` prompts is answered: the image's features are read
        once, and only one batch's logits are held."""
        embedding = self.embedding(i)
        high_res = self.high_res(i) if self.model == "sam2" else None
        hw = self.orig_hw[i]
        for start in range(0, len(prompts), PROMPTS_PER_BATCH):
            batch = prompts[start:start + PROMPTS_PER_BATCH]
            low_res, iou = self.logits(i, batch, multimask, embedding=embedding, high_res=high_res)
            for p, prompt in enumerate(batch):
                choice = int(iou[p].argmax())
                logits = self.geometry.input_to_original(low_res[p, choice].cpu(), hw)
                yield PromptMask(prompt, (logits > 0).numpy(), float(iou[p, choice]), choice,
                                 [float(v) for v in iou[p]], low_res[p].cpu().numpy())
