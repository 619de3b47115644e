"""From many bands to what an encoder takes: a composite is a choice of bands and a stretch, both
named, so that several composites of one dataset sit side by side in the cache and never mix
(docs/rasters.md).

- Bands: names or 1-based indices (``B04,B03,B02``, ``4,3,2``), a ratio of two (``VV/VH``), or a
  preset (:data:`PRESETS`). One output band becomes gray RGB; the RGB encoders take 1 or 3.
- Stretch, to 8 bits: ``fixed:LOW,HIGH`` (every band; ``L1,H1/L2,H2/...`` per band),
  ``percentile`` (per band, 2-98 %, computed once over a seeded sample of the dataset and stored;
  ``percentile:P1,P2`` for others), ``percentile-image`` (per image: asked for explicitly),
  ``db`` (10 log10 of linear backscatter, then a fixed dB range: VV -25..0, VH -30..-5, VV/VH
  0..15 unless ``db:LOW,HIGH``), ``none`` (8-bit bands as they are). Values outside the range
  saturate at 0 or 255: a declared rule, recorded in the cache's signature.

Pixels that hold no data (the file's nodata value, NaN, infinity, a ratio over zero, or 0 in the
raster's per-dataset mask band) are 0 in the composite and left out of the encoder's pooled
vectors, like padding."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import ImageFormatError, UsageError
from ..hashing import short_hash
from .images import Pixels, describe_pixels

PRESETS = {
    "s2-rgb": ("B04", "B03", "B02"),
    "s2-false-colour": ("B08", "B04", "B03"),
    "s2-swir": ("B12", "B08", "B04"),
    "s1-vv-vh-ratio": ("VV", "VH", "VV/VH"),
}
ALIASES = {"B8A": "B08A", "B08A": "B8A"}  # Sentinel-2's narrow NIR goes by both names
# common display ranges of Sentinel-1 GRD backscatter in dB (ESA's Sentinel-1 SAR user guide), not physical limits
DB_RANGES = {"VV": (-25.0, 0.0), "VH": (-30.0, -5.0), "VV/VH": (0.0, 15.0)}
STRETCHES = ("none", "fixed", "percentile", "percentile-image", "db")
SAMPLE_IMAGES = 1000  # images read for percentile statistics
SAMPLE_PIXELS = 1024  # valid pixels kept per image and band


@dataclass(frozen=True)
class Stretch:
    """How band values become 0-255. ``low``/``high`` hold one value per output band (for
    ``percentile``, once its statistics are computed); ``sample`` says how they were."""

    kind: str
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()
    percentiles: tuple[float, float] = (2.0, 98.0)
    sample: str = ""

    @property
    def needs_statistics(self) -> bool:
        return self.kind == "percentile" and not self.low

    def key(self) -> str:
        p = f"p{self.percentiles[0]:g}-{self.percentiles[1]:g}"
        if self.kind in ("percentile", "percentile-image"):
            return p + ("img" if self.kind == "percentile-image" else "")
        if self.kind in ("fixed", "db"):
            if len(set(self.low)) == 1 and len(set(self.high)) == 1:
                return f"{self.kind}{self.low[0]:g}_{self.high[0]:g}"
            return f"{self.kind}-{short_hash([self.low, self.high])[:6]}"
        return "raw"

    def to_dict(self) -> dict:
        d = {"kind": self.kind}
        if self.kind in ("percentile", "percentile-image"):
            d["percentiles"] = list(self.percentiles)
        if self.low:
            d.update(low=list(self.low), high=list(self.high))
        if self.sample:
            d["sample"] = self.sample
        if self.kind != "none":
            d["rule"] = "(value - low) / (high - low) x 255, rounded; values outside low-high saturate at 0 or 255"
        return d


@dataclass(frozen=True)
class Composite:
    """``names`` of the output bands (``VV/VH`` for a ratio), the 0-based ``sources`` of each (one
    band, or two for a ratio), and the ``stretch``."""

    names: tuple[str, ...]
    sources: tuple[tuple[int, ...], ...]
    stretch: Stretch
    preset: str | None = None
    source_names: tuple[str, ...] = field(default=(), compare=False)

    @property
    def source_bands(self) -> tuple[int, ...]:
        return tuple(sorted({b for s in self.sources for b in s}))

    def key(self) -> str:
        bands = self.preset or "-".join(n.replace("/", "over") for n in self.names)
        default_db = self.stretch.kind == "db" and all(
            DB_RANGES.get(n.upper()) == (lo, hi) for n, lo, hi in zip(self.names, self.stretch.low, self.stretch.high))
        return f"{bands}.{'db' if default_db else self.stretch.key()}"

    def signature(self) -> dict:
        return {"bands": list(self.names), "sources": [[b + 1 for b in s] for s in self.sources],
                **({"preset": self.preset} if self.preset else {}), "stretch": self.stretch.to_dict(),
                "nodata": "nodata, NaN and infinite values: 0 in the composite, left out of pooling like padding"}

    @classmethod
    def from_signature(cls, stored: dict) -> Composite:
        """The composite a cache group's signature records (its ``composite``)."""
        stretch = stored["stretch"]
        return cls(tuple(stored["bands"]), tuple(tuple(b - 1 for b in s) for s in stored["sources"]),
                   Stretch(stretch["kind"], tuple(stretch.get("low", ())), tuple(stretch.get("high", ())),
                           tuple(stretch.get("percentiles", (2.0, 98.0))), stretch.get("sample", "")),
                   stored.get("preset"))

    def values(self, pixels: Pixels, path) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, k) float64 output band values (in dB for a ``db`` stretch) and the (H, W) bool
        mask of the pixels that hold data in every source band."""
        valid = pixels.valid(self.source_bands)
        x = pixels.values.astype(np.float64)
        out = np.empty(x.shape[:2] + (len(self.sources),))
        with np.errstate(divide="ignore", invalid="ignore"):
            for k, (name, source) in enumerate(zip(self.names, self.sources)):
                bands = [x[..., b] for b in source]
                if self.stretch.kind == "db":
                    low = min(float(b[valid].min()) if valid.any() else 1.0 for b in bands)
                    if low <= 0:
                        raise ImageFormatError(
                            f"image {path}: band {name} holds values down to {low:g}, but --stretch db takes linear "
                            "backscatter (> 0); if the values are in dB already, use --stretch fixed:LOW,HIGH "
                            "(e.g. fixed:-25,0)")
                    bands = [10 * np.log10(b) for b in bands]
                    out[..., k] = bands[0] - bands[1] if len(bands) == 2 else bands[0]
                else:
                    out[..., k] = bands[0] / bands[1] if len(bands) == 2 else bands[0]
        return out, valid & np.isfinite(out).all(axis=-1)

    def apply(self, pixels: Pixels, path) -> tuple[np.ndarray, np.ndarray | None]:
        """(H, W, 3) uint8 and the (H, W) bool data mask (``None`` when every pixel holds data)."""
        bands = pixels.values.shape[-1]
        if max(self.source_bands) >= bands:
            raise ImageFormatError(f"image {path} has {bands} band(s), but --bands asks for band "
                                   f"{max(self.source_bands) + 1}; every image of a dataset needs the same bands")
        if self.stretch.kind == "none":
            if pixels.values.dtype != np.uint8 or any(len(s) > 1 for s in self.sources):
                raise ImageFormatError(f"image {path} is {describe_pixels(pixels.values)}; --stretch none keeps "
                                       "8-bit bands as they are and takes no ratios: choose fixed, percentile or db")
            valid = pixels.valid(self.source_bands)
            rgb = pixels.values[..., [s[0] for s in self.sources]].copy()
        else:
            values, valid = self.values(pixels, path)
            low, high = self._range(values, valid)
            scaled = (values - low) / np.where(high > low, high - low, 1.0)
            rgb = np.round(np.clip(scaled, 0, 1) * 255).astype(np.uint8)
        rgb[~valid] = 0
        if rgb.shape[-1] == 1:
            rgb = np.repeat(rgb, 3, axis=-1)
        return np.ascontiguousarray(rgb), (None if valid.all() else valid)

    def _range(self, values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.stretch.kind == "percentile-image":
            data = values[valid] if valid.any() else values.reshape(-1, values.shape[-1])
            low, high = np.percentile(data, self.stretch.percentiles, axis=0)
            return low, high
        if self.stretch.needs_statistics:
            raise RuntimeError("percentile statistics are computed before images are encoded")
        return np.asarray(self.stretch.low), np.asarray(self.stretch.high)


def _band_index(token: str, names: tuple[str, ...], where: str) -> int:
    token = token.strip()
    if token.isdigit():
        index = int(token) - 1
        if not 0 <= index < len(names):
            raise UsageError(f"--bands {where}: band {token} does not exist; the images have bands 1-{len(names)} "
                             f"({', '.join(names)})")
        return index
    wanted = {token.upper(), ALIASES.get(token.upper(), token.upper())}
    for i, name in enumerate(names):
        if name.upper() in wanted:
            return i
    raise UsageError(f"--bands {where}: no band named '{token}'; the images have {', '.join(names)} "
                     "(names or 1-based numbers)")


def parse_bands(text: str, names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[tuple[int, ...], ...], str | None]:
    """(output names, sources, preset) of ``--bands``."""
    preset = text.strip() if text.strip() in PRESETS else None
    tokens = PRESETS[preset] if preset else tuple(t for t in text.split(",") if t.strip())
    out_names, sources = [], []
    for token in tokens:
        parts = token.split("/")
        if len(parts) > 2:
            raise UsageError(f"--bands {text}: '{token}' is not a band or a ratio of two")
        source = tuple(_band_index(p, names, text) for p in parts)
        sources.append(source)
        out_names.append("/".join(names[b] for b in source))
    if len(sources) not in (1, 3):
        raise UsageError(f"--bands {text} selects {len(sources)} bands; the encoders take 3 (a colour composite) or "
                         "1 (gray)")
    return tuple(out_names), tuple(sources), preset


def parse_stretch(text: str | None, names: tuple[str, ...], dtype: np.dtype) -> Stretch:
    """The ``--stretch`` for output bands ``names`` of pixels of ``dtype``."""
    if text is None:
        if np.dtype(dtype) == np.uint8:
            return Stretch("none")
        raise UsageError(_stretch_advice(names, dtype))
    kind, _, args = text.strip().partition(":")
    kind = kind.strip()
    if " " in kind:  # "fixed 0,3000"
        kind, args = kind.split(None, 1)
    if kind not in STRETCHES:
        raise UsageError(f"unknown --stretch '{text}'; choose one of: fixed:LOW,HIGH, percentile, percentile-image, "
                         "db, none")
    numbers = _numbers(args, text)
    k = len(names)
    if kind == "fixed":
        low, high = _ranges(numbers, k, text)
        return Stretch("fixed", low, high)
    if kind in ("percentile", "percentile-image"):
        p = tuple(numbers[0]) if numbers else (2.0, 98.0)
        if len(p) != 2 or not 0 <= p[0] < p[1] <= 100:
            raise UsageError(f"--stretch {text}: give two percentiles 0 <= P1 < P2 <= 100, e.g. percentile:2,98")
        return Stretch(kind, percentiles=p)
    if kind == "db":
        if numbers:
            low, high = _ranges(numbers, k, text)
        else:
            missing = [n for n in names if n.upper() not in DB_RANGES]
            if missing:
                raise UsageError(f"--stretch db has no default range for band {missing[0]}; give it: db:LOW,HIGH in dB")
            low, high = (tuple(DB_RANGES[n.upper()][i] for n in names) for i in (0, 1))
        return Stretch("db", low, high)
    if np.dtype(dtype) != np.uint8:
        raise UsageError(f"--stretch none keeps 8-bit values as they are, and these images are {np.dtype(dtype)}; "
                         + _stretch_advice(names, dtype).split("; ", 1)[1])
    return Stretch("none")


def _stretch_advice(names, dtype) -> str:
    if np.dtype(dtype).kind == "f":
        hint = "db for linear SAR backscatter (VV, VH), fixed:LOW,HIGH for values in known units, or percentile"
    else:
        hint = "fixed:0,3000 for Sentinel-2 reflectance x 10,000, or percentile (2-98 %, computed once and stored)"
    return (f"the images are {np.dtype(dtype)}, not 8-bit, and samembed never converts pixels silently; "
            f"choose --stretch: {hint}")


def _numbers(args: str, text: str) -> list[tuple[float, ...]]:
    if not args.strip():
        return []
    try:
        return [tuple(float(v) for v in part.split(",")) for part in args.split("/")]
    except ValueError:
        raise UsageError(f"--stretch {text}: the values must be numbers, e.g. fixed:0,3000") from None


def _ranges(numbers: list[tuple[float, ...]], k: int, text: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if not numbers or any(len(p) != 2 or not p[0] < p[1] for p in numbers):
        raise UsageError(f"--stretch {text}: give LOW,HIGH with LOW < HIGH (or one LOW,HIGH per band, separated by /)")
    if len(numbers) == 1:
        numbers = numbers * k
    if len(numbers) != k:
        raise UsageError(f"--stretch {text} gives {len(numbers)} ranges for {k} bands")
    return tuple(p[0] for p in numbers), tuple(p[1] for p in numbers)


def parse_composite(bands: str | None, stretch: str | None, band_names: tuple[str, ...], dtype) -> Composite | None:
    """The composite of ``--bands`` and ``--stretch`` for images with ``band_names`` of ``dtype``;
    ``None`` for images the encoders take as they are (8-bit, 1 or 3 bands) when neither is given."""
    if bands is None:
        if stretch is None and np.dtype(dtype) == np.uint8 and len(band_names) in (1, 3):
            return None
        if len(band_names) not in (1, 3):
            raise UsageError(f"the images have {len(band_names)} bands ({', '.join(band_names)}); choose 3 (or 1) with "
                             f"--bands, e.g. --bands {_example(band_names)}")
        bands = ",".join(str(i + 1) for i in range(len(band_names)))
    names, sources, preset = parse_bands(bands, band_names)
    return Composite(names, sources, parse_stretch(stretch, names, dtype), preset, tuple(band_names))


def _example(names: tuple[str, ...]) -> str:
    for preset, bands in PRESETS.items():
        if all(any(n.upper() in {b, ALIASES.get(b, b)} for n in names) for b in bands if "/" not in b):
            return preset
    return ",".join(str(i) for i in range(1, min(3, len(names)) + 1))


def with_percentile_statistics(composite: Composite, sample: list[int], index, seed: int = 0) -> Composite:
    """``composite`` with its per-band percentiles computed over the images ``sample`` of
    ``index`` (a DatasetIndex): up to :data:`SAMPLE_PIXELS` valid pixels of each, seeded."""
    rng = np.random.default_rng(seed)
    collected = []
    for i in sample:
        values, valid = composite.values(index.pixels(i), index.path(i))
        data = values[valid]
        if len(data) > SAMPLE_PIXELS:
            data = data[rng.choice(len(data), SAMPLE_PIXELS, replace=False)]
        collected.append(data)
    data = np.concatenate(collected) if collected else np.empty((0, len(composite.names)))
    if not len(data):
        raise UsageError("the sampled images hold no valid pixel (all nodata); percentile statistics need data")
    low, high = np.percentile(data, composite.stretch.percentiles, axis=0)
    high = np.where(high > low, high, low + 1)  # a constant band: any range maps it to 0
    how = f"{len(sample)} images (seeded sample), up to {SAMPLE_PIXELS} pixels each"
    stretch = replace(composite.stretch, low=tuple(float(v) for v in low), high=tuple(float(v) for v in high), sample=how)
    return replace(composite, stretch=stretch)


def sample_images(count: int, candidates: np.ndarray, seed: int = 0) -> list[int]:
    """Up to :data:`SAMPLE_IMAGES` of ``candidates`` (image indices), seeded, in order."""
    rng = np.random.default_rng(seed)
    if len(candidates) > count:
        candidates = rng.choice(candidates, count, replace=False)
    return sorted(int(i) for i in candidates)


def stretch_from_signature(composite: Composite, stored: dict) -> Composite:
    """``composite`` with the percentile statistics of a cache group's signature (computed once)."""
    s = stored.get("stretch", {})
    if s.get("kind") != composite.stretch.kind or list(s.get("percentiles", [])) != list(composite.stretch.percentiles):
        return composite
    if not s.get("low"):
        return composite
    return replace(composite, stretch=replace(composite.stretch, low=tuple(s["low"]), high=tuple(s["high"]),
                                              sample=s.get("sample", "")))

