"""Reading SAM checkpoints: architecture inference for several shapes, the accepted key layouts,
and one clear error for files that are not SAM checkpoints."""

from __future__ import annotations

import pickle

import pytest
import torch

from samembed.encoders import create_encoder, infer_arch, load_encoder_state_dict, write_tiny_checkpoint
from samembed.encoders.sam_checkpoint import OFFICIAL, VARIANTS, resolve_checkpoint
from samembed.encoders.tiny import build_sam, variant_state_dict_shapes
from samembed.errors import CheckpointError, DownloadError, UsageError


@pytest.mark.parametrize("variant", ["vit_b", "vit_l", "vit_h"])
def test_published_variants_are_recognised_from_their_shapes(variant):
    shapes = variant_state_dict_shapes(variant)  # built on the meta device: no memory
    arch = infer_arch({k: torch.empty(s, device="meta") for k, s in shapes.items()})
    dim, depth, heads, glob = VARIANTS[variant]
    assert (arch.embed_dim, arch.depth, arch.num_heads, arch.global_attn_indexes) == (dim, depth, heads, glob)
    assert (arch.window_size, arch.patch_size, arch.native_img_size, arch.out_chans) == (14, 16, 1024, 256)
    assert arch.variant == variant


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(embed_dim=32, depth=2, num_heads=2, global_attn_indexes=(1,)),
        dict(embed_dim=48, depth=4, num_heads=3, global_attn_indexes=(0, 3), window_size=7),
        dict(embed_dim=64, depth=3, num_heads=4, global_attn_indexes=(2,), img_size=512, out_chans=48),
        dict(embed_dim=32, depth=2, num_heads=1, global_attn_indexes=(0, 1), patch_size=8, img_size=256),
    ],
)
def test_unusual_architectures_are_inferred(tmp_path, kwargs):
    path = write_tiny_checkpoint(tmp_path / "c.pth", **kwargs)
    arch = infer_arch(load_encoder_state_dict(path))
    assert arch.embed_dim == kwargs["embed_dim"]
    assert arch.depth == kwargs["depth"]
    assert arch.num_heads == kwargs["num_heads"]
    assert arch.global_attn_indexes == kwargs["global_attn_indexes"]
    all_global = len(kwargs["global_attn_indexes"]) == kwargs["depth"]
    assert arch.window_size == (0 if all_global else kwargs.get("window_size", 14))
    assert arch.patch_size == kwargs.get("patch_size", 16)
    assert arch.native_img_size == kwargs.get("img_size", 1024)
    assert arch.out_chans == kwargs.get("out_chans", 32)
    assert arch.variant == "custom"


def test_checkpoint_round_trips_through_the_builder(tmp_path):
    """The encoder built from an inferred architecture reproduces the original's weights."""
    kwargs = dict(embed_dim=48, depth=3, num_heads=3, global_attn_indexes=(1,), img_size=256)
    path = write_tiny_checkpoint(tmp_path / "c.pth", **kwargs)
    vit = create_encoder("sam", checkpoint=path).build_vit()
    original = build_sam(**kwargs).image_encoder.state_dict()
    rebuilt = vit.state_dict()
    assert original.keys() == rebuilt.keys()
    assert all(torch.equal(original[k], rebuilt[k]) for k in original)


@pytest.mark.parametrize("wrap", ["nested-model", "nested-state_dict", "module-prefix", "encoder-only"])
def test_accepted_key_layouts(tmp_path, tiny_checkpoint, wrap):
    sd = torch.load(tiny_checkpoint, weights_only=True)
    if wrap == "nested-model":
        obj = {"model": sd, "epoch": 3}
    elif wrap == "nested-state_dict":
        obj = {"state_dict": sd}
    elif wrap == "module-prefix":
        obj = {f"module.{k}": v for k, v in sd.items()}
    else:
        obj = {k.removeprefix("image_encoder."): v for k, v in sd.items() if k.startswith("image_encoder.")}
    path = tmp_path / "wrapped.pth"
    torch.save(obj, path)
    assert infer_arch(load_encoder_state_dict(path)) == infer_arch(load_encoder_state_dict(tiny_checkpoint))


def _one_line(err) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_a_file_that_is_not_a_checkpoint_gets_one_clear_line(tmp_path):
    path = tmp_path / "image.jpg"
    path.write_bytes(b"\xff\xd8 definitely not a checkpoint" * 10)
    with pytest.raises(CheckpointError) as err:
        create_encoder("sam", checkpoint=path)
    assert str(path) in _one_line(err) and "SAM checkpoint" in _one_line(err)


def test_a_torch_file_without_a_sam_encoder_is_refused(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(4, 3, 3, 3)}, path)
    with pytest.raises(CheckpointError) as err:
        create_encoder("sam", checkpoint=path)
    assert "not a SAM checkpoint" in _one_line(err)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_unsafe_pickles_are_not_loaded(tmp_path):
    """weights_only=True: a checkpoint that would run code is refused, not executed."""

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"image_encoder.patch_embed.proj.weight": Evil()}, f)
    with pytest.raises(CheckpointError):
        create_encoder("sam", checkpoint=path)


def test_a_truncated_checkpoint_is_refused(tmp_path, tiny_checkpoint):
    path = tmp_path / "cut.pth"
    path.write_bytes(tiny_checkpoint.read_bytes()[:5000])
    with pytest.raises(CheckpointError):
        create_encoder("sam", checkpoint=path)


def test_missing_checkpoint_and_unknown_model(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        create_encoder("sam", checkpoint=tmp_path / "nope.pth")
    with pytest.raises(UsageError, match="vit_b"):
        create_encoder("sam", model="vit_x")
    with pytest.raises(UsageError, match="unknown encoder"):
        create_encoder("resnet")


def test_model_contradicting_checkpoint_is_refused(tmp_path, monkeypatch):
    import samembed.encoders.sam_checkpoint as sc

    path = write_tiny_checkpoint(tmp_path / "c.pth")
    assert create_encoder("sam", model="vit_l", checkpoint=path).arch.variant == "custom"  # custom: any --model
    monkeypatch.setitem(sc.VARIANTS, "vit_b", (32, 2, 2, (1,)))  # pretend the tiny shape is vit_b's
    assert create_encoder("sam", model="vit_b", checkpoint=path).arch.variant == "vit_b"
    with pytest.raises(UsageError, match="holds a vit_b"):
        create_encoder("sam", model="vit_l", checkpoint=path)


def test_official_models_download_into_the_user_cache_and_fail_clearly_offline(monkeypatch):
    """Without --checkpoint the official file is fetched; offline that ends in one line that
    names the URL and the --checkpoint way out."""
    import samembed.encoders.sam_checkpoint as sc

    monkeypatch.setattr(sc, "BASE_URL", "http://127.0.0.1:9/")  # discard port: nothing listens
    with pytest.raises(DownloadError) as err:
        resolve_checkpoint("vit_b", None)
    message = _one_line(err)
    assert OFFICIAL["vit_b"].filename in message and "samembed-home" in message


def test_official_checkpoint_already_in_the_user_cache_is_used(monkeypatch, tmp_path, tiny_checkpoint):
    """A verified file in the user cache folder is used without any network access."""
    import samembed.encoders.sam_checkpoint as sc
    from samembed.hashing import sha256sum
    from samembed.paths import user_cache_dir

    fake = sc.OfficialCheckpoint("sam_vit_b_01ec64.pth", tiny_checkpoint.stat().st_size, sha256sum(tiny_checkpoint))
    monkeypatch.setitem(sc.OFFICIAL, "vit_b", fake)
    monkeypatch.setattr(sc, "BASE_URL", "http://127.0.0.1:9/")
    target = user_cache_dir() / "checkpoints" / fake.filename
    target.parent.mkdir(parents=True)
    target.write_bytes(tiny_checkpoint.read_bytes())
    assert resolve_checkpoint("vit_b", None) == target
