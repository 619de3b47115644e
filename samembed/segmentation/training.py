"""Training one segmentation model: a decoder on the cached maps, or the UNet on raw images.

The loop of the classification heads (AdamW, warm-up then cosine, bf16 autocast on CUDA), with
binary cross-entropy plus Dice against the soft targets of the mask grid, over the cells that
cover the image (padding excluded). The weights of the epoch with the best validation Dice are
kept: the reported metric then comes from the test split (road), or is labelled as selected on
the split it is reported on."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..devices import autocast
from ..encoders.pixels import valid_mask
from ..experiments.base import RunData
from ..experiments.kinds import TrainSettings
from ..experiments.optim import schedule_for


@dataclass
class MaskData:
    """Targets of every image: ``targets`` (N, M, M) uint8 road share x 255, ``valid_hw`` (N, 2)
    the image's size on the ``img_size`` input square."""

    targets: np.ndarray
    valid_hw: np.ndarray
    img_size: int

    def batch(self, idx: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, M, M) float targets in [0, 1] and (B, 1, M, M) valid-cell masks."""
        size = self.targets.shape[-1]
        target = torch.as_tensor(self.targets[idx], device=device).float().unsqueeze(1) / 255
        valid = valid_mask(torch.as_tensor(self.valid_hw[idx], device=device).long(), size, self.img_size // size)
        return target, valid


@dataclass
class SegTrainResult:
    model: nn.Module  # with the best epoch's weights, in eval mode
    curves: dict[str, list[float]]  # epoch, train_loss, train_dice, val_loss, val_dice
    best_epoch: int
    seconds_per_epoch: float
    training: dict = field(default_factory=dict)  # batch_size, epochs, steps actually trained


def bce_dice_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus (1 - soft Dice), both over valid cells; shapes (B, 1, M, M)."""
    bce = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * valid).sum() / valid.sum().clamp_min(1)
    prob = torch.sigmoid(logits) * valid
    dice = (2 * (prob * target).sum() + 1) / (prob.sum() + (target * valid).sum() + 1)
    return bce + (1 - dice)


def _hard_dice_counts(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> tuple[float, float]:
    pred, truth = (logits > 0) & (valid > 0), (target >= 0.5) & (valid > 0)
    return float(2 * (pred & truth).sum()), float(pred.sum() + truth.sum())


def train_segmenter(model: nn.Module, source, masks: MaskData, run: RunData, settings: TrainSettings,
                    device: torch.device, pace=None) -> SegTrainResult:
    """Train ``model`` (inputs from ``source`` -> (B, 1, M, M) logits) on ``run.train`` for the
    epochs of its :func:`~samembed.experiments.optim.schedule_for`; keep the weights of the
    recorded epoch (every epoch, or ``settings.epochs`` evenly spaced ones when the step floor
    adds epochs) with the best Dice on ``run.val``. ``pace(done, total, seconds)`` is told the
    steps done, the run's steps and the seconds so far after each step."""
    torch.manual_seed(run.seed)
    rng = np.random.default_rng([run.seed, 2])
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    plan = schedule_for(len(run.train), settings.batch_size, settings)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: plan.lr(1.0, t))
    curves = {k: [] for k in ("epoch", "train_loss", "train_dice", "val_loss", "val_dice")}
    best, best_state = (-1.0, 0), None
    loss_sum = inter = total = seen = 0.0
    t0, done = time.perf_counter(), 0
    for epoch in range(1, plan.epochs + 1):
        model.train()
        for idx, xb in source.batches(run.train, plan.batch, rng):
            target, valid = masks.batch(idx, device)
            with autocast(device):
                logits = model(torch.as_tensor(xb, device=device) if xb.dtype == np.uint8
                               else torch.as_tensor(xb, device=device).float())
            loss = bce_dice_loss(logits.float(), target, valid)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            seen += len(idx)
            i, t = _hard_dice_counts(logits.detach().float(), target, valid)
            inter, total = inter + i, total + t
            done += 1
            if pace is not None:
                pace(done, plan.total, time.perf_counter() - t0)
        if not plan.records_epoch(epoch):
            continue
        val_loss, val_dice = evaluate(model, source, masks, run.val, plan.batch, device)
        curves["epoch"].append(epoch)
        curves["train_loss"].append(loss_sum / seen)
        curves["train_dice"].append(inter / total if total else 1.0)
        curves["val_loss"].append(val_loss)
        curves["val_dice"].append(val_dice)
        loss_sum = inter = total = seen = 0.0
        if val_dice > best[0]:
            best, best_state = (val_dice, epoch), copy.deepcopy(model.state_dict())
    seconds_per_epoch = (time.perf_counter() - t0) / plan.epochs
    model.load_state_dict(best_state)
    return SegTrainResult(model.eval(), curves, best[1], seconds_per_epoch, plan.summary())


@torch.no_grad()
def evaluate(model: nn.Module, source, masks: MaskData, indices: np.ndarray, batch_size: int,
             device: torch.device) -> tuple[float, float]:
    """Mean loss and Dice (pixels of the mask grid pooled, at probability 0.5) on ``indices``."""
    model.eval()
    loss_sum = inter = total = 0.0
    for idx, xb in source.batches(indices, batch_size, None):
        target, valid = masks.batch(idx, device)
        logits = predict_logits(model, xb, device)
        loss_sum += bce_dice_loss(logits, target, valid).item() * len(idx)
        i, t = _hard_dice_counts(logits, target, valid)
        inter, total = inter + i, total + t
    return loss_sum / len(indices), (inter / total if total else 1.0)


@torch.no_grad()
def predict_logits(model: nn.Module, xb: np.ndarray, device: torch.device) -> torch.Tensor:
    x = torch.as_tensor(xb, device=device)
    with autocast(device):
        return model(x if x.dtype == torch.uint8 else x.float()).float()
