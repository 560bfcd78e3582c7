"""hrnet_core.fast_path: the folded channels_last copy computes what the official structure computes (every
preset, max |diff| <= 1e-4 at a small input), leaves the original untouched, and the in-place residual of
the official structure is bitwise equal and trains."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import hrnet_core as hc
from hrnet_core.blocks import BasicBlock, Bottleneck
from hrnet_core.fast_path import (
    FastPathError,
    conv_bn_pairs,
    example_input,
    fast_inference,
    fast_inputs,
    fast_model,
    fold_batchnorm,
    max_abs_diff,
)

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))
SMALL_HW = (64, 64)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine terms, so a wrong fold shows (defaults fold to ~identity)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(0.2 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_(0.2 * torch.randn(c, generator=gen))
    return model


def test_presets_listed():
    assert len(PRESETS) >= 20 and "pose_hrnet_w32_256x192.yaml" in PRESETS


@pytest.mark.parametrize("name", PRESETS)
def test_fast_fp32_matches_eager_for_every_preset(name):
    cfg = hc.load_config(ROOT / "configs" / name).with_input(SMALL_HW)
    torch.manual_seed(0)
    model = _randomize_bn(hc.build_model(cfg, init="default")).eval()
    fast = fast_model(model, input_hw=SMALL_HW)
    x = torch.randn(2, 3, *SMALL_HW, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref = model(x)
    with fast_inference(torch.device("cpu")):
        out = fast(fast_inputs(x))
    assert max_abs_diff(ref, out) <= 1e-4
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())  # every BatchNorm follows a conv
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the official structure is untouched


@pytest.mark.parametrize("name", ["pose_hrnet_w32_256x192.yaml", "seg_hrnetv2_w18_small_v1.yaml",
                                  "seg_hrnetv2_w48_ocr.yaml", "higherhrnet_w32_512.yaml", "det_hrnetv2p_w32.yaml"])
def test_frozen_fast_path_matches_at_another_size_and_batch(name):
    """The frozen trace (traced at 1x64x64) runs other batch sizes and sizes with the same numerics."""
    cfg = hc.load_config(ROOT / "configs" / name).with_input((96, 64))
    torch.manual_seed(0)
    model = _randomize_bn(hc.build_model(cfg, init="default")).eval()
    frozen = fast_model(model, freeze=True, input_hw=SMALL_HW)
    assert isinstance(frozen, torch.jit.ScriptModule)
    x = torch.randn(2, 3, 96, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert max_abs_diff(model(x), frozen(fast_inputs(x))) <= 1e-4


def test_compile_and_freeze_exclude_each_other():
    model = hc.build_model(hc.load_config({"family": "pose", "input_size": [64, 64], "width": 4, "modules": [1, 1, 1],
                                           "blocks": 1}))
    with pytest.raises(FastPathError, match="compile and freeze"):
        fast_model(model, compile=True, freeze=True)


def test_fold_leaves_the_original_alone_and_counts_pairs():
    cfg = hc.load_config(ROOT / "configs" / "pose_hrnet_w32_256x192.yaml").with_input(SMALL_HW)
    model = _randomize_bn(hc.build_model(cfg, init="default")).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    folded, pairs = fold_batchnorm(model, example_input(model, SMALL_HW))
    assert pairs == n_bn and model.training  # mode restored
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert folded.conv1.bias is not None and model.conv1.bias is None
    # the official names still load: the copy keeps the structure (BatchNorms become Identity)
    assert hasattr(folded, "stage4") and isinstance(folded.bn1, nn.Identity)


def test_pairs_follow_the_data_flow():
    seq = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.BatchNorm2d(4))
    pairs = conv_bn_pairs(seq, torch.randn(1, 3, 8, 8))
    assert pairs == [(seq[0], seq[1])]  # the BatchNorm after the ReLU reads no conv output: not folded


def test_fold_refuses_a_conv_output_read_elsewhere():
    class Tapped(nn.Module):  # the conv output also feeds the sum: folding would change it
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y

    model = _randomize_bn(Tapped()).eval()
    with pytest.raises(FastPathError, match="changed the outputs"):
        fold_batchnorm(model, torch.randn(1, 3, 8, 8))


@pytest.mark.parametrize("cls,planes", [(BasicBlock, 8), (Bottleneck, 2)])
@pytest.mark.parametrize("downsample", [False, True])
def test_inplace_residual_is_bitwise_equal_and_trains(cls, planes, downsample):
    """``out += residual`` gives the same bits and the same gradients as ``relu(out + residual)``."""
    torch.manual_seed(0)
    inplanes = 8 if not downsample else 4
    proj = nn.Sequential(nn.Conv2d(inplanes, planes * cls.expansion, 1, bias=False), nn.BatchNorm2d(planes * cls.expansion))
    block = cls(inplanes, planes, downsample=proj if downsample else None).train()
    x = torch.randn(2, inplanes, 8, 8, requires_grad=True)

    def out_of_place(b, t):
        out = b.relu(b.bn1(b.conv1(t)))
        if isinstance(b, Bottleneck):
            out = b.relu(b.bn2(b.conv2(out)))
            out = b.bn3(b.conv3(out))
        else:
            out = b.bn2(b.conv2(out))
        return torch.relu(out + b.downsample(t))

    ref_block = __import__("copy").deepcopy(block)
    y = block(x)
    x2 = x.detach().clone().requires_grad_(True)
    y2 = out_of_place(ref_block, x2)
    assert torch.equal(y, y2)
    y.square().sum().backward()
    y2.square().sum().backward()
    assert torch.equal(x.grad, x2.grad)
    for (n, p), (_, q) in zip(block.named_parameters(), ref_block.named_parameters()):
        assert torch.equal(p.grad, q.grad), n


def test_bf16_path_reports_its_own_error():
    """bf16 autocast on the fast copy runs and stays close (its error is reported, not held to 1e-4)."""
    cfg = hc.load_config({"family": "pose", "input_size": [64, 64], "width": 4, "modules": [1, 1, 1], "blocks": 1})
    model = _randomize_bn(hc.build_model(cfg, init="default")).eval()
    fast = fast_model(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        ref = model(x)
    with fast_inference(torch.device("cpu"), bf16=True):
        out = fast(fast_inputs(x))
    assert out.dtype == torch.bfloat16 and 0 < max_abs_diff(ref, out) < 0.1 * float(ref.abs().max()) + 1e-3
