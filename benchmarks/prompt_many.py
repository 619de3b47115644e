"""Many prompts in one call of ``samembed prompt``: wall time and peak memory of the command.

    python benchmarks/prompt_many.py [--prompts 3000] [--images 4] [--size 400] [--img-size 1024]

Generated road images are extracted with vit_b's full architecture (segment_anything's
``build_sam_vit_b``, random weights: the decoder's cost is the real model's), ``--prompts`` one-point
prompts spread over the images go into one CSV, and ``samembed prompt --prompts FILE --out DIR``
answers them in a child process. Prints the child's wall time, prompts per second and peak resident
memory (``getrusage(RUSAGE_CHILDREN).ru_maxrss``), and the floor of its memory: what the process
holds before it answers anything (the prompt encoder and decoder, one image's embedding), measured
by the same command with one prompt. Run it with ``PYTHONPATH`` on another checkout to measure that
checkout's command on the same data."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from segment_anything import build_sam_vit_b

import samembed
from samembed.datasets import load_dataset, make_synthetic_roads, read_rgb


def run_child(args: list[str], log: Path) -> tuple[float, float, float, str]:
    """(wall seconds, CPU seconds, peak RSS in MiB, last output line) of ``python -m samembed
    ARGS`` in a child process (its own figures: ``os.wait4``'s resource usage of that child)."""
    t0 = time.perf_counter()
    with open(log, "w") as out:
        child = subprocess.Popen([sys.executable, "-m", "samembed", *args], stdout=out, stderr=subprocess.STDOUT,
                                 cwd=log.parent)  # not this folder: ``-m`` puts the working folder first
        _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - t0
    lines = log.read_text().strip().splitlines()
    last = lines[-1] if lines else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the command failed: {last}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=3000)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--size", type=int, default=400, help="side of the generated images (pixels)")
    parser.add_argument("--img-size", type=int, default=1024)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = tmp / "sam_vit_b_random.pth"
        torch.save(build_sam_vit_b().eval().state_dict(), ckpt)
        data = make_synthetic_roads(tmp / "data", layout="seg-folder", counts=(args.images, 0, 0), size=args.size)
        samembed.extract("seg-folder", data_dir=data, checkpoint=ckpt, img_size=args.img_size, workers=0,
                         batch_size=1, progress=False, cache_dir=tmp / "cache")
        ids = load_dataset("seg-folder", data).image_ids
        rng = np.random.default_rng(0)
        rows = ["image,prompt,x,y,label"]
        for k in range(args.prompts):
            image = ids[k % len(ids)]
            h, w = read_rgb(data / image).shape[:2]
            rows.append(f"{image},p{k},{rng.uniform(0, w - 1):.1f},{rng.uniform(0, h - 1):.1f},1")
        (tmp / "many.csv").write_text("\n".join(rows) + "\n")
        (tmp / "one.csv").write_text("\n".join(rows[:2]) + "\n")
        common = ["prompt", "--dataset", "seg-folder", "--cache-dir", str(tmp / "cache")]
        one_s, one_cpu, one_rss, _ = run_child([*common, "--prompts", str(tmp / "one.csv"), "--out", str(tmp / "out1")],
                                        tmp / "one.log")
        seconds, cpu, rss, last = run_child([*common, "--prompts", str(tmp / "many.csv"), "--out", str(tmp / "out")], tmp / "many.log")
        written = len(list((tmp / "out").glob("*.png")))
    print(f"samembed from {Path(samembed.__file__).parent}, torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads, load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; vit_b (random weights) at "
          f"{args.img_size}, {args.images} images of {args.size} px")
    print(f"one prompt: {one_s:.1f} s ({one_cpu:.1f} CPU-s), peak RSS {one_rss:.0f} MiB (the floor: modules, one "
          "embedding, the runtime)")
    print(f"{args.prompts} prompts: {seconds:.1f} s, {cpu:.1f} CPU-s ({args.prompts / seconds:.1f} prompts/s with the "
          f"start), peak RSS {rss:.0f} MiB, {written} PNGs written; last line: {last[:160]}")


if __name__ == "__main__":
    main()
