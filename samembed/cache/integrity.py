"""What is stored is what is read (docs/cache-format.md, "Integrity").

Every chunk of a group's arrays carries a CRC-32C checksum (zarr v3's ``crc32c`` codec, after the
compressor; sharded arrays have it on every inner chunk and on the shard index), so a flipped
byte is an error on read instead of other numbers. Float arrays are filled with NaN and every
chunk is written, even one equal to the fill value, so a chunk file that is missing reads as NaN
(float arrays) or is absent from the store listing (the others), never as zeros.

:class:`CheckedArray` is the one way samembed reads a group's arrays: a read that fails its
checksum, cannot be decoded, or meets a missing chunk of an image the group says is stored,
raises one line naming the array and the image range. Groups written before checksums keep
working and are *unverifiable*: a read is checked for decoding only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec
from zarr.core.sync import sync

from ..errors import CacheError

CHECKSUM = Crc32cCodec()
VERIFY_HINT = "run the extraction again with --overwrite to rebuild the group (`samembed verify` checks the whole cache)"


def compressors(compressor, text: bool) -> tuple:
    """The bytes-to-bytes codecs of a new array: its compressor (none for text), then the checksum."""
    return (CHECKSUM,) if text else (compressor, CHECKSUM)


def fill_value(dtype: str):
    """NaN for float arrays (a missing chunk is then visible in what is read), else the zero of the type."""
    if dtype == "str":
        return ""
    return float("nan") if np.dtype(dtype).kind == "f" else 0


def writable(array: zarr.Array) -> zarr.Array:
    """``array`` set to write every chunk, even one equal to the fill value (zarr skips those by
    default), so every stored image's chunk exists and a missing one is damage."""
    return array.with_config({"write_empty_chunks": True})


def _codec_names(codecs) -> set[str]:
    names = set()
    for codec in codecs:
        names.add(type(codec).__name__)
        names |= _codec_names(getattr(codec, "codecs", ()))  # the inner chunks of a sharded array
    return names


def has_checksums(array: zarr.Array) -> bool:
    """Whether every chunk of ``array`` carries a CRC-32C checksum."""
    return type(CHECKSUM).__name__ in _codec_names(getattr(array.metadata, "codecs", ()))


@dataclass(frozen=True)
class Damage:
    """A damaged part of an array: images ``start``..``stop - 1`` and why."""

    array: str
    start: int
    stop: int
    reason: str  # "a chunk fails its checksum", "a chunk is missing", ...

    @property
    def images(self) -> str:
        return f"images {self.start}-{self.stop - 1}" if self.stop - self.start > 1 else f"image {self.start}"

    def __str__(self) -> str:
        return f"'{self.array}' {self.images} ({self.reason})"


def damage_error(where: str, damage: Damage) -> CacheError:
    return CacheError(f"the array '{damage.array}' of {where} is damaged at {damage.images} ({damage.reason}); "
                      f"{VERIFY_HINT}")


def reason_of(err: Exception) -> str:
    """Why a chunk could not be read, in a few words."""
    text = str(err).lower()
    if "checksum" in text:
        return "a chunk fails its checksum"
    return f"a chunk cannot be decoded: {type(err).__name__}"


def stored_blocks(array: zarr.Array) -> set[int]:
    """The indices along the first axis of the chunk (or shard) files stored for ``array``."""
    block_rows = array.shards[0] if array.shards else array.chunks[0]
    if array.ndim == 0 or block_rows <= 0:
        return set()
    prefix = f"{array.path}/c/" if array.path else "c/"

    async def listing():
        return [key async for key in array.store.list_prefix(prefix)]

    found = set()
    for key in sync(listing()):
        first = key[len(prefix):].split("/", 1)[0].split(".", 1)[0]
        if first.isdigit():
            found.add(int(first))
    return found


def runs_of(rows: np.ndarray) -> list[tuple[int, int]]:
    """Sorted row numbers -> [(start, stop)] of their contiguous runs."""
    if not len(rows):
        return []
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    return [(int(part[0]), int(part[-1]) + 1) for part in np.split(rows, breaks)]


class CheckedArray:
    """A read-only view of one array of a cache group whose every read is checked.

    ``done`` returns (N,) bool: the images the group says are stored (read once, when needed);
    ``changed`` is called when damage is found and raises if the group was extracted again
    meanwhile (then the damage is a rebuild in progress, not a broken cache)."""

    def __init__(self, array: zarr.Array, name: str, where: str, done: Callable[[], np.ndarray],
                 changed: Callable[[], None] | None = None):
        self.array = array
        self.name = name
        self.where = where
        self._done = done
        self._changed = changed
        self.checked = has_checksums(array)

    # what readers use of zarr.Array
    shape = property(lambda self: self.array.shape)
    dtype = property(lambda self: self.array.dtype)
    chunks = property(lambda self: self.array.chunks)
    shards = property(lambda self: self.array.shards)
    nbytes = property(lambda self: self.array.nbytes)
    ndim = property(lambda self: self.array.ndim)

    @property
    def block_rows(self) -> int:
        """Images per chunk file (per shard where the array is sharded)."""
        return self.array.shards[0] if self.array.shards else self.array.chunks[0]

    def __getitem__(self, selection) -> np.ndarray:
        """``array[selection]``; the first axis (images) selected by an int or a slice."""
        first = selection[0] if isinstance(selection, tuple) else selection
        rows = np.atleast_1d(np.arange(self.shape[0])[first])
        data = self._checked(lambda: self.array[selection], rows, one=isinstance(first, (int, np.integer)))
        return data

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        """``array[rows]`` for (k,) sorted row numbers (zarr fetches their chunks concurrently)."""
        rows = np.asarray(rows, np.int64)
        return self._checked(lambda: self.array.get_orthogonal_selection((rows,)), rows)

    def _checked(self, read: Callable[[], np.ndarray], rows: np.ndarray, one: bool = False) -> np.ndarray:
        try:
            data = read()
        except Exception as err:  # a checksum or decoding failure somewhere in the selection
            self._raise(self._first_bad_block(rows) or Damage(self.name, int(rows.min(initial=0)),
                                                              int(rows.max(initial=0)) + 1, reason_of(err)))
        self._check_missing(np.asarray(data)[None] if one else np.asarray(data), rows)
        return data

    def _check_missing(self, data: np.ndarray, rows: np.ndarray) -> None:
        if not self.checked or data.dtype.kind != "f" or not len(rows):
            return
        flat = data.reshape(len(rows), -1) if data.ndim and data.shape[0] == len(rows) else None
        if flat is None:
            return
        # A chunk spans whole rows (every non-image axis), so a missing one makes whole rows NaN:
        # the first value of each row tells, at a fraction of a full scan's cost.
        holes = np.isnan(flat[:, 0])
        if not holes.any():
            return
        done = self._done()
        bad = rows[holes & done[rows]]
        if not len(bad):  # NaN only in images not stored yet: the fill value, as it should be
            return
        stored = stored_blocks(self.array)
        block = self.block_rows
        missing = bad[~np.isin(bad // block, list(stored))]
        first = missing if len(missing) else bad
        start, stop = runs_of(first)[0]
        if len(missing):  # name the whole chunk file that is missing
            start, stop = start // block * block, min(self.shape[0], (start // block + 1) * block)
        self._raise(Damage(self.name, start, stop, "a chunk is missing" if len(missing) else "it holds NaN values"))

    def _first_bad_block(self, rows: np.ndarray) -> Damage | None:
        """Read the selection block by block to name the first damaged one."""
        block = self.block_rows
        for b in np.unique(rows // block).tolist():
            span = slice(b * block, min(self.shape[0], (b + 1) * block))
            try:
                self.array[span]
            except Exception as err:
                return Damage(self.name, span.start, span.stop, reason_of(err))
        return None

    def _raise(self, damage: Damage):
        if self._changed is not None:
            self._changed()
        raise damage_error(self.where, damage)


def check_array(array: zarr.Array, name: str, done: np.ndarray, *, expected_blocks: set[int] | None = None,
                progress: Callable[[int], None] | None = None) -> list[Damage]:
    """Every damaged part of ``array``: read block by block (a chunk file, a shard), checksums
    verified; NaN in a stored image of a float array and a missing file of a block that holds a
    stored image (or one of ``expected_blocks``: arrays written whole at creation) are damage.
    ``progress(images)`` is called after each block."""
    found: list[Damage] = []
    block = array.shards[0] if array.shards else array.chunks[0]
    n = array.shape[0]
    stored = stored_blocks(array)
    per_image = done.shape[0] == n
    for b in range(-(-n // block)):
        span = slice(b * block, min(n, (b + 1) * block))
        wanted = (expected_blocks is not None and b in expected_blocks) or (per_image and done[span].any())
        if wanted and b not in stored:
            found.append(Damage(name, span.start, span.stop, "a chunk is missing"))
        elif b in stored:
            try:
                data = array[span]
            except Exception as err:
                found.append(Damage(name, span.start, span.stop, reason_of(err)))
            else:
                if data.dtype.kind == "f" and per_image:
                    holes = np.isnan(data.reshape(len(data), -1)).any(axis=1) & done[span]
                    if holes.any():
                        first = np.flatnonzero(holes)
                        found.append(Damage(name, span.start + int(first[0]), span.start + int(first[-1]) + 1,
                                            "it holds NaN values"))
        if progress is not None:
            progress(span.stop - span.start)
    return _merged(found)


def _merged(found: list[Damage]) -> list[Damage]:
    """Adjacent damages of one reason as one range."""
    out: list[Damage] = []
    for d in found:
        if out and out[-1].reason == d.reason and out[-1].stop == d.start:
            out[-1] = Damage(d.array, out[-1].start, d.stop, d.reason)
        else:
            out.append(d)
    return out
