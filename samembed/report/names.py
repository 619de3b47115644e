"""Short, stable names for the figures: a cache group's model alias without its checkpoint hash
(``sam-custom-30eca10d@128`` -> ``sam-custom@128``), numbered where two groups of one report would
otherwise read the same. Tables keep the full group name; report.md lists the figures' names
beside them."""

from __future__ import annotations

import re

import pandas as pd

# A hex run of 8 or more characters holding a digit, between separators: the checkpoint hash that
# group names carry for weights of no published name (``sam-<variant>-<sha256[:8]>``).
_HASH = re.compile(r"-(?=[0-9a-f]*[0-9])[0-9a-f]{8,}(?=$|[@+\-.])")


def alias(group: str) -> str:
    """``group`` without checkpoint hashes."""
    return _HASH.sub("", group)


def display_names(groups) -> dict[str, str]:
    """Each group's short name: its :func:`alias`, or where several groups share one, the alias
    with ``#1``, ``#2``, ... before the ``@`` in the order of the full names (so the same groups
    always get the same names)."""
    groups = sorted(set(groups))
    shared: dict[str, list[str]] = {}
    for g in groups:
        shared.setdefault(alias(g), []).append(g)
    names = {}
    for short, members in shared.items():
        for k, g in enumerate(members, 1):
            if len(members) == 1:
                names[g] = short
            else:
                head, at, tail = short.partition("@")
                names[g] = f"{head}#{k}{at}{tail}"
    return names


def series_labels(summary: pd.DataFrame, names: dict[str, str] | None = None) -> pd.Series:
    """A legend label per summary row: ``<encoder's short name> · head``, with the feature,
    training settings or cache id added only where they tell two series apart."""
    names = names or {}
    base = summary["encoder"].map(lambda e: names.get(e, e)) + " · " + summary["head"]
    labels = base.copy()
    for extra, fmt in (("feature", " ({})"), ("settings", " [{}]"), ("cache_id", " cache {}")):
        if extra not in summary:
            continue
        variants = summary.groupby(base)[extra].transform("nunique")
        labels = labels.where(variants <= 1, labels + summary[extra].map(fmt.format))
    return labels
