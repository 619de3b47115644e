"""One error family. Every user mistake raises a subclass of :class:`SamembedError` whose message
is one line saying what is wrong and how to fix it; the CLI prints it without a traceback
(set ``SAMEMBED_DEBUG=1`` to see one).

Things the user should know but that do not stop the work (an empty class folder left out,
unreadable lines skipped in a runs store) are :class:`SamembedWarning` warnings, issued with
:func:`warn`; the CLI prints each as one ``warning:`` line."""

from __future__ import annotations

import errno
import warnings


class SamembedError(Exception):
    """Base class: a problem the user can fix; ``str(err)`` is the whole, one-line message."""

    exit_code = 1


class UsageError(SamembedError):
    """A bad argument or combination of arguments (unknown name, value out of range, ...)."""


class DataNotFoundError(SamembedError):
    """A dataset is not where it was looked for and may not be downloaded."""


class CorruptImageError(SamembedError):
    """An image file cannot be decoded (``--skip-bad`` skips such files)."""


class ImageFormatError(SamembedError):
    """An image decodes, but not to what the encoder takes without a loss (16-bit or float
    pixels, a band count other than 1 or 3, a mask with more than two values): it needs a
    declared conversion, never a silent one. ``--skip-bad`` does not skip these."""


class CheckpointError(SamembedError):
    """A checkpoint file is missing, unreadable or not in the expected format."""


class MissingExtraError(SamembedError):
    """An optional dependency is not installed; the message names the extra that brings it
    (``pip install "samembed[sam2]"``)."""


class DownloadError(SamembedError):
    """A download failed or its checksum did not match."""


class CacheError(SamembedError):
    """The embedding cache is missing, incomplete, damaged, busy or holds something else."""


class SignatureMismatchError(CacheError):
    """The cache was written with other settings than the ones asked for now."""


class StorageError(SamembedError):
    """The disk refused a write (full, read-only, no permission)."""


class Interrupted(SamembedError):
    """Ctrl-C or SIGTERM stopped the work; the message says what was kept."""

    exit_code = 130


class SamembedWarning(UserWarning):
    """Something the user should know that does not stop the work."""


def warn(message: str) -> None:
    """Issue ``message`` (one line) as a :class:`SamembedWarning`."""
    warnings.warn(message, SamembedWarning, stacklevel=2)


def shortened(value, width: int = 60) -> str:
    """``str(value)`` on one line, cut to ``width`` characters (``...`` marks the cut): a value the
    user gave, quoted in a message."""
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def capped(items, limit: int = 5, width: int = 60, sep: str = ", ") -> str:
    """``items`` as a short list (joined by ``sep``) for a one-line message: the first ``limit`` (each
    :func:`shortened` to ``width`` characters), then ``... and N more``; a message stays one
    readable line however many names it could list (a folder of 100,000 files, a file of 100,000
    unknown keys)."""
    items = list(items)
    shown = [shortened(item, width) for item in items[:limit]]
    more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
    return sep.join(shown) + more


def storage_error(err: OSError, what: str) -> StorageError:
    """One line for an ``OSError`` raised while ``what`` (e.g. "writing cache/eurosat.zarr")."""
    fixes = {
        errno.ENOSPC: "the disk is full: free space (or use another folder) and run the same command again",
        errno.EDQUOT: "the disk quota is exceeded: free space (or use another folder) and run the same command again",
        errno.EROFS: "the file system is read-only: use another folder",
        errno.EACCES: "permission denied: use a folder you can write to",
        errno.EPERM: "permission denied: use a folder you can write to",
    }
    reason = err.strerror or type(err).__name__
    return StorageError(f"{what} failed ({reason}); {fixes.get(err.errno, 'check the disk and run again')}")
