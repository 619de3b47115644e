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
from ..encoders import create_encoder
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
        name = encoder.get("encoder")
        if group.attrs.get("answers_prompts") is False:
            raise UsageError(f"{group.name} was extracted with {name}, whose prompts samembed does not answer (it has "
                             "no mask decoder samembed runs); extract with an encoder that has one (docs/prompts.md)")
        geometry = Geometry.from_signature(encoder)
        if int(signature["grid"]) != geometry.map_size:
            raise UsageError(f"{group.store_name}/{group.name} holds the feature map pooled to {signature['grid']} x "
                             f"{signature['grid']}; prompts need the whole map: extract again with --grid "
                             f"{geometry.map_size} (a new cache group)")
        path = group.checkpoint(checkpoint)  # None: the encoder records none (its decoder needs no weights file)
        if path is not None and not path.is_file():
            raise CheckpointError(f"prompts use the prompt encoder and mask decoder of the checkpoint "
                                  f"{group.name} was extracted with{f' ({path})' if path else ''}, and it is not "
                                  "there; pass it with --checkpoint")
        self.group, self.geometry, self.device = group, geometry, torch.device(device)
        spec = create_encoder(name, checkpoint=path, img_size=geometry.img_size)
        needed = spec.prompt_maps()
        if needed is None:
            raise UsageError(f"{group.name} was extracted with {name}, whose prompts samembed does not answer; "
                             "extract with an encoder that has a mask decoder samembed runs (docs/prompts.md)")
        self.map_names = tuple(needed)  # the maps besides the whole map that its mask decoder reads
        missing = [m for m in self.map_names if m not in signature.get("prompt_maps", {})]
        if missing:
            raise UsageError(f"{group.name} was made without --prompt-features, and {name}'s mask decoder also reads "
                             f"{', '.join(missing)}; extract again with --prompt-features --overwrite")
        self.decoder = spec.prompt_decoder(self.device)
        channels = group.arrays["grid"].shape[1]
        if self.decoder.embed_dim != channels:
            raise CheckpointError(f"{path}'s prompt encoder takes {self.decoder.embed_dim} channels but the "
                                  f"cache holds {channels}; pass the checkpoint the cache was extracted with")
        self.orig_hw = group.read("orig_hw")
        self.image_ids = [str(i) for i in group.read("image_ids")]
        self._positions = {image_id: i for i, image_id in enumerate(self.image_ids)}
        self._ok, self._blank = group.read("ok"), group.blank()
        self._usable = self._ok & ~self._blank

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
        """The other maps of image ``i`` the mask decoder reads, float32 (stored as float16), in the
        order of the encoder's ``prompt_maps()`` (SAM 2: [(1, 32, 4G, 4G), (1, 64, 2G, 2G)]; SAM: [])."""
        return [torch.as_tensor(self.group.array(name)[i:i + 1], device=self.device).float()
                for name in self.map_names]

    @torch.inference_mode()
    def logits(self, i: int, prompts: list[Prompt], multimask: bool = True, embedding: torch.Tensor | None = None,
               high_res: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(P, k, 4G, 4G) low-resolution mask logits and (P, k) predicted IoUs of ``prompts`` (in
        image ``i``'s pixels) on image ``i``; k = 3 with ``multimask``, else 1. ``embedding`` (1, C,
        G, G) and ``high_res`` (the other maps) replace the stored ones (float32 features, for tests)."""
        embedding = self.embedding(i) if embedding is None else embedding
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
            masks, scores = self.decoder(embedding, high_res, points, boxes, multimask)
            low_res[members], iou[members] = masks, scores
        return low_res, iou

    def predict(self, i: int, prompts: list[Prompt], multimask: bool = True) -> list[PromptMask]:
        """The mask of each prompt on image ``i`` at the original resolution."""
        return list(self.answers(i, prompts, multimask))

    def answers(self, i: int, prompts: list[Prompt], multimask: bool = True) -> Iterator[PromptMask]:
        """The mask of each prompt on image ``i`` at the original resolution, in order, yielded as
        each batch of :data:`PROMPTS_PER_BATCH` prompts is answered: the image's features are read
        once, and only one batch's logits are held."""
        embedding = self.embedding(i)
        high_res = self.high_res(i)
        hw = self.orig_hw[i]
        for start in range(0, len(prompts), PROMPTS_PER_BATCH):
            batch = prompts[start:start + PROMPTS_PER_BATCH]
            low_res, iou = self.logits(i, batch, multimask, embedding=embedding, high_res=high_res)
            for p, prompt in enumerate(batch):
                choice = int(iou[p].argmax())
                logits = self.geometry.input_to_original(low_res[p, choice].cpu(), hw)
                yield PromptMask(prompt, (logits > 0).numpy(), float(iou[p, choice]), choice,
                                 [float(v) for v in iou[p]], low_res[p].cpu().numpy())
