"""The SAM encoder: parity with segment_anything's own preprocessing and encoder, other input
sizes, and the pooled vectors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from segment_anything.utils.transforms import ResizeLongestSide

from samembed.encoders import build_sam, create_encoder, infer_arch, write_tiny_checkpoint
from samembed.encoders.geometry import Geometry
from samembed.encoders.sam import resize_for_input


def _images():
    rng = np.random.default_rng(0)
    return [
        rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),  # a EuroSAT tile
        rng.integers(0, 256, (48, 80, 3), dtype=np.uint8),  # wide: padded at the bottom
        rng.integers(0, 256, (90, 30, 3), dtype=np.uint8),  # tall: padded on the right
    ]


def _ours(spec, rgbs):
    model = spec.build(torch.device("cpu"))
    prep = spec.preprocessor()
    batch = [prep(rgb) for rgb in rgbs]
    images = torch.stack([b[0] for b in batch])
    valid = torch.tensor([b[1] for b in batch])
    with torch.inference_mode():
        return model(images, valid), valid


def _reference(sam, rgb, size):
    """What SamPredictor.set_image does: ResizeLongestSide, Sam.preprocess, image_encoder."""
    x = torch.as_tensor(ResizeLongestSide(size).apply_image(rgb)).permute(2, 0, 1).contiguous()[None]
    with torch.inference_mode():
        return sam.image_encoder(sam.preprocess(x))


def test_parity_with_segment_anything_at_1024(tiny_checkpoint):
    """float32 at 1024: the neck map equals segment_anything's own path, image by image,
    including padded non-square images encoded in one batch."""
    spec = create_encoder("sam", checkpoint=tiny_checkpoint)
    assert spec.img_size == 1024
    (pooled, neck), _ = _ours(spec, _images())
    sam = build_sam()  # same seed and shapes as the fixture's checkpoint
    for i, rgb in enumerate(_images()):
        ref = _reference(sam, rgb, 1024)
        torch.testing.assert_close(neck[i : i + 1], ref, rtol=1e-5, atol=1e-5)
    assert neck.shape == (3, 32, 64, 64)
    assert pooled["neck"].shape == (3, 32) and pooled["trunk"].shape == (3, 32)


@pytest.mark.parametrize("size", [256, 512])
def test_other_input_sizes_match_a_runtime_resized_reference(tiny_checkpoint, size):
    """At another size the position embedding is resized once (bicubic) and the global blocks'
    relative tables are resized exactly as segment_anything's get_rel_pos does at run time."""
    spec = create_encoder("sam", checkpoint=tiny_checkpoint, img_size=size)
    (pooled, neck), _ = _ours(spec, _images()[:2])
    assert neck.shape == (2, 32, size // 16, size // 16)

    from timm.layers import resample_abs_pos_embed

    sam = build_sam()
    enc = sam.image_encoder
    # The reference's position embedding comes from timm's resampling (an independent implementation
    # of the same bicubic, antialiased resize), not from the function under test.
    native = enc.pos_embed.shape[1]
    flat = enc.pos_embed.detach().reshape(1, native * native, -1)
    resized = resample_abs_pos_embed(flat, new_size=[size // 16] * 2, old_size=[native] * 2, num_prefix_tokens=0,
                                     interpolation="bicubic", antialias=True)
    with torch.no_grad():  # only pos_embed resized; rel tables left at native length (get_rel_pos resizes them)
        enc.pos_embed = torch.nn.Parameter(resized.reshape(1, size // 16, size // 16, -1))
    enc.img_size = size  # what Sam.preprocess pads to
    for i, rgb in enumerate(_images()[:2]):
        torch.testing.assert_close(neck[i : i + 1], _reference(sam, rgb, size), rtol=1e-5, atol=1e-5)


def test_pos_embed_resize_is_smooth_and_identity_at_native_size(tiny_checkpoint):
    spec = create_encoder("sam", checkpoint=tiny_checkpoint)
    sd = build_sam().image_encoder.state_dict()
    assert resize_for_input(sd, spec.arch, 1024) is sd
    small = resize_for_input(sd, spec.arch, 512)
    assert small["pos_embed"].shape == (1, 32, 32, 32)
    assert small["blocks.1.attn.rel_pos_h"].shape == (63, 16)  # global: 2 * 32 - 1
    assert small["blocks.0.attn.rel_pos_h"].shape == sd["blocks.0.attn.rel_pos_h"].shape  # windowed: unchanged
    # a 2x downsampling keeps the mean of the embedding
    torch.testing.assert_close(small["pos_embed"].mean(), sd["pos_embed"].mean(), atol=1e-3, rtol=0)


def test_pooled_vectors_average_only_the_tokens_that_cover_the_image(tiny_checkpoint):
    spec = create_encoder("sam", checkpoint=tiny_checkpoint, img_size=256)
    rgbs = _images()
    (pooled, neck), valid = _ours(spec, rgbs)
    for i in range(len(rgbs)):
        h, w = (-(-int(v) // 16) for v in valid[i])
        expected = neck[i, :, :h, :w].mean(dim=(1, 2))
        torch.testing.assert_close(pooled["neck"][i], expected, rtol=1e-5, atol=1e-6)
    assert tuple(valid[1].tolist()) == (154, 256) and tuple(valid[2].tolist()) == (256, 85)
    # the square tile covers everything: the pooled vector is the plain mean
    torch.testing.assert_close(pooled["neck"][0], neck[0].mean(dim=(1, 2)), rtol=1e-5, atol=1e-6)


def test_preprocess_places_sams_resize_top_left_on_a_zero_canvas():
    rgb = _images()[1]
    canvas, (h, w) = Geometry(256).canvas(rgb)
    resized = ResizeLongestSide(256).apply_image(rgb)
    assert canvas.dtype == torch.uint8 and canvas.shape == (3, 256, 256)
    assert (h, w) == resized.shape[:2]
    assert torch.equal(canvas[:, :h, :w], torch.from_numpy(resized).permute(2, 0, 1))
    assert canvas[:, h:, :].sum() == 0 and canvas[:, :, w:].sum() == 0


def test_sdpa_attention_equals_segment_anythings_attention():
    from segment_anything.modeling.image_encoder import Attention

    from samembed.encoders.fast_attention import sdpa_attention_forward

    torch.manual_seed(0)
    for size in ((14, 14), (8, 8)):
        attn = Attention(64, num_heads=4, use_rel_pos=True, input_size=size)
        with torch.no_grad():
            attn.rel_pos_h.normal_(0, 0.5)
            attn.rel_pos_w.normal_(0, 0.5)
        x = torch.randn(3, *size, 64)
        assert torch.allclose(sdpa_attention_forward(attn, x), attn(x), atol=1e-5, rtol=1e-5)


def test_the_analytic_cost_matches_the_published_counts():
    from samembed.encoders.cost import encoder_macs
    from samembed.encoders.tiny import variant_state_dict_shapes

    # GMACs per image of our analytic count (vit_h at 1024: the 2973 GMACs EfficientViT-SAM, Zhang et al. 2024, Table 1, publishes, within 0.3 %)
    table = {"vit_b": {224: 18, 448: 74, 1024: 486}, "vit_l": {224: 62, 512: 397, 1024: 1493},
             "vit_h": {256: 271, 896: 2129, 1024: 2981}}
    for variant, sizes in table.items():
        sd = {k: torch.empty(s, device="meta") for k, s in variant_state_dict_shapes(variant).items()}
        arch = infer_arch(sd)
        for size, gmacs in sizes.items():
            assert encoder_macs(arch, size) / 1e9 == pytest.approx(gmacs, rel=0.02)
    assert encoder_macs(arch, 1024) / 1e9 == pytest.approx(2973, rel=0.003)


def test_bench_runs_on_the_cpu_and_reports_every_figure(tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from samembed.cli import app
    from samembed.encoders.attention import flex_problem

    monkeypatch.setitem(sys.modules, "segment_anything_fast", None)  # (d) absent, whatever is installed here
    ckpt = write_tiny_checkpoint(tmp_path / "tiny.pth")
    result = CliRunner().invoke(app, ["bench", "--checkpoint", str(ckpt), "--sizes", "64,128", "--images", "10",
                                      "--device", "cpu", "--workers", "0", "--json", str(tmp_path / "b.json")])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "b.json").read_text())
    assert [r["img_size"] for r in rows] == [64, 128]
    flex_runs = flex_problem(torch.device("cpu"), 16, torch.float32) is None
    for r in rows:
        assert r["reference_ips"] > 0 and r["encoder_ips"] > 0 and r["extraction_ips"] > 0
        assert r["cosine_min"] > 0.99999  # float32 on the CPU: the same numbers as segment_anything's
        assert r["speedup"] == pytest.approx(r["encoder_ips"] / r["reference_ips"])
        assert r["gmacs"] > 0 and r["mfu"] is None and r["peak_memory_gib"] is None
        assert r["encoder_first_s"] > 0 and r["compile_mode"] is None
        assert r["attention"] == "sdpa,sdpa"  # (c) on the CPU
        assert r["extraction_ratio"] == pytest.approx(r["extraction_ips"] / r["encoder_ips"])
        # (d): not importable, and said so
        assert r["sam_fast_ips"] is None and "segment_anything_fast is not importable" in r["sam_fast_note"]
        # (e): FlexAttention in the global blocks, where it runs on the CPU
        if flex_runs:
            assert r["flex_attention"] == "flex,sdpa" and r["flex_note"] is None
            assert r["flex_ips"] > 0 and r["flex_first_s"] > 0 and r["flex_cosine_min"] > 0.99999
            assert r["flex_speedup"] == pytest.approx(r["flex_ips"] / r["reference_ips"])
        else:
            assert r["flex_ips"] is None and "FlexAttention" in r["flex_note"]
    for r in rows:  # each printed block carries its row's own ratios
        assert f"(b) encoder, SDPA: {r['encoder_ips']:.2f} img/s (x{r['speedup']:.2f} the reference)" in result.output
        assert f"({100 * r['extraction_ratio']:.0f} % of the encoder with the same attention)" in result.output
        if flex_runs:
            assert f"(e) encoder, FlexAttention (flex,sdpa): {r['flex_ips']:.2f} img/s (x{r['flex_speedup']:.2f} " \
                   "the reference)" in result.output
    assert result.output.count("(d) segment-anything-fast: n/a (segment_anything_fast is not importable") == 2


def test_bench_times_segment_anything_fast_when_it_is_importable(tmp_path, monkeypatch):
    """(d) with a stand-in package whose ImageEncoderViT is segment_anything's own (the same
    constructor and weights layout as segment-anything-fast's): the weights, input size and
    normalisation reach it, so its embeddings equal the reference's."""
    import types

    from segment_anything.modeling import ImageEncoderViT

    from samembed.bench import bench

    package, modeling = types.ModuleType("segment_anything_fast"), types.ModuleType("segment_anything_fast.modeling")
    modeling.ImageEncoderViT, package.modeling = ImageEncoderViT, modeling
    monkeypatch.setitem(sys.modules, "segment_anything_fast", package)
    monkeypatch.setitem(sys.modules, "segment_anything_fast.modeling", modeling)
    ckpt = write_tiny_checkpoint(tmp_path / "tiny.pth")
    (row,) = bench(sizes=[128], images=10, device="cpu", checkpoint=ckpt, workers=0, say=lambda line: None)
    assert row.sam_fast_note is None and row.sam_fast_ips > 0 and row.sam_fast_first_s > 0
    assert row.sam_fast_cosine_min > 0.99999
    assert row.sam_fast_speedup == pytest.approx(row.sam_fast_ips / row.reference_ips)


def test_bench_refuses_an_unknown_compile_mode():
    from samembed.bench import compile_mode_of
    from samembed.errors import UsageError

    assert compile_mode_of(False) is None and compile_mode_of(True) == "default"
    assert compile_mode_of("reduce-overhead") == "reduce-overhead"
    with pytest.raises(UsageError, match="--compile-mode must be one of default, reduce-overhead, max-autotune"):
        compile_mode_of("fastest")


def test_a_path_that_runs_out_of_device_memory_is_a_figure_not_a_crash():
    """At large batches the materialised bias can exhaust a GPU: that path's row says so, and the
    other paths are still timed."""
    from samembed.bench import BenchRow, _unless_out_of_memory, format_row

    def too_big():
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 32.00 GiB")

    assert _unless_out_of_memory(torch.device("cpu"), lambda: 7) == (7, None)
    result, note = _unless_out_of_memory(torch.device("cpu"), too_big)
    assert result is None and note == "out of memory (CUDA out of memory. Tried to allocate 32.00 GiB)"
    row = BenchRow("vit_h", 1024, 64, "H100", None, None, None, None, None, 2981.0, None, None, encoder_note=note,
                   flex_ips=80.0, flex_attention="flex,sdpa", extraction_note=note)
    text = format_row(row)
    assert "(b) encoder, SDPA: n/a (out of memory (CUDA out of memory." in text
    assert "(c) whole extraction: n/a (out of memory" in text and "(e) encoder, FlexAttention (flex,sdpa): 80.00" in text
