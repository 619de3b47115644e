"""The training loops: R pooled heads stacked in one vectorised pass, and one grid head.

Both use AdamW with linear warm-up and cosine decay, cross-entropy, a fixed number of epochs, and
keep per-epoch training and validation loss and accuracy. Nothing is selected on the validation
data: the reported numbers come from the last epoch's model."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..devices import autocast
from ..experiments.base import RunData
from ..experiments.features import GridSource
from ..experiments.kinds import TrainSettings
from ..experiments.optim import StackedAdamW, cosine_with_warmup


@dataclass
class TrainResult:
    predictions: np.ndarray  # (len(run.evaluate),) predicted classes
    curves: dict[str, list[float]] = field(default_factory=dict)  # epoch, train_loss, train_acc, val_loss, val_acc


def batch_size_for(n_train: int, batch_size: int) -> int:
    """At most ``batch_size``, but small enough for at least 8 steps per epoch (16 at the least),
    so a small training set still gets a useful number of optimisation steps."""
    return max(1, min(batch_size, max(16, n_train // 8)))


def _empty_curves() -> dict[str, list[float]]:
    return {k: [] for k in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc")}


# ----------------------------------------------------------------------------- pooled, stacked


def train_stacked(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, runs: list[RunData], settings: TrainSettings,
) -> list[TrainResult]:
    """Train R = len(runs) stacked heads (``model`` maps (R, B, D) to (R, B, C)) on ``x`` (N, D)
    float32 and ``y`` (N,) on one device. Run r sees only its own training rows, in its own
    seeded order, for ``epochs`` passes of ceil(n_train / batch) steps (batch: :func:`batch_size_for`)."""
    device, R = x.device, len(runs)
    sizes = [batch_size_for(len(run.train), settings.batch_size) for run in runs]
    B = max(sizes)  # the padded width of a step; run r fills sizes[r] of it
    for r, run in enumerate(runs):
        model.standardise_with(r, x[torch.as_tensor(run.train, device=device)])
    opt = StackedAdamW(model.parameters(), weight_decay=settings.weight_decay)
    steps = [math.ceil(len(run.train) / b) for run, b in zip(runs, sizes)]
    total = [s * settings.epochs for s in steps]
    warmup = [max(1, round(s * settings.warmup_epochs)) for s in steps]
    rngs = [np.random.default_rng([run.seed, 1]) for run in runs]
    orders: list[np.ndarray] = [np.empty(0, np.int64)] * R
    curves = [_empty_curves() for _ in runs]
    sums = torch.zeros(R, 3, device=device)  # loss sum, correct, count within the current epoch
    model.train()
    for t in range(max(total)):
        idx = np.zeros((R, B), np.int64)
        mask = np.zeros((R, B), np.float32)
        for r, run in enumerate(runs):
            if t >= total[r]:
                continue
            s = t % steps[r]
            if s == 0:
                orders[r] = run.train[rngs[r].permutation(len(run.train))]
            chunk = orders[r][s * sizes[r]:(s + 1) * sizes[r]]
            idx[r, :len(chunk)], mask[r, :len(chunk)] = chunk, 1
        idx_t, mask_t = torch.as_tensor(idx, device=device), torch.as_tensor(mask, device=device)
        logits = model(x[idx_t])  # (R, B, C)
        target = y[idx_t]
        losses = F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none").view(R, -1) * mask_t
        (losses.sum(1) / mask_t.sum(1).clamp_min(1)).sum().backward()
        active = torch.as_tensor([t < n for n in total], device=device)
        lr = torch.as_tensor([settings.lr * cosine_with_warmup(min(t, n - 1), n, w) for n, w in zip(total, warmup)],
                             device=device, dtype=torch.float32)
        opt.step(lr, active)
        opt.zero_grad()
        with torch.no_grad():
            correct = ((logits.argmax(-1) == target).float() * mask_t).sum(1)
            sums += torch.stack([losses.sum(1), correct, mask_t.sum(1)], 1)
        for r in [r for r in range(R) if t < total[r] and t % steps[r] == steps[r] - 1]:  # epoch ends
            loss, acc = _evaluate_stacked(model, r, x, y, runs[r].val)
            c = curves[r]
            c["epoch"].append(len(c["epoch"]) + 1)
            c["train_loss"].append((sums[r, 0] / sums[r, 2]).item())
            c["train_acc"].append((sums[r, 1] / sums[r, 2]).item())
            c["val_loss"].append(loss)
            c["val_acc"].append(acc)
            sums[r] = 0
    model.eval()
    return [TrainResult(_predict_stacked(model, r, x, run.evaluate), curves[r]) for r, run in enumerate(runs)]


def _run_view(model: nn.Module, r: int) -> dict[str, torch.Tensor]:
    """Run r's parameters and buffers, keeping the stacked dimension (of size 1)."""
    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    return {k: v[r:r + 1] for k, v in state.items()}


@torch.no_grad()
def _logits_stacked(model: nn.Module, r: int, x: torch.Tensor, indices: np.ndarray, block: int = 8192) -> torch.Tensor:
    view = _run_view(model, r)
    parts = [functional_call(model, view, (x[torch.as_tensor(indices[i:i + block], device=x.device)][None],))[0]
             for i in range(0, len(indices), block)]
    return torch.cat(parts) if parts else torch.empty(0, device=x.device)


def _evaluate_stacked(model, r, x, y, indices) -> tuple[float, float]:
    was_training = model.training
    model.eval()
    logits = _logits_stacked(model, r, x, indices)
    target = y[torch.as_tensor(indices, device=x.device)]
    model.train(was_training)
    return F.cross_entropy(logits, target).item(), (logits.argmax(1) == target).float().mean().item()


def _predict_stacked(model, r, x, indices) -> np.ndarray:
    return _logits_stacked(model, r, x, indices).argmax(1).cpu().numpy()


# ----------------------------------------------------------------------------- grid, one run


def train_grid(
    model: nn.Module, source: GridSource, y: np.ndarray, run: RunData, settings: TrainSettings, device: torch.device,
) -> TrainResult:
    """Train one grid head (``model`` maps (B, C, G, G) to (B, classes)) on the cached grid maps."""
    torch.manual_seed(run.seed)
    rng = np.random.default_rng([run.seed, 1])
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    batch_size = batch_size_for(len(run.train), settings.batch_size)
    steps = math.ceil(len(run.train) / batch_size)
    warmup = max(1, round(steps * settings.warmup_epochs))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: cosine_with_warmup(t, steps * settings.epochs, warmup))
    labels = torch.as_tensor(y, device=device)
    curves = _empty_curves()
    for epoch in range(settings.epochs):
        model.train()
        loss_sum = correct = count = 0.0
        for idx, xb in source.batches(run.train, batch_size, rng):
            xb, yb = torch.as_tensor(xb, device=device).float(), labels[torch.as_tensor(idx, device=device)]
            with autocast(device):
                logits = model(xb)
            loss = F.cross_entropy(logits.float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == yb).sum().item()
            count += len(idx)
        val_logits = _logits_grid(model, source, run.val, settings.batch_size, device)
        val_y = labels[torch.as_tensor(run.val, device=device)]
        curves["epoch"].append(epoch + 1)
        curves["train_loss"].append(loss_sum / count)
        curves["train_acc"].append(correct / count)
        curves["val_loss"].append(F.cross_entropy(val_logits, val_y).item())
        curves["val_acc"].append((val_logits.argmax(1) == val_y).float().mean().item())
    preds = _logits_grid(model, source, run.evaluate, settings.batch_size, device).argmax(1).cpu().numpy()
    return TrainResult(preds, curves)


@torch.no_grad()
def _logits_grid(model, source: GridSource, indices: np.ndarray, batch_size: int, device) -> torch.Tensor:
    """Logits in the order of ``indices``."""
    model.eval()
    out = torch.empty(len(indices), model_output_size(model), device=device)
    position = {int(i): k for k, i in enumerate(indices)}
    for idx, xb in source.batches(indices, batch_size, rng=None):
        with autocast(device):
            logits = model(torch.as_tensor(xb, device=device).float())
        out[torch.as_tensor([position[int(i)] for i in idx], device=device)] = logits.float()
    return out


def model_output_size(model: nn.Module) -> int:
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    return last.out_features
