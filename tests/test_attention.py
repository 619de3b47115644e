"""SAM's attention kernels (issue 17): FlexAttention and SDPA against segment_anything's own
``Attention`` and ``Block`` on the CPU in float32, windowed blocks without projecting padding, the
kernel chosen per device, and what the cache signature says about it."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from segment_anything.modeling.image_encoder import Attention, Block

from samembed.encoders import build_sam, create_encoder
from samembed.encoders import attention as attention_module
from samembed.encoders.attention import WINDOWED_AUTO, AttentionPath, flex_problem, parse_attention, resolve_attention
from samembed.encoders.fast_attention import attention_forward, windowed_block_forward
from samembed.errors import UsageError
from samembed.extraction import plan as plan_module
from samembed.extraction import plan_extraction

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def flex_on_cpu():
    """FlexAttention compiled for the CPU (inductor's C++ backend); skipped where it does not run."""
    problem = flex_problem(CPU, 16, torch.float32)
    if problem:
        pytest.skip(problem)


def _random_rel_pos(module):
    with torch.no_grad():
        for p in (module.rel_pos_h, module.rel_pos_w):
            p.normal_(0, 0.5)


def test_flex_attention_equals_segment_anythings_attention(flex_on_cpu):
    """Global attention over square and non-square grids (the key's row is k // w, its column k % w)."""
    for size in ((14, 14), (9, 12)):
        attn = Attention(64, num_heads=4, use_rel_pos=True, input_size=size)
        _random_rel_pos(attn)
        x = torch.randn(2, *size, 64)
        attn.samembed_core = "flex"
        with torch.inference_mode():
            torch.testing.assert_close(attention_forward(attn, x), attn(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("core", ["sdpa", "flex"])
def test_windowed_blocks_skip_the_padding_and_equal_segment_anythings_block(core, request):
    """A 16 x 16 grid pads to 28 x 28 for 14-token windows, a 9 x 20 grid to 14 x 28: the padded
    tokens' keys and values are the projection's bias, as segment_anything computes them."""
    if core == "flex":
        request.getfixturevalue("flex_on_cpu")
    block = Block(64, num_heads=4, use_rel_pos=True, window_size=14, input_size=(14, 14)).eval()
    _random_rel_pos(block.attn)
    with torch.no_grad():
        block.attn.qkv.bias.normal_(0, 1)  # the padded tokens' keys and values
    block.attn.samembed_core = core
    for shape in ((2, 16, 16, 64), (1, 9, 20, 64), (1, 14, 28, 64)):
        x = torch.randn(shape)
        with torch.inference_mode():
            torch.testing.assert_close(windowed_block_forward(block, x), block(x), atol=1e-5, rtol=1e-5)


def test_the_encoder_with_flex_everywhere_equals_segment_anything(tiny_checkpoint, flex_on_cpu):
    """The whole tiny encoder at 1024 (a 64-token grid, windows padded to 70) through FlexAttention
    in every block, against what SamPredictor.set_image computes."""
    from segment_anything.utils.transforms import ResizeLongestSide

    spec = create_encoder("sam", checkpoint=tiny_checkpoint)
    spec.attention = AttentionPath("flex", "flex")
    model = spec.build(CPU)
    rgbs = [np.random.default_rng(i).integers(0, 256, shape, dtype=np.uint8) for i, shape in
            enumerate([(64, 64, 3), (48, 80, 3)])]
    prep = spec.preprocessor()
    canvases, valid = zip(*(prep(rgb) for rgb in rgbs))
    sam = build_sam()  # the fixture's weights
    with torch.inference_mode():
        _, neck = model(torch.stack(canvases), torch.tensor(valid))
        for i, rgb in enumerate(rgbs):
            x = torch.as_tensor(ResizeLongestSide(1024).apply_image(rgb)).permute(2, 0, 1).contiguous()[None]
            torch.testing.assert_close(neck[i:i + 1], sam.image_encoder(sam.preprocess(x)), atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------ the choice


def test_auto_is_sdpa_on_the_cpu_without_trying_flex(monkeypatch):
    """On the CPU FlexAttention runs but measured slower (docs/benchmarks.md): auto never compiles it."""
    monkeypatch.setattr(attention_module, "flex_problem", lambda *a: pytest.fail("auto probed FlexAttention"))
    assert resolve_attention("auto", CPU, 16, torch.float32) == AttentionPath("sdpa", "sdpa")
    assert resolve_attention("sdpa", CPU, 16, torch.float32) == AttentionPath("sdpa", "sdpa")


def test_auto_on_cuda_is_flex_in_global_blocks_where_it_runs_and_sdpa_where_not(monkeypatch):
    cuda = torch.device("cuda")  # only resolved, never used: the probe is replaced
    monkeypatch.setattr(attention_module, "flex_problem", lambda *a: None)
    assert resolve_attention("auto", cuda, 64, torch.bfloat16) == AttentionPath("flex", WINDOWED_AUTO)
    assert resolve_attention("flex,flex", cuda, 64, torch.bfloat16) == AttentionPath("flex", "flex")
    assert resolve_attention("sdpa,flex", cuda, 64, torch.bfloat16) == AttentionPath("sdpa", "flex")
    monkeypatch.setattr(attention_module, "flex_problem", lambda *a: "FlexAttention does not run on cuda (no Triton)")
    assert resolve_attention("auto", cuda, 64, torch.bfloat16) == AttentionPath("sdpa", "sdpa")  # the fallback
    with pytest.raises(UsageError, match=r"--attention flex: FlexAttention does not run on cuda \(no Triton\)"):
        resolve_attention("flex", cuda, 64, torch.bfloat16)


def test_a_torch_without_flexattention_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.nn.attention.flex_attention", None)  # import fails, as before torch 2.5
    assert "has no FlexAttention" in flex_problem.__wrapped__(CPU, 16, torch.float32)


@pytest.mark.parametrize("setting", ["fast", "flex,sdpa,flex", "", "sdpa,"])
def test_attention_settings_are_checked(setting):
    with pytest.raises(UsageError, match="--attention must be GLOBAL"):
        parse_attention(setting)


def test_an_attention_setting_mistake_is_one_line(eurosat_dir, tiny_checkpoint, tmp_path):
    from typer.testing import CliRunner

    from samembed.cli import app

    result = CliRunner().invoke(app, ["extract", "eurosat", "--data-dir", str(eurosat_dir), "--checkpoint",
                                      str(tiny_checkpoint), "--cache-dir", str(tmp_path), "--attention", "fast"])
    assert result.exit_code != 0
    assert result.output.strip().count("\n") == 0 and "--attention must be GLOBAL" in result.output


# --------------------------------------------------------------------------- the signature


def test_the_signature_names_the_attention_only_where_numbers_can_differ():
    assert AttentionPath("flex", "sdpa").signature_entry("bfloat16") == "flex,sdpa"
    assert AttentionPath("sdpa", "flex").signature_entry("bfloat16") == "sdpa,flex"
    assert AttentionPath("sdpa", "sdpa").signature_entry("bfloat16") is None  # every cache before issue 17
    assert AttentionPath("flex", "flex").signature_entry("float32") is None  # equal within float32 rounding (tested)
    assert AttentionPath.from_signature(None) == AttentionPath("sdpa", "sdpa")
    assert AttentionPath.from_signature("flex,sdpa") == AttentionPath("flex", "sdpa")


def test_a_cpu_extraction_keeps_the_signature_of_earlier_releases(eurosat_dir, tiny_checkpoint, tmp_path):
    common = dict(data_dir=eurosat_dir, checkpoint=tiny_checkpoint, img_size=64, device="cpu", cache_dir=tmp_path)
    auto = plan_extraction("eurosat", **common)
    assert auto.spec.attention == AttentionPath("sdpa", "sdpa") and "attention" not in auto.signature
    assert plan_extraction("eurosat", attention="sdpa", **common).signature == auto.signature


def test_auto_resumes_a_low_precision_cache_with_the_kernels_it_was_written_with(eurosat_dir, tiny_checkpoint,
                                                                                 tmp_path, monkeypatch):
    """bf16 (as on CUDA), where auto would now pick FlexAttention: a group written with SDPA (no
    'attention' key, as every earlier cache) goes on with SDPA, one written with flex with flex."""
    from samembed.encoders import sam as sam_module

    monkeypatch.setattr(plan_module, "compute_dtype", lambda dev: torch.bfloat16)
    monkeypatch.setattr(sam_module, "compute_dtype", lambda dev: torch.bfloat16)
    monkeypatch.setattr(sam_module, "resolve_attention", lambda setting, *a: AttentionPath(
        *[("flex" if i == 0 else "sdpa") if p == "auto" else p for i, p in enumerate(parse_attention(setting))]))
    common = dict(data_dir=eurosat_dir, checkpoint=tiny_checkpoint, img_size=64, device="cpu")

    old = plan_extraction("eurosat", attention="sdpa", cache_dir=tmp_path / "old", **common)
    assert "attention" not in old.signature
    old.open_group()
    resumed = plan_extraction("eurosat", cache_dir=tmp_path / "old", **common)
    assert resumed.spec.attention == AttentionPath("sdpa", "sdpa") and resumed.signature == old.signature

    new = plan_extraction("eurosat", cache_dir=tmp_path / "new", **common)
    assert new.spec.attention == AttentionPath("flex", "sdpa") and new.signature["attention"] == "flex,sdpa"
    new.open_group()
    again = plan_extraction("eurosat", cache_dir=tmp_path / "new", **common)
    assert again.spec.attention == AttentionPath("flex", "sdpa") and again.signature == new.signature


def test_attention_is_refused_for_other_encoders(eurosat_dir, tmp_path):
    with pytest.raises(UsageError, match="--attention applies to encoders with a choice of attention kernels, not vgg19"):
        plan_extraction("eurosat", data_dir=eurosat_dir, encoder="vgg19", model="random", device="cpu",
                        cache_dir=tmp_path, attention="flex")
