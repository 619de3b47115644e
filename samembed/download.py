"""Resumable, verified downloads.

torchvision's ``download_url`` restarts from zero after an interruption and knows only md5; the
SAM checkpoints are up to 2.5 GB and published with sha256. So the transfer is ours (HTTP Range
resume into ``<file>.part``, a tqdm bar, an atomic rename only after the checksum matched) and
md5 verification and archive extraction are torchvision's."""

from __future__ import annotations

import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from .errors import DownloadError
from .hashing import sha256sum

USER_AGENT = "samembed"
_BLOCK = 1 << 20


def _fetch(url: str, part: Path, timeout: float) -> None:
    """Append the rest of ``url`` to ``part``, resuming from its current size."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to fetch: the .part is already whole
            return
        raise
    with response:
        if have and response.status != 206:  # server ignored Range: start again
            have = 0
        total = response.headers.get("Content-Length")
        total = int(total) + have if total is not None else None
        mode = "ab" if have else "wb"
        got = have
        with open(part, mode) as f, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
            desc=part.name.removesuffix(".part"), leave=False,
        ) as bar:
            while block := response.read(_BLOCK):
                f.write(block)
                got += len(block)
                bar.update(len(block))
    if total is not None and got < total:  # urllib reads a dropped connection as a clean end
        raise ConnectionError(f"connection closed after {got} of {total} bytes")


def verify(path: Path, md5: str | None = None, sha256: str | None = None) -> bool:
    """True when ``path`` matches every checksum given."""
    from torchvision.datasets.utils import check_integrity

    if md5 and not check_integrity(str(path), md5):
        return False
    if sha256 and sha256sum(path) != sha256:  # memoised: a verified 2.5 GB file is not re-read each run
        return False
    return True


def download_file(
    url: str, dest: str | os.PathLike, *, md5: str | None = None, sha256: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` unless a verified copy is already there.

    An interrupted transfer leaves ``dest.part`` and is resumed by the next call. ``dest``
    appears only once the whole file matched its checksum; a mismatch deletes the partial file
    and raises :class:`DownloadError`."""
    dest = Path(dest)
    if dest.exists():
        if verify(dest, md5, sha256):
            return dest
        dest.unlink()  # a stale or damaged copy: fetch again
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        _fetch(url, part, timeout)
    except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as err:
        reason = " ".join(str(getattr(err, "reason", err)).split())  # one line, even for a raw status line
        raise DownloadError(
            f"could not download {url} ({reason}); check the network and run again to resume, "
            f"or fetch the file by hand and save it as {dest}"
        ) from err
    if not verify(part, md5, sha256):
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"the download of {url} does not match its checksum; the partial file was removed, "
            "run again to download it afresh"
        )
    os.replace(part, dest)
    return dest


# Errors that mean "the weights could not be fetched": no network, a refusing proxy, a server
# error, a hub that is offline or lacks the file. Anything else raised while fetching is a bug and
# keeps its traceback.
_HUB_ERRORS = {"HfHubHTTPError", "LocalEntryNotFoundError", "OfflineModeIsEnabled", "RepositoryNotFoundError",
               "EntryNotFoundError", "RevisionNotFoundError", "GatedRepoError"}


def is_fetch_error(err: BaseException) -> bool:
    """Whether ``err``, raised while fetching weights (torchvision, timm, the Hugging Face hub),
    means they could not be downloaded."""
    if isinstance(err, (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException, ConnectionError)):
        return True
    if isinstance(err, RuntimeError) and "hash" in str(err).lower():  # torch.hub's check_hash
        return True
    return any(cls.__name__ in _HUB_ERRORS for cls in type(err).__mro__)


def download_recorded(url: str, dest: str | os.PathLike, *, timeout: float = 60.0) -> Path:
    """Download a file published without a checksum: the first download (or a copy put there by
    hand) has its sha256 recorded beside it, in ``<dest>.sha256``; every later use checks the file
    against that record (:func:`check_recorded`), so a file that changed is never used silently."""
    dest = Path(dest)
    if not dest.exists():
        download_file(url, dest, timeout=timeout)
    return check_recorded(dest)


def check_recorded(path: str | os.PathLike) -> Path:
    """``path``, checked against the sha256 recorded beside it (``<path>.sha256``); with no record
    yet (its first use), its sha256 is recorded now. A file that does not match is refused in one
    line: another file under the same name is never used silently."""
    path = Path(path)
    record = path.with_name(path.name + ".sha256")
    digest = sha256sum(path)
    if not record.exists():
        record.write_text(f"{digest}  {path.name}\n")
        return path
    recorded = (record.read_text(errors="replace").split() or [""])[0]
    if digest != recorded:
        raise DownloadError(f"{path} does not match the sha256 recorded at its first download ({record}); delete "
                            "both to download it afresh")
    return path
