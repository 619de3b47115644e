"""A served world for the tests of ``samembed serve``: a generated road dataset, a scene cut into
chips and a small EuroSAT, extracted with the tiny checkpoint, with runs of a classification head
and of segmentation heads."""

from __future__ import annotations

from pathlib import Path

import samembed
from samembed.datasets import make_synthetic_dataset, make_synthetic_roads, make_synthetic_scene


def build_served_world(root: Path, checkpoint: Path) -> dict:
    roads = make_synthetic_roads(root / "roads", counts=(4, 1, 2), size=64, seed=3)
    cache, runs = root / "cache", root / "experiments"
    samembed.extract("road", data_dir=roads, checkpoint=checkpoint, img_size=256, workers=0, progress=False,
                     cache_dir=cache)
    scene = make_synthetic_scene(root / "scene", size=(300, 400), origin=(600000.0, 4000000.0), pixel=2.0)
    samembed.extract("scene", data_dir=scene, checkpoint=checkpoint, bands="1,2,3", stretch="fixed:0,4000",
                     chip_size=128, img_size=256, workers=0, progress=False, cache_dir=cache)
    eurosat = make_synthetic_dataset(root / "eurosat", layout="2750", images_per_class=4)
    samembed.extract("eurosat", data_dir=eurosat, checkpoint=checkpoint, img_size=256, workers=0, progress=False,
                     cache_dir=cache)
    samembed.sweep("eurosat", heads=["linear"], splits=["0.5"], seeds=1, cache_dir=cache, runs_dir=runs)
    samembed.sweep("road", heads=["sam-box", "sam-conv"], splits=["standard"], epochs=1, cache_dir=cache,
                   runs_dir=runs)
    keys = {g.dataset: f"{g.dataset}/{g.name}" for g in samembed.cache.list_groups(cache)}
    return {"root": root, "cache": cache, "runs": runs, "out": root / "served", "roads": roads, "keys": keys}
