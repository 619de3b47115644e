"""The kinds of segmentation heads: ``decoder`` torch heads on the cached map, and ``raw`` models
trained from scratch on the images; both keep the weights of their best validation epoch."""

from __future__ import annotations

import time

import torch

from ..experiments.kinds import HeadKind, Outcome, TrainSettings, register_kind
from ..experiments.optim import schedule_for
from .training import predict_logits, train_segmenter


def predicted_masks(model, source, experiment):
    """The function from image indices to ``(index, (H, W) bool)`` predictions at the original
    resolution: probabilities on the mask grid, back to the original image, at 0.5."""

    def masks(indices):
        for idx, xb in source.batches(indices, 4, None):
            probs = torch.sigmoid(predict_logits(model, xb, experiment.device)).cpu()
            for k, i in enumerate(idx):
                original = experiment.geometry.input_to_original(probs[k, 0], experiment.orig_hw[i])
                yield int(i), (original > 0.5).numpy()

    return masks


class Decoder(HeadKind):
    """Decoders on the cached map (SAM's image embedding), trained with BCE + Dice."""

    name, task, input = "decoder", "segmentation", "grid"
    needs = ("masks", "geometry", "orig_hw", "checkpoint")
    # The step floor: 8 training images give one step an epoch, and 20 steps leave SAM's own mask
    # decoder (sam-vit) at chance (Dice 0.25, best epoch 1 on the generated roads: its first steps
    # drive every cell to background, which it leaves after about 150 steps); 500 steps reach
    # Dice 0.58. At 200 or more training images 20 epochs already take 500 steps.
    defaults = TrainSettings(epochs=20, lr=3e-4, batch_size=8, min_steps=500)

    def source(self, experiment):
        return experiment.grid()

    def steps(self, experiment, plan):
        n = len(experiment.split(plan.split, plan.seed).train)
        return schedule_for(n, plan.settings.batch_size, plan.settings).total

    def model(self, experiment, head):
        return head.factory(tuple(experiment.grid().array.shape[1:]),
                            experiment.checkpoint() if head.uses_checkpoint else None)

    def fit(self, experiment, plans):
        (plan,) = plans
        data = experiment.run_data(experiment.split(plan.split, plan.seed), plan.seed)
        torch.manual_seed(plan.seed)
        source = self.source(experiment)
        model = self.model(experiment, experiment.head(plan.head))
        t0 = time.perf_counter()
        result = train_segmenter(model, source, experiment.masks, data, plan.settings, experiment.device,
                                 experiment.pace(plan))
        yield plan, Outcome(predicted_masks(result.model, source, experiment), time.perf_counter() - t0, result.curves,
                            {}, {"metrics": {"best_epoch": result.best_epoch}, "training": result.training,
                                 "seconds_per_epoch": round(result.seconds_per_epoch, 4)})

    def selection(self, outcome: Outcome, evaluated_on: str) -> str:
        best = outcome.record["metrics"]["best_epoch"]
        if evaluated_on == "test":
            return f"best epoch ({best}) by validation Dice; reported on the test split"
        return (f"best epoch ({best}) by Dice on the validation split, which is also the split reported: the metric "
                "is selected on it")


class Raw(Decoder):
    """Models trained from scratch on the raw images, at the decoders' mask resolution."""

    name, task, input = "raw", "segmentation", "images"
    needs = ("masks",)
    defaults = TrainSettings(epochs=40, lr=1e-3, batch_size=8, min_steps=500)

    def source(self, experiment):
        return experiment.raw_images(experiment.masks.targets.shape[-1])

    def model(self, experiment, head):
        return head.factory()


for kind in (Decoder(), Raw()):
    register_kind(kind)
