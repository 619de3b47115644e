"""The hostile trial of issue 11, repeatable: random kills during extraction, two sweeps on one
runs store, and a list of bad inputs, each through the real command line in child processes.

    python benchmarks/robustness_trial.py [--kills 20] [--images 1000] [--img-size 1024] [--out trial.json]

Prints (1) whether the cache resumed after every SIGKILL equals an uninterrupted one, array for
array, (2) records against distinct runs after two concurrent sweeps, (3) per bad input its exit
code and the last line printed."""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def samembed(*args, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "samembed", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def last_line(result: subprocess.CompletedProcess) -> str:
    lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
    return lines[-1] if lines else ""


def kills(tmp: Path, count: int, images: int, seed: int, img_size: int) -> dict:
    from samembed import make_synthetic_dataset, open_cache, write_tiny_checkpoint

    data = make_synthetic_dataset(tmp / "data", layout="folder", images_per_class=images // 4, size=48,
                                  classes=["a", "b", "c", "d"], vary_size=True)
    ckpt = write_tiny_checkpoint(tmp / "tiny.pth")
    common = ["extract", "folder", "--data-dir", data, "--checkpoint", ckpt, "--img-size", img_size, "--batch-size", 2,
              "--workers", 1, "--device", "cpu", "-q"]
    t0 = time.perf_counter()
    assert samembed(*common, "--cache-dir", tmp / "reference").returncode == 0
    full = time.perf_counter() - t0
    t0 = time.perf_counter()
    samembed(*common, "--cache-dir", tmp / "reference")  # over a complete cache: start-up only
    startup = time.perf_counter() - t0
    per_image = (full - startup) / images
    rng = random.Random(seed)
    outcomes, stored = [], []
    for _ in range(count):
        try:
            pending = images - open_cache(tmp / "killed", "folder").progress[0]
        except Exception:  # no group yet
            pending = images
        if not pending:
            break
        proc = subprocess.Popen([sys.executable, "-m", "samembed", *map(str, common), "--cache-dir", tmp / "killed"],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # anywhere from model loading to 25 s of encoding (the writer saves unfinished shards every 10 s)
        time.sleep(rng.uniform(0.6 * startup, startup + min(25.0, pending * per_image)))
        finished = proc.poll() is not None
        proc.kill()
        proc.wait()
        outcomes.append("finished first" if finished else "killed")
        try:
            stored.append(open_cache(tmp / "killed", "folder").progress[0])
        except Exception:  # killed before the group was created
            stored.append(0)
    resumed = samembed(*common, "--cache-dir", tmp / "killed")
    a, b = open_cache(tmp / "reference", "folder"), open_cache(tmp / "killed", "folder")
    differing = [name for name in sorted(a.arrays) if not np.array_equal(a.read(name), b.read(name))]
    return {"kills": outcomes.count("killed"), "runs_that_finished_before_the_kill": outcomes.count("finished first"),
            "images_stored_after_each_kill": stored,
            "resume_exit_code": resumed.returncode, "images": a.num_images, "complete": b.complete,
            "arrays_compared": len(a.arrays), "arrays_differing": differing, "seconds_uninterrupted": round(full, 1)}


def concurrent_sweeps(tmp: Path) -> dict:
    from samembed.cache.synthetic import write_embedding_cache
    from samembed.experiments.records import RunsStore

    write_embedding_cache(tmp / "cache", per_class=400, dim=64)
    args = ["sweep", "--heads", "knn,logreg,mlp", "--splits", "0.25,0.5", "--seeds", 2, "--epochs", 5, "--device",
            "cpu", "-q", "--cache-dir", tmp / "cache", "--runs-dir", tmp / "runs"]
    procs = [subprocess.Popen([sys.executable, "-m", "samembed", *map(str, args)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate() for p in procs]
    ids = [r["run_id"] for r in RunsStore(tmp / "runs").records()]
    warned = sum(o[1].count("recorded meanwhile by another process") for o in outs)
    return {"runs_planned": 12, "records": len(ids), "distinct_runs": len(set(ids)),
            "exit_codes": [p.returncode for p in procs], "duplicates_refused_with_a_warning": warned}


def bad_inputs(tmp: Path) -> list[dict]:
    """(what, exit code, last line) for each bad input of the trial."""
    import rasterio

    from samembed import make_synthetic_dataset, write_tiny_checkpoint
    from samembed.cache.synthetic import write_embedding_cache
    from samembed.datasets import make_synthetic_roads

    ckpt = write_tiny_checkpoint(tmp / "tiny.pth")
    rows = []

    def case(what: str, *args) -> subprocess.CompletedProcess:
        result = samembed(*args)
        rows.append({"input": what, "exit_code": result.returncode, "message": last_line(result)})
        return result

    def folder(name: str) -> Path:
        return make_synthetic_dataset(tmp / name, layout="folder", images_per_class=2, size=32, classes=["a", "b"])

    def raster(path: Path, bands: np.ndarray) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # not georeferenced: these are plain images
            with rasterio.open(path, "w", driver="PNG" if path.suffix == ".png" else "GTiff", width=bands.shape[2],
                               height=bands.shape[1], count=bands.shape[0], dtype=bands.dtype) as dst:
                dst.write(bands)

    extract = ["extract", "folder", "--checkpoint", ckpt, "--img-size", 128, "--workers", 0, "-q"]
    rng = np.random.default_rng(0)
    for name, bands in (("16-bit grayscale PNG", rng.integers(0, 10000, (1, 32, 32)).astype(np.uint16)),
                        ("16-bit RGB TIFF", rng.integers(0, 10000, (3, 32, 32)).astype(np.uint16)),
                        ("float32 TIFF in 0-1", rng.random((1, 32, 32)).astype(np.float32)),
                        ("4-band TIFF", rng.integers(0, 255, (4, 32, 32)).astype(np.uint8))):
        data = folder(name.replace(" ", "_"))
        raster(data / "a" / ("x.png" if "PNG" in name else "x.tif"), bands)
        case(name, *extract, "--data-dir", data, "--cache-dir", tmp / "c1")
    data = folder("truncated")
    (data / "a" / "a_1.jpg").write_bytes((data / "a" / "a_1.jpg").read_bytes()[:100])
    case("truncated JPEG", *extract, "--data-dir", data, "--cache-dir", tmp / "c2")
    (data / "a" / "a_1.jpg").unlink()
    case("... the same run after deleting it, as advised", *extract, "--data-dir", data, "--cache-dir", tmp / "c2")
    case("--img-size 0", "extract", "folder", "--data-dir", data, "--checkpoint", ckpt, "--img-size", 0)
    data = folder("empty_class")
    (data / "c").mkdir()
    result = samembed(*extract, "--data-dir", data, "--cache-dir", tmp / "c3")
    rows.append({"input": "empty class folder", "exit_code": result.returncode,
                 "message": next((l for l in result.stderr.splitlines() if l.startswith("warning")), "")})
    data = folder("utf8")
    os.rename(data / "a" / "a_1.jpg", os.path.join(os.fsencode(data / "a"), b"caf\xe9.jpg"))
    case("file name that is not UTF-8", *extract, "--data-dir", data, "--cache-dir", tmp / "c4")
    a_file = tmp / "a_file"
    a_file.write_text("x")
    case("--cache-dir at a regular file", *extract, "--data-dir", folder("plain"), "--cache-dir", a_file)
    roads = make_synthetic_roads(tmp / "roads01", layout="seg-folder", counts=(4, 0, 0), size=48)
    for mask in (roads / "masks").iterdir():
        Image.fromarray((np.asarray(Image.open(mask)) > 127).astype(np.uint8)).save(mask)
    case("segmentation masks stored as 0/1 (extracts; read as 0/1, 1 = road)", "extract", "seg-folder", "--data-dir",
         roads, "--checkpoint", ckpt, "--img-size", 128, "--workers", 0, "-q", "--cache-dir", tmp / "c5")
    mask = sorted((roads / "masks").iterdir())[0]
    Image.fromarray(np.linspace(0, 255, 48 * 48).reshape(48, 48).astype(np.uint8)).save(mask)
    case("a mask with many values", "extract", "seg-folder", "--data-dir", roads, "--checkpoint", ckpt, "-q",
         "--cache-dir", tmp / "c6")
    plain = folder("damaged")
    assert samembed(*extract, "--data-dir", plain, "--cache-dir", tmp / "c7").returncode == 0
    group = next((tmp / "c7" / "folder.zarr").glob("*@128"))
    (group / "neck" / "zarr.json").write_text("{garbage")
    case("garbage in an array's zarr.json, extract again", *extract, "--data-dir", plain, "--cache-dir", tmp / "c7")
    case("... then info", "info", "--cache-dir", tmp / "c7")
    case("... then train-head", "train-head", "--dataset", "folder", "--head", "knn", "--split", 0.5, "--cache-dir",
         tmp / "c7", "--runs-dir", tmp / "r7")
    (group / "zarr.json").write_text("{garbage")
    case("garbage in a group's zarr.json, extract again", *extract, "--data-dir", plain, "--cache-dir", tmp / "c7")
    write_embedding_cache(tmp / "c8")
    samembed("sweep", "--heads", "knn", "--splits", "0.25", "-q", "--cache-dir", tmp / "c8", "--runs-dir", tmp / "r8")
    with open(tmp / "r8" / "runs.jsonl", "ab") as f:
        f.write(b"garbage\n")
    case("a garbage line in runs.jsonl, then report", "report", "--runs-dir", tmp / "r8")
    case("... then sweep", "sweep", "--heads", "knn", "--splits", "0.25,0.5", "-q", "--cache-dir", tmp / "c8",
         "--runs-dir", tmp / "r8")
    case("report --out at an existing file", "report", "--runs-dir", tmp / "r8", "--out", a_file)
    case("export --out at a folder", "export", "eurosat", "--cache-dir", tmp / "c8", "--out", tmp)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--img-size", type=int, default=1024, help="input side of the tiny encoder (sets its speed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "k").mkdir(), (tmp / "s").mkdir(), (tmp / "b").mkdir()
        results = {"kills": kills(tmp / "k", args.kills, args.images, args.seed, args.img_size),
                   "concurrent_sweeps": concurrent_sweeps(tmp / "s"), "bad_inputs": bad_inputs(tmp / "b")}
    k, s = results["kills"], results["concurrent_sweeps"]
    print(f"1. {k['kills']} SIGKILLs during the extraction of {k['images']} images ({k['runs_that_finished_before_the_kill']} "
          f"runs finished before their kill; images stored after each kill: {k['images_stored_after_each_kill']}), then "
          f"one resume (exit {k['resume_exit_code']}): complete {k['complete']}, {k['arrays_compared']} arrays compared "
          f"with an uninterrupted run, differing: {k['arrays_differing'] or 'none'}")
    print(f"2. two concurrent sweeps of {s['runs_planned']} runs: {s['records']} records, {s['distinct_runs']} distinct "
          f"runs, exit codes {s['exit_codes']}, {s['duplicates_refused_with_a_warning']} duplicate(s) refused with a warning")
    print("3. bad inputs (exit code: last line)")
    for row in results["bad_inputs"]:
        print(f"   {row['input']}: {row['exit_code']}: {row['message']}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
