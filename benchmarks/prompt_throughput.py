"""Prompts per second from the cache against SamPredictor re-encoding the image, in one run on the
same device, with vit_b's full architecture (segment_anything's ``build_sam_vit_b``, random
weights: the cost is the real model's).

    python benchmarks/prompt_throughput.py [--images 4] [--prompts 64] [--img-size 1024] [--device cpu] [--compete 1]

(1) many prompts on one image: the prompts of one image go through the decoder together (batched);
(2) one prompt on each of many images: the embedding read from the cache each time;
(3) SamPredictor: ``set_image`` (the image encoder) then ``predict``, per prompt, as one would
    without a cache. Reports prompts per second of each and the ratios, and the arithmetic floor:
    the decoder's FLOPs per prompt (torch's FLOP counter: matmuls and convolutions) against the rate
    this device reaches on one large float32 matmul.
(4) with ``--compete N`` (CPU): (1) again beside N busy processes (a Python loop each), with torch's
    default threads (what prompting ran with before issue 22) and with the idle-core policy that
    ``samembed prompt`` now runs under (``samembed.threads.cpu_threads``, measured while they
    run), alternated twice so a drift in the machine's load falls on both."""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from segment_anything import SamPredictor, build_sam_vit_b

import samembed
from samembed.datasets import load_dataset, make_synthetic_roads, read_rgb
from samembed.prompting.predictor import CachePredictor
from samembed.prompting.prompts import Prompt
from samembed import threads as thread_policy


@contextlib.contextmanager
def busy_processes(n: int):
    """``n`` processes that each keep a core busy while the block runs."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(1.0)  # let them start spinning
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def prompts_per_second(predictor: CachePredictor, prompts: list[Prompt]) -> float:
    t0 = time.perf_counter()
    predictor.predict(0, prompts)
    return len(prompts) / (time.perf_counter() - t0)


def decoder_gflop(predictor: CachePredictor, hw) -> float:
    """GFLOP of one point prompt through the prompt encoder and mask decoder."""
    from torch.utils.flop_counter import FlopCounterMode

    prompts = [Prompt(((hw[1] / 2, hw[0] / 2),), (1,))] * 8
    with FlopCounterMode(display=False) as counter:
        predictor.logits(0, prompts)
    return counter.get_total_flops() / len(prompts) / 1e9


def matmul_gflops(device: str, n: int = 2048, repeats: int = 5) -> float:
    """The best float32 GFLOP/s of an n x n matmul on ``device``."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(repeats + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=64, help="prompts on the one image of (1)")
    parser.add_argument("--img-size", type=int, default=1024)
    parser.add_argument("--reference", type=int, default=2, help="prompts answered by SamPredictor (3)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compete", type=int, default=0, help="busy processes beside a last run of (1), on the CPU")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sam = build_sam_vit_b().eval()  # random weights, vit_b's shapes (encoder, prompt encoder, decoder)
        ckpt = tmp / "sam_vit_b_random.pth"
        torch.save(sam.state_dict(), ckpt)
        data = make_synthetic_roads(tmp / "data", layout="seg-folder", counts=(args.images, 0, 0), size=400)
        t0 = time.perf_counter()
        samembed.extract("seg-folder", data_dir=data, checkpoint=ckpt, img_size=args.img_size, device=args.device,
                         workers=0, batch_size=1, progress=False, cache_dir=tmp / "cache")
        extraction = time.perf_counter() - t0
        predictor = CachePredictor(samembed.open_cache(tmp / "cache", "seg-folder"), device=args.device)
        rng = np.random.default_rng(0)
        hw = predictor.orig_hw[0]
        many = [Prompt(((float(rng.uniform(0, hw[1])), float(rng.uniform(0, hw[0]))),), (1,))
                for _ in range(args.prompts)]
        predictor.predict(0, many[:2])  # warm-up
        t0 = time.perf_counter()
        predictor.predict(0, many)
        one_image = args.prompts / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(args.images):
            h, w = predictor.orig_hw[i]
            predictor.predict(i, [Prompt(((w / 2, h / 2),), (1,))])
        many_images = args.images / (time.perf_counter() - t0)

        gflop = decoder_gflop(predictor, hw)
        reference = SamPredictor(sam.to(args.device))
        index = load_dataset("seg-folder", data)
        t0 = time.perf_counter()
        for k in range(args.reference):
            rgb = read_rgb(index.path(k % len(index)))
            reference.set_image(rgb)
            reference.predict(np.array([[rgb.shape[1] / 2, rgb.shape[0] / 2]]), np.array([1]))
        re_encoding = args.reference / (time.perf_counter() - t0)
        beside = None
        if args.compete and args.device == "cpu":
            default_threads = torch.get_num_threads()
            with busy_processes(args.compete):
                thread_policy._last = None  # measure the idle cores now, beside the busy processes
                rates = {"default": [], "policy": []}
                for _ in range(2):
                    rates["default"].append(prompts_per_second(predictor, many))
                    with thread_policy.cpu_threads(torch.device("cpu")) as policy_threads:
                        rates["policy"].append(prompts_per_second(predictor, many))
            beside = (default_threads, policy_threads, rates)
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads; vit_b (random weights) "
          f"at {args.img_size}; extraction of {args.images} images took {extraction:.1f} s")
    print(f"(1) {args.prompts} prompts on one image, batched: {one_image:.1f} prompts/s")
    print(f"(2) one prompt on each of {args.images} images (embedding read from the cache): {many_images:.1f} prompts/s")
    print(f"(3) SamPredictor re-encoding the image for each prompt: {re_encoding:.4f} prompts/s")
    rate = matmul_gflops(args.device)
    print(f"floor: the decoder does {gflop:.2f} GFLOP a prompt; at this device's float32 matmul rate ({rate:.0f} "
          f"GFLOP/s) at most {rate / gflop:.0f} prompts/s")
    print(f"ratios: (1)/(3) = {one_image / re_encoding:,.0f}x, (2)/(3) = {many_images / re_encoding:,.0f}x")
    if beside is not None:
        default_threads, policy_threads, rates = beside
        print(f"(4) (1) beside {args.compete} busy process(es), alternated: torch's default {default_threads} threads "
              f"{' and '.join(f'{r:.1f}' for r in rates['default'])} prompts/s; the idle-core policy's "
              f"{policy_threads} thread(s) {' and '.join(f'{r:.1f}' for r in rates['policy'])} prompts/s")


if __name__ == "__main__":
    main()
