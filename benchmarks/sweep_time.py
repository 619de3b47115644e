"""Time a EuroSAT-sized sweep from the cache against its arithmetic floor, and what the same sweep
would cost if the encoder ran at every epoch instead.

    python benchmarks/sweep_time.py
    python benchmarks/sweep_time.py --compete 1      # with one busy process on the same cores

27,000 generated 256-d embeddings in 10 classes; 9 splits (0.1 ... 0.9) x 3 seeds; heads linear,
mlp, logreg, knn with their default settings (``--epochs`` overrides the torch heads'); on the CPU.

The floor of each head is the time its matrix products take at this CPU's float32 peak, measured
in the same run (a 2048-cube matmul, best of several, before and after the sweep):

- linear, mlp: every training row of every epoch trained (forward, and the weight gradients:
  4DC flops a row for linear, 4DH + 6HC for the MLP; the input needs no gradient), every
  validation pass the curves record and the final prediction (2DC, 2DH + 2HC a row); for linear,
  also each learning-rate candidate trained on 80 % of the training set and scored on the rest;
- knn: one N x N Gram matrix of the normalised vectors (2N^2 D flops), which holds every
  similarity any run needs;
- logreg: each L-BFGS iteration of every fit (held-out fits and refit) evaluates the loss and its
  gradient once: two products of the n x D features with D x C (4nDC flops; counted by wrapping
  scikit-learn's ``LogisticRegression.fit``).

``--encoder-ips`` are encoder throughputs (images per second) to price the naive alternative with:
by default the figure measured by benchmarks/extract_throughput.py for vit_b at 1024 on 2 CPU cores,
and the published segment-anything-fast figure for vit_b on an A100 (pytorch-labs/segment-anything-fast, README and
experiments/).
The script runs against whatever samembed is importable (PYTHONPATH), so an older checkout can be
measured with the same floor."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from samembed import sweep
from samembed.cache.synthetic import write_embedding_cache

SPLITS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
D, C, HIDDEN = 256, 10, 512


def peak_gflops(repeats: int = 5, n: int = 2048) -> float:
    """Best float32 GFLOP/s of an n-cube matmul on the CPU."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def torch_head_flops(records: list[dict], head: str) -> float:
    """Matrix-product flops of the stacked torch heads' runs (see the module docstring)."""
    if head == "linear":
        train, forward = 4 * D * C, 2 * D * C
    else:
        train, forward = 4 * D * HIDDEN + 6 * HIDDEN * C, 2 * D * HIDDEN + 2 * HIDDEN * C
    total = 0.0
    for r in records:
        split, curves = r["split"], r["curves"]
        epochs = (r.get("training") or {}).get("epochs") or max(curves["epoch"])
        evaluated = split["n_test"] or split["n_val"]
        total += epochs * split["n_train"] * train + len(curves["val_loss"]) * split["n_val"] * forward
        total += evaluated * forward
        info = r.get("head_info") or {}
        if info.get("held_out_steps"):  # lr chosen on a held-out 20 %: each candidate trained on the other 80 %
            fit = split["n_train"] - round(0.2 * split["n_train"])
            batch = min(r["config"]["settings"]["batch_size"], fit)
            rows = info["held_out_steps"] / -(-fit // batch) * fit  # epochs x rows
            total += len(info["held_out_accuracy"]) * (rows * train + (split["n_train"] - fit) * forward)
    return total


class LogregCounter:
    """Wraps scikit-learn's LogisticRegression.fit to add up 4 n D C flops per L-BFGS iteration."""

    def __init__(self):
        from sklearn.linear_model import LogisticRegression

        self.cls, self.flops, self.fits = LogisticRegression, 0.0, 0
        self.real = LogisticRegression.fit
        counter = self

        def fit(model, x, y, *args, **kwargs):
            out = counter.real(model, x, y, *args, **kwargs)
            counter.flops += int(max(model.n_iter_)) * 4 * x.shape[0] * x.shape[1] * len(model.classes_)
            counter.fits += 1
            return out

        LogisticRegression.fit = fit

    def close(self):
        self.cls.fit = self.real


def busy_processes(count: int) -> list[subprocess.Popen]:
    """``count`` processes that each keep one core busy (a stand-in for another user's job)."""
    code = "import time\nx = 0\nwhile True:\n    x += 1\n"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(count)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--heads", default="linear,mlp,logreg,knn")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=None, help="torch heads' epochs (default: the heads' own)")
    p.add_argument("--images", type=int, default=27_000, help="generated embeddings (10 classes)")
    p.add_argument("--compete", type=int, default=0, help="busy processes running beside the sweep")
    p.add_argument("--encoder-ips", type=float, action="append", default=None)
    p.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = p.parse_args()
    encoder_ips = args.encoder_ips or [0.06, 92.0]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.2f}, {args.compete} competing process(es)")
    competitors = busy_processes(args.compete)
    figures: dict = {"compete": args.compete, "heads": {}}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            t0 = time.perf_counter()
            write_embedding_cache(tmp / "cache", classes=C, per_class=args.images // C, dim=D, grid=2, noise=8.0)
            print(f"generated cache of {args.images:,} x 256 embeddings in {time.perf_counter() - t0:.1f} s")
            time.sleep(1.0 if competitors else 0.0)  # let the competitors start
            peak = peak_gflops()
            print(f"float32 peak (2048-cube matmul): {peak:.1f} GFLOP/s")
            total = total_floor = 0.0
            naive_images = 0
            for head in args.heads.split(","):
                counter = LogregCounter() if head == "logreg" else None
                t0, cpu0 = time.perf_counter(), time.process_time()
                records = sweep("eurosat", heads=[head], splits=SPLITS, seeds=args.seeds, cache_dir=tmp / "cache",
                                runs_dir=tmp / "runs", device="cpu", epochs=args.epochs, progress=False)
                seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
                if counter:
                    counter.close()
                if head in ("linear", "mlp"):
                    flops = torch_head_flops(records, head)
                elif head == "knn":
                    flops = 2.0 * args.images ** 2 * D
                else:
                    flops = counter.flops
                floor = flops / (peak * 1e9)
                total, total_floor = total + seconds, total_floor + floor
                passes = max(records[0]["curves"]["epoch"]) if records[0]["curves"] else 1
                naive_images += len(records) * passes * args.images
                accs = [r["metrics"]["accuracy"] for r in records]
                threads = sorted({r["config"].get("threads", torch.get_num_threads()) for r in records})
                print(f"{head:7s}: {len(records)} runs in {seconds:7.1f} s ({seconds / len(records):.2f} s/run, "
                      f"CPU {cpu:.1f} s), floor {floor:6.1f} s ({flops / 1e12:.2f} TFLOP), ratio {seconds / floor:5.2f}; "
                      f"threads {threads}; accuracy {min(accs):.3f}-{max(accs):.3f}")
                figures["heads"][head] = {"runs": len(records), "seconds": seconds, "cpu_seconds": cpu, "floor": floor,
                                          "tflop": flops / 1e12, "ratio": seconds / floor, "threads": threads,
                                          "accuracy": [min(accs), max(accs)]}
            peak = max(peak, peak_gflops())
            total_floor_after = sum(h["tflop"] for h in figures["heads"].values()) * 1e12 / (peak * 1e9)
            print(f"whole sweep from the cache: {total:.1f} s ({total / 60:.1f} min), floor {total_floor:.1f} s, "
                  f"ratio {total / total_floor:.2f} (peak after the sweep {peak:.1f} GFLOP/s: floor "
                  f"{total_floor_after:.1f} s, ratio {total / total_floor_after:.2f})")
            figures.update(total=total, floor=total_floor, ratio=total / total_floor, peak_after=peak)
            for ips in encoder_ips:
                naive = naive_images / ips
                print(f"encoder at every epoch at {ips:g} img/s: {naive_images:,} encoder passes = {naive / 3600:,.1f} h "
                      f"({naive / total:,.0f} x the cached sweep)")
    finally:
        for process in competitors:
            process.kill()
            process.wait()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
