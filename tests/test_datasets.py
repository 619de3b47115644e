"""The dataset layer and the image loader: indexing EuroSAT and folder datasets from disk, the
errors users see when data is missing or wrong, index fingerprints, decoding images of any mode,
per-image preprocessing in loader workers, and the synthetic datasets the other tests rely on.

Everything runs on small generated files (no network, no GPU)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from segment_anything.utils.transforms import ResizeLongestSide

from samembed.datasets import available_datasets, load_dataset, make_synthetic_dataset, read_rgb
from samembed.datasets.eurosat import CLASSES as EUROSAT_CLASSES
from samembed.encoders.geometry import Geometry
from samembed.errors import CorruptImageError, DataNotFoundError, SamembedWarning, UsageError
from samembed.datasets.inputs import InputReader
from samembed.extraction.loader import ImageFiles, image_loader

IMG_SIZE = 64  # SAM input side used for the loader tests: small and fast


def files_under(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative POSIX path -> its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def write_image(path: Path, size=(16, 16), value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, dtype=np.uint8)).save(path)
    return path


def assert_one_line(err: Exception) -> str:
    message = str(err)
    assert message and "\n" not in message and "\r" not in message
    return message


# --------------------------------------------------------------------------------------------
# EuroSAT
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["2750", "EuroSAT_RGB"])
def test_eurosat_index_in_both_published_layouts(tmp_path, layout):
    data_dir = make_synthetic_dataset(tmp_path / "eurosat", layout=layout, images_per_class=2, size=16)
    index = load_dataset("eurosat", data_dir)

    assert index.name == "eurosat"
    assert index.root == data_dir / layout
    assert index.class_names == sorted(EUROSAT_CLASSES) == EUROSAT_CLASSES
    assert len(index) == 20 and index.labels.shape == (20,) and index.labels.dtype == np.int64
    assert index.info["complete"] is False  # 20 of EuroSAT's 27,000 images
    for i, (image_id, label) in enumerate(zip(index.image_ids, index.labels)):
        parts = Path(image_id).parts
        assert not Path(image_id).is_absolute() and "\\" not in image_id
        assert parts[0] == index.class_names[label]
        assert index.class_names.index(parts[0]) == label
        assert index.path(i) == index.root / image_id and index.path(i).is_file()
    assert np.bincount(index.labels).tolist() == [2] * 10

    again = load_dataset("eurosat", str(data_dir))
    assert again.image_ids == index.image_ids
    assert np.array_equal(again.labels, index.labels)
    assert again.class_names == index.class_names


def test_eurosat_accepts_the_class_folders_directly(tmp_path):
    data_dir = make_synthetic_dataset(tmp_path, layout="2750", images_per_class=1, size=16)
    index = load_dataset("eurosat", data_dir / "2750")
    assert index.root == data_dir / "2750" and len(index) == 10


def test_eurosat_with_an_extra_class_folder_is_refused(tmp_path):
    classes = EUROSAT_CLASSES + ["Glacier"]
    data_dir = make_synthetic_dataset(tmp_path, layout="2750", images_per_class=1, size=16, classes=classes)
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("eurosat", data_dir)
    message = assert_one_line(info.value)
    assert str(data_dir / "2750") in message and "Glacier" in message
    assert "--data-dir" in message and "'folder'" in message


def test_eurosat_with_an_empty_class_folder_is_refused(tmp_path):
    data_dir = make_synthetic_dataset(tmp_path, layout="EuroSAT_RGB", images_per_class=1, size=16)
    for f in (data_dir / "EuroSAT_RGB" / "River").iterdir():
        f.unlink()
    with pytest.raises(DataNotFoundError) as info, pytest.warns(SamembedWarning, match="River"):
        load_dataset("eurosat", data_dir)
    message = assert_one_line(info.value)
    assert str(data_dir / "EuroSAT_RGB") in message and "--data-dir" in message


def test_eurosat_with_a_missing_class_folder_is_not_found(tmp_path):
    classes = [c for c in EUROSAT_CLASSES if c != "Forest"]
    data_dir = make_synthetic_dataset(tmp_path, layout="2750", images_per_class=1, size=16, classes=classes)
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("eurosat", data_dir)
    message = assert_one_line(info.value)
    assert str(data_dir) in message and "--data-dir" in message and "--download" in message


def test_missing_eurosat_says_how_to_get_it(tmp_path):
    nowhere = tmp_path / "nowhere"
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("eurosat", nowhere)
    message = assert_one_line(info.value)
    assert str(nowhere) in message and "--data-dir" in message and "--download" in message
    assert not nowhere.exists()  # looking does not create anything


# --------------------------------------------------------------------------------------------
# folder and the registry
# --------------------------------------------------------------------------------------------


@pytest.fixture()
def messy_folder(tmp_path):
    """A folder dataset with the clutter real folders have."""
    root = tmp_path / "messy"
    write_image(root / "b" / "b1.png")
    write_image(root / "a" / "a1.jpg")
    write_image(root / "a" / "A2.JPG")  # upper-case suffix counts
    write_image(root / "a" / "sub" / "deep" / "a3.png")  # nested: part of class a
    write_image(root / "a" / ".hidden.png")  # hidden file
    write_image(root / "a" / ".cache" / "a4.png")  # inside a hidden folder
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "a" / "labels.csv").write_text("x,y")
    write_image(root / ".git" / "x.png")  # hidden folder is not a class
    (root / "empty").mkdir()  # no images: not a class
    (root / "docs").mkdir()
    (root / "docs" / "readme.md").write_text("# only text")  # no images: not a class
    write_image(root / "stray.png")  # a file at the top is no class
    return root


def test_folder_index_ignores_clutter(messy_folder):
    with pytest.warns(SamembedWarning, match="hold no images .*: docs, empty"):
        index = load_dataset("folder", messy_folder)
    assert index.name == "folder" and index.root == messy_folder
    assert index.class_names == ["a", "b"]
    assert index.image_ids == ["a/A2.JPG", "a/a1.jpg", "a/sub/deep/a3.png", "b/b1.png"]
    assert index.labels.tolist() == [0, 0, 0, 1]


def test_folder_classes_are_alphabetical_labels_by_position(folder_dir):
    (folder_dir / "0_first").mkdir()
    write_image(folder_dir / "0_first" / "x.png")
    index = load_dataset("folder", folder_dir)
    assert index.class_names == ["0_first", "a", "b", "c"]
    for image_id, label in zip(index.image_ids, index.labels):
        assert image_id.split("/")[0] == index.class_names[label]
    assert index.labels.tolist() == sorted(index.labels.tolist())


def test_folder_needs_a_data_dir():
    with pytest.raises(UsageError) as info:
        load_dataset("folder")
    assert "--data-dir" in assert_one_line(info.value)


def test_folder_cannot_be_downloaded(folder_dir):
    with pytest.raises(UsageError) as info:
        load_dataset("folder", folder_dir, download=True)
    assert "--download" in assert_one_line(info.value)


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_folder_data_dir_must_be_a_folder(tmp_path, kind):
    path = tmp_path / "data"
    if kind == "file":
        path.write_text("not a folder")
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("folder", path)
    message = assert_one_line(info.value)
    assert str(path) in message and "--data-dir" in message


def test_folder_without_any_images_is_not_found(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "notes.txt").write_text("x")
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("folder", tmp_path)
    assert str(tmp_path) in assert_one_line(info.value)


def test_unknown_dataset_lists_the_available_ones():
    assert {"eurosat", "folder"} <= set(available_datasets())
    with pytest.raises(UsageError) as info:
        load_dataset("nope")
    message = assert_one_line(info.value)
    assert "nope" in message
    for name in available_datasets():
        assert name in message


# --------------------------------------------------------------------------------------------
# Fingerprints
# --------------------------------------------------------------------------------------------


def test_fingerprint_is_stable_and_independent_of_location(folder_dir, tmp_path):
    fingerprint = load_dataset("folder", folder_dir).fingerprint()
    assert fingerprint == load_dataset("folder", folder_dir).fingerprint()
    copy = shutil.copytree(folder_dir, tmp_path / "elsewhere" / "copy")
    assert load_dataset("folder", copy).fingerprint() == fingerprint


def test_fingerprint_follows_the_files(folder_dir):
    def fingerprint():
        return load_dataset("folder", folder_dir).fingerprint()

    seen = [fingerprint()]

    write_image(folder_dir / "a" / "added.png")
    seen.append(fingerprint())

    (folder_dir / "b" / "b_1.png").unlink()
    seen.append(fingerprint())

    target = folder_dir / "c" / "c_2.png"
    size = target.stat().st_size
    write_image(target, size=(100, 100), value=7)
    assert target.stat().st_size != size
    seen.append(fingerprint())

    (folder_dir / "c" / "c_3.png").rename(folder_dir / "a" / "c_3.png")  # relabelled
    seen.append(fingerprint())

    assert len(set(seen)) == len(seen)


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


@pytest.fixture()
def rgb_pixels():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)


def test_read_rgb_keeps_rgb_pixels(tmp_path, rgb_pixels):
    path = tmp_path / "rgb.png"
    Image.fromarray(rgb_pixels).save(path)
    out = read_rgb(path)
    assert out.dtype == np.uint8 and np.array_equal(out, rgb_pixels)


def test_read_rgb_grayscale_gives_three_equal_channels(tmp_path, rgb_pixels):
    gray = rgb_pixels[..., 0]
    path = tmp_path / "gray.png"
    Image.fromarray(gray, mode="L").save(path)
    out = read_rgb(path)
    assert out.shape == (12, 20, 3) and out.dtype == np.uint8
    for c in range(3):
        assert np.array_equal(out[..., c], gray)


def test_read_rgb_drops_alpha(tmp_path, rgb_pixels):
    rgba = np.concatenate([rgb_pixels, np.full((12, 20, 1), 40, dtype=np.uint8)], axis=-1)
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    out = read_rgb(path)
    assert out.shape == (12, 20, 3) and out.dtype == np.uint8
    assert np.array_equal(out, rgb_pixels)


def test_read_rgb_palette_uses_the_palette_colours(tmp_path):
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9)
    indices = np.array([[0, 1, 2, 1], [2, 2, 0, 0]], dtype=np.uint8)
    img = Image.fromarray(indices, mode="P")
    img.putpalette(palette)
    path = tmp_path / "palette.png"
    img.save(path, transparency=1)  # a transparent index too
    out = read_rgb(path)
    assert Image.open(path).mode == "P"
    assert out.shape == (2, 4, 3) and out.dtype == np.uint8
    expected = np.array(palette[:9], dtype=np.uint8).reshape(3, 3)[indices]
    assert np.array_equal(out, expected)


@pytest.mark.parametrize("suffix", [".jpg", ".tif"])
def test_read_rgb_cmyk(tmp_path, suffix):
    yy, xx = np.mgrid[0:32, 0:48]
    smooth = np.stack([xx * 5, yy * 7, 255 - xx * 5], axis=-1).astype(np.uint8)  # JPEG-friendly
    path = tmp_path / f"cmyk{suffix}"
    Image.fromarray(smooth).convert("CMYK").save(path)
    assert Image.open(path).mode == "CMYK"
    out = read_rgb(path)
    assert out.shape == (32, 48, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - smooth).mean() < 8


def truncated_jpeg(path: Path, pixels: np.ndarray) -> Path:
    Image.fromarray(pixels).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def garbage_file(path: Path) -> Path:
    path.write_bytes(bytes(range(256)) * 4)
    return path


@pytest.mark.parametrize("make", [truncated_jpeg, garbage_file], ids=["truncated-jpeg", "garbage"])
def test_read_rgb_corrupt_files(tmp_path, rgb_pixels, make):
    path = tmp_path / "bad.jpg"
    if make is truncated_jpeg:
        make(path, rgb_pixels)
    else:
        make(path)
    with pytest.raises(CorruptImageError) as info:
        read_rgb(path)
    message = assert_one_line(info.value)
    assert str(path) in message and "--skip-bad" in message


# --------------------------------------------------------------------------------------------
# Loader
# --------------------------------------------------------------------------------------------


@pytest.fixture()
def folder_with_bad_file(folder_dir):
    """``folder_dir`` plus one undecodable file; returns (index, id of the bad file)."""
    garbage_file(folder_dir / "b" / "b_0_bad.png")
    index = load_dataset("folder", folder_dir)
    return index, "b/b_0_bad.png"


def test_image_files_items(folder_with_bad_file):
    index, bad_id = folder_with_bad_file
    indices = np.random.default_rng(0).permutation(len(index))
    items = ImageFiles(InputReader(index), indices, Geometry(IMG_SIZE))
    assert len(items) == len(index) == 13

    non_square = 0
    for j in range(len(items)):
        i, image, valid_hw, orig_hw, error, mask, data = items[j]
        assert mask.numel() == 0 and data.numel() == 0  # a classification dataset of 8-bit images: no masks
        assert i == indices[j]
        assert image.dtype == torch.uint8 and image.shape == (3, IMG_SIZE, IMG_SIZE)
        if index.image_ids[i] == bad_id:
            assert error and str(index.path(i)) in error and "\n" not in error
            assert not image.any()
            continue
        assert error == ""
        with Image.open(index.path(i)) as img:
            w, h = img.size
        assert orig_hw.tolist() == [h, w]
        expected_hw = ResizeLongestSide.get_preprocess_shape(h, w, IMG_SIZE)
        assert tuple(valid_hw.tolist()) == expected_hw
        vh, vw = expected_hw
        non_square += vh != vw
        assert max(vh, vw) == IMG_SIZE
        assert not image[:, vh:, :].any() and not image[:, :, vw:].any()
        resized = ResizeLongestSide(IMG_SIZE).apply_image(read_rgb(index.path(i)))
        assert torch.equal(image[:, :vh, :vw], torch.from_numpy(resized).permute(2, 0, 1))
    assert non_square > 0  # the padding checks above did check something


def collect(loader) -> dict:
    batches = list(loader)
    return {
        "index": torch.cat([b[0] for b in batches]),
        "image": torch.cat([b[1] for b in batches]),
        "valid_hw": torch.cat([b[2] for b in batches]),
        "orig_hw": torch.cat([b[3] for b in batches]),
        "error": [e for b in batches for e in b[4]],
        "sizes": [len(b[0]) for b in batches],
    }


def test_image_loader_workers_give_the_same_batches_in_order(folder_with_bad_file):
    index, bad_id = folder_with_bad_file
    indices = np.arange(len(index))[::-1].copy()  # any order: batches must follow it
    kwargs = dict(batch_size=4, pin_memory=False)
    serial = collect(image_loader(InputReader(index), indices, Geometry(IMG_SIZE), workers=0, **kwargs))
    parallel = collect(image_loader(InputReader(index), indices, Geometry(IMG_SIZE), workers=2, **kwargs))

    assert serial["index"].tolist() == indices.tolist()
    assert serial["sizes"] == [4, 4, 4, 1]
    assert [bool(e) for e in serial["error"]] == [index.image_ids[i] == bad_id for i in indices]
    assert serial["image"].shape == (13, 3, IMG_SIZE, IMG_SIZE)
    for key in ("index", "image", "valid_hw", "orig_hw"):
        assert torch.equal(parallel[key], serial[key]), key
    assert parallel["error"] == serial["error"] and parallel["sizes"] == serial["sizes"]


# --------------------------------------------------------------------------------------------
# Synthetic datasets
# --------------------------------------------------------------------------------------------


def test_synthetic_unknown_layout(tmp_path):
    with pytest.raises(UsageError) as info:
        make_synthetic_dataset(tmp_path / "x", layout="imagenet")
    message = assert_one_line(info.value)
    assert "imagenet" in message and "2750" in message and "EuroSAT_RGB" in message
    assert not (tmp_path / "x").exists()


def test_synthetic_needs_an_image_per_class(tmp_path):
    with pytest.raises(UsageError):
        make_synthetic_dataset(tmp_path, images_per_class=0)


def test_synthetic_vary_size(tmp_path):
    root = make_synthetic_dataset(tmp_path, layout="folder", images_per_class=6, size=40, classes=["x", "y"],
                                  vary_size=True)
    sizes = [Image.open(p).size for p in sorted(root.rglob("*.jpg"))]
    assert len(sizes) == 12
    assert any(w != h for w, h in sizes)
    assert len(set(sizes)) > 3
    assert all(20 <= s <= 60 for wh in sizes for s in wh)


def test_synthetic_fixed_size(tmp_path):
    root = make_synthetic_dataset(tmp_path, layout="folder", images_per_class=2, size=(24, 40), classes=["x"])
    assert {Image.open(p).size for p in root.rglob("*.jpg")} == {(40, 24)}


def test_synthetic_same_seed_same_bytes(tmp_path):
    def make(name, seed):
        return files_under(make_synthetic_dataset(tmp_path / name, layout="2750", images_per_class=2, size=16,
                                                  seed=seed, vary_size=True))

    first = make("one", seed=3)
    assert len(first) == 20 and all(k.startswith("2750/") for k in first)
    assert make("two", seed=3) == first
    other = make("three", seed=4)
    assert other.keys() == first.keys() and other != first


def test_messages_cap_long_lists_of_names(tmp_path):
    """Before: every empty class folder was named, however many (one line of any length)."""
    from samembed.errors import capped

    assert capped(["a", "b"]) == "a, b"
    assert capped(map(str, range(100)), 3) == "0, 1, 2 ... and 97 more"
    assert capped(["x" * 200]) == "x" * 57 + "..."
    data = make_synthetic_dataset(tmp_path / "d", layout="folder", images_per_class=2, classes=["a", "b"])
    for i in range(500):
        (data / f"empty{i:03d}").mkdir()
    with pytest.warns(SamembedWarning) as caught:
        load_dataset("folder", data)
    (message,) = [str(w.message) for w in caught]
    assert "500 class folder(s)" in message and "empty000, empty001" in message and "... and 495 more" in message
    assert len(message) < 300
