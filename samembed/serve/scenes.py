"""A prompt on a whole scene, across its chips: answered on the chip that holds it, then on every
chip its mask runs into, and merged on the scene's pixel grid (the map's, by the scene's affine
transform), so an object that crosses a chip edge comes back whole rather than cut square at the
edge (as Geo-SAM's users report: coolzhao/Geo-SAM #11, #16).

The rule: where a chip's mask reaches one of its edges that is not the scene's, the mask's pixels
along that edge, moved one pixel across it, fall in a neighbouring chip; that chip is prompted with
a foreground point at the middle of them (and the user's points and box where they lie in it).
Chips are visited breadth first, at most :data:`MAX_CHIPS` per prompt; the merged mask is the union
of the chips' masks (in overlaps, a pixel either chip puts in the mask is in it)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import UsageError
from ..prompting.predictor import PromptMask
from ..prompting.prompts import Prompt

#: The most chips one scene prompt is answered on (the first and up to 8 around it): an object
#: larger than that is cut at the last chips' edges, as it would be at a single chip's.
MAX_CHIPS = 9


@dataclass
class ChipAnswer:
    row: int  # the chip's row in the group
    window: tuple[int, int, int, int]  # col_off, row_off, width, height in the scene
    answer: PromptMask
    seeded: bool  # prompted from a neighbour's mask, not by the user


@dataclass
class SceneAnswer:
    """The chips answered (the first holds the prompt) and the merged mask: ``mask`` (h, w) bool
    over the scene window ``window`` (col_off, row_off, width, height) that covers them."""

    chips: list[ChipAnswer] = field(default_factory=list)
    mask: np.ndarray | None = None
    window: tuple[int, int, int, int] = (0, 0, 0, 0)


def chips_of(scenes: list[str], windows: np.ndarray, usable: np.ndarray, scene: str) -> list[int]:
    """Rows of the usable chips of ``scene``."""
    return [i for i, s in enumerate(scenes) if s == scene and usable[i]]


def _holding(rows: list[int], windows: np.ndarray, x: float, y: float) -> list[int]:
    """Chips of ``rows`` holding the scene pixel (x, y), nearest centre first."""
    found = []
    for i in rows:
        c0, r0, w, h = (int(v) for v in windows[i])
        if c0 <= x < c0 + w and r0 <= y < r0 + h:
            found.append(((x - c0 - w / 2) ** 2 + (y - r0 - h / 2) ** 2, i))
    return [i for _, i in sorted(found)]


def _in_chip(prompt: Prompt, window, extra: list[tuple[float, float]], image_id: str) -> Prompt | None:
    """``prompt`` (scene pixels) in the chip ``window``'s pixels: its points that lie in the chip,
    ``extra`` foreground points, its box cut to the chip; ``None`` if nothing of it is there."""
    c0, r0, w, h = window
    points = [((x - c0, y - r0), label) for (x, y), label in zip(prompt.points, prompt.labels)
              if c0 <= x < c0 + w and r0 <= y < r0 + h]
    points += [((x - c0, y - r0), 1) for x, y in extra]
    box = None
    if prompt.box is not None:
        x0, y0, x1, y1 = prompt.box
        cut = (max(x0, c0) - c0, max(y0, r0) - r0, min(x1, c0 + w) - c0, min(y1, r0 + h) - r0)
        if cut[0] < cut[2] and cut[1] < cut[3]:
            box = cut
    if not points and box is None:
        return None
    return Prompt(tuple(p for p, _ in points), tuple(label for _, label in points), box, image_id)


def _across_edges(mask: np.ndarray, window, scene_hw) -> list[tuple[float, float]]:
    """Scene pixels just across each edge of the chip where its mask touches the edge (an edge
    of the scene has nothing across it), as pixel centres."""
    c0, r0, w, h = window
    height, width = scene_hw
    points = []
    if c0 + w < width:
        points += [(c0 + w + 0.5, r0 + r + 0.5) for r in np.flatnonzero(mask[:, -1])]
    if c0 > 0:
        points += [(c0 - 0.5, r0 + r + 0.5) for r in np.flatnonzero(mask[:, 0])]
    if r0 + h < height:
        points += [(c0 + c + 0.5, r0 + h + 0.5) for c in np.flatnonzero(mask[-1, :])]
    if r0 > 0:
        points += [(c0 + c + 0.5, r0 - 0.5) for c in np.flatnonzero(mask[0, :])]
    return points


def answer_on_scene(predictor, scene: str, prompt: Prompt, rows: list[int], windows: np.ndarray,
                    scene_hw: tuple[int, int], max_chips: int = MAX_CHIPS) -> SceneAnswer:
    """``prompt`` in scene pixels (x along a row, y down the rows) on the chips ``rows`` of
    ``scene`` (usable chips; their ``windows``), merged as the module docstring says."""
    first = _holding(rows, windows, *prompt.anchor)
    if not first:
        raise UsageError(f"the prompt at ({prompt.anchor[0]:g}, {prompt.anchor[1]:g}) lies on no usable chip of {scene}")
    result = SceneAnswer()
    queue: list[tuple[int, list]] = [(first[0], [])]
    seen = {first[0]}
    while queue and len(result.chips) < max_chips:
        i, seeds = queue.pop(0)
        window = tuple(int(v) for v in windows[i])
        local = _in_chip(prompt, window, seeds, predictor.image_ids[i])
        if local is None:
            continue
        (answer,) = predictor.answers(i, [local])
        result.chips.append(ChipAnswer(i, window, answer, bool(seeds)))
        by_chip: dict[int, list] = {}
        for x, y in _across_edges(answer.mask, window, scene_hw):
            holders = [j for j in _holding(rows, windows, x, y) if j not in seen]
            if holders:
                by_chip.setdefault(holders[0], []).append((x, y))
        for j, points in by_chip.items():
            seen.add(j)
            queue.append((j, [points[len(points) // 2]]))  # the middle of the run across the edge
    windows_used = [c.window for c in result.chips]
    col = min(w[0] for w in windows_used)
    row = min(w[1] for w in windows_used)
    right = max(w[0] + w[2] for w in windows_used)
    bottom = max(w[1] + w[3] for w in windows_used)
    merged = np.zeros((bottom - row, right - col), bool)
    for chip in result.chips:
        c0, r0, w, h = chip.window
        merged[r0 - row:r0 - row + h, c0 - col:c0 - col + w] |= chip.answer.mask
    result.mask, result.window = merged, (col, row, right - col, bottom - row)
    return result
