"""Zero-shot prompt "heads": SAM used as it was built, scored like the trained decoders.

For each evaluated image, prompts are derived from its ground-truth mask with a seed: per connected
component of the foreground (8-connected), ``k`` random positive points, its centre (of the pixels
farthest from its edge, the one nearest its centroid: inside it even when the component is not
convex), or its
bounding box, optionally with negative points from the background around it. Each component's
prompt goes through SAM's prompt encoder and mask decoder (the checkpoint's, on the cached image
embedding); the union of the components' masks is the image's prediction, scored with the same
per-image metrics as the decoders (:mod:`samembed.segmentation.task`). Nothing is trained: the
record has no curves and no best epoch. The prompts come from the truth of the images they are
scored on, as in SAM's own evaluations; the record says so."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..experiments.kinds import HeadKind, Outcome, register_kind
from ..heads import register_head
from .predictor import CachePredictor
from .prompts import Prompt


@dataclass(frozen=True)
class PromptRecipe:
    """How prompts are derived from a truth mask: ``points`` random positive points per component,
    its ``centre``, its ``box``, and ``negatives`` background points around it."""

    points: int = 0
    centre: bool = False
    box: bool = False
    negatives: int = 0

    def describe(self) -> str:
        parts = [f"{self.points} random point(s)" if self.points else "", "its centre" if self.centre else "",
                 "its bounding box" if self.box else "",
                 f"{self.negatives} background point(s) around it" if self.negatives else ""]
        return "per connected component of the truth: " + ", ".join(p for p in parts if p)

    def __call__(self, truth: np.ndarray, rng: np.random.Generator) -> list[Prompt]:
        """The prompts of one (H, W) bool truth mask, one per component."""
        from scipy import ndimage

        components, count = ndimage.label(truth, structure=np.ones((3, 3)))
        prompts = []
        for c, where in enumerate(ndimage.find_objects(components), start=1):
            component = components[where] == c
            rows, cols = np.nonzero(component)
            r0, c0 = where[0].start, where[1].start
            points, labels = [], []
            if self.points:
                chosen = rng.choice(len(rows), min(self.points, len(rows)), replace=False)
                points += [(float(cols[j] + c0), float(rows[j] + r0)) for j in chosen]
            if self.centre:
                distance = ndimage.distance_transform_edt(np.pad(component, 1))[1:-1, 1:-1]
                inner = np.argwhere(distance == distance.max())  # the innermost pixels; of those, the one
                middle = np.array([rows.mean(), cols.mean()])  # nearest the component's centroid
                r, col = inner[np.argmin(((inner - middle) ** 2).sum(1))]
                points.append((float(col + c0), float(r + r0)))
            labels += [1] * len(points)
            if self.negatives:
                negatives = self._background(truth, where, rng)
                points += negatives
                labels += [0] * len(negatives)
            box = (float(c0), float(r0), float(where[1].stop), float(where[0].stop)) if self.box else None
            prompts.append(Prompt(tuple(points), tuple(labels), box, name=f"component{c}"))
        return prompts

    def _background(self, truth: np.ndarray, where, rng: np.random.Generator) -> list[tuple[float, float]]:
        """Background points in the component's box grown by half its size (else anywhere)."""
        h, w = truth.shape
        (rs, cs) = where
        grow_r, grow_c = (rs.stop - rs.start) // 2 + 1, (cs.stop - cs.start) // 2 + 1
        r0, r1 = max(0, rs.start - grow_r), min(h, rs.stop + grow_r)
        c0, c1 = max(0, cs.start - grow_c), min(w, cs.stop + grow_c)
        rows, cols = np.nonzero(~truth[r0:r1, c0:c1])
        rows, cols = rows + r0, cols + c0
        if not len(rows):
            rows, cols = np.nonzero(~truth)
        if not len(rows):
            return []
        chosen = rng.choice(len(rows), min(self.negatives, len(rows)), replace=False)
        return [(float(cols[j]), float(rows[j])) for j in chosen]


RECIPES = {
    "sam-1point": PromptRecipe(points=1),
    "sam-3points": PromptRecipe(points=3),
    "sam-5points": PromptRecipe(points=5),
    "sam-centre": PromptRecipe(centre=True),
    "sam-box": PromptRecipe(box=True),
    "sam-3points-3neg": PromptRecipe(points=3, negatives=3),
}
for name, recipe in RECIPES.items():
    register_head(name, kind="zero-shot", task="segmentation", uses_checkpoint=True,
                  summary=f"zero-shot SAM, no training: {recipe.describe()}")(lambda recipe=recipe: recipe)


class ZeroShot(HeadKind):
    """Prompts from the truth through SAM's prompt encoder and mask decoder; nothing trained."""

    name, task, input = "zero-shot", "segmentation", "grid"
    needs = ("index", "checkpoint")

    def fit(self, experiment, plans):
        # one predictor per experiment: a sweep fits zero-shot runs one at a time, and a SAM 2
        # predictor builds the whole model to get its decoder
        predictor = experiment.keep("prompt predictor", lambda: CachePredictor(
            experiment.group, experiment.checkpoint(), experiment.device))
        for plan in plans:
            recipe = experiment.head(plan.head).factory()
            data = experiment.run_data(experiment.split(plan.split, plan.seed), plan.seed)
            t0 = time.perf_counter()
            answers = {}
            for i in data.evaluate:
                truth = experiment.index.mask(int(i))
                prompts = recipe(truth, np.random.default_rng([plan.seed, int(i)]))
                mask = np.zeros(truth.shape, bool)
                for answer in predictor.predict(int(i), prompts) if prompts else []:
                    mask |= answer.mask
                answers[int(i)] = (mask, {"prompts": [p.to_dict() for p in prompts]})
            info = {"recipe": recipe.describe(), "multimask": "the mask with the highest predicted IoU"}
            yield plan, Outcome(lambda indices, answers=answers: ((i, *answers[int(i)]) for i in indices),
                                time.perf_counter() - t0, info=info)

    def selection(self, outcome: Outcome, evaluated_on: str) -> str:
        return ("none: zero-shot, nothing trained; prompts derived (seeded) from the ground truth of each evaluated "
                "image, answered by SAM's prompt encoder and mask decoder with the checkpoint's weights")


register_kind(ZeroShot())
