"""How items are scored from the positives and negatives: always one vector and a bias, so that
ranking is one matrix product (exact, blocked) or one inner-product search (the index).

- ``neighbours``: cosine to the mean of the positives' normalised vectors; with negatives, minus
  cosine to theirs (``x . (p - n)``, Rocchio's rule without weights).
- ``fewshot``: a logistic regression (scikit-learn, L2, C = 1, classes balanced) on the normalised
  vectors of the positives (1) and negatives (0), scoring every item with its probability. With
  no negatives, :data:`BACKGROUND` items drawn at random from the group (seed 0) stand in for
  them: most of a dataset is unlike a handful of marked examples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UsageError

MODES = ("neighbours", "fewshot")
BACKGROUND = 100  # random items standing for the negatives of a few-shot search without any
BACKGROUND_SEED = 0


@dataclass(frozen=True)
class Scorer:
    """score(x) = link(x . weights + bias) for a normalised vector x; ``link`` is ``identity``
    or ``sigmoid`` (monotone: it never changes the ranking). ``rule`` says it in words."""

    weights: torch.Tensor  # (D,) float32
    bias: float
    link: str
    rule: str

    def finish(self, raw):
        """Scores from raw inner products (numpy or torch)."""
        if self.link == "identity":
            return raw
        return 1 / (1 + np.exp(-np.asarray(raw, np.float64) - self.bias)) if isinstance(raw, np.ndarray) \
            else torch.sigmoid(raw + self.bias)


def neighbours(positives: torch.Tensor, negatives: torch.Tensor | None) -> Scorer:
    """``positives`` (P, D), ``negatives`` (M, D) or None: normalised query vectors."""
    p = F.normalize(positives.mean(0), dim=0)
    if negatives is None or not len(negatives):
        return Scorer(p, 0.0, "identity", "cosine to the positives' mean")
    n = F.normalize(negatives.mean(0), dim=0)
    return Scorer(p - n, 0.0, "identity", "cosine to the positives' mean minus cosine to the negatives' mean")


def fewshot(positives: torch.Tensor, negatives: torch.Tensor, background: bool) -> Scorer:
    """A logistic regression of positives (P, D) against negatives (M, D)."""
    from sklearn.linear_model import LogisticRegression

    x = torch.cat([positives, negatives]).numpy().astype(np.float64)
    y = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000).fit(x, y)
    against = f"{len(negatives)} random items of the group as negatives" if background else \
        f"{len(negatives)} negative(s)"
    return Scorer(torch.as_tensor(model.coef_[0], dtype=torch.float32), float(model.intercept_[0]), "sigmoid",
                  f"logistic regression (C=1, balanced) of {len(positives)} positive(s) against {against}; "
                  "score: its probability")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise UsageError(f"mode must be 'neighbours' or 'fewshot', not '{mode}'")
    return mode
