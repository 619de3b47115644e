"""SAM 2, DINOv3 and Prithvi-EO-2.0 in the encoder registry, with random weights in their official
checkpoint layouts: loading, shapes, preprocessing, geometry, signatures, one-line errors, and
checkpoint files that give the same embeddings as the same weights built in memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import samembed
from samembed.datasets import make_synthetic_dataset, make_synthetic_rasters, make_synthetic_roads
from samembed.encoders.official_layouts import (dinov3_official_state_dict, prithvi_state_dict,
                                                write_dinov3_checkpoint, write_prithvi_checkpoint)
from samembed.encoders.sam2 import write_tiny_sam2_checkpoint
from samembed.errors import CheckpointError, MissingExtraError, SignatureMismatchError, UsageError
from samembed.prompting.predictor import CachePredictor
from samembed.prompting.prompts import Prompt


@pytest.fixture(scope="module")
def rgb_data(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("rgb") / "data", images_per_class=2, jitter=20)


@pytest.fixture(scope="module")
def ms_data(tmp_path_factory):
    return make_synthetic_rasters(tmp_path_factory.mktemp("ms") / "data", images_per_class=2)


@pytest.fixture(scope="module")
def sam2_ckpt(tmp_path_factory):
    return write_tiny_sam2_checkpoint(tmp_path_factory.mktemp("sam2") / "tiny_sam2.pt")


@pytest.fixture(scope="module")
def prithvi_ckpt(tmp_path_factory):
    return write_prithvi_checkpoint(tmp_path_factory.mktemp("prithvi") / "Prithvi_tiny.pt")


def _images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)]


# -- SAM 2 ----------------------------------------------------------------------------------------

def test_sam2_embedding_is_sam2_image_predictors_on_stretched_images(sam2_ckpt):
    from sam2.sam2_image_predictor import SAM2ImagePredictor
    from sam2.utils.transforms import SAM2Transforms

    spec = samembed.create_encoder("sam2", checkpoint=sam2_ckpt, img_size=256)
    assert spec.geometry.resize == "square" and spec.map_size == 16 and spec.pooled_dims == {"neck": 256, "trunk": 128}
    model = spec.build(torch.device("cpu"))
    predictor = SAM2ImagePredictor(spec.build_sam2())
    predictor._transforms = SAM2Transforms(256, 0.0)  # the predictor's own transform, at this input size
    predictor._bb_feat_sizes = [(64, 64), (32, 32), (16, 16)]
    for rgb in _images():
        canvas, hw = spec.preprocessor()(rgb)
        assert hw == (256, 256) and canvas.dtype == torch.float32  # stretched: nothing is padding
        with torch.inference_mode():
            pooled, embedding = model(canvas[None], torch.tensor([hw]))
            predictor.set_image(rgb)
        reference = predictor._features["image_embed"]
        assert torch.allclose(embedding, reference, atol=1e-4, rtol=1e-4)
        assert torch.allclose(pooled["neck"], reference.mean(dim=(2, 3)), atol=1e-4)


def test_sam2_official_file_gives_the_embeddings_of_the_same_weights_in_memory(tmp_path):
    """A whole SAM 2.1 model built in memory, saved in the official format ({"model": state dict}):
    the encoder loaded from the file gives the same embedding, pooled vectors and prompt maps."""
    from samembed.encoders.sam2 import TINY, Sam2Arch, Sam2ImageEncoder, build_model

    torch.manual_seed(5)
    model = build_model(Sam2Arch("samembed-tiny", TINY, (7, 7), "2.1"), 128).eval()
    torch.save({"model": model.state_dict()}, tmp_path / "sam2.1_finetune.pt")
    spec = samembed.create_encoder("sam2", checkpoint=tmp_path / "sam2.1_finetune.pt", img_size=128)
    assert spec.prompt_maps() == {"high_res_s4": (32, 4), "high_res_s8": (64, 8)}
    images = torch.rand(2, 3, 128, 128) * 255
    valid = torch.tensor([[128, 128]] * 2)
    with torch.inference_mode():
        ours = spec.build(torch.device("cpu"), prompt_maps=True)(images, valid)
        theirs = Sam2ImageEncoder(model, prompt_maps=True)(images, valid)
    assert torch.equal(ours[1], theirs[1]) and all(torch.equal(ours[0][k], theirs[0][k]) for k in ("neck", "trunk"))
    assert {k: tuple(v.shape) for k, v in ours[2].items()} == {"high_res_s4": (2, 32, 32, 32),
                                                               "high_res_s8": (2, 64, 16, 16)}
    assert all(torch.equal(ours[2][k], theirs[2][k]) for k in ours[2])


def test_sam2_geometry_maps_points_boxes_and_masks_as_sam2_does():
    from sam2.utils.transforms import SAM2Transforms

    from samembed.encoders.geometry import Geometry

    g = Geometry(1024, 16, resize="square", pixels="float32")
    points = np.array([[10.0, 20.0], [79.0, 47.0]])
    ours = g.points_to_input(points, (48, 80))
    theirs = SAM2Transforms(1024, 0.0).transform_coords(torch.tensor(points), normalize=True, orig_hw=(48, 80))
    assert np.allclose(ours, theirs.numpy())
    assert np.allclose(g.boxes_to_input(np.array([0, 0, 80, 48.0]), (48, 80)), [0, 0, 1024, 1024])
    mask = np.zeros((48, 80), bool)
    mask[10:20, 30:60] = True
    square = g.mask_to_input(mask)
    assert square.shape == (1024, 1024) and square[:, -1].sum() == 0 and square.any()
    back = g.input_to_original(square.float(), (48, 80), mode="nearest-exact") > 0.5
    assert np.array_equal(back.numpy(), mask)
    assert Geometry.from_signature({"img_size": 1024, "geometry": g.to_dict()}) == g
    assert Geometry.from_signature({"img_size": 1024}) == Geometry(1024)  # caches made before SAM 2


def test_sam2_extracts_and_refuses_prompts_in_one_line(rgb_data, sam2_ckpt, tmp_path):
    result = samembed.extract("eurosat", data_dir=rgb_data, encoder="sam2", checkpoint=sam2_ckpt, img_size=128,
                              grid=8, cache_dir=tmp_path, progress=False, workers=0)
    assert result.group.startswith("sam2.1-samembed-tiny-") and result.encoded == 20
    g = samembed.open_cache(tmp_path, "eurosat", result.group)
    assert g.group["grid"].shape == (20, 256, 8, 8) and g.group["neck"].shape == (20, 256)
    sig = g.signature["encoder"]
    assert sig["geometry"]["resize"] == "square" and sig["arch"]["release"] == "2.1" and "sam2_version" in sig
    assert (g.read("valid_hw") == 128).all() and "prompt_maps" not in g.signature and "high_res_s4" not in g.arrays
    with pytest.raises(UsageError, match="made without --prompt-features, and sam2's mask decoder also reads high_res_s4, high_res_s8") as err:
        samembed.prompt("eurosat", encoder=result.group, image=str(g.read("image_ids")[0]), points=["3,3"],
                        cache_dir=tmp_path)
    assert "\n" not in str(err.value) and "extract again with --prompt-features" in str(err.value)
    # The prompt features are another layout: the same group is refused, naming the key, until --overwrite.
    with pytest.raises(SignatureMismatchError, match="prompt_maps"):
        samembed.extract("eurosat", data_dir=rgb_data, encoder="sam2", checkpoint=sam2_ckpt, img_size=128,
                         prompt_features=True, cache_dir=tmp_path, progress=False, workers=0)
    with pytest.raises(UsageError, match="--prompt-features stores the whole feature map \\(8 x 8\\); drop --grid 4"):
        samembed.extract("eurosat", data_dir=rgb_data, encoder="sam2", checkpoint=sam2_ckpt, img_size=128, grid=4,
                         prompt_features=True, cache_dir=tmp_path, progress=False, workers=0)
    again = samembed.extract("eurosat", data_dir=rgb_data, encoder="sam2", checkpoint=sam2_ckpt, img_size=128,
                             prompt_features=True, overwrite=True, cache_dir=tmp_path, progress=False, workers=0)
    g = samembed.open_cache(tmp_path, "eurosat", again.group)
    assert g.group["grid"].shape == (20, 256, 8, 8)  # the whole map
    assert g.group["high_res_s4"].shape == (20, 32, 32, 32) and g.group["high_res_s8"].shape == (20, 64, 16, 16)
    assert g.group["high_res_s4"].dtype == np.float16
    assert g.signature["prompt_maps"]["high_res_s8"] == {"channels": 64, "side": 16, "dtype": "float16"}
    # ... and resuming keeps that layout: a run without the option is refused too
    with pytest.raises(SignatureMismatchError, match="prompt_maps"):
        samembed.extract("eurosat", data_dir=rgb_data, encoder="sam2", checkpoint=sam2_ckpt, img_size=128,
                         cache_dir=tmp_path, progress=False, workers=0)


def test_prompt_features_of_sam_are_its_whole_map_alone(rgb_data, tiny_checkpoint, tmp_path):
    """SAM's decoder reads only the image embedding: --prompt-features keeps the whole map (the
    default grid becomes it) and stores nothing else, so the signature is that of --grid G."""
    kwargs = dict(data_dir=rgb_data, checkpoint=tiny_checkpoint, img_size=128, progress=False, workers=0)
    ours = samembed.extract("eurosat", prompt_features=True, cache_dir=tmp_path / "a", **kwargs)
    plain = samembed.extract("eurosat", grid=8, cache_dir=tmp_path / "b", **kwargs)
    a, b = (samembed.open_cache(tmp_path / d, "eurosat", r.group) for d, r in (("a", ours), ("b", plain)))
    assert a.group["grid"].shape[2:] == (8, 8) and set(a.arrays) == set(b.arrays)
    assert a.signature == b.signature and np.array_equal(a.read("grid"), b.read("grid"))


PROMPTS = [
    Prompt(((30.0, 20.0),), (1,)),  # a point
    Prompt(((30.0, 20.0), (5.0, 30.0)), (1, 0)),  # a positive and a negative point
    Prompt(box=(10.0, 5.0, 40.0, 30.0)),  # a box
    Prompt(((30.0, 20.0),), (1,), (10.0, 5.0, 40.0, 30.0)),  # both
]


@pytest.fixture(scope="module")
def sam2_roads(tmp_path_factory, sam2_ckpt):
    """Generated roads of non-square sizes in a SAM 2 cache with its prompt features, at 256."""
    tmp = tmp_path_factory.mktemp("sam2-prompt")
    data = make_synthetic_roads(tmp / "data", layout="seg-folder", counts=(3, 0, 0), size=72, seed=3)
    samembed.extract("seg-folder", data_dir=data, encoder="sam2", checkpoint=sam2_ckpt, img_size=256,
                     prompt_features=True, workers=0, progress=False, cache_dir=tmp / "cache")
    return tmp, data


def test_sam2_masks_from_the_cache_equal_sam2_image_predictors(sam2_roads, sam2_ckpt):
    """SAM 2's own prompt encoder and mask decoder on the cache: on the predictor's float32 features
    the same logits and IoUs as ``SAM2ImagePredictor.predict`` for points, boxes, both, multimask on
    and off; from the cache (float16, stretched images of other aspects) the same masks at the
    original size up to float16 rounding."""
    from sam2.sam2_image_predictor import SAM2ImagePredictor
    from sam2.utils.transforms import SAM2Transforms

    tmp, data = sam2_roads
    predictor = CachePredictor(samembed.open_cache(tmp / "cache", "seg-folder"))
    reference = SAM2ImagePredictor(samembed.create_encoder("sam2", checkpoint=sam2_ckpt, img_size=256).build_sam2())
    reference._transforms = SAM2Transforms(256, 0.0)  # the predictor's own transform, at this input size
    reference._bb_feat_sizes = [(64, 64), (32, 32), (16, 16)]
    index = samembed.datasets.load_dataset("seg-folder", data)
    for i in range(len(index)):
        rgb = samembed.datasets.read_rgb(index.path(i))
        assert rgb.shape[0] != rgb.shape[1]  # stretched differently along each axis
        reference.set_image(rgb)
        features = reference._features
        for multimask in (True, False):
            ours, ours_iou = predictor.logits(i, PROMPTS, multimask, embedding=features["image_embed"],
                                              high_res=features["high_res_feats"])
            answers = predictor.predict(i, PROMPTS, multimask)
            for p, prompt_ in enumerate(PROMPTS):
                points = np.array(prompt_.points) if prompt_.points else None
                labels = np.array(prompt_.labels) if prompt_.points else None
                box = np.array(prompt_.box) if prompt_.box else None
                masks, iou, low_res = reference.predict(points, labels, box, multimask_output=multimask)
                assert ours.shape[1] == len(iou) == (3 if multimask else 1)
                torch.testing.assert_close(ours[p].clamp(-32, 32), torch.from_numpy(low_res), rtol=1e-5, atol=1e-5)
                torch.testing.assert_close(ours_iou[p], torch.from_numpy(iou), rtol=1e-5, atol=1e-5)
                best = int(np.argmax(iou))
                assert answers[p].mask.shape == masks[best].shape == rgb.shape[:2]
                assert (answers[p].mask == masks[best]).mean() > 0.995
                assert answers[p].score == pytest.approx(float(iou[best]), abs=2e-2)


def test_zero_shot_heads_run_on_a_sam2_cache(tmp_path, sam2_ckpt):
    data = make_synthetic_roads(tmp_path / "data", counts=(4, 2, 3), size=64)
    samembed.extract("road", data_dir=data, encoder="sam2", checkpoint=sam2_ckpt, img_size=128, prompt_features=True,
                     workers=0, progress=False, cache_dir=tmp_path / "cache")
    records = samembed.sweep("road", heads=["sam-box", "sam-1point"], splits=["standard"], cache_dir=tmp_path / "cache",
                             runs_dir=tmp_path / "runs", progress=False)
    assert {r["config"]["head"] for r in records} == {"sam-box", "sam-1point"}
    group = samembed.open_cache(tmp_path / "cache", "road")
    predictor = CachePredictor(group)
    index = samembed.datasets.load_dataset("road", data)
    for record in records:
        m = record["metrics"]
        assert record["cache"]["group"].startswith("sam2.1-") and len(m["per_image"]) == 3 and 0 <= m["micro_dice"] <= 1
        for row in m["per_image"]:  # each image's prediction is the union of SAM 2's answers to its prompts
            i = index.image_ids.index(row["image_id"])
            prompts = [Prompt(tuple(map(tuple, p["points"])), tuple(p["labels"]), tuple(p["box"]) if p["box"] else None)
                       for p in row.get("prompts", [])]
            union = np.zeros(index.mask(i).shape, bool)
            for answer in predictor.predict(i, prompts) if prompts else []:
                union |= answer.mask
            assert row["tp"] == int((union & index.mask(i)).sum())


def test_sam2_official_models_checkpoints_and_missing_extra(sam2_ckpt, tmp_path, monkeypatch):
    from samembed.encoders import sam2 as sam2_module
    from samembed.paths import user_cache_dir

    # An official model's file already in the user cache is used offline, its sha256 recorded.
    cached = user_cache_dir() / "checkpoints" / sam2_module.OFFICIAL_FILES["hiera_t"]
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(sam2_ckpt.read_bytes())
    with pytest.raises(UsageError, match="--model hiera_t was given but .* holds a samembed-tiny"):
        samembed.create_encoder("sam2", model="hiera_t")
    assert cached.with_name(cached.name + ".sha256").is_file()
    with pytest.raises(UsageError, match="--model for sam2 is one of hiera_t, hiera_s, hiera_b\\+, hiera_l, not 'hiera_x'"):
        samembed.create_encoder("sam2", model="hiera_x")
    with pytest.raises(UsageError, match="multiple of 32"):
        samembed.create_encoder("sam2", checkpoint=sam2_ckpt, img_size=80)
    sam_like = samembed.write_tiny_checkpoint(tmp_path / "sam.pth")
    with pytest.raises(CheckpointError, match="not a SAM 2 checkpoint"):
        samembed.create_encoder("sam2", checkpoint=sam_like)
    with pytest.raises(CheckpointError, match="is a SAM 2 checkpoint"):
        from samembed.encoders.sam_checkpoint import load_prompt_and_mask_decoder
        load_prompt_and_mask_decoder(sam2_ckpt)

    def not_installed():
        raise MissingExtraError('the sam2 encoder needs the sam2 package: pip install "samembed[sam2]"')

    monkeypatch.setattr(sam2_module, "require_sam2", not_installed)
    with pytest.raises(MissingExtraError, match=r'pip install "samembed\[sam2\]"'):
        samembed.create_encoder("sam2", checkpoint=sam2_ckpt)


# -- DINOv3 ---------------------------------------------------------------------------------------

def test_dinov3_official_file_gives_the_embeddings_of_the_same_weights_in_memory(tmp_path):
    import timm

    from samembed.encoders.dinov2 import DinoV2Encoder
    from samembed.encoders.pixels import PixelNormalise

    torch.manual_seed(3)
    vit = timm.create_model("vit_small_patch16_dinov3_qkvb", pretrained=False, num_classes=0, img_size=32).eval()
    with torch.no_grad():  # biases that are not zero: the file must keep them (timm's _qkvb architecture)
        for block in vit.blocks:
            block.attn.q_bias.normal_()
            block.attn.v_bias.normal_()
    sd = dinov3_official_state_dict(vit)
    assert "storage_tokens" in sd and "blocks.0.ls1.gamma" in sd and "blocks.0.attn.qkv.bias" in sd
    torch.save(sd, tmp_path / "dinov3_vits16_pretrain_lvd1689m.pth")
    spec = samembed.create_encoder("dinov3", checkpoint=tmp_path / "dinov3_vits16_pretrain_lvd1689m.pth", img_size=32)
    reference = DinoV2Encoder(vit, 16, PixelNormalise()).eval()
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    valid = torch.tensor([[32, 32], [32, 20]])
    with torch.inference_mode():
        (ours, ours_map), (ref, ref_map) = spec.build(torch.device("cpu"))(images, valid), reference(images, valid)
    assert torch.equal(ours_map, ref_map) and torch.equal(ours["cls"], ref["cls"]) and torch.equal(ours["mean"], ref["mean"])
    # The satellite weights bring their own statistics, recorded in the signature.
    sat = samembed.create_encoder("dinov3", model="vitl16-sat-random")
    assert "SAT-493M mean (109.65, 104.805, 75.48)" in sat.signature()["preprocessing"]
    assert sat.key == "dinov3-vitl16-sat-random" and sat.pooled_dims == {"cls": 1024, "mean": 1024}
    # web and satellite random weights normalise differently: two groups, not one refused by the other
    assert samembed.create_encoder("dinov3", model="vitl16-random").key == "dinov3-vitl16-random"


def test_dinov3_extracts_like_dinov2_and_refuses_what_it_cannot_take(rgb_data, tmp_path):
    ckpt = write_dinov3_checkpoint(tmp_path / "dinov3_vits16_pretrain_lvd1689m.pth")
    result = samembed.extract("eurosat", data_dir=rgb_data, encoder="dinov3", checkpoint=ckpt, img_size=32,
                              cache_dir=tmp_path / "cache", progress=False, workers=0)
    g = samembed.open_cache(tmp_path / "cache", "eurosat", result.group)
    assert g.attrs["pooled"] == ["cls", "mean"] and g.group["grid"].shape == (20, 384, 2, 2)
    assert np.allclose(g.read("mean"), g.read("grid").astype(np.float32).mean(axis=(2, 3)), atol=2e-2)
    assert "ImageNet" in g.signature["encoder"]["preprocessing"]
    random = samembed.create_encoder("dinov3", model="vitb16-random")
    assert random.key == "dinov3-vitb16-random" and random.pooled_dims["cls"] == 768 and random.img_size == 224
    with pytest.raises(UsageError, match="--model for dinov3 is one of"):
        samembed.create_encoder("dinov3", model="vitg14")
    with pytest.raises(UsageError, match="multiple of 16"):
        samembed.create_encoder("dinov3", img_size=100)
    with pytest.raises(CheckpointError, match="not a DINOv3 vitb16 checkpoint"):
        samembed.create_encoder("dinov3", model="vitb16", checkpoint=ckpt).build(torch.device("cpu"))


# -- Prithvi-EO-2.0 -------------------------------------------------------------------------------

class ReferencePrithvi(torch.nn.Module):
    """Prithvi-EO-2.0's encoder forward for one frame, written from its published description: a 3D
    patch embedding over (B, 6, T=1, H, W), the first frame's fixed positions (resampled bicubically
    with aligned corners at another size), the class token with its position, the blocks, the norm."""

    def __init__(self, sd: dict, embed_dim: int, depth: int, heads: int, img_size: int):
        super().__init__()
        from timm.models.vision_transformer import Block

        self.proj = torch.nn.Conv3d(6, embed_dim, (1, 16, 16), (1, 16, 16))
        self.proj.load_state_dict({"weight": sd["encoder.patch_embed.proj.weight"],
                                   "bias": sd["encoder.patch_embed.proj.bias"]})
        self.blocks = torch.nn.ModuleList(Block(embed_dim, heads, 4.0, qkv_bias=True, norm_layer=torch.nn.LayerNorm)
                                          for _ in range(depth))  # torch's LayerNorm (eps 1e-5), as Prithvi's
        for i, block in enumerate(self.blocks):
            block.load_state_dict({k[len(f"encoder.blocks.{i}."):]: v for k, v in sd.items()
                                   if k.startswith(f"encoder.blocks.{i}.")})
        self.norm = torch.nn.LayerNorm(embed_dim)
        self.norm.load_state_dict({"weight": sd["encoder.norm.weight"], "bias": sd["encoder.norm.bias"]})
        self.cls = sd["encoder.cls_token"]
        pos = sd["encoder.pos_embed"]
        grid = pos[:, 1:1 + 14 * 14].reshape(1, 14, 14, -1).permute(0, 3, 1, 2)
        g = img_size // 16
        grid = F.interpolate(grid, size=(g, g), mode="bicubic", align_corners=True) if g != 14 else grid
        self.pos = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, g * g, -1)], dim=1)

    def forward(self, x):  # (B, 6, H, W) normalised
        t = self.proj(x[:, :, None]).flatten(2).transpose(1, 2) + self.pos[:, 1:]
        t = torch.cat([(self.cls + self.pos[:, :1]).expand(len(x), -1, -1), t], dim=1)
        for block in self.blocks:
            t = block(t)
        return self.norm(t)


@pytest.mark.parametrize("img_size", [224, 64])
def test_prithvi_official_file_gives_prithvis_embeddings(prithvi_ckpt, img_size):
    from samembed.encoders.prithvi import MEAN, STD

    sd = torch.load(prithvi_ckpt, weights_only=True)
    assert sd["encoder.patch_embed.proj.weight"].shape == (64, 6, 1, 16, 16) and "decoder.mask_token" in sd
    assert sd["encoder.pos_embed"].shape == (1, 1 + 4 * 196, 64)  # four frames, as the published files
    spec = samembed.create_encoder("prithvi", checkpoint=prithvi_ckpt, img_size=img_size)
    assert spec.input_bands == ("BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2")
    assert spec.arch.num_heads == 1 and spec.pooled_dims == {"mean": 64, "cls": 64}
    reference = ReferencePrithvi(sd, 64, 2, 1, img_size).eval()
    bands = torch.rand(2, 6, img_size, img_size) * 4000
    valid = torch.tensor([[img_size, img_size]] * 2)
    with torch.inference_mode():
        pooled, fmap = spec.build(torch.device("cpu"))(bands, valid)
        tokens = reference((bands - torch.tensor(MEAN).view(1, 6, 1, 1)) / torch.tensor(STD).view(1, 6, 1, 1))
    side = img_size // 16
    assert torch.allclose(fmap, tokens[:, 1:].transpose(1, 2).reshape(2, 64, side, side), atol=1e-4, rtol=1e-4)
    assert torch.allclose(pooled["cls"], tokens[:, 0], atol=1e-4, rtol=1e-4)
    assert torch.allclose(pooled["mean"], tokens[:, 1:].mean(dim=1), atol=1e-4, rtol=1e-4)


def test_prithvi_takes_six_s2_bands_as_reflectance(ms_data, prithvi_ckpt, tmp_path):
    import rasterio

    from samembed.encoders.prithvi import MEAN, STD

    result = samembed.extract("eurosat-ms", data_dir=ms_data, encoder="prithvi", checkpoint=prithvi_ckpt, img_size=64,
                              cache_dir=tmp_path, progress=False, workers=0)
    assert result.group.endswith("@64+B02-B03-B04-B08A-B11-B12") and result.encoded == 20
    g = samembed.open_cache(tmp_path, "eurosat-ms", result.group)
    bands = g.signature["bands"]
    assert bands["bands"] == ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]
    assert bands["source_names"] == ["B02", "B03", "B04", "B08A", "B11", "B12"] and bands["sources"] == [2, 3, 4, 9, 12, 13]
    assert "no stretch" in bands["values"] and "composite" not in g.signature
    assert g.group["grid"].shape == (20, 64, 4, 4) and g.attrs["pooled"] == ["mean", "cls"]
    # The first image by hand: its six bands as float reflectance, resized, normalised, encoded.
    index = samembed.datasets.load_dataset("eurosat-ms", ms_data)
    with rasterio.open(index.path(0)) as src:
        x = torch.from_numpy(src.read([2, 3, 4, 9, 12, 13]).astype(np.float32))[None]
    x = F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False, antialias=True)
    model = samembed.create_encoder("prithvi", checkpoint=prithvi_ckpt, img_size=64).build(torch.device("cpu"))
    with torch.inference_mode():
        pooled, _ = model(x, torch.tensor([[64, 64]]))
    assert np.allclose(g.read("mean")[0], pooled["mean"][0].numpy(), atol=2e-3, rtol=2e-3)
    assert MEAN[0] == 1087.0 and STD[-1] == 1049.0  # Prithvi-EO-2.0's published statistics


def test_prithvi_mistakes_are_one_line(ms_data, rgb_data, prithvi_ckpt, tmp_path):
    def extract(dataset, data, **kwargs):
        return samembed.extract(dataset, data_dir=data, encoder="prithvi", img_size=32, cache_dir=tmp_path,
                                progress=False, workers=0, **kwargs)

    with pytest.raises(UsageError, match="prithvi takes 6 bands of reflectance .* use a multi-band dataset"):
        extract("eurosat", rgb_data, model="300m-random")
    with pytest.raises(UsageError, match="normalises it itself; drop --stretch"):
        extract("eurosat-ms", ms_data, model="300m-random", stretch="fixed:0,3000")
    with pytest.raises(UsageError, match="gives 3 bands; prithvi takes 6"):
        extract("eurosat-ms", ms_data, model="300m-random", bands="B04,B03,B02")
    with pytest.raises(UsageError, match="'B99' is not a band"):
        extract("eurosat-ms", ms_data, model="300m-random", bands="B02,B03,B04,B08,B11,B99")
    custom = extract("eurosat-ms", ms_data, checkpoint=prithvi_ckpt, bands="B02,B03,B04,B08,B11,B12")
    assert custom.group.endswith("+B02-B03-B04-B08-B11-B12")  # another mapping: another group, recorded
    with pytest.raises(CheckpointError, match="not a Prithvi checkpoint"):
        extract("eurosat-ms", ms_data, checkpoint=samembed.write_tiny_checkpoint(tmp_path / "sam.pth"))
    with pytest.raises(UsageError, match="--model for prithvi is one of"):
        samembed.create_encoder("prithvi", model="1b")
    seven = prithvi_state_dict()
    seven["encoder.patch_embed.proj.weight"] = torch.zeros(64, 7, 1, 16, 16)
    torch.save(seven, tmp_path / "seven.pt")
    with pytest.raises(CheckpointError, match="takes 7 bands"):
        samembed.create_encoder("prithvi", checkpoint=tmp_path / "seven.pt")


# -- SAM-format forks -----------------------------------------------------------------------------

def test_sam_hq_and_medsam_layouts_load_through_the_sam_loader(rgb_data, tiny_checkpoint, tmp_path):
    """SAM-HQ keeps SAM's image encoder and adds HQ tensors to the mask decoder; MedSAM is a
    fine-tuned SAM in SAM's layout. Their image embeddings come from the same loader."""
    sd = torch.load(tiny_checkpoint, weights_only=True)
    hq = dict(sd)
    hq["mask_decoder.hf_token.weight"] = torch.zeros(1, 32)
    hq["mask_decoder.compress_vit_feat.0.weight"] = torch.zeros(32, 32, 2, 2)
    torch.save(hq, tmp_path / "sam_hq_vit_tiny.pth")
    torch.save({"model": sd}, tmp_path / "medsam_tiny.pth")  # nested, as training scripts save
    groups = {}
    for name in ("sam_hq_vit_tiny.pth", "medsam_tiny.pth"):
        r = samembed.extract("eurosat", data_dir=rgb_data, checkpoint=tmp_path / name, img_size=64,
                             cache_dir=tmp_path / f"cache-{name}", progress=False, workers=0)
        groups[name] = samembed.open_cache(tmp_path / f"cache-{name}", "eurosat", r.group).read("neck")
    plain = samembed.extract("eurosat", data_dir=rgb_data, checkpoint=tiny_checkpoint, img_size=64,
                             cache_dir=tmp_path / "plain", progress=False, workers=0)
    reference = samembed.open_cache(tmp_path / "plain", "eurosat", plain.group).read("neck")
    assert all(np.array_equal(v, reference) for v in groups.values())
    from samembed.encoders.sam_prompt import load_prompt_modules
    with pytest.raises(CheckpointError, match="SAM-HQ's mask decoder"):
        load_prompt_modules(tmp_path / "sam_hq_vit_tiny.pth", 4, 64)


# -- side by side ---------------------------------------------------------------------------------

def test_successors_sit_beside_sam_in_info_and_the_report(tmp_path):
    """SAM, SAM 2, DINOv3 on EuroSAT RGB and SAM (an s2-rgb composite) and Prithvi on EuroSAT-MS,
    from the command line with tiny random checkpoints: one cache, one runs store, one report, the
    same splits for every encoder of a dataset."""
    import pandas as pd
    from typer.testing import CliRunner

    from samembed.cli import app
    from samembed.report import write_report

    rgb = make_synthetic_dataset(tmp_path / "rgb", images_per_class=4, jitter=20)
    ms = make_synthetic_rasters(tmp_path / "ms", images_per_class=4)
    sam = samembed.write_tiny_checkpoint(tmp_path / "sam.pth")
    sam2 = write_tiny_sam2_checkpoint(tmp_path / "sam2.pt")
    dino = write_dinov3_checkpoint(tmp_path / "dinov3.pth")
    prithvi = write_prithvi_checkpoint(tmp_path / "prithvi.pt")
    cache, runs = tmp_path / "cache", tmp_path / "runs"
    common = ["--cache-dir", str(cache), "--quiet", "--workers", "0"]
    runner = CliRunner()
    for args in (["eurosat", "--data-dir", str(rgb), "--checkpoint", str(sam), "--img-size", "64"],
                 ["eurosat", "--data-dir", str(rgb), "--encoder", "sam2", "--checkpoint", str(sam2), "--img-size", "64",
                  "--prompt-features"],
                 ["eurosat", "--data-dir", str(rgb), "--encoder", "dinov3", "--checkpoint", str(dino), "--img-size", "32"],
                 ["eurosat-ms", "--data-dir", str(ms), "--checkpoint", str(sam), "--img-size", "64", "--bands", "s2-rgb",
                  "--stretch", "fixed:0,3000"],
                 ["eurosat-ms", "--data-dir", str(ms), "--encoder", "prithvi", "--checkpoint", str(prithvi),
                  "--img-size", "32"]):
        result = runner.invoke(app, ["extract", *args, *common])
        assert result.exit_code == 0, result.output
    info = runner.invoke(app, ["info", "--cache-dir", str(cache)]).output
    for name in ("encoder sam ", "encoder sam2 samembed-tiny", "encoder dinov3 vits16", "encoder prithvi custom"):
        assert name in info
    groups = samembed.list_groups(cache)
    assert len(groups) == 5
    sam2_group = next(g for g in groups if g.name.startswith("sam2.1-"))
    assert "high_res_s4" in sam2_group.arrays  # --prompt-features: SAM 2's own decoder answers prompts
    answer = runner.invoke(app, ["prompt", "--dataset", "eurosat", "--encoder", sam2_group.name, "--image",
                                 str(sam2_group.read("image_ids")[0]), "--point", "20,30", "--cache-dir", str(cache),
                                 "--out", str(tmp_path / "masks")])
    assert answer.exit_code == 0 and "predicted IoU" in answer.output, answer.output
    refused = runner.invoke(app, ["extract", "eurosat", "--data-dir", str(rgb), "--encoder", "dinov3", "--checkpoint",
                                  str(dino), "--img-size", "32", "--prompt-features", *common])
    assert refused.exit_code != 0 and refused.output.strip().splitlines() == [
        "error: --prompt-features is for encoders whose prompt decoder samembed runs (docs/prompts.md), not dinov3; drop it"]
    for g in groups:
        samembed.sweep(g.dataset, encoder=g.name, heads=["logreg"], splits=[0.5], seeds=2, cache_dir=cache,
                       runs_dir=runs, device="cpu", progress=False)
    write_report(runs, tmp_path / "report")
    summary = pd.read_csv(tmp_path / "report" / "summary.csv")
    assert set(summary["encoder"]) == {g.name for g in groups}
    records = samembed.experiments.records.RunsStore(runs).records()
    splits: dict = {}
    for r in records:
        splits.setdefault((r["cache"]["dataset"], r["split"]["seed"]), set()).add(r["split"]["indices_hash"])
    assert len(splits) == 4 and all(len(hashes) == 1 for hashes in splits.values())  # the same splits per dataset
