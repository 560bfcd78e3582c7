"""Property tests (hypothesis) of the config edge: random mappings, mutated official YAMLs and the CLI.

Each input either builds, with the shapes the config predicts, or is refused with a ``ConfigError``;
nothing else (no TypeError, RecursionError, hang). Bounded to about a minute in all by max_examples.
"""

from __future__ import annotations

import re

import torch
from conftest import SHARED
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hrnet_core as hc
from analysis.cli import main
from hrnet_core.shapes import branch_sizes

OFFICIAL = [p for p in sorted((SHARED / "official").rglob("*.yaml")) if "higher" not in str(p)]
HEALTH = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]


def bounded(n: int) -> settings:
    """``n`` examples, no per-example deadline (a loaded CI machine), no example database (``derandomize``
    keeps the run reproducible)."""
    return settings(max_examples=n, deadline=None, suppress_health_check=HEALTH, derandomize=True, database=None)

JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 70), st.integers(min_value=10**17, max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["BASIC", "BOTTLENECK", "all", "none", "v1", "v2", "pose", "seg", "\ud800", "a\x00b"]),
    st.lists(st.integers(-2, 40), max_size=5), st.dictionaries(st.text(max_size=5), st.integers(0, 9), max_size=3),
)
SMALL = st.fixed_dictionaries({
    "family": st.sampled_from(["pose", "seg", "face"]),
    "input_size": st.sampled_from([[64, 64], [64, 96], [96, 64]]),
    "width": st.integers(1, 8),
    "modules": st.lists(st.integers(1, 2), min_size=1, max_size=3),
    "blocks": st.integers(1, 2),
    "stage1": st.fixed_dictionaries({"blocks": st.integers(1, 2), "planes": st.integers(1, 8)}),
    "fusion": st.sampled_from(["all", "across_stage", "final_only", "none"]),
    "head": st.fixed_dictionaries({"outputs": st.integers(1, 5), "final_conv_kernel": st.sampled_from([1, 3])}),
})


def _check_built(cfg: hc.HRNetConfig) -> None:
    """The model's per-branch outputs on the meta device have the sizes and channels the config predicts."""
    model = hc.build_on_meta(cfg).eval()
    assert hc.count_params(cfg) == sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        feats = model.forward_features(torch.empty(1, 3, *cfg.input_hw, device="meta"))
    n_out = len(feats)
    assert [tuple(f.shape[-2:]) for f in feats] == branch_sizes(cfg)[:n_out]
    assert [f.shape[1] for f in feats] == list(cfg.stages[-1].out_channels[:n_out])


@bounded(150)
@given(base=SMALL, mutations=st.dictionaries(st.sampled_from(
    ["family", "width", "modules", "blocks", "block", "fusion", "head", "stage1", "stem", "input_size", "name",
     "upsample", "stages", "extra"]), JUNK, max_size=2))
def test_random_mappings_build_or_are_refused(base, mutations):
    raw = {**base, **mutations}
    if raw["family"] != "pose" and "head" in base and isinstance(raw.get("head"), dict):
        raw["head"] = {k: v for k, v in raw["head"].items() if k != "final_conv_kernel"} | {"kind": "v2"}
    try:
        cfg = hc.load_config(raw)
    except hc.ConfigError as err:
        assert "\n" not in str(err) and len(str(err)) < 400
        return
    _check_built(cfg)
    assert hc.load_config_text(hc.dump_config(cfg)) == cfg


TOKENS = ["&a x", "*a", "1:30", "[", "{a: 1}", "1.0", "true", "-1", "9" * 30, '"\\ud800"', "~", "!!binary aGk=",
          "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", "0x10", "010", "BASIC", "[1, 2]"]


@bounded(400)
@given(which=st.sampled_from(OFFICIAL), line=st.integers(0, 400), token=st.sampled_from(TOKENS),
       duplicate=st.booleans())
def test_mutated_official_yamls_load_or_are_refused(which, line, token, duplicate):
    lines = which.read_text(encoding="utf-8").splitlines()
    i = line % len(lines)
    if duplicate:
        lines.insert(i, lines[i])
    else:
        m = re.match(r"^(\s*[A-Z_0-9]+:)\s*\S.*$", lines[i])
        lines[i] = f"{m.group(1)} {token}" if m else lines[i] + " " + token
    try:
        cfg = hc.load_config_text("\n".join(lines), source=which.name)
    except hc.ConfigError as err:
        assert "\n" not in str(err) and len(str(err)) < 400
        return
    assert hc.count_params(cfg) > 0
    assert hc.load_config_text(hc.dump_config(cfg)) == cfg


@bounded(40)
@given(base=SMALL, key=st.sampled_from(["width", "modules", "head", "name", "block"]), junk=JUNK)
def test_the_cli_answers_every_config_in_one_line(tmp_path_factory, base, key, junk):
    import yaml

    path = tmp_path_factory.mktemp("fuzz") / "c.yaml"
    try:
        text = yaml.safe_dump({**base, key: junk}, allow_unicode=False)
    except yaml.YAMLError:
        return
    path.write_text(text, encoding="utf-8")
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["inspect", str(path)])
    assert rc in (0, 2), err.getvalue()
    if rc == 2:
        assert err.getvalue().count("\n") == 1
