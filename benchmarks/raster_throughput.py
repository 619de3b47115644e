"""What rasters cost: extraction throughput of a 13-band uint16 dataset (EuroSAT-MS layout, read
with rasterio and composited) against the RGB one (JPEGs read with PIL), same encoder, same
images per class and size, in one run; and the memory of chipping a scene larger than a budget.

    python benchmarks/raster_throughput.py [--images-per-class 20] [--img-size 224] [--scene 4096]

Random-weight vit_b at ``--img-size`` (the encoder's cost is that of the real model), 64 x 64 tiles,
workers 1, batch 4, the CPU unless --device says otherwise. Also reported: reading and compositing
alone (no encoder), which is where the two datasets differ."""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import torch

import samembed
from samembed.datasets import load_dataset, make_synthetic_dataset, make_synthetic_rasters, make_synthetic_scene
from samembed.datasets.inputs import InputReader
from samembed.encoders.sam_checkpoint import VARIANTS
from samembed.extraction.plan import plan_extraction


def read_rate(index, composite, repeats: int = 3) -> float:
    """Images per second of reading (and compositing) alone, in this process."""
    reader = InputReader(index, composite)
    t0 = time.perf_counter()
    for _ in range(repeats):
        for i in range(len(index)):
            reader(i)
    return repeats * len(index) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images-per-class", type=int, default=20)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--scene", type=int, default=4096, help="side of the scene for the memory measurement")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dim, depth, heads, glob = VARIANTS["vit_b"]
        ckpt = samembed.write_tiny_checkpoint(tmp / "vit_b.pth", embed_dim=dim, depth=depth, num_heads=heads,
                                              global_attn_indexes=glob, out_chans=256)
        rgb = make_synthetic_dataset(tmp / "rgb", images_per_class=args.images_per_class, size=64)
        ms = make_synthetic_rasters(tmp / "ms", "eurosat-ms", images_per_class=args.images_per_class, size=64)
        common = dict(checkpoint=ckpt, img_size=args.img_size, device=args.device, workers=1, batch_size=4,
                      progress=False)
        print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, vit_b random weights "
              f"at {args.img_size}, {10 * args.images_per_class} images of 64 x 64 per dataset")
        rows = []
        for name, dataset, data, options in (("RGB JPEG (eurosat)", "eurosat", rgb, {}),
                                             ("13-band uint16 (eurosat-ms, s2-rgb, fixed 0-3000)", "eurosat-ms", ms,
                                              {"bands": "s2-rgb", "stretch": "fixed:0,3000"})):
            result = samembed.extract(dataset, data_dir=data, cache_dir=tmp / "cache", **common, **options)
            plan = plan_extraction(dataset, data_dir=data, checkpoint=ckpt, img_size=args.img_size,
                                   cache_dir=tmp / "cache", **options)
            rows.append((name, result.images_per_second, read_rate(load_dataset(dataset, data), plan.composite)))
        for name, ips, reads in rows:
            print(f"  {name}: whole extraction {ips:.2f} img/s; reading and compositing alone {reads:.0f} img/s")
        print(f"  13-band / RGB whole extraction: {rows[1][1] / rows[0][1]:.2f}; reading alone: "
              f"{rows[1][2] / rows[0][2]:.2f}")

        side = args.scene
        scene = make_synthetic_scene(tmp / "scene", size=(side, side), bands=4, nodata=None)
        scene_mib = side * side * 4 * 2 / 2**20
        tracemalloc.start()
        t0 = time.perf_counter()
        result = samembed.extract("scene", data_dir=scene, checkpoint=samembed.write_tiny_checkpoint(tmp / "tiny.pth"),
                                  img_size=64, bands="1,2,3", stretch="percentile", chip_size=512, workers=0,
                                  batch_size=4, progress=False, cache_dir=tmp / "cache")
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        chip_mib = 512 * 512 * 4 * 2 / 2**20
        print(f"scene {side} x {side} x 4 uint16 = {scene_mib:.0f} MiB, cut into {result.num_images} chips of 512 "
              f"({chip_mib:.0f} MiB each), percentile statistics and extraction with a tiny encoder: peak traced "
              f"memory {peak:.1f} MiB ({100 * peak / scene_mib:.1f} % of the scene) in {seconds:.1f} s")


if __name__ == "__main__":
    main()
