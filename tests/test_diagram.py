"""Architecture diagrams: node and edge counts derived here from the config arithmetic (per fusion
schedule and head kind) and read back from the DOT; every preset renders with ``dot`` without
warnings; SVG / PNG / DOT files; the paper layout; annotations; CLI errors."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter

import pytest
from conftest import PRESETS, ROOT

import hrnet_core as hc
from analysis.cli import main
from analysis.diagram import build as dg

POSE = ROOT / "configs" / "pose_hrnet_w32_256x192.yaml"
ABLATIONS = {n: ROOT / "configs" / f"ablation_pose_w32_fusion{n}.yaml" for n in (1, 3, 8)}
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot not installed (make sysdeps)")

NODE = re.compile(r"^\s*(\w+) \[(.*)\]$")
EDGE = re.compile(r"^\s*(\w+) -> (\w+) \[(.*)\]$")
CLS = re.compile(r"\bclass=\"?([\w-]+)")


def dot_counts(source: str) -> tuple[Counter, Counter]:
    """Node and edge statements per ``class`` attribute, read from the DOT text (ignoring layout aids)."""
    nodes, edges = Counter(), Counter()
    for line in source.splitlines():
        e = EDGE.match(line)
        n = None if e else NODE.match(line)
        attrs = e.group(3) if e else (n.group(2) if n else None)
        if attrs is None or line.strip().startswith(("graph ", "node ", "edge ")):
            continue
        c = CLS.search(attrs)
        if c and c.group(1) not in ("layout", "header"):
            (edges if e else nodes)[c.group(1)] += 1
    return nodes, edges


# ---- the expected counts, from the config alone ---------------------------------------------------------
def outs_of(cfg, s: int, m: int) -> int:
    """Branches module m of stage s fuses into: none when off; the very last module under V1 and HigherHRNet
    (both read branch 0) only into branch 0."""
    st = cfg.stages[s]
    if not st.fuse[m]:
        return 0
    very_last = s == len(cfg.stages) - 1 and m == st.modules - 1
    return 1 if very_last and cfg.head.kind in ("v1", "higher") else st.branches


def expected(cfg, level: str) -> tuple[Counter, Counter]:
    nodes, edges = Counter(io=1, stem=1, branch=1), Counter(stem=2)  # input, stem, stage 1
    prev = [cfg.stage1.out_channels]
    for s, st in enumerate(cfg.stages):
        mods = [st.modules - 1] if level == "stage" else list(range(st.modules))
        nodes["branch"] += len(mods) * st.branches
        changed = sum(st.channels[i] * (4 if st.block == "BOTTLENECK" else 1) != prev[i] for i in range(len(prev)))
        nodes["transition"] += changed + 1  # + the new branch
        edges["transition"] += 2 * (changed + 1)
        edges["flow"] += len(prev) - changed + (len(mods) - 1) * st.branches
        for m in mods:
            k, n = outs_of(cfg, s, m), st.branches
            nodes["fuse"] += k
            edges["fuse_up"] += sum(j > i for i in range(k) for j in range(n))
            edges["fuse_down"] += sum(j < i for i in range(k) for j in range(n))
            edges["fuse_identity"] += k
        prev = [c * (4 if st.block == "BOTTLENECK" else 1) for c in st.channels]
    n = cfg.stages[-1].branches
    kind = cfg.head.kind
    if kind == "v1":  # final_layer -> heatmaps
        nodes.update(head=1, io=1)
        edges.update(head=2)
    elif kind == "v2":  # concat, 1x1 conv, final conv -> output
        nodes.update(head=3, io=1)
        edges.update(head=n + 3)
    elif kind == "ocr":  # concat, aux, pixels, gather, attention, cls_head -> aux and final logits
        nodes.update(head=6, io=2)
        edges.update(head=n + 9)
    elif kind == "higher":  # prediction per resolution -> output; per deconv stage one node fed by the
        # features and (concatenated) the previous prediction
        d = len(cfg.head.deconv_channels)
        nodes.update(head=1 + 2 * d, io=1 + d)
        edges.update(head=2 + sum(3 + cat for cat in cfg.head.cat_output))
    elif kind == "v2p":  # concat, reduction, one node per pyramid level
        nodes.update(head=2 + cfg.head.levels)
        edges.update(head=n + 1 + cfg.head.levels)
    else:  # incre per branch, n-1 downsamplings, final_layer, classifier -> output
        nodes.update(head=2 * n + 1, io=1)
        edges.update(head=n + 1 + 2 * (n - 2) + 2 + 2)
    return +nodes, +edges


def expected_block(cfg, s: int, m: int) -> tuple[Counter, Counter]:
    st = cfg.stages[s]
    n, k = st.branches, outs_of(cfg, s, m)
    pairs = [(i, j) for i in range(k) for j in range(n) if i != j]
    unit_nodes = sum(2 if j > i else i - j for i, j in pairs)  # 1x1 conv + upsample | i-j strided convs
    nodes = Counter(io=n + (k or n), block=sum(st.blocks), fuse=k, fuse_unit=unit_nodes)
    edges = Counter(flow=n + sum(b - 1 for b in st.blocks) + (k or n), fuse_up=sum(j > i for i, j in pairs),
                    fuse_down=sum(j < i for i, j in pairs), fuse_identity=k, fuse_chain=unit_nodes)
    return +nodes, +edges


# ---- counts ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
@pytest.mark.parametrize("level", ["stage", "module"])
def test_counts_match_config(path, level):
    cfg = hc.load_config(path)
    source = dg.build_diagram(cfg, level=level).source
    nodes, edges = dot_counts(source)
    exp_nodes, exp_edges = expected(cfg, level)
    assert nodes == exp_nodes
    assert edges == exp_edges
    # The library's own expectation agrees (a consistency check, not the oracle).
    assert Counter(dg.expected_counts(cfg, level)["edges"]) == exp_edges


@pytest.mark.parametrize("schedule", ["all", "across_stage", "final_only", "none"])
@pytest.mark.parametrize("head", ["v1", "v2", "v2p", "ocr", "cls", "higher"])
def test_counts_every_schedule_and_head(schedule, head):
    family = {"v2p": "det", "ocr": "seg", "cls": "cls"}.get(head, "pose")
    cfg = hc.load_config({"family": family, "input_size": [64, 64], "width": 8,
                          "modules": [1, 2, 2], "blocks": 1, "fusion": schedule, "head": {"kind": head}})
    for level in ("stage", "module"):
        nodes, edges = dot_counts(dg.build_diagram(cfg, level=level).source)
        assert (nodes, edges) == expected(cfg, level), (schedule, head, level)


@pytest.mark.parametrize("n,fusion_edges", [(1, 3), (3, 11), (8, 53)])
def test_ablation_fusion_edges(n, fusion_edges):
    """The 1/3/8-fusion pose W32 variants: exchange edges = the (i, j), i != j pairs of each fusing module."""
    cfg = hc.load_config(ABLATIONS[n])
    assert cfg.num_fusions == n
    schedule_pairs = 0
    for s, st in enumerate(cfg.stages):
        for m in range(st.modules):
            k = outs_of(cfg, s, m)
            schedule_pairs += k * st.branches - k
    assert schedule_pairs == fusion_edges  # 2 + 4*6 + 2*12 + 3 = 53 with every module fusing
    _, edges = dot_counts(dg.build_diagram(cfg, level="module").source)
    assert edges["fuse_up"] + edges["fuse_down"] == fusion_edges
    assert dot_counts(dg.build_diagram(cfg, level="module").source)[0]["fuse"] == sum(
        outs_of(cfg, s, m) for s, st in enumerate(cfg.stages) for m in range(st.modules))


@pytest.mark.parametrize("path,module", [
    (POSE, "stage4.module0"), (POSE, "stage4.module2"), (POSE, "stage2.module0"),
    (ABLATIONS[1], "stage3.module1"),
    (ROOT / "configs" / "cls_hrnet_w18_small_v2.yaml", "stage4.module1"),
    (ROOT / "configs" / "seg_hrnetv2_w48.yaml", "stage3.module3"),
])
def test_block_level_counts(path, module):
    cfg = hc.load_config(path)
    s, m = (int(x) for x in re.fullmatch(r"stage(\d)\.module(\d)", module).groups())
    nodes, edges = dot_counts(dg.build_diagram(cfg, level="block", module=module).source)
    assert (nodes, edges) == expected_block(cfg, s - 2, m)


def test_block_level_errors():
    cfg = hc.load_config(POSE)
    with pytest.raises(dg.DiagramError, match="stage3.module0"):
        dg.build_diagram(cfg, level="block", module="stage3.module7")
    with pytest.raises(dg.DiagramError, match="level"):
        dg.build_diagram(cfg, level="layer")
    with pytest.raises(dg.DiagramError, match="annotate"):
        dg.build_diagram(cfg, annotate="macs")


# ---- Graphviz --------------------------------------------------------------------------------------------
@needs_dot
@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_dot_renders_every_preset_without_warnings(path):
    cfg = hc.load_config(path)
    for level, annotate in (("module", "params"), ("stage", "gflops"), ("block", None)):
        source = dg.build_diagram(cfg, level=level, annotate=annotate).source
        proc = subprocess.run(["dot", "-Tsvg"], input=source.encode(), capture_output=True, timeout=120)
        assert proc.returncode == 0 and proc.stdout.startswith(b"<?xml")
        assert proc.stderr.decode().strip() == "", (level, proc.stderr.decode())


@needs_dot
def test_render_files(tmp_path):
    cfg = hc.load_config(POSE)
    g = dg.build_diagram(cfg, level="module")
    svg, png, dot = (dg.render(g, tmp_path / f"pose.{s}") for s in ("svg", "png", "dot"))
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    # The classes survive into the SVG (the UI and browser tests can find the exchange edges).
    assert text.count('class="edge fuse_up"') == 28 and text.count('class="edge fuse_down"') == 25
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert dot.read_text() == g.source
    assert dg.render_bytes(g, "dot") == g.source.encode()
    with pytest.raises(dg.DiagramError, match="suffix"):
        dg.render(g, tmp_path / "pose.pdf")
    with pytest.raises(dg.DiagramError, match="format"):
        dg.render_bytes(g, "jpeg")


def test_missing_dot_is_a_clear_error(tmp_path, monkeypatch):
    g = dg.build_diagram(hc.load_config(POSE), level="stage")
    monkeypatch.setattr(dg.shutil, "which", lambda name: None)
    with pytest.raises(dg.DiagramError, match="graphviz"):
        dg.render(g, tmp_path / "x.svg")
    assert dg.render(g, tmp_path / "x.dot").read_text() == g.source  # DOT needs no Graphviz


@needs_dot
def test_paper_layout():
    """Depth left to right, resolution top to bottom: node positions from ``dot -Tplain`` (y grows upwards)."""
    cfg = hc.load_config(POSE)
    source = dg.build_diagram(cfg, level="module").source
    plain = subprocess.run(["dot", "-Tplain"], input=source.encode(), capture_output=True, timeout=60, check=True)
    pos = {}
    for line in plain.stdout.decode().splitlines():
        parts = line.split()
        if parts and parts[0] == "node":
            pos[parts[1]] = (float(parts[2]), float(parts[3]))
    columns = [f"s{s + 2}m{m}" for s, st in enumerate(cfg.stages) for m in range(st.modules)]
    xs = [pos[f"{c}b0"][0] for c in columns]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    for c in columns:
        ys = [pos[k][1] for k in sorted(p for p in pos if re.fullmatch(rf"{c}b\d", p))]
        assert ys == sorted(ys, reverse=True) and len(set(ys)) == len(ys), c  # branch 0 on top
        assert len({round(pos[f"{c}b{b}"][0], 3) for b in range(len(ys))}) == 1  # one column (rank=same)
    assert pos["input"][0] < pos["stem"][0] < pos["layer1"][0] < xs[0] < pos["output"][0]


# ---- annotations -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["pose_hrnet_w32_256x192", "cls_hrnet_w18_small_v2", "det_hrnetv2p_w32",
                                  "seg_hrnetv2_w18_small_v1", "higherhrnet_w32_512"])
def test_annotations_partition_the_model(name):
    """Node annotations add up to the model: params to count_params, MACs to the paper-convention total."""
    from analysis.complexity import analyze
    from analysis.diagram.costs import cost_table

    cfg = hc.load_config(ROOT / "configs" / f"{name}.yaml")
    report = analyze(cfg)
    meta = cost_table(cfg, source="meta")  # the model itself, with hooks: an independent count
    assert meta.leaf_params == cost_table(cfg, source="complexity").leaf_params
    assert meta.leaf_macs == cost_table(cfg, source="complexity").leaf_macs
    for level in ("stage", "module"):
        g = dg.build_diagram(cfg, level=level, annotate="gflops")
        params = [int(x) for x in re.findall(r"params=(\d+)", g.source)]
        macs = [int(x) for x in re.findall(r"macs=(\d+)", g.source)]
        assert sum(params) == hc.count_params(cfg) == report.params
        assert sum(macs) == report.conv_linear_macs
        assert f"total {report.gflops_paper:.3f} GFLOPs" in g.source or f"total {report.gflops_paper:.1f} GFLOPs" in g.source
    labels = dg.build_diagram(cfg, level="module", annotate="params").source
    assert "M params" in labels or "K params" in labels


def test_input_size_changes_shapes():
    cfg = hc.load_config(POSE)
    src = dg.build_diagram(cfg, level="stage", input_hw=(384, 288)).source
    assert "96x72" in src and "12x9" in src and "input 384x288" in src
    with pytest.raises(hc.ConfigError, match="input_size"):
        dg.build_diagram(cfg, input_hw=(250, 192))


# ---- CLI -------------------------------------------------------------------------------------------------
@needs_dot
def test_cli_diagram(tmp_path, capsys):
    out = tmp_path / "f3.svg"
    assert main(["diagram", str(ABLATIONS[8]), "-o", str(out), "--fusion", "across_stage"]) == 0
    assert "exchange edges: 11" in capsys.readouterr().out and out.read_text().count("fuse_up") > 0
    assert main(["diagram", str(POSE), "-o", str(tmp_path / "b.png"), "--module", "stage4.module2",
                 "--annotate", "params"]) == 0
    assert "block level" in capsys.readouterr().out


@pytest.mark.parametrize("args,needle", [
    (["-o", "x.pdf"], "unknown output suffix"),
    (["-o", "x.svg", "--level", "block", "--module", "stage9.module0"], "no such module"),
    (["-o", "x.dot", "--input-size", "100", "100"], "input_size"),
])
def test_cli_diagram_errors(tmp_path, capsys, args, needle):
    args = [a if not a.startswith("x.") else str(tmp_path / a) for a in args]
    assert main(["diagram", str(POSE), *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


UNUSUAL = {
    "one_stage_v1": {"family": "pose", "input_size": [64, 48], "stem": 16,
                     "stages": [{"modules": 2, "channels": [8, 16], "blocks": [1, 2], "fusion": [False, True]}]},
    "bottleneck_stages_custom_fusion": {
        "family": "seg", "input_size": [96, 128], "stage1": {"block": "BASIC", "blocks": 2, "planes": 16},
        "stages": [{"modules": 2, "block": "BOTTLENECK", "channels": [8, 16], "blocks": [2, 1], "fusion": [True, False]},
                   {"modules": 1, "block": "BASIC", "channels": [8, 16, 32], "blocks": [1, 1, 3], "fusion": [True]}],
        "head": {"kind": "v2", "final_conv_kernel": 3}},
    "ocr": {"family": "seg", "input_size": [64, 128], "width": 8, "modules": [1, 1, 2], "blocks": 1,
            "fusion": "across_stage", "head": {"kind": "ocr", "channels": 32}},
    "higher_two_deconvs": {"family": "pose", "input_size": [64, 64], "width": 8, "modules": [1, 1, 2], "blocks": 1,
                           "head": {"kind": "higher", "deconv_channels": [8, 4], "deconv_kernels": [4, 2],
                                    "cat_output": [True, False], "with_ae": [True, True, False], "deconv_blocks": 1}},
}


@pytest.mark.parametrize("name", sorted(UNUSUAL))
def test_unusual_layouts(name):
    """Fewer stages, uneven blocks, bottleneck modules, custom schedules, the OCR head: counts, every
    module at block level, annotations adding up, and a clean ``dot`` run."""
    cfg = hc.load_config(UNUSUAL[name])
    for level in ("stage", "module"):
        g = dg.build_diagram(cfg, level=level, annotate="params")
        assert dot_counts(g.source) == expected(cfg, level)
        assert sum(int(x) for x in re.findall(r"params=(\d+)", g.source)) == hc.count_params(cfg)
        if shutil.which("dot"):
            assert dg.run_dot(g.source, "svg")[1].strip() == ""
    for s, st in enumerate(cfg.stages):
        for m in range(st.modules):
            g = dg.build_diagram(cfg, level="block", module=f"stage{s + 2}.module{m}")
            assert dot_counts(g.source) == expected_block(cfg, s, m)
            if shutil.which("dot"):
                assert dg.run_dot(g.source, "svg")[1].strip() == ""


# ---- every drawn node stands for real modules ----------------------------------------------------------
PREFIXES = re.compile(r'prefixes=(?:"([^"]*)"|([^\s\]]+))')


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_every_node_names_modules_of_the_built_model(path):
    """The diagram spells the official state_dict prefixes itself (the architecture graph costs 50-1400 ms a
    config, the diagram 2-7 ms); this pins each one, at every level, to a module ``build_model`` makes."""
    from hrnet_core.model import build_on_meta

    cfg = hc.load_config(path)
    names = {n for n, _ in build_on_meta(cfg).named_modules()}
    views = [("stage", None), ("module", None), *(("block", m) for m in dg.module_names(cfg))]
    seen = 0
    for level, module in views:
        for quoted, bare in PREFIXES.findall(dg.build_diagram(cfg, level=level, module=module).source):
            for prefix in (quoted or bare).split():
                assert prefix in names, (level, module, prefix)
                seen += 1
    assert seen > 20
