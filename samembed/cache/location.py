"""Where a cache lives: a local folder, or a URL on object storage (``s3://bucket/prefix``,
``gs://...``, any fsspec URL) opened through zarr's own :class:`zarr.storage.FsspecStore`.

Everything that differs between the two is here, behind :class:`CacheLocation`: opening a
dataset's store, listing the stores, deleting a group, the bytes a group takes, and keeping other
writers out (a file lock on a local folder, a lease object on object storage,
:mod:`samembed.cache.lease`). Credentials for object storage come from where their library looks
(for S3: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``~/.aws``, instance
roles; ``AWS_ENDPOINT_URL`` for another S3-compatible server), never from samembed's options."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
from pathlib import Path

import zarr

from ..errors import CacheError, UsageError, storage_error
from ..locks import LockBusy, file_lock
from .conditional import FsspecObjects, S3Objects
from .lease import ConditionalObjects, Lease, LeaseCheck

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/")  # two letters at least: "C:/" is a Windows drive


def cache_location(where: str | Path | CacheLocation) -> CacheLocation:
    """``where`` (a folder, ``file://`` URL or fsspec URL) as a :class:`CacheLocation`."""
    if isinstance(where, CacheLocation):
        return where
    text = os.fspath(where)
    match = _URL.match(text)
    if match is None:
        return LocalCache(Path(text))
    scheme = match.group(1).lower()
    rest = text[match.end():].lstrip("/")  # a Path turns "s3://b" into "s3:/b": both mean the same
    if scheme == "file":
        return LocalCache(Path("/" + rest))
    return RemoteCache(f"{scheme}://{rest}".rstrip("/"))


def _one_line(err: BaseException) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())[:200]


class CacheLocation:
    """The folder or URL that holds one Zarr store per dataset (``<dataset>.zarr``)."""

    def store_ref(self, dataset: str) -> Path | str:
        """The dataset's store: a Path for a local folder, a URL otherwise."""
        raise NotImplementedError

    def open_store(self, dataset: str, mode: str = "r", path: str = "") -> zarr.Group:
        """The group at ``path`` (default: the root) of the dataset's store."""
        raise NotImplementedError

    def store_names(self) -> list[str]:
        """Names of the ``*.zarr`` stores here, sorted."""
        raise NotImplementedError

    def remove_group(self, dataset: str, name: str) -> None:
        """Delete group ``name`` of the dataset's store, whatever its state."""
        raise NotImplementedError

    def nbytes(self, dataset: str, name: str) -> int:
        """Bytes stored for group ``name`` of the dataset's store."""
        raise NotImplementedError

    def writer_lock(self, dataset: str, note: str = ""):
        """Context manager: keep other writers off the dataset's store (one line if one holds it);
        yields a check to call before each shard is written (or ``None`` when none is needed).
        ``note`` describes this run to a writer that is refused."""
        raise NotImplementedError

    def writer_check(self, dataset: str, owner: str | None):
        """The check of another process of the same run (a distributed run), or ``None``."""
        return None

    def __str__(self) -> str:
        raise NotImplementedError


class LocalCache(CacheLocation):
    """A folder on this machine (or a shared file system); writers hold a file lock."""


    def __init__(self, path: Path):
        self.path = path

    def __str__(self) -> str:
        return str(self.path)

    def check(self) -> Path:
        if self.path.exists() and not self.path.is_dir():
            raise CacheError(f"--cache-dir {self.path} is a file, not a folder; pass a folder (it is created if missing)")
        return self.path

    def store_ref(self, dataset: str) -> Path:
        return self.path / f"{dataset}.zarr"

    def open_store(self, dataset: str, mode: str = "r", path: str = "") -> zarr.Group:
        store = self.store_ref(dataset)
        return zarr.open_group(store / path if path else store, mode=mode)

    def store_names(self) -> list[str]:
        if not self.check().is_dir():
            return []
        return sorted(p.name for p in self.path.glob("*.zarr"))

    def remove_group(self, dataset: str, name: str) -> None:
        where = self.store_ref(dataset) / name
        try:
            shutil.rmtree(where)
        except FileNotFoundError:
            pass
        except OSError as err:
            raise storage_error(err, f"deleting {where}") from None

    def nbytes(self, dataset: str, name: str) -> int:
        return sum(p.stat().st_size for p in (self.store_ref(dataset) / name).rglob("*") if p.is_file())

    @contextlib.contextmanager
    def writer_lock(self, dataset: str, note: str = ""):
        """The lock goes with this process (never with its loader workers), so a killed extraction
        frees it at once."""
        try:
            self.check().mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise storage_error(err, f"creating the cache folder {self.path}") from None
        holder = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "note": note})
        lock = self.path / f".{dataset}.zarr.lock"
        try:
            with file_lock(lock, wait=False, note=holder):
                yield None
        except LockBusy as busy:
            who = _holder_text(busy.note)
            raise CacheError(f"another samembed extraction is writing to {self.store_ref(dataset)}{who}; "
                             "wait for it to finish, or use another --cache-dir") from None


def _holder_text(note: str) -> str:
    try:
        holder = json.loads(note)
        parts = [f"host {holder['host']}", f"pid {holder['pid']}"] + ([holder["note"]] if holder.get("note") else [])
        return f" ({', '.join(parts)})"
    except (ValueError, KeyError, TypeError):
        return ""


class RemoteCache(CacheLocation):
    """A prefix on object storage (any fsspec URL), read and written through zarr's FsspecStore;
    writers hold a lease object (:class:`~samembed.cache.lease.Lease`)."""


    def __init__(self, url: str):
        self.url = url
        self.protocol = url.split("://", 1)[0]
        self._fs = None
        self._root = ""

    def __str__(self) -> str:
        return self.url

    @property
    def fs(self):
        """The (asynchronous) fsspec file system, opened and checked once."""
        if self._fs is None:
            from zarr.storage import FsspecStore

            try:  # listings are not cached: other processes write here too
                store = FsspecStore.from_url(self.url, storage_options={"use_listings_cache": False})
            except ImportError as err:
                raise UsageError(f"--cache-dir {self.url} needs a package that is not installed: "
                                 f"{' '.join(str(err).split())}") from None
            except (ValueError, TypeError) as err:
                raise UsageError(f"--cache-dir {self.url} is not a folder or a URL fsspec can open "
                                 f"({_one_line(err)})") from None
            self._fs, self._root = store.fs, store.path.rstrip("/")
            self._check_access()
        return self._fs

    def _sync(self, coroutine):
        from zarr.core.sync import sync

        return sync(coroutine)

    def _path(self, *parts: str) -> str:
        return "/".join([self._root, *parts])

    def _check_access(self) -> None:
        """One line for a missing bucket, refused credentials or an unreachable server."""
        fs = self._fs
        for path in (self._root, self._root.split("/")[0]):
            try:
                self._sync(fs._ls(path, detail=False))
                return
            except FileNotFoundError:
                if "/" not in path.strip("/"):
                    raise CacheError(f"the bucket '{path}' of --cache-dir {self.url} does not exist; create it, or "
                                     "pass a bucket that exists") from None
            except PermissionError as err:
                raise CacheError(f"{self.url} refused the credentials ({_one_line(err)}); "
                                 f"{_credentials_hint(self.protocol)}") from None
            except Exception as err:  # no connection, a wrong endpoint, ...
                raise CacheError(f"cannot reach {self.url} ({_one_line(err)}); check the network, the endpoint "
                                 "(AWS_ENDPOINT_URL for S3-compatible servers) and the credentials") from None

    def store_ref(self, dataset: str) -> str:
        return f"{self.url}/{dataset}.zarr"

    def open_store(self, dataset: str, mode: str = "r", path: str = "") -> zarr.Group:
        from zarr.storage import FsspecStore

        store = FsspecStore(self.fs, path=self._path(f"{dataset}.zarr"), read_only=mode == "r")
        try:
            return zarr.open_group(store, path=path, mode=mode)
        except PermissionError as err:
            raise CacheError(f"{self.url} refused the credentials ({_one_line(err)}); "
                             f"{_credentials_hint(self.protocol)}") from None

    def store_names(self) -> list[str]:
        try:
            found = self._sync(self.fs._ls(self._root, detail=False))
        except FileNotFoundError:
            return []
        return sorted(name for name in (p.rstrip("/").rsplit("/", 1)[-1] for p in found) if name.endswith(".zarr"))

    def remove_group(self, dataset: str, name: str) -> None:
        try:
            self._sync(self.fs._rm(self._path(f"{dataset}.zarr", name), recursive=True))
        except FileNotFoundError:
            pass

    def nbytes(self, dataset: str, name: str) -> int:
        try:
            return int(self._sync(self.fs._du(self._path(f"{dataset}.zarr", name), total=True)))
        except FileNotFoundError:
            return 0

    def _objects(self) -> ConditionalObjects:
        return S3Objects(self.fs) if self.protocol in ("s3", "s3a") else FsspecObjects(self.fs, self._sync)

    def _lease_key(self, dataset: str) -> str:
        return self._path(f".{dataset}.zarr.lease")

    @contextlib.contextmanager
    def writer_lock(self, dataset: str, note: str = ""):
        lease = Lease(self._objects(), self._lease_key(dataset), self.store_ref(dataset), note)
        lease.acquire()
        try:
            yield lease
        finally:
            lease.release()

    def writer_check(self, dataset: str, owner: str | None):
        if owner is None:
            return None
        return LeaseCheck(self._objects(), self._lease_key(dataset), owner, self.store_ref(dataset))


def _credentials_hint(protocol: str) -> str:
    if protocol in ("s3", "s3a"):
        return ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) to credentials that may read and "
                "write there")
    if protocol in ("gs", "gcs"):
        return "set GOOGLE_APPLICATION_CREDENTIALS (or log in with gcloud) to an account that may read and write there"
    return f"give {protocol}:// credentials that may read and write there, the way its fsspec library reads them"
