"""Reading report.md back as a reader's renderer does: markdown-it-py (a CommonMark parser) with
GitHub's table extension; every table as its header and rows of cell texts, and any inline markup
a cell turned into (emphasis, links, HTML), which a report's cell should never hold."""

from __future__ import annotations

from markdown_it import MarkdownIt

PLAIN = {"text", "text_special", "softbreak"}


def parse_tables(markdown: str) -> list[dict]:
    """[{"head": [cell texts], "rows": [[cell texts]], "markup": [token types that are not text]}]"""
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    tables, current, row = [], None, None
    for token in tokens:
        if token.type == "table_open":
            current = {"head": [], "rows": [], "markup": []}
            tables.append(current)
        elif token.type == "tr_open":
            row = []
        elif token.type == "tr_close":
            if not current["head"]:
                current["head"] = row
            else:
                current["rows"].append(row)
        elif token.type == "inline" and current is not None and row is not None:
            children = token.children or []
            current["markup"] += [c.type for c in children if c.type not in PLAIN]
            row.append("".join(c.content for c in children if c.type in PLAIN))
        elif token.type == "table_close":
            current, row = None, None
    return tables


NUMBER = r"[-+]?\d+\.\d+"


def _numbers(text: str) -> list[float]:
    import re

    return [float(v) for v in re.findall(NUMBER, text)]


def _close(cell: str, values: list[float]) -> bool:
    """Whether the numbers written in ``cell`` are ``values`` (fractions) in percent, to 2 decimals."""
    import math

    got = _numbers(cell)
    want = [100 * v for v in values if not math.isnan(v)]
    return len(got) == len(want) and all(abs(g - w) <= 0.0051 for g, w in zip(got, want))


def check_report_tables(folder) -> int:
    """Assert that every table cell of ``folder``/report.md, parsed as a renderer parses it, holds
    exactly what the report's CSV files say (and that no cell is lost or split); the number of
    cells checked."""
    from pathlib import Path

    import pandas as pd

    folder = Path(folder)
    tables = parse_tables((folder / "report.md").read_text())
    for t in tables:
        assert not t["markup"], f"a table cell turned into markup: {t['markup'][:5]}"
        assert all(len(row) == len(t["head"]) for row in t["rows"]), "a row has more or fewer cells than its header"

    def find(start: tuple, column6: str = ""):
        found = [t for t in tables if tuple(t["head"][:len(start)]) == start
                 and (not column6 or t["head"][6].startswith(column6))]
        assert len(found) == 1, (start, column6, len(found))
        return found[0]

    def read(name: str):
        path = folder / name
        return pd.read_csv(path, keep_default_na=False, na_values=[""]) if path.exists() else None

    checked = 0
    summary = read("summary.csv")
    if summary is not None:
        checked += _check_summary(find(("dataset", "encoder", "head", "feature")), summary)
    seg = read("segmentation_summary.csv")
    if seg is not None:
        checked += _check_seg_summary(find(("dataset", "model", "split")), seg)
    for csv, column6, metrics in (("differences.csv", "accuracy", ("accuracy", "macro_f1")),
                                  ("segmentation_differences.csv", "Dice all pixels",
                                   ("micro_dice", "micro_iou", "mean_dice"))):
        frame = read(csv)
        if frame is not None and len(frame):
            checked += _check_differences(find(("dataset", "split", "A", "B"), column6), frame, metrics)
    return checked


def _check_summary(table: dict, summary) -> int:
    import math
    import re

    assert len(table["rows"]) == len(summary)
    for row in table["rows"]:
        dataset, encoder, head, feature, split, evaluated, seeds, accuracy, f1 = row
        name = head.split(" [")[0]
        match = summary[(summary["dataset"] == dataset) & (summary["encoder"] == encoder) & (summary["head"] == name)
                        & (summary["feature"] == feature) & (summary["split"] == re.sub(r".*\((.*)\)", r"\1", split))]
        assert len(match) == 1, row
        s = match.iloc[0]
        settings = s["settings"] if isinstance(s["settings"], str) else ""
        batch = s["batch_size"]
        if settings and not (isinstance(batch, float) and math.isnan(batch)):
            settings = re.sub(r"batch=\d+", f"batch={batch if isinstance(batch, str) else int(batch)}", settings)
        assert head == name + (f" [{settings}]" if settings else ""), (head, settings)
        if s["split_kind"] == "val":
            assert split == f"train {100 * s['train_fraction']:.0f} % ({s['split']})"
        assert (evaluated, int(seeds)) == (s["evaluated_on"], s["n_seeds"])
        for cell, m in ((accuracy, "accuracy"), (f1, "macro_f1")):
            assert _close(cell, [s[f"{m}_{k}"] for k in ("mean", "std", "ci95_low", "ci95_high", "boot95_low",
                                                        "boot95_high")]), (cell, m)
    return len(table["rows"]) * len(table["head"])


def _check_seg_summary(table: dict, summary) -> int:
    import math

    assert len(table["rows"]) == len(summary)
    for row in table["rows"]:
        match = summary[(summary["dataset"] == row[0]) & (summary["model"] == row[1]) & (summary["split"] == row[2])]
        assert len(match) == 1, row
        s = match.iloc[0]
        assert (row[3], int(row[4])) == (s["evaluated_on"], s["n_seeds"])
        for cell, m in zip(row[5:9], ("micro_dice", "micro_iou", "micro_pixel_accuracy", "mean_dice")):
            assert _close(cell, [s[f"{m}_{k}"] for k in ("mean", "std", "boot95_low", "boot95_high")]), (cell, m)
        seconds = s["seconds_per_epoch_mean"]
        assert row[9] == ("–" if math.isnan(seconds) else f"{seconds:.2f}"), row[9]
    return len(table["rows"]) * len(table["head"])


def _check_differences(table: dict, frame, metrics: tuple[str, ...]) -> int:
    import math

    for row in table["rows"]:
        match = frame[(frame["dataset"] == row[0]) & (frame["split"] == row[1]) & (frame["a"] == row[2])
                      & (frame["b"] == row[3])]
        assert len(match) == 1, row
        d = match.iloc[0]
        assert (int(row[4]), int(row[5])) == (d["n_seeds"], d["n_images"])
        for k, m in enumerate(metrics):
            diff, p = row[6 + 2 * k], row[7 + 2 * k]
            assert _close(diff, [d[f"{m}_diff"], d[f"{m}_diff_boot95_low"], d[f"{m}_diff_boot95_high"]]), (diff, m)
            holm = d[f"{m}_p_holm"]
            assert p == ("–" if math.isnan(holm) else "< 0.001" if holm < 0.001 else f"{holm:.3f}"), (p, holm)
    return len(table["rows"]) * len(table["head"])
