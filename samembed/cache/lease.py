"""A lease on a cache store kept on object storage, where no file lock exists (docs/distributed.md).

The lease is one small JSON object next to the store (``.<dataset>.zarr.lease``), written with a
conditional put: created only if absent (S3 ``If-None-Match: *``), renewed and taken over only if
unchanged since it was read (``If-Match: <etag>``), deleted only if still ours. The holder renews
it every :data:`RENEW_SECONDS`; a lease not renewed for :data:`LEASE_SECONDS` has expired and the
next writer takes it over, so a crashed run locks the store for at most that long. A lease whose
holder ran on this host and is no longer running is taken over at once.

Before each shard is written, every writer of the run checks that the lease is still the run's
(:class:`LeaseCheck`): a run that lost it (its holder stalled longer than the lease time and
another run took over) stops instead of writing shards the other run may be writing too."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from ..errors import CacheError, warn

LEASE_SECONDS = 300  # a lease not renewed for this long has expired
RENEW_SECONDS = 60  # how often the holder renews it


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds")


def process_token(pid: int) -> str | None:
    """What tells process ``pid`` apart from a later process with the same id: the boot id and
    the process's start time (Linux), or ``None`` when they cannot be read."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        with open(f"/proc/{pid}/stat") as f:
            start = f.read().rsplit(")", 1)[1].split()[19]  # field 22, after the command name
        return f"{boot}:{start}"
    except (OSError, IndexError):
        return None


def holder_is_gone(holder: dict) -> bool:
    """True if the lease's holder ran on this host and that process no longer runs."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    pid = holder["pid"]
    token = holder.get("process")
    if token is not None:
        return process_token(pid) != token
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def expired(holder: dict, now: datetime | None = None) -> bool:
    try:
        return (now or _now()) > datetime.fromisoformat(holder["expires"])
    except (KeyError, TypeError, ValueError):
        return True  # not a lease we can read: nobody can be holding it


def describe(holder: dict) -> str:
    """``host h, pid p, <note>, started t``."""
    parts = [f"host {holder.get('host', '?')}", f"pid {holder.get('pid', '?')}"]
    if holder.get("note"):
        parts.append(str(holder["note"]))
    parts.append(f"started {holder.get('started', '?')}")
    return ", ".join(parts)


class ConditionalObjects:
    """Conditional writes of small objects on one file system (the interface :class:`Lease` uses).
    ``atomic`` says whether create-if-absent and replace-if-unchanged are done by the server."""

    atomic: bool = False

    def create(self, key: str, data: bytes) -> str | None:
        """Write ``data`` at ``key`` if nothing is there; its etag, or ``None`` if something was."""
        raise NotImplementedError

    def read(self, key: str) -> tuple[bytes, str] | None:
        """(data, etag) of ``key``, or ``None`` if it does not exist."""
        raise NotImplementedError

    def replace(self, key: str, data: bytes, etag: str) -> str | None:
        """Overwrite ``key`` if its etag is still ``etag``; the new etag, or ``None``."""
        raise NotImplementedError

    def delete(self, key: str, etag: str) -> bool:
        """Delete ``key`` if its etag is still ``etag``."""
        raise NotImplementedError


@dataclass
class Lease:
    """The lease on one store. :meth:`acquire` takes it (or refuses in one line), a thread renews
    it, :meth:`release` gives it back. ``note`` says who holds it (shown to refused writers)."""

    objects: ConditionalObjects
    key: str
    where: str  # the store, as the user names it (messages)
    note: str = ""

    def __post_init__(self):
        self.owner = uuid.uuid4().hex
        self.started = _now()
        self.etag: str | None = None
        self.expires = self.started
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self) -> tuple[bytes, datetime]:
        now = _now()
        expires = now + timedelta(seconds=LEASE_SECONDS)
        record = {"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(),
                  "process": process_token(os.getpid()), "note": self.note, "started": _iso(self.started),
                  "renewed": _iso(now), "expires": _iso(expires), "lease_seconds": LEASE_SECONDS}
        return json.dumps(record).encode(), expires

    def acquire(self) -> None:
        if not self.objects.atomic:
            warn(f"{self.where}: this file system has no conditional writes, so the lease is taken by reading "
                 "then writing; two runs started at the same moment could both take it: start one at a time")
        for _ in range(5):
            data, expires = self._record()
            etag = self.objects.create(self.key, data)
            if etag is None:
                found = self.objects.read(self.key)
                if found is None:  # released meanwhile: try again
                    continue
                raw, their_etag = found
                holder = _parse(raw)
                if not expired(holder) and not holder_is_gone(holder):
                    raise CacheError(
                        f"another samembed extraction is writing to {self.where} ({describe(holder)}); its lease "
                        f"runs until {holder.get('expires')} and is renewed while it runs: wait for it to finish "
                        "(a crashed run's lease expires then), or use another --cache-dir")
                etag = self.objects.replace(self.key, data, their_etag)
                if etag is None:  # another run took it over first: look again
                    continue
                why = "its process is gone" if not expired(holder) else f"expired {holder.get('expires', '?')}"
                warn(f"took over the lease on {self.where} of a run that stopped without giving it back "
                     f"({describe(holder)}; {why})")
            self.etag, self.expires = etag, expires
            self._thread = threading.Thread(target=self._renew, name="samembed-lease", daemon=True)
            self._thread.start()
            return
        raise CacheError(f"other runs keep taking the lease on {self.where}; run one extraction at a time")

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_SECONDS):
            data, expires = self._record()
            try:
                etag = self.objects.replace(self.key, data, self.etag)
            except Exception as err:  # the network: try again at the next turn, until the lease runs out
                if _now() > self.expires:
                    self.lost = f"it could not be renewed before it expired ({type(err).__name__}: {err})"
                    return
                continue
            if etag is None:
                self.lost = "another run took it over after it expired"
                return
            self.etag, self.expires = etag, expires

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.etag is None or self.lost:
            return
        try:
            self.objects.delete(self.key, self.etag)
        except Exception as err:  # the work is done; the lease only expires later
            warn(f"could not remove the lease on {self.where} ({type(err).__name__}); it expires by itself at "
                 f"{_iso(self.expires)}")

    def check(self) -> None:
        """Raise if this run no longer holds the lease."""
        if self.lost:
            raise CacheError(f"stopped writing to {self.where}: this run lost its lease ({self.lost}); check that "
                             "no other run writes there, then run the same command again")
        try:
            LeaseCheck(self.objects, self.key, self.owner, self.where)()
        except CacheError:
            self.lost = "another run holds it"
            raise


@dataclass(frozen=True)
class LeaseCheck:
    """Called before a shard is written: raises unless the lease at ``key`` is still held by
    ``owner`` and not expired (every rank of a distributed run checks its run's lease)."""

    objects: ConditionalObjects
    key: str
    owner: str
    where: str

    def __call__(self) -> None:
        found = self.objects.read(self.key)
        holder = _parse(found[0]) if found else {}
        if holder.get("owner") != self.owner or expired(holder):
            now = "gone" if not found else (f"held by {describe(holder)}" if holder.get("owner") != self.owner
                                             else f"expired at {holder.get('expires')}")
            raise CacheError(f"stopped writing to {self.where}: this run's lease is {now}; another run may be "
                             "writing there: check, then run the same command again")


def _parse(raw: bytes) -> dict:
    try:
        holder = json.loads(raw)
        return holder if isinstance(holder, dict) else {}
    except (ValueError, UnicodeDecodeError):
        return {}


def content_etag(data: bytes) -> str:
    """An etag computed from the content, for file systems that give none."""
    return hashlib.sha256(data).hexdigest()[:32]
