"""Which stored images are usable. An image (or chip) none of whose pixels holds data, or fewer
than the group's minimum share (``--min-data-share``), is **blank**: its embeddings would be the
encoder's answer to an empty input, so extraction stores it unusable (``ok`` false, zeros,
its ``error`` starting with :data:`NO_DATA`) and records the rule in the group attribute
:data:`RULE_ATTR`. Groups written before that rule existed (no such attribute) stored blank
images as ``ok``; where they hold ``data_share``, an image whose every grid cell holds no data
is blank at read time, so old caches are treated the same without extracting again
(docs/cache-format.md)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import UsageError
from .layout import DONE_PER_IMAGE

NO_DATA = "no data: "  # how the error of a blank image begins (unreadable images have others)
RULE_ATTR = "blank_rule"  # group attribute: blank images were flagged at extraction, by this rule


def check_min_data_share(value: float | None) -> float | None:
    """``--min-data-share`` as the plan keeps it: ``None`` for the default (any valid pixel; 0 is
    the same), else a fraction in (0, 1]; anything else refused in one line."""
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"--min-data-share must be a number between 0 and 1, not '{value}'") from None
    if not 0 <= value <= 1:
        raise UsageError(f"--min-data-share is the share of an image's pixels that must hold data, between 0 and 1 "
                         f"(0.05 for 5 %), not {value:g}")
    return value or None


def _minimum_text(minimum: float | None) -> str:
    return "any valid pixel" if not minimum else f"{minimum * 100:.3g} %"


def no_data_error(share: float, minimum: float | None) -> str:
    """``""`` for an image whose ``share`` (0-1) of pixels holds data when that is enough, else
    the error stored for it: ``no data: 0 % of pixels valid (minimum: any valid pixel)``."""
    if share > 0 and (not minimum or share >= minimum):
        return ""
    return f"{NO_DATA}{share * 100:.3g} % of pixels valid (minimum: {_minimum_text(minimum)})"


def blank_rule(minimum: float | None) -> dict:
    """The :data:`RULE_ATTR` attribute of a group whose blank images are flagged at extraction."""
    return {"min_data_share": minimum or 0.0,
            "blank": f"no pixel holds data, or under {_minimum_text(minimum)} of them: stored with ok = false, zeros "
                     f"for every embedding, and an error beginning '{NO_DATA.strip()}'",
            "valid": "not the band's nodata value, finite, and not masked by the raster's per-dataset mask band"}


def is_no_data(errors) -> np.ndarray:
    """(N,) bool: which of ``errors`` (strings) say an image is blank."""
    return np.fromiter((str(e).startswith(NO_DATA) for e in errors), bool, len(errors))


def blank_images(attrs: dict, read: Callable[[str], np.ndarray], done: np.ndarray) -> np.ndarray:
    """(N,) bool: the stored images of a group (its attributes, a reader of its arrays, which
    images are done) that are blank: flagged at extraction and, in a group made before the rule
    (no :data:`RULE_ATTR`) that stores ``data_share``, ``ok`` images with no data in any grid cell."""
    n = int(attrs["num_images"])
    ok = read("ok")
    if attrs.get("done_unit") == DONE_PER_IMAGE:
        blank = is_no_data(read("error"))
    else:  # groups made before the error array list skipped images in an attribute
        blank = np.zeros(n, bool)
        for entry in attrs.get("skipped", []):
            blank[int(entry["index"])] = str(entry.get("error", "")).startswith(NO_DATA)
    blank &= ~ok
    if RULE_ATTR not in attrs and attrs.get("data_share"):
        share = read("data_share")
        blank |= ok & (share.reshape(n, -1).max(axis=1) == 0)
    return blank & done


def blank_at_read(attrs: dict) -> bool:
    """Whether a group's blank images are found at read time (made before the rule, with
    ``data_share``) rather than flagged at extraction."""
    return RULE_ATTR not in attrs and bool(attrs.get("data_share"))
