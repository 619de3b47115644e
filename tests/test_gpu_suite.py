"""benchmarks/gpu_suite.py, the one-command GPU measurement, in its reduced form on the CPU: it
runs its steps in their own processes, writes one JSON and one markdown table, and goes on where
it stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _suite(out: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_suite.py"), "--quick", "--device", "cpu",
                           "--out", str(out), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_the_gpu_suite_runs_reduced_on_the_cpu_and_resumes(tmp_path):
    out = tmp_path / "suite"
    stopped = _suite(out, "--max-minutes", "0")
    assert stopped.returncode == 0 and "stopped before bench:tiny:b2" in stopped.stdout

    done = _suite(out, "--only", "bench:tiny,extract")
    assert done.returncode == 0, done.stdout + done.stderr
    suite = json.loads((out / "gpu_suite.json").read_text())
    assert set(suite["steps"]) == {"bench:tiny:b2", "extract", "extract-profile"}
    assert all(step["status"] == "ok" for step in suite["steps"].values())
    assert suite["environment"]["device"].startswith("cpu") and suite["environment"]["torch"]

    (row,) = suite["steps"]["bench:tiny:b2"]["result"]
    assert row["reference_ips"] > 0 and row["encoder_ips"] > 0 and row["extraction_ips"] > 0
    assert row["cosine_min"] > 0.99999
    assert (row["flex_ips"] or 0) > 0 or "FlexAttention" in row["flex_note"]

    assert suite["steps"]["extract"]["result"]["images"] == 40
    profiled = suite["steps"]["extract-profile"]["result"]
    assert profiled["images"] == 20 and (out / "extract_trace.json.gz").exists()
    assert profiled["seconds"]["encode_calls"] > 0 and profiled["seconds"]["write"] > 0
    assert all(0 <= share <= 1 for share in profiled["share"].values())

    table = (out / "gpu_suite.md").read_text()
    assert "| bench:tiny:b2 | tiny_sam.pth | 64 | 2 |" in table
    assert f"{row['encoder_ips']:.1f} (x{row['encoder_ips'] / row['reference_ips']:.2f})" in table
    assert "| encoder calls (host) |" in table and "| extract-profile | ok |" in table

    again = _suite(out, "--only", "bench:tiny,extract")  # everything asked for is there: nothing runs
    assert again.returncode == 0 and "..." not in again.stdout


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a CUDA device is here")
def test_the_full_suite_without_a_gpu_ends_in_one_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_suite.py"), "--out", str(tmp_path / "s")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == ["gpu_suite: no CUDA device here; the suite measures a GPU "
                                                "(python benchmarks/gpu_suite.py --quick checks the script on the CPU)"]
    assert not (tmp_path / "s" / "gpu_suite.json").exists()
