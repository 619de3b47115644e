"""The training loops: R pooled heads stacked in one vectorised pass, and one grid head.

Both use AdamW with linear warm-up and cosine decay, cross-entropy, a fixed number of epochs (or
more for a small training set, up to the settings' step floor), and keep training and validation
loss and accuracy per epoch (at most ``settings.epochs`` points, evenly spaced, each averaging the
training batches since the one before). Nothing is selected on the validation data: the reported
numbers come from the last epoch's model."""

from __future__ import annotations

import time
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
from ..experiments.optim import RunGroupsAdamW, schedule_for


@dataclass
class TrainResult:
    predictions: np.ndarray  # (len(run.evaluate),) predicted classes
    curves: dict[str, list[float]] = field(default_factory=dict)  # epoch, train_loss, train_acc, val_loss, val_acc
    training: dict = field(default_factory=dict)  # batch_size, epochs, steps actually trained


def batch_size_for(n_train: int, batch_size: int) -> int:
    """Release 0.1.0's rule, kept for runs without a step floor: at most ``batch_size``, but small
    enough for at least 8 steps per epoch (16 at the least)."""
    return max(1, min(batch_size, max(16, n_train // 8)))


def batch_for(n_train: int, settings: TrainSettings) -> int:
    """The batch of a run: with a step floor, ``settings.batch_size`` (the whole training set when
    it is smaller: the floor gives a small set its steps, and whole-set batches their exact
    gradients); without one, :func:`batch_size_for`."""
    if settings.min_steps:
        return max(1, min(settings.batch_size, n_train))
    return batch_size_for(n_train, settings.batch_size)


def _empty_curves() -> dict[str, list[float]]:
    return {k: [] for k in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc")}


# ----------------------------------------------------------------------------- pooled, stacked


def train_stacked(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, runs: list[RunData], settings: TrainSettings,
    lrs: list[float] | None = None, curves: bool = True,
) -> list[TrainResult]:
    """Train R = len(runs) stacked heads (``model`` maps (R, B, D) to (R, B, C); every parameter
    and buffer has the run in its first dimension) on ``x`` (N, D) float32 and ``y`` (N,) on one
    device. Run r sees only its own training rows, in its own seeded order, for the epochs of its
    :func:`~samembed.experiments.optim.schedule_for` (batches of :func:`batch_for`), with peak
    learning rate ``lrs[r]`` (default ``settings.lr``). ``curves=False`` skips the validation
    passes (the results then have no curves). ``model`` ends with its runs reordered (longest
    first); the results are in the order of ``runs``."""
    peaks = list(lrs) if lrs is not None else [settings.lr] * len(runs)
    return _train_stacked(model, x, y, runs, settings, [peaks], curves)[0]


def train_candidates(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, runs: list[RunData], settings: TrainSettings,
    grid: list[float], curves: bool = False,
) -> list[list[TrainResult]]:
    """Train every run of ``runs`` once for each peak learning rate of ``grid`` (G values):
    ``model`` holds G x S runs, candidate g of run s at g * S + s. The G candidates of a run read
    the same batches, gathered once (``model(x, shared=G)``). Results: ``[g][s]``."""
    return _train_stacked(model, x, y, runs, settings, [[lr] * len(runs) for lr in grid], curves)


def _train_stacked(model, x, y, runs, settings, peaks: list[list[float]], curves: bool) -> list[list[TrainResult]]:
    """G = len(peaks) candidates of S = len(runs) runs (``peaks[g][s]``: peak lr of candidate g
    of run s; model run g * S + s). The runs are put in order of decreasing length, so the runs
    still training at any step are the first k of each candidate, and a step computes only those
    (a view of the first k of every parameter). Runs of one candidate with the same schedule and
    learning rate share a parameter group of torch's fused AdamW."""
    device, S, G = x.device, len(runs), len(peaks)
    plans = [schedule_for(len(run.train), batch_for(len(run.train), settings), settings) for run in runs]
    order = sorted(range(S), key=lambda s: (-plans[s].total, plans[s].warmup, s))
    runs, plans = [runs[s] for s in order], [plans[s] for s in order]
    peaks = [[p[s] for s in order] for p in peaks]
    names = [name for name, _ in model.named_parameters()]
    params = [p for _, p in model.named_parameters()]
    buffers = dict(model.named_buffers())
    with torch.no_grad():
        moved = torch.as_tensor([g * S + s for g in range(G) for s in order], device=device)
        for tensor in [*params, *buffers.values()]:
            tensor.copy_(tensor[moved])
        for position, run in enumerate(runs):
            model.standardise_with([g * S + position for g in range(G)], x[torch.as_tensor(run.train, device=device)])
    groups = [(g, a, b) for g in range(G) for a, b in _ranges([(plan, peaks[g][i]) for i, plan in enumerate(plans)])]
    opt = RunGroupsAdamW(params, groups, settings.weight_decay, candidates=G)
    B = max(plan.batch for plan in plans)  # the padded width of a step; run s fills plans[s].batch of it
    rngs = [np.random.default_rng([run.seed, 1]) for run in runs]
    orders: list[np.ndarray] = [np.empty(0, np.int64)] * S
    kept = [[_empty_curves() if curves else {} for _ in runs] for _ in range(G)]
    sums = torch.zeros(G, S, 3, device=device)  # loss sum, correct, count since the last curve point
    idx, weight = np.zeros((S, B), np.int64), np.zeros((S, B), np.float32)
    active = S
    model.train()
    for t in range(plans[0].total):
        while plans[active - 1].total <= t:
            active -= 1
        k = active
        idx[:k], weight[:k] = 0, 0
        for r in range(k):
            plan = plans[r]
            step = t % plan.steps_per_epoch
            if step == 0:
                orders[r] = runs[r].train[rngs[r].permutation(len(runs[r].train))]
            chunk = orders[r][step * plan.batch:(step + 1) * plan.batch]
            idx[r, :len(chunk)], weight[r, :len(chunk)] = chunk, 1 / len(chunk)
        idx_t = torch.as_tensor(idx[:k]).to(device, non_blocking=True)
        w_t = torch.as_tensor(weight[:k]).to(device, non_blocking=True)
        leaves = [p.detach().view(G, S, *p.shape[1:])[:, :k].requires_grad_() for p in params]
        state = {n: leaf.reshape(G * k, *leaf.shape[2:]) for n, leaf in zip(names, leaves)}
        state.update({n: b.view(G, S, *b.shape[1:])[:, :k].reshape(G * k, *b.shape[1:]) for n, b in buffers.items()})
        logits = functional_call(model, state, (x[idx_t],), {"shared": G} if G > 1 else {})  # (G k, B, C)
        target = y[idx_t]
        ce = F.cross_entropy(logits.flatten(0, 1), target.expand(G, k, B).flatten(), reduction="none").view(G, k, B)
        (ce * w_t).sum().backward()
        opt.step([leaf.grad for leaf in leaves],
                 [plans[a].lr(peaks[g][a], t) if a < k else None for g, a, _ in groups])
        if curves:
            with torch.no_grad():
                seen = (w_t > 0).float()
                correct = (logits.view(G, k, B, -1).argmax(-1) == target).float() * seen
                sums[:, :k] += torch.stack([(ce * seen).sum(2), correct.sum(2), seen.sum(1).expand(G, k)], 2)
        for r in range(k if curves else 0):
            plan = plans[r]
            if (t + 1) % plan.steps_per_epoch or not plan.records_epoch((t + 1) // plan.steps_per_epoch):
                continue
            for g in range(G):
                loss_sum, correct_sum, count = sums[g, r].tolist()
                loss, acc = _evaluate_stacked(model, g * S + r, x, y, runs[r].val)
                c = kept[g][r]
                c["epoch"].append((t + 1) // plan.steps_per_epoch)
                c["train_loss"].append(loss_sum / count)
                c["train_acc"].append(correct_sum / count)
                c["val_loss"].append(loss)
                c["val_acc"].append(acc)
                sums[g, r] = 0
    model.eval()
    results = [[None] * S for _ in range(G)]
    for g in range(G):
        for position, s in enumerate(order):
            run = runs[position]
            results[g][s] = TrainResult(_predict_stacked(model, g * S + position, x, run.evaluate), kept[g][position],
                                        plans[position].summary())
    return results


def _ranges(keys: list) -> list[tuple[int, int]]:
    """(start, stop) of each run of equal consecutive ``keys``."""
    starts = [i for i in range(len(keys)) if i == 0 or keys[i] != keys[i - 1]]
    return list(zip(starts, starts[1:] + [len(keys)]))


def _run_view(model: nn.Module, r: int) -> dict[str, torch.Tensor]:
    """Run r's parameters and buffers, keeping the stacked dimension (of size 1): views, no copies."""
    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    return {k: v.detach()[r:r + 1] for k, v in state.items()}


@torch.no_grad()
def _logits_stacked(model: nn.Module, r: int, x: torch.Tensor, indices: np.ndarray, block: int = 8192) -> torch.Tensor:
    """(len(indices), C) logits of run r, computed in blocks of rows."""
    view = _run_view(model, r)
    rows = torch.as_tensor(indices, device=x.device)
    parts = [functional_call(model, view, (x[rows[i:i + block]][None],))[0] for i in range(0, len(rows), block)]
    return torch.cat(parts) if parts else torch.empty(0, device=x.device)


def _evaluate_stacked(model, r, x, y, indices) -> tuple[float, float]:
    logits = _logits_stacked(model, r, x, indices)
    target = y[torch.as_tensor(indices, device=x.device)]
    return F.cross_entropy(logits, target).item(), (logits.argmax(1) == target).float().mean().item()


def _predict_stacked(model, r, x, indices) -> np.ndarray:
    return _logits_stacked(model, r, x, indices).argmax(1).cpu().numpy()


# ----------------------------------------------------------------------------- grid, one run


def train_grid(
    model: nn.Module, source: GridSource, y: np.ndarray, run: RunData, settings: TrainSettings, device: torch.device,
    pace=None,
) -> TrainResult:
    """Train one grid head (``model`` maps (B, C, G, G) to (B, classes)) on the cached grid maps,
    for the epochs of its :func:`~samembed.experiments.optim.schedule_for`. ``pace(done, total,
    seconds)`` is told the steps done, the run's steps and the seconds so far after each step."""
    torch.manual_seed(run.seed)
    rng = np.random.default_rng([run.seed, 1])
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    plan = schedule_for(len(run.train), batch_for(len(run.train), settings), settings)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: plan.lr(1.0, t))
    labels = torch.as_tensor(y, device=device)
    curves = _empty_curves()
    loss_sum = correct = count = 0.0
    t0, done = time.perf_counter(), 0
    for epoch in range(1, plan.epochs + 1):
        model.train()
        for idx, xb in source.batches(run.train, plan.batch, rng):
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
            done += 1
            if pace is not None:
                pace(done, plan.total, time.perf_counter() - t0)
        if not plan.records_epoch(epoch):
            continue
        val_logits = _logits_grid(model, source, run.val, settings.batch_size, device)
        val_y = labels[torch.as_tensor(run.val, device=device)]
        curves["epoch"].append(epoch)
        curves["train_loss"].append(loss_sum / count)
        curves["train_acc"].append(correct / count)
        curves["val_loss"].append(F.cross_entropy(val_logits, val_y).item())
        curves["val_acc"].append((val_logits.argmax(1) == val_y).float().mean().item())
        loss_sum = correct = count = 0.0
    preds = _logits_grid(model, source, run.evaluate, settings.batch_size, device).argmax(1).cpu().numpy()
    return TrainResult(preds, curves, plan.summary())


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
