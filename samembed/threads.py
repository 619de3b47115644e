"""CPU threads for every CPU stage on a shared machine: training loops, prompting, extraction
on the CPU, and any later stage (a search) that wraps its loop in :func:`cpu_threads`.

torch runs a CPU op on an OpenMP pool of one thread per core, and the op ends when its slowest
thread does. When another process keeps a core busy, the thread on that core is descheduled and
every parallel op waits for it: a loop of many small ops (a head's training step) ran about 24
times slower on 2 cores shared with one busy process, and prompts (SAM's decoder) ran at 2.4 a
second with 2 threads against 12.1 with 1. So each stage runs with as many threads as there are
idle cores, measured once when it starts (``SAMEMBED_THREADS`` sets the number instead), and
never more than torch's own default (``OMP_NUM_THREADS``, the cores)."""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator

SAMPLE_SECONDS = 0.1  # how long /proc/stat is watched
REUSE_SECONDS = 30.0  # a measurement younger than this is reused
IDLE_SHARE = 0.75  # a core counts as free when at least this share of it is idle

_last: tuple[float, float] | None = None  # (when, idle cores)


def _proc_stat() -> tuple[float, float] | None:
    """(busy, total) seconds of all cores since boot, or ``None`` without /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return (sum(fields[:8]) - idle) / ticks, sum(fields[:8]) / ticks


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def idle_cores(sample_seconds: float = SAMPLE_SECONDS) -> float:
    """Cores left idle by other processes: watched in /proc/stat for ``sample_seconds`` (this
    process's own use taken out), else from the 1-minute load average."""
    global _last
    now = time.monotonic()
    if _last is not None and now - _last[0] < REUSE_SECONDS:
        return _last[1]
    cores = available_cores()
    first, own = _proc_stat(), _own_cpu()
    if first is None:
        try:
            idle = max(0.0, cores - os.getloadavg()[0])
        except (AttributeError, OSError):
            idle = float(cores)
    else:
        time.sleep(sample_seconds)
        second, own = _proc_stat(), _own_cpu() - own
        busy, total = second[0] - first[0], second[1] - first[1]
        machine = os.cpu_count() or cores
        others = max(0.0, busy - own) / max(total, 1e-9) * machine  # cores' worth busy elsewhere
        idle = max(0.0, min(float(cores), machine - others))
    _last = (now, idle)
    return idle


def stage_threads(default: int) -> int:
    """Threads for a CPU stage: ``SAMEMBED_THREADS`` if set, else the idle cores (a core at
    least :data:`IDLE_SHARE` idle counts), between 1 and ``default`` (torch's own number)."""
    given = os.environ.get("SAMEMBED_THREADS", "").strip()
    if given.isdigit() and int(given) > 0:
        return int(given)
    return max(1, min(default, math.floor(idle_cores() + (1 - IDLE_SHARE))))


training_threads = stage_threads  # the name of release 0.1.0


@contextlib.contextmanager
def cpu_threads(device) -> Iterator[int | None]:
    """Run the block with :func:`stage_threads` torch threads when ``device`` is the CPU (yields
    the number; ``None`` on other devices, whose loops are not affected). torch's thread count
    is the process's: the block sets it for the whole process while it runs, and restores it."""
    if getattr(device, "type", str(device)) != "cpu":
        yield None
        return
    import torch

    before = torch.get_num_threads()
    threads = stage_threads(before)
    if threads != before:
        torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        if threads != before:
            torch.set_num_threads(before)
