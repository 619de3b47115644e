"""GeoParquet export at scale (issue 25): a generated cache group of N chips of one georeferenced
scene (EPSG:32633, 10 m pixels, 256-pixel chips) with a 256-float pooled vector each, exported
by ``samembed export --format geoparquet`` in a child process, float32 and float16.

    python benchmarks/export_geoparquet.py --chips 1000000

Prints rows/s and the child's peak RSS for each, the file sizes against the Zarr group's bytes
on disk, and the floor: the bytes the export must write (N x 256 x 2 or 4) at this disk's
sequential write rate, measured here."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from samembed.cache.integrity import writable
from samembed.cache.store import open_group_for_writing
from samembed.datasets.base import Chips

DIM, CHIP = 256, 256


def make_cache(folder: Path, n: int) -> str:
    """A complete group of ``n`` chips (grid 1 x 1, so the map adds little); its name."""
    side = int(np.ceil(np.sqrt(n)))
    cols, rows = np.meshgrid(np.arange(side) * CHIP, np.arange(side) * CHIP)
    windows = np.stack([cols.ravel(), rows.ravel(), np.full(side * side, CHIP), np.full(side * side, CHIP)], 1)[:n]
    from rasterio.crs import CRS

    georef = {"scene.tif": {"crs": CRS.from_epsg(32633).to_wkt(), "transform": [10.0, 0.0, 300000.0, 0.0, -10.0,
                                                                                5000000.0],
                            "width": side * CHIP, "height": side * CHIP}}
    chips = Chips(["scene.tif"] * n, windows, georef)
    name = "bench-enc@256"
    group = open_group_for_writing(
        folder, "scene", name, {"encoder": {"encoder": "bench", "img_size": 256}, "grid": 1, "dataset": "scene"},
        class_names=["scene"], image_ids=[f"scene.tif#{c},{r}" for c, r, _, _ in windows], labels=np.zeros(n, int),
        pooled_dims={"neck": DIM}, map_channels=DIM, grid=1, shard_images=65536, chips=chips)
    rng = np.random.default_rng(0)
    block = 65536
    for start in range(0, n, block):
        stop = min(n, start + block)
        writable(group["neck"])[start:stop] = rng.normal(0, 1, (stop - start, DIM)).astype(np.float16)
        writable(group["grid"])[start:stop] = rng.normal(0, 1, (stop - start, DIM, 1, 1)).astype(np.float16)
        writable(group["ok"])[start:stop] = True
        writable(group["error"])[start:stop] = np.full(stop - start, "", dtype=object)
        writable(group["orig_hw"])[start:stop] = CHIP
        writable(group["valid_hw"])[start:stop] = CHIP
        writable(group["done"])[start:stop] = True
    return name


def disk_write_rate(folder: Path, mib: int = 256) -> float:
    """Bytes per second of a sequential write and fsync of ``mib`` MiB here."""
    data = os.urandom(1 << 20)
    path = folder / "rate.bin"
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(data)
        f.flush()
        os.fsync(f.fileno())
    seconds = time.perf_counter() - t0
    path.unlink()
    return mib * (1 << 20) / seconds


def export(cache: Path, out: Path, dtype: str) -> tuple[float, float]:
    """(seconds, the child's own peak RSS in MiB) of one export in a child process. The peak is the
    child's VmHWM, read in the child: getrusage's RUSAGE_CHILDREN would carry this process's peak
    over the fork and exec."""
    code = ("import samembed, sys; from samembed.formats import export_geoparquet; "
            "export_geoparquet(samembed.open_cache(sys.argv[1], 'scene'), sys.argv[2], dtype=sys.argv[3]); "
            "print(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')))")
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, str(cache), str(out), dtype], check=True, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - t0
    return seconds, int(done.stdout.split()[-1]) / 1024


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chips", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="geoparquet-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        name = make_cache(folder / "cache", args.chips)
        print(f"generated {args.chips:,} chips x {DIM} float16 in {time.perf_counter() - t0:.0f} s")
        group_bytes = folder_bytes(folder / "cache" / "scene.zarr" / name)
        neck_bytes = folder_bytes(folder / "cache" / "scene.zarr" / name / "neck")
        rate = disk_write_rate(folder)
        for dtype, width in (("float32", 4), ("float16", 2)):
            out = folder / f"{dtype}.parquet"
            seconds, peak = export(folder / "cache", out, dtype)
            floor = args.chips * DIM * width / rate
            print(f"{dtype}: {args.chips / seconds:,.0f} rows/s ({seconds:.1f} s; floor {floor:.1f} s: "
                  f"{args.chips * DIM * width / 2**20:,.0f} MiB of vectors at {rate / 2**20:.0f} MiB/s written here), "
                  f"peak RSS {peak:,.0f} MiB, file {out.stat().st_size / 2**20:,.1f} MiB")
        print(f"Zarr group on disk: {group_bytes / 2**20:,.1f} MiB ({neck_bytes / 2**20:,.1f} MiB of it the pooled "
              "vectors; float16, zstd, random values do not compress)")


if __name__ == "__main__":
    main()
