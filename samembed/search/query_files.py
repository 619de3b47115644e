"""Queries as the command line and CSV files give them: an id, ``#ROW``, ``X,Y`` map points, and
CSV files of ids or points (a ``hits.csv`` of an earlier search among them)."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataNotFoundError, UsageError, capped, shortened
from .queries import MapPoint


def parse_query(text: str):
    """``#12`` -> row 12; anything else is an id."""
    text = text.strip()
    if text.startswith("#") and text[1:].isdigit():
        return int(text[1:])
    return text


def parse_point(text: str, option: str) -> MapPoint:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{option} takes X,Y (two numbers in the scene's CRS), not '{shortened(text)}'") from None
    return MapPoint(x, y)


def read_queries(path: Path, group, option: str) -> list:
    """The queries of a CSV with an ``id`` (or ``row``) column, or ``x`` and ``y`` columns (map
    points; taken over the ids when the file has ``cell_y``: the hits of a cell search); a
    ``group`` column must name only ``group`` (a search ranks one group)."""
    import pandas as pd

    if not Path(path).is_file():
        raise DataNotFoundError(f"{option} {path} is not a file")
    try:
        frame = pd.read_csv(path, dtype={"id": str})
    except (ValueError, pd.errors.ParserError) as err:
        raise UsageError(f"{option} {path} is not a readable CSV ({shortened(err, 100)})") from None
    if "group" in frame:
        others = sorted({str(g) for g in frame["group"].dropna()} - {group.name})
        if others:
            raise UsageError(f"{option} {path} holds queries of other cache groups ({capped(others, 3)}) than the one "
                             f"searched ({group.name}); queries come from the group they rank: search one group at a time")
    points = {"x", "y"} <= set(frame.columns)
    if points and ("cell_y" in frame or "id" not in frame):  # cells of a cell search: their map points
        return [MapPoint(float(x), float(y)) for x, y in zip(frame["x"], frame["y"])]
    if "id" in frame:
        return [str(v) for v in frame["id"]]
    if "row" in frame:
        return [int(v) for v in frame["row"]]
    raise UsageError(f"{option} {path} needs an id column, a row column, or x and y columns; it has "
                     f"{capped(frame.columns, 8)}")
