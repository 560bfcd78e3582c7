"""Checkpoint formats in: safetensors, mmpose 0.x / 1.x names in ``{'meta', 'state_dict'}``, timm names;
loaded strictly through the CLI with outputs equal to the official-named load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, import_timm
from safetensors.torch import save_file

import hrnet_core as hc
from analysis.cli import main

TINY = {"family": "pose", "input_size": [64, 64], "width": 4, "modules": [1, 1, 1], "blocks": 1,
        "stage1": {"blocks": 1, "planes": 8}, "head": {"kind": "v1", "outputs": 3}}
# mmpose's own names (mmpose 0.x TopDown + TopdownHeatmapSimpleHead, mmpose 1.x TopdownPoseEstimator +
# HeatmapHead without deconvs): backbone keys under ``backbone.``, the heatmap conv under the head's attribute.
MMPOSE_HEAD = {"0.x": "keypoint_head", "1.x": "head"}


def _meta() -> dict:
    # What mmpose writes next to the weights, numpy arrays included (dataset_meta['sigmas']).
    return {"mmpose_version": "1.3.2", "epoch": 210,
            "dataset_meta": {"dataset_name": "coco", "sigmas": np.array([0.026, 0.025, 0.035], dtype=np.float32),
                             "flip_indices": [0, 2, 1]}}


def to_mmpose(state: dict[str, torch.Tensor], version: str) -> dict[str, torch.Tensor]:
    head = MMPOSE_HEAD[version]
    return {(f"{head}.{k}" if k.startswith("final_layer.") else f"backbone.{k}"): v for k, v in state.items()}


@pytest.fixture()
def tiny(tmp_path):
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(hc.dump_config(hc.load_config(TINY)))
    torch.manual_seed(0)
    model = hc.build_model(hc.load_config(TINY), init="default").eval()
    official = tmp_path / "official.pth"
    torch.save(model.state_dict(), official)
    return cfg_path, model, official


def _outputs(cfg_path: Path, checkpoint: Path) -> torch.Tensor:
    model = hc.build_model(hc.load_config(cfg_path))
    hc.load_checkpoint(model, checkpoint)
    torch.manual_seed(1)
    with torch.no_grad():
        return model.eval()(torch.randn(2, 3, 64, 64))


def _inspect_json(capsys, *args: str) -> dict:
    assert main(["inspect", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("version", ["0.x", "1.x"])
def test_mmpose_checkpoint_loads_strictly_through_the_cli_with_equal_outputs(tiny, tmp_path, capsys, version):
    cfg_path, model, official = tiny
    state = model.state_dict()
    path = tmp_path / f"mmpose_{version}.pth"
    torch.save({"meta": _meta(), "state_dict": to_mmpose(state, version)}, path)
    out = _inspect_json(capsys, str(cfg_path), "--checkpoint", str(path))
    head = MMPOSE_HEAD[version]
    assert out["checkpoint_format"] == (f"format: mmpose {version} (backbone. + {head}.), {len(state)} tensors "
                                        "mapped, strict")
    assert "strict" in out["checkpoint"]
    assert torch.equal(_outputs(cfg_path, path), _outputs(cfg_path, official))


def test_mmpose_head_with_unknown_layers_is_refused_naming_them(tiny, tmp_path, capsys):
    cfg_path, model, _ = tiny
    state = to_mmpose(model.state_dict(), "1.x")
    state["head.deconv_layers.0.weight"] = torch.zeros(4, 4, 4, 4)
    path = tmp_path / "deconv.pth"
    torch.save({"meta": _meta(), "state_dict": state}, path)
    assert main(["inspect", str(cfg_path), "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err
    assert "1 unexpected (head.deconv_layers.0.weight)" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["weights.safetensors", "renamed.pth"])
def test_safetensors_loads_through_the_cli_without_pickle(tiny, tmp_path, capsys, name):
    cfg_path, model, official = tiny
    path = tmp_path / name
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    out = _inspect_json(capsys, str(cfg_path), "--checkpoint", str(path))
    assert out["checkpoint"].endswith("(strict)") and out["checkpoint_format"].startswith("format: official,")
    assert torch.equal(_outputs(cfg_path, path), _outputs(cfg_path, official))


def test_torn_safetensors_is_one_line(tiny, tmp_path, capsys):
    cfg_path, model, _ = tiny
    path = tmp_path / "torn.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    path.write_bytes(path.read_bytes()[:200])
    assert main(["inspect", str(cfg_path), "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err
    assert "torn.safetensors" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_absent_batchnorm_counters_are_not_missing(tiny, tmp_path):
    cfg_path, model, official = tiny
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "no_counters.pth"
    torch.save(state, path)
    report = hc.load_checkpoint(hc.build_model(hc.load_config(cfg_path)), path)
    counters = sum(k.endswith("num_batches_tracked") for k in model.state_dict())
    assert report.filled == counters > 0 and not report.missing
    assert report.format_line.endswith(f"strict ({counters} num_batches_tracked absent, kept at 0)")
    assert torch.equal(_outputs(cfg_path, path), _outputs(cfg_path, official))


def test_cls_keys_are_reported_as_official_and_timm():
    cfg = hc.load_config(ROOT / "configs" / "cls_hrnet_w18_small_v1.yaml")
    keys = hc.build_on_meta(cfg).state_dict()
    assert hc.detect_mapping(keys).name == "official / timm"
    pose = hc.build_on_meta(hc.load_config(TINY)).state_dict()
    assert hc.detect_mapping(pose).name == "official"


@pytest.mark.parametrize("variant, preset", [("hrnet_w18_small", "cls_hrnet_w18_small_v1"),
                                             ("hrnet_w18_small_v2", "cls_hrnet_w18_small_v2")])
def test_timm_state_dict_loads_strictly_with_equal_logits(tmp_path, variant, preset):
    timm = import_timm()
    theirs = timm.create_model(variant, pretrained=False).eval()
    path = tmp_path / f"{variant}.safetensors"
    save_file({k: v.contiguous() for k, v in theirs.state_dict().items()}, str(path))
    ours = hc.build_model(hc.load_config(ROOT / "configs" / f"{preset}.yaml")).eval()
    report = hc.load_checkpoint(ours, path)
    assert report.format.startswith("official / timm") and not report.missing and not report.unexpected
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


# mmpose 0.x AssociativeEmbedding + AEHigherResolutionHead: the official head layout under ``keypoint_head.``.
TINY_HIGHER = {"family": "pose", "input_size": [64, 64], "width": 4, "modules": [1, 1, 1], "blocks": 1,
               "stage1": {"blocks": 1, "planes": 8}, "head": {"kind": "higher", "outputs": 3, "deconv_blocks": 1}}


def test_mmpose_higherhrnet_checkpoint_loads_strictly_and_infers_its_config(tmp_path, capsys):
    cfg = hc.load_config(TINY_HIGHER)
    cfg_path = tmp_path / "higher.yaml"
    cfg_path.write_text(hc.dump_config(cfg))
    torch.manual_seed(0)
    model = hc.build_model(cfg, init="default").eval()
    state = model.state_dict()
    head_keys = [k for k in state if k.startswith(("final_layers.", "deconv_layers."))]
    assert any(k.startswith("deconv_layers.0.1.0.conv1.") for k in head_keys)  # the BasicBlocks' names
    mm = {(f"keypoint_head.{k}" if k in head_keys else f"backbone.{k}"): v for k, v in state.items()}
    path = tmp_path / "mmpose_higher.pth"
    torch.save({"meta": _meta(), "state_dict": mm}, path)

    out = _inspect_json(capsys, str(cfg_path), "--checkpoint", str(path))
    assert out["checkpoint_format"] == (f"format: mmpose 0.x (backbone. + keypoint_head.), {len(state)} tensors "
                                        "mapped, strict")
    official = tmp_path / "official.pth"
    torch.save(state, official)
    torch.manual_seed(1)
    x = torch.randn(2, 3, 64, 64)
    got, want = hc.build_model(cfg).eval(), hc.build_model(cfg).eval()
    hc.load_checkpoint(got, path)
    hc.load_checkpoint(want, official)
    with torch.no_grad():
        a, b = got(x), want(x)
    assert len(a) == len(b) == 2 and all(torch.equal(p, q) for p, q in zip(a, b))

    inferred, mapping = hc.config_from_checkpoint(path)
    assert mapping.name == "mmpose 0.x"
    assert (inferred.head.kind, inferred.head.outputs) == ("higher", 3)
    assert {k: v.shape for k, v in hc.build_model(inferred).state_dict().items()} == {k: v.shape for k, v in state.items()}
