"""A network added in one place (here: inside this test) works everywhere the registry reaches: the concise YAML
(``arch:``), ``build_model``, the parameter count, ``architecture()`` (every parameter in one part), the analytic
counts (= fvcore's, per part), ``dump_config`` / ``load_config`` and the CLI's ``inspect`` / ``analyze``, with no
other file touched."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pytest
import torch
from torch import nn

import hrnet_core as hc
from analysis.cli import main
from analysis.complexity import analyze
from hrnet_core.graph import architecture
from hrnet_core.networks import NetworkSpec, PartCount, PartPlan, network_names, register, unregister


@dataclass(frozen=True)
class ToySection:
    """Two branches: a stride-4 stem conv (branch 0, ``width`` channels), a stride-2 conv to branch 1 (2 x width),
    and one fusion: branch 1 by a 1x1 conv, upsampled x2 (nearest), added to branch 0."""

    width: int = 4


class ToyModule(nn.Module):
    """The registry's convention: module M of stage S is the backbone child ``S.M``, returning its branches."""

    def __init__(self, s: ToySection):
        super().__init__()
        self.down = nn.Conv2d(s.width, 2 * s.width, 3, stride=2, padding=1, bias=False)
        self.fuse = nn.Sequential(nn.Conv2d(2 * s.width, s.width, 1, bias=False), nn.Upsample(scale_factor=2))

    def forward(self, x0):
        return [x0 + self.fuse(self.down(x0))]


class ToyNet(nn.Module):
    def __init__(self, s: ToySection):
        super().__init__()
        self.stem = nn.Conv2d(3, s.width, 3, stride=4, padding=1, bias=False)
        self.stage1 = nn.ModuleList([ToyModule(s)])

    def forward(self, x):
        return self.stage1[0](self.stem(x))


def _parse(mapping: Mapping, field: str) -> ToySection:
    extra = dict(mapping)
    width = extra.pop("width", 4)
    if extra:
        raise hc.ConfigError(f"{field}.{sorted(extra)[0]}", "unknown key")
    return ToySection(hc.config.positive_int(width, f"{field}.width", 64))


def _counts(s: ToySection, hw: tuple[int, int]) -> tuple[PartCount, ...]:
    h0, w0 = -(-hw[0] // 4), -(-hw[1] // 4)
    h1, w1 = -(-h0 // 2), -(-w0 // 2)
    c = s.width
    stem, down, fuse = 27 * c * h0 * w0, 9 * c * 2 * c * h1 * w1, 2 * c * c * h1 * w1
    return (PartCount("stem", 27 * c, stem, 0, stem, c * h0 * w0),
            PartCount("stage1.module0.branch1", 18 * c * c, down, 0, down, 2 * c * h1 * w1),
            # fvcore: the 1x1 conv, and one flop per output element of the nearest upsampling
            PartCount("stage1.module0.fuse.0<-1", 2 * c * c, fuse, 0, fuse + c * h0 * w0, c * h1 * w1))


TOY = NetworkSpec(
    name="toynet", title="ToyNet", mmpose_type="ToyNet", section_type=ToySection, parse=_parse,
    dump=lambda s: {"type": "ToyNet", "width": s.width}, build=ToyNet, out_channels=lambda s: (s.width,),
    out_strides=lambda s: (4,), counts=_counts,
    parts=lambda s: (PartPlan("stem", "stem", ("stem",), "stem", resolution=4),
                     PartPlan("stage1.module0.branch1", "branch", ("stage1.0.down",), "stage1", 0, 1, resolution=8),
                     PartPlan("stage1.module0.fuse.0<-1", "fusion", ("stage1.0.fuse",), "stage1", 0, 0, 1,
                              resolution=4)))
CONFIG = {"arch": "toynet", "input_size": [64, 48], "backbone": {"width": 4}, "head": {"outputs": 5}}


@pytest.fixture
def toy():
    register(TOY)
    yield hc.load_config(CONFIG)
    unregister("toynet")
    architecture.cache_clear()


def test_unknown_arch_is_refused_until_registered():
    assert "toynet" not in network_names()
    with pytest.raises(hc.ConfigError, match="arch"):
        hc.load_config(CONFIG)


def test_model_params_and_parts(toy):
    model = hc.build_model(toy).eval()
    assert list(model.state_dict()) == ["stem.weight", "stage1.0.down.weight", "stage1.0.fuse.0.weight",
                                        "final_layer.weight", "final_layer.bias"]
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 64, 48)).shape == (2, 5, 16, 12)
    assert hc.count_params(toy) == sum(p.numel() for p in model.parameters())
    g = architecture(toy)
    assert [p.key for p in g.parts] == ["stem", "stage1.module0.branch1", "stage1.module0.fuse.0<-1",
                                        "head.final_layer"]
    for name, _ in model.named_parameters():
        assert sum(p.owns(name) for p in g.parts) == 1, name
    assert g.part("stage1.module0.branch1").out_shape == (1, 8, 8, 6)
    assert [(m.key, m.shape) for m in g.maps] == [("stage1.module0.branch0", (1, 4, 16, 12))]


def test_feature_maps_and_profile_by_part(toy):
    """The feature maps and the profiler by part read the toy's parts plan and nothing else."""
    from analysis.complexity.profiler import profile
    from analysis.features import capture

    model = hc.build_model(toy).eval()
    cap = capture(model, toy, "astronaut")
    assert list(cap.branches) == ["stem", "stage1.module0.branch0"] and cap.head.maps.shape == (5, 16, 12)
    prof = profile(toy, device="cpu", mode="branch", warmup=0, iters=1)
    assert list(prof["part"]) == ["stem", "stage1.module0.branch1", "stage1.module0.fuse.0<-1", "head.final_layer",
                                  "between parts", "total"]
    assert (prof[prof["part"] != "between parts"]["median_ms"] > 0).all()


def test_analytic_counts_equal_fvcore_per_part(toy):
    a, f = analyze(toy), analyze(toy, backend="fvcore")
    for field in ("params", "conv_linear_macs", "fvcore_flops", "activations"):
        assert getattr(a, field) == getattr(f, field), field
    rows = lambda r: r.breakdown.set_index("name")[["params", "flops", "macs"]].to_dict("index")  # noqa: E731
    assert rows(a) == rows(f)
    assert a.arch == "toynet" and a.params == hc.count_params(toy)


def test_yaml_round_trip_and_cli(toy, tmp_path, capsys):
    assert hc.load_config_text(hc.dump_config(toy)) == toy
    path = tmp_path / "toy.yaml"
    path.write_text(hc.dump_config(toy))
    assert main(["inspect", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] == hc.count_params(toy) and out["arch"] == "toynet"
    assert main(["analyze", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["conv_linear_macs"] == analyze(toy).conv_linear_macs


def test_bad_section_names_the_field(toy):
    with pytest.raises(hc.ConfigError, match=r"backbone\.depth"):
        hc.load_config({**CONFIG, "backbone": {"width": 4, "depth": 2}})
    with pytest.raises(hc.ConfigError, match=r"backbone\.width"):
        hc.load_config({**CONFIG, "backbone": {"width": 0}})
