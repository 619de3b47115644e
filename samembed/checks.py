"""Checks of option values as a file gives them (a study file's TOML): each takes a value and
returns ``None`` when it is right, else what it must be ("a whole number >= 1"). The request
objects declare one per option (:mod:`samembed.extraction.request`,
:mod:`samembed.experiments.request`), so a study file accepts exactly the options they have."""

from __future__ import annotations

import math
from collections.abc import Callable

Check = Callable[[object], str | None]


def is_whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def whole(minimum: int) -> Check:
    return lambda v: None if is_whole(v) and v >= minimum else f"a whole number >= {minimum}"


def positive(value) -> str | None:
    return None if is_number(value) and value > 0 else "a number > 0"


def share(value) -> str | None:
    return None if is_number(value) and 0 <= value <= 1 else "a share between 0 and 1"


def text(value) -> str | None:
    return None if isinstance(value, str) and value.strip() else "a non-empty string"


def flag(value) -> str | None:
    return None if isinstance(value, bool) else "true or false"
