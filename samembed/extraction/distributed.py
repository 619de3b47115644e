"""Extraction by several processes at once, launched by ``torchrun`` (docs/distributed.md).

Every process (rank) plans the same extraction. Rank 0 takes the store's writer lock (a file lock
in a local folder, a lease on object storage), creates or checks the group, and hands every rank
its own pending shards (:func:`assign_shards`); the others then check that they see the same
group with the same signature. Each rank encodes its shards on its own GPU (``cuda:LOCAL_RANK``)
with its own loader workers, writing its shards as one process does, and logs its own run; the run ends when
every rank has finished, and rank 0 returns the summary. Ranks exchange only small Python objects:
the process group is NCCL on GPUs (these messages go through a gloo group beside it, so a rank
that waits long for the slowest one never trips NCCL's watchdog) and gloo on CPUs."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
import zarr

from ..cache.layout import DONE_PER_IMAGE
from ..cache.signature import first_difference
from ..cache.store import child_names, pending_counts, prepare_run_logs
from ..errors import CacheError, SamembedError, UsageError
from .encode import ExtractResult, encode_shards
from .plan import ExtractionPlan, default_workers, plan_extraction

# Ranks wait at the start for rank 0 (which may download weights) and at the end for the slowest
# rank; torchrun stops every rank at once when one of them dies, so a long wait is never a hang.
TIMEOUT = timedelta(hours=24)


@dataclass(frozen=True)
class Ranks:
    """This process's place in a run launched by torchrun."""

    rank: int
    world_size: int
    local_rank: int = 0  # on this node
    local_world_size: int = 1  # processes on this node


def ranks_from_environment(env: Mapping[str, str] | None = None) -> Ranks | None:
    """The ranks torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``), or
    ``None`` for a process that was not launched by torchrun."""
    env = os.environ if env is None else env
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return None
    try:
        ranks = Ranks(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)),
                      int(env.get("LOCAL_WORLD_SIZE", 1)))
    except ValueError:
        raise UsageError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers; launch distributed extraction "
                         "with torchrun, which sets them") from None
    if not 0 <= ranks.rank < ranks.world_size or not 0 <= ranks.local_rank < ranks.local_world_size:
        raise UsageError(f"RANK {ranks.rank} of WORLD_SIZE {ranks.world_size} (LOCAL_RANK {ranks.local_rank} of "
                         f"{ranks.local_world_size}) is not a valid place; launch with torchrun, which sets them")
    return ranks


def assign_shards(pending: Mapping[int, int], world_size: int) -> list[list[int]]:
    """Each rank's shards: disjoint, together all of ``pending`` ({shard: images not yet stored}),
    and balanced by images. Deterministic: the largest shards first (ties by shard number), each
    to the rank with the fewest images so far (ties: the lowest rank). A fresh extraction gives
    rank r the shards r, r + W, r + 2W, ..."""
    loads, owned = [0] * world_size, [[] for _ in range(world_size)]
    for shard in sorted(pending, key=lambda s: (-pending[s], s)):
        rank = min(range(world_size), key=lambda r: (loads[r], r))
        owned[rank].append(int(shard))
        loads[rank] += int(pending[shard])
    return [sorted(shards) for shards in owned]


def rank_device(device: str, ranks: Ranks) -> str:
    """``auto`` and ``cuda`` become this rank's GPU, ``cuda:LOCAL_RANK`` (``cuda:0`` when each
    process sees one GPU of its own, as Slurm's ``--gpus-per-task=1`` gives); any other device
    is kept as it is."""
    if device not in ("auto", "cuda"):
        return device
    count = torch.cuda.device_count()
    if count == 0:
        if device == "cuda":
            raise UsageError("--device cuda was asked for but no CUDA device is visible; use --device cpu or auto")
        return "cpu"
    if count >= ranks.local_world_size:
        return f"cuda:{ranks.local_rank}"
    if count == 1:
        return "cuda:0"
    raise UsageError(f"{ranks.local_world_size} processes on this node but {count} GPUs are visible; start one "
                     f"process per GPU (torchrun --nproc-per-node {count})")


@contextlib.contextmanager
def process_group(device: str):
    """The default process group for the length of the block (NCCL on a GPU, gloo on the CPU);
    yields the group for this module's messages (a gloo group beside NCCL). A group the caller
    initialised is used and left as it is."""
    if dist.is_initialized():
        yield dist.new_group(backend="gloo", timeout=TIMEOUT) if dist.get_backend() == "nccl" else None
        return
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(torch.device(device))
    try:
        dist.init_process_group(backend, timeout=TIMEOUT)
    except (ValueError, RuntimeError) as err:
        raise UsageError(f"cannot start the process group ({' '.join(str(err).split())[:160]}); launch with "
                         "torchrun, which sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT") from None
    try:
        yield dist.new_group(backend="gloo", timeout=TIMEOUT) if backend == "nccl" else None
    finally:
        dist.destroy_process_group()


def _attempt(function, *args, **kwargs):
    """(result, None), or (None, the one-line message of a samembed error)."""
    try:
        return function(*args, **kwargs), None
    except SamembedError as err:
        return None, err


def _raise_first(failures: list, ranks: Ranks) -> None:
    """Every rank stops when one of them could not start: its own error, or one naming the rank."""
    for rank, failure in enumerate(failures):
        if failure is None:
            continue
        if rank == ranks.rank and isinstance(failure, SamembedError):
            raise failure
        raise SamembedError(f"stopped because rank {rank} could not start: {failure}")


def extract_distributed(
    ranks: Ranks, plan_options: dict, *, batch_size: int | None = None, workers: int | None = None,
    skip_bad: bool = False, progress: bool = True, compile: bool = False, overwrite: bool = False,
) -> ExtractResult:
    """One rank's part of a distributed extraction (``plan_options`` go to
    :func:`~samembed.extraction.plan.plan_extraction`). Rank 0 returns the whole run's result
    (``ranks`` lists every rank's part); the others return their own part."""
    device = rank_device(plan_options.get("device", "auto"), ranks)
    options = {**plan_options, "device": device}
    if workers is None:
        workers = default_workers(device, ranks.local_world_size)
    with process_group(device) as control, contextlib.ExitStack() as held:
        # 1. Rank 0, and the first rank of every node (so that weights are downloaded once per node),
        #    plan; rank 0 takes the writer lock, opens the group and hands out the shards.
        plan = group = hold = setup = failure = None
        if ranks.local_rank == 0 or ranks.rank == 0:
            plan, failure = _attempt(plan_extraction, **options)
        if ranks.rank == 0 and failure is None:
            opened, failure = _attempt(_open_as_leader, plan, ranks, held, overwrite)
            if failure is None:
                group, hold, setup = opened
        message = [setup, failure and str(failure)]
        dist.broadcast_object_list(message, src=0, group=control)
        setup = message[0]
        if message[1] is not None:
            _raise_first([failure if ranks.rank == 0 else message[1]] + [None] * (ranks.world_size - 1), ranks)
        # 2. The others plan (reading what rank 0 stored) and check that they see the same group.
        if plan is None and failure is None:
            plan, failure = _attempt(plan_extraction, **options)
        if ranks.rank != 0 and failure is None:
            group, failure = _attempt(_join, plan, setup, ranks)
        failures: list = [None] * ranks.world_size
        dist.all_gather_object(failures, failure and str(failure), group=control)
        _raise_first([failure if r == ranks.rank else f for r, f in enumerate(failures)], ranks)
        # 3. Each rank encodes its own shards.
        shards = setup["shards"][ranks.rank]
        check = hold.check if hold is not None else plan.cache_dir.writer_check(plan.index.name, setup["owner"])
        result = encode_shards(plan, group, shards, batch_size=batch_size, workers=workers, skip_bad=skip_bad,
                               progress=progress and ranks.rank == 0, compile=compile, check=check,
                               log={"rank": ranks.rank, "world_size": ranks.world_size, "shards": shards})
        # 4. The run ends when every rank has finished.
        part = {"rank": ranks.rank, "host": socket.gethostname(), "device": device, "shards": len(shards),
                "encoded": result.encoded, "skipped": result.skipped, "blank": result.blank,
                "seconds": round(result.seconds, 3)}
        parts: list = [None] * ranks.world_size
        dist.all_gather_object(parts, part, group=control)
    result.world_size, result.rank = ranks.world_size, ranks.rank
    if ranks.rank == 0:
        result.ranks = parts
        result.encoded, result.skipped = sum(p["encoded"] for p in parts), sum(p["skipped"] for p in parts)
        result.blank = sum(p["blank"] for p in parts)
        result.seconds = max(p["seconds"] for p in parts)
        plan.describe_group()
    return result


def _open_as_leader(plan: ExtractionPlan, ranks: Ranks, held: contextlib.ExitStack, overwrite: bool):
    """Rank 0: hold the store's writer lock until the run ends, open or create the group, and
    give every rank its shards. Returns (group, lease or None, the setup sent to every rank)."""
    note = f"a distributed run of {ranks.world_size} processes"
    hold = held.enter_context(plan.cache_dir.writer_lock(plan.index.name, note))
    group = plan.open_group(overwrite)
    if group.attrs.get("done_unit") != DONE_PER_IMAGE:
        raise CacheError(f"{plan.store}/{plan.group_name} was made by an older samembed (a done flag per shard); "
                         "finish it with one process (samembed extract without torchrun), or start it over with "
                         "--overwrite")
    prepare_run_logs(group)
    setup = {"group": plan.group_name, "signature": plan.signature, "owner": getattr(hold, "owner", None),
             "shards": assign_shards(pending_counts(group), ranks.world_size)}
    return group, hold, setup


def _join(plan: ExtractionPlan, setup: dict, ranks: Ranks) -> zarr.Group:
    """Any rank but 0: the group rank 0 opened, checked to be the one this rank planned."""
    where = f"{plan.store}/{setup['group']}"
    me = f"rank {ranks.rank} (host {socket.gethostname()})"
    if plan.group_name != setup["group"]:
        raise CacheError(f"{me} planned the group {plan.group_name}, rank 0 {setup['group']}: every process must "
                         "run the same command")
    diff = first_difference(setup["signature"], plan.signature)
    if diff is not None:
        key, theirs, mine = diff
        raise CacheError(f"{me} planned {key}={mine!r} but rank 0 {theirs!r}: every node must see the same dataset, "
                         "weights and options")
    location, dataset = plan.cache_dir, plan.index.name
    try:
        found = f"{dataset}.zarr" in location.store_names() and setup["group"] in child_names(
            location.open_store(dataset))
    except SamembedError:
        raise
    except Exception:
        found = False
    if not found:
        raise CacheError(f"{me} does not see the cache group {where} that rank 0 opened; with several nodes, "
                         "--cache-dir must be a shared folder or an object-store URL")
    return location.open_store(dataset, mode="r+", path=setup["group"])
