"""The report's figures at paper size with 1, 3 and 12 series: measured with matplotlib's renderer,
no text reaches outside the figure and no two texts (tick labels, titles, legend entries, axis
labels) overlap; every series has its own colour, marker and line style; short names; bands within
the metric's range; whole epochs; the synthetic-data mark."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text

from samembed.prompting.overlay import draw_sheet
from samembed.report import figures
from samembed.report.figure_style import SYNTHETIC_MARK, series_style
from samembed.report.names import alias, display_names, series_labels
from samembed.report.segmentation_figures import draw_boxplots, draw_examples

COUNTS = (1, 3, 12)
LONG = "sam-vit_h-custom-checkpoint-name"


def drawn_texts(fig) -> list[tuple[str, object]]:
    """(text, window extent) of every text the renderer draws: visible, not empty, and for tick
    labels only those of ticks inside the axis' view."""
    FigureCanvasAgg(fig)
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    hidden = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not ax.axison or not low - 1e-9 <= tick.get_loc() <= high + 1e-9:
                    hidden.update({id(tick.label1), id(tick.label2)})
            if not ax.axison:  # an axes drawn without its axes: no ticks, labels or offsets
                hidden.update({id(axis.label), id(axis.offsetText)})
    return [(t.get_text(), t.get_window_extent(renderer)) for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip() and id(t) not in hidden]


def layout_problems(fig) -> list[str]:
    texts = drawn_texts(fig)
    box = fig.bbox
    problems = [f"outside the figure: {text!r}" for text, b in texts
                if b.x0 < box.x0 - 0.5 or b.y0 < box.y0 - 0.5 or b.x1 > box.x1 + 0.5 or b.y1 > box.y1 + 0.5]
    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            a, b = texts[i][1], texts[j][1]
            if min(a.x1, b.x1) - max(a.x0, b.x0) > 0.5 and min(a.y1, b.y1) - max(a.y0, b.y0) > 0.5:
                problems.append(f"overlap: {texts[i][0]!r} and {texts[j][0]!r}")
    return problems


def summary_rows(n: int, kind: str = "val", seeds: int = 3) -> pd.DataFrame:
    """A summary of ``n`` configurations (two encoders with long names, several heads) on 4 splits;
    three of them identical, and means near 100 % with a large spread."""
    rng = np.random.default_rng(n)
    rows = []
    for k in range(n):
        encoder = f"{LONG}-{k % 2}abcdef12@1024"
        for v, value in enumerate((0.2, 0.4, 0.6, 0.8) if kind == "val" else (1, 5, 10, 50)):
            mean = 0.97 if k < 3 else rng.uniform(0.6, 0.99)
            rows.append({"dataset": "eurosat", "encoder": encoder, "head": f"head-{k}", "feature": "neck",
                         "settings": "", "cache_id": "c", "split": f"{kind}={value}", "split_kind": kind,
                         "split_value": float(value), "train_fraction": 1 - value if kind == "val" else np.nan,
                         "n_seeds": seeds, "accuracy_mean": mean, "accuracy_std": 0.05 if seeds > 1 else np.nan,
                         "macro_f1_mean": mean - 0.01, "macro_f1_std": 0.05 if seeds > 1 else np.nan})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("n", COUNTS)
@pytest.mark.parametrize("kind", ["val", "shots"])
def test_split_sweep_layout(n, kind):
    summary = summary_rows(n, kind)
    x = "train_fraction" if kind == "val" else "split_value"
    names = display_names(summary["encoder"])
    fig = figures.draw_split_sweep(summary, "eurosat: against the training fraction", x=x, names=names,
                                   synthetic=True)
    assert layout_problems(fig) == []
    legend = fig.legends[0]
    labels = [t.get_text() for t in legend.get_texts()]
    assert len(labels) == n and all("abcdef12" not in label for label in labels)  # short names: no hash
    lines = [line for line in fig.axes[0].get_lines() if line.get_label() in labels]
    looks = {(line.get_color(), line.get_marker(), line.get_linestyle()) for line in lines}
    assert len(looks) == n
    assert SYNTHETIC_MARK in fig._suptitle.get_text()
    for ax in fig.axes:  # bands and bars stay within 0-100 % although mean + std reaches 102 %
        for collection in ax.collections:
            for path in collection.get_paths():
                assert path.vertices[:, 1].max() <= 100 + 1e-9
    band = "± 1 std over seeds (cut to 0–100 %)"
    assert band in fig.axes[0].get_title().replace("\n", " ")


def test_a_single_seed_has_no_band_and_says_so():
    fig = figures.draw_split_sweep(summary_rows(2, seeds=1), "t")
    title = fig.axes[0].get_title().replace("\n", " ")
    assert "one seed, no spread" in title and "std" not in title  # it said "band ± 1 std" for --seeds 1
    assert not fig.axes[0].collections


@pytest.mark.parametrize("n", COUNTS)
def test_difference_figures_layout(n):
    rows = summary_rows(n).assign(series=lambda f: f["head"], accuracy_diff=0.02, macro_f1_diff=-0.01,
                                  accuracy_diff_boot95_low=-0.01, accuracy_diff_boot95_high=0.05,
                                  macro_f1_diff_boot95_low=-0.04, macro_f1_diff_boot95_high=0.02)
    assert layout_problems(figures.draw_difference_sweep(rows, "eurosat: difference to knn", "knn",
                                                         synthetic=True)) == []
    one = rows.drop_duplicates("series").assign(series=lambda f: f"{LONG}@1024 · " + f["series"])
    metrics = [("accuracy", "accuracy"), ("macro_f1", "macro F1"), ("accuracy", "Dice per image, mean")]
    assert layout_problems(figures.draw_difference_forest(one, metrics, "road: difference to unet")) == []


@pytest.mark.parametrize("n", COUNTS)
def test_boxplots_layout(n):
    """The box plots' tick labels overlapped each other and the next panel, and the leftmost was cut."""
    rng = np.random.default_rng(0)
    models = [f"{LONG}-{k}@1024 · sam-conv" for k in range(n)]
    per_image = pd.DataFrame([{"model": m, "pixel_accuracy": rng.random(), "dice": rng.random(), "iou": rng.random()}
                              for m in models for _ in range(8)])
    assert layout_problems(draw_boxplots(per_image, "road: per-image metrics at the original resolution",
                                         synthetic=True)) == []


@pytest.mark.parametrize("classes", [3, 10, 12])
def test_confusion_layout(classes):
    """The 3-class matrix's title and colour-bar label were cut off."""
    names = ["HerbaceousVegetation", "AnnualCrop", "River"] + [f"class-{k}" for k in range(classes - 3)]
    matrix = np.random.default_rng(classes).integers(0, 60, (classes, classes))
    title = f"eurosat: {LONG}-30eca10d@128 · logreg (neck), split val=0.4, summed over 3 seed(s)"
    assert layout_problems(figures.draw_confusion(matrix, names, title, synthetic=True)) == []


@pytest.mark.parametrize("epochs", [2, 7, 40])
def test_training_curves_have_whole_epochs_and_fit(epochs):
    """A 2-epoch curve had ticks 1.0, 1.2, ..."""
    e = list(range(1, epochs + 1))
    record = {"curves": {"epoch": e, "train_loss": [1 / x for x in e], "val_loss": [1.1 / x for x in e],
                         "train_acc": [0.5] * epochs, "val_acc": [0.4] * epochs}, "metrics": {"best_epoch": epochs}}
    fig = figures.draw_training_curves(record, f"eurosat: {LONG}@1024 · linear, split val=0.2, seed 1, run "
                                               "6fee7443de2795f7", synthetic=True)
    assert layout_problems(fig) == []
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)


@pytest.mark.parametrize("n", [1, 3])
def test_example_grid_and_prompt_sheet_layout(n):
    rng = np.random.default_rng(n)
    images = [rng.random((40, 60, 3)) for _ in range(2)]
    truths = [rng.random((40, 60)) > 0.5 for _ in range(2)]
    predictions = {f"{LONG}@1024 · sam-{k}points": [t.astype(float) for t in truths] for k in range(n)}
    fig = draw_examples(images, [t.astype(float) for t in truths], predictions, ["image11.bmp", "image12.bmp"],
                        "road: evaluated images, ground truth and predictions (first seed)", synthetic=True)
    assert layout_problems(fig) == []
    image = (rng.random((50, 70, 3)) * 255).astype(np.uint8)
    masks = [rng.random((50, 70)) > 0.6 for _ in range(n)]
    prompts = [{"points": [(10, 12), (30, 20)], "labels": [1, 0], "box": (5, 5, 40, 30)} for _ in range(n)]
    sheet = draw_sheet(image, masks, prompts, [0.912] * n, "Test/image/image11.bmp · road · sam-vit_b@1024",
                       "s2-rgb, stretch fixed 0–3000", synthetic=True)
    assert layout_problems(sheet) == []


def test_every_series_looks_different():
    looks = [series_style(k) for k in range(140)]
    assert len({(s["color"], s["marker"], s["linestyle"]) for s in looks}) == 140
    for a, b in zip(looks, looks[1:]):  # neighbours differ in colour, marker and line style
        assert a["color"] != b["color"] and a["marker"] != b["marker"] and a["linestyle"] != b["linestyle"]


def test_short_stable_names():
    assert alias("sam-custom-30eca10d@128") == "sam-custom@128"
    assert alias("sam-vit_b@1024") == "sam-vit_b@1024" and alias("vgg19-imagenet@224") == "vgg19-imagenet@224"
    assert alias("sam-custom-30eca10d@256+s2-rgb.fixed0_3000") == "sam-custom@256+s2-rgb.fixed0_3000"
    names = display_names(["sam-custom-30eca10d@128", "sam-custom-0badf00d@128", "sam-vit_b@1024"])
    assert names == {"sam-custom-0badf00d@128": "sam-custom#1@128", "sam-custom-30eca10d@128": "sam-custom#2@128",
                     "sam-vit_b@1024": "sam-vit_b@1024"}
    summary = pd.DataFrame({"encoder": ["sam-custom-30eca10d@128"] * 3, "head": ["linear", "linear", "knn"],
                            "feature": ["neck", "trunk", "neck"], "settings": "", "cache_id": "c"})
    assert list(series_labels(summary, names)) == ["sam-custom#2@128 · linear (neck)",
                                                   "sam-custom#2@128 · linear (trunk)", "sam-custom#2@128 · knn"]
