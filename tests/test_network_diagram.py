"""Diagrams of the registered networks other than HRNet (``analysis.diagram.network``), every preset under
``configs/networks/``: node and edge counts per class derived here from the parts plan and read back from the DOT,
every node wired from the input, node annotations adding up to the closed-form counts, every node naming modules
of the built model, clean ``dot`` runs, Lite-HRNet with a stage's fusion off, errors.

Small inputs (96x64) keep the file quick; the counts do not depend on the input size."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from collections import Counter, deque
from functools import cache
from pathlib import Path

import pytest
import yaml
from conftest import NETWORK_PRESETS

import hrnet_core as hc
from analysis.complexity.network_counts import plans_and_counts
from analysis.diagram import build as dg
from analysis.diagram.network import BLOCK_LABELS, build_network_diagram, network_module_names
from hrnet_core.networks import network_names, network_spec, register

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot not installed (make sysdeps)")
SMALL = (96, 64)
IDS = [p.stem for p in NETWORK_PRESETS]

NODE = re.compile(r"^\s*(\w+) \[(.*)\]$")
EDGE = re.compile(r"^\s*(\w+) -> (\w+) \[(.*)\]$")
CLS = re.compile(r"\bclass=\"?([\w-]+)")
PREFIXES = re.compile(r'prefixes=(?:"([^"]*)"|([^\s\]]+))')
COST = re.compile(r"params=(\d+) macs=(\d+)")


@cache
def small(path: Path):
    return hc.load_config(path).with_input(SMALL)


@cache
def built_modules(path: Path) -> dict:
    """The preset's model on the meta device, by module name (built here, not by the diagram)."""
    return dict(hc.build_on_meta(small(path)).named_modules())


@dataclasses.dataclass
class Dot:
    """A diagram read back from its DOT text: nodes (id -> attrs text), visible edges, counts per class."""

    nodes: dict[str, str]
    edges: list[tuple[str, str, str]]
    node_classes: Counter
    edge_classes: Counter

    def cls(self, nid: str) -> str:
        return CLS.search(self.nodes[nid]).group(1)

    def prefixes(self, nid: str) -> list[str]:
        m = PREFIXES.search(self.nodes[nid])
        return (m.group(1) or m.group(2)).split() if m else []

    def of_class(self, cls: str) -> list[str]:
        return [n for n in self.nodes if self.cls(n) == cls]


def read(source: str) -> Dot:
    nodes, edges, nc, ec = {}, [], Counter(), Counter()
    for line in source.splitlines():
        if line.strip().startswith(("graph ", "node ", "edge ")):
            continue
        e = EDGE.match(line)
        if e:
            c = CLS.search(e.group(3)).group(1)
            if "style=invis" not in e.group(3):
                edges.append((e.group(1), e.group(2), c))
            if c != "layout":
                ec[c] += 1
            continue
        n = NODE.match(line)
        if n:
            nodes[n.group(1)] = n.group(2)
            c = CLS.search(n.group(2)).group(1)
            if c not in ("layout", "header"):
                nc[c] += 1
    return Dot(nodes, edges, nc, ec)


def reachable(d: Dot, starts) -> set[str]:
    nxt: dict[str, list[str]] = {}
    for a, b, _ in d.edges:
        nxt.setdefault(a, []).append(b)
    seen, todo = set(starts), deque(starts)
    while todo:
        for b in nxt.get(todo.popleft(), ()):
            if b not in seen:
                seen.add(b)
                todo.append(b)
    return seen


# ---- the expected counts, from the parts plan alone -------------------------------------------------------
def expected(cfg, level: str) -> tuple[Counter, Counter]:
    plans, counts = plans_and_counts(cfg)
    stages: dict[str, list] = {}
    for p in plans:
        if p.kind in ("transition", "branch", "fusion"):
            stages.setdefault(p.stage, []).append(p)
    kinds = Counter(p.kind for p in plans)
    nodes = Counter(io=2, stem=kinds["stem"], head=kinds["head"], branch=kinds["layer1"])
    edges = Counter(stem=kinds["stem"] + kinds["layer1"])
    for parts in stages.values():
        moved = [p for p in parts if p.kind == "transition" and counts[p.key].params > 0]
        nodes["transition"] += len(moved)
        edges["transition"] += 2 * len(moved)
        mods = sorted({p.module for p in parts if p.module is not None})
        shown = mods[-1:] if level == "stage" else mods  # a stage draws its last module's exchange
        mixers = [p for p in parts if p.kind == "branch" and p.branch is None]
        if level == "stage":
            nodes["branch"] += len({p.branch for p in parts if p.kind == "branch" and p.branch is not None})
            nodes["block"] += 1 if mixers else 0
        else:
            nodes["branch"] += sum(1 for p in parts if p.kind == "branch" and p.branch is not None)
            nodes["block"] += len(mixers)
        fusions = [p for p in parts if p.kind == "fusion" and p.module in shown]
        sums = {(p.module, p.branch) for p in fusions}
        nodes["fuse"] += len(sums)
        edges["fuse_identity"] += len(sums)
        edges["fuse_up"] += sum(p.source > p.branch for p in fusions)
        edges["fuse_down"] += sum(p.source < p.branch for p in fusions)
    return +nodes, +edges


def module_parts(cfg, name: str):
    stage, m = name.split(".module")
    return [p for p in cfg.spec.parts(cfg.backbone) if p.stage == stage and p.module == int(m)
            and p.kind in ("branch", "fusion")]


# Steps a branch part's blocks are drawn as, per block string (what the diagram promises for the known blocks):
# CCW / CRW: one node per named layer (depthwise conv, spatial weighting; one weighting per block); SHUFFLE: one
# per shuffle unit; HRFORMER: attention and FFN per transformer block.
def expected_steps(cfg, part, modules) -> int | None:
    if part.block in ("CCW", "CRW"):
        return len(part.prefixes)
    units = sum(len(modules[q]) for q in part.prefixes)
    return {"SHUFFLE": units, "HRFORMER": 2 * units}.get(part.block)


# ---- tests --------------------------------------------------------------------------------------------------
def test_every_registered_network_has_a_preset():
    arches = {hc.load_config(p).arch for p in NETWORK_PRESETS}
    assert set(network_names()) - {"hrnet"} <= arches


@pytest.mark.parametrize("path", NETWORK_PRESETS, ids=IDS)
@pytest.mark.parametrize("level", ["stage", "module"])
def test_counts_match_the_parts_plan(path, level):
    cfg = small(path)
    d = read(build_network_diagram(cfg, level=level).source)
    exp_nodes, exp_edges = expected(cfg, level)
    assert d.node_classes == exp_nodes
    got = {k: d.edge_classes[k] for k in exp_edges}
    assert got == dict(exp_edges)
    # every node hangs off the input and the output is reached
    assert reachable(d, ["input"]) >= {n for n in d.nodes if d.cls(n) != "header"}
    # the dispatcher sends a NetworkConfig here; count_classes reads the same DOT
    source = dg.build_diagram(cfg, level=level).source
    assert source == build_network_diagram(cfg, level=level).source
    assert {k: v for k, v in dg.count_classes(source)["nodes"].items() if k not in ("header", "layout")} == exp_nodes


@pytest.mark.parametrize("path", NETWORK_PRESETS, ids=IDS)
def test_block_level_counts_and_partition(path):
    """First and last module of each preset: every branch part unfolded into its steps, every fusion part with
    another source one unit; the steps' prefixes partition the module's branch parts; annotations add up to the
    closed-form counts of the module's parts."""
    cfg = small(path)
    names = network_module_names(cfg)
    assert names == dg.module_names(cfg)
    modules = built_modules(path)
    _, counts = plans_and_counts(cfg)
    for name in (names[0], names[-1]):
        parts = module_parts(cfg, name)
        branches = sorted({p.branch for p in parts if p.kind == "branch" and p.branch is not None})
        fusions = [p for p in parts if p.kind == "fusion"]
        targets = {p.branch for p in fusions}
        d = read(build_network_diagram(cfg, level="block", module=name, annotate="params").source)
        assert d.node_classes["fuse"] == len(targets)
        assert d.node_classes["fuse_unit"] == sum(p.source != p.branch for p in fusions)
        assert d.node_classes["io"] == len(branches) + (len(targets) or len(branches))
        assert d.edge_classes["fuse_up"] == sum(p.source > p.branch for p in fusions)
        assert d.edge_classes["fuse_down"] == sum(p.source < p.branch for p in fusions)
        assert d.edge_classes["fuse_identity"] == len(targets)
        assert reachable(d, [f"in{b}" for b in branches]) >= {n for n in d.nodes if d.cls(n) != "header"}
        blocks = d.of_class("block")
        owner = {}
        for n in blocks:
            for q in d.prefixes(n):
                hits = [p for p in parts if p.kind == "branch" and any(q == r or q.startswith(r + ".") for r in p.prefixes)]
                assert len(hits) == 1, (name, q)
                owner.setdefault(n, set()).add(hits[0].key)
        assert all(len(keys) == 1 for keys in owner.values())  # a step lies in one part
        for p in (p for p in parts if p.kind == "branch"):
            steps = [n for n in blocks if owner[n] == {p.key}]
            want = expected_steps(cfg, p, modules)
            if want is not None:
                assert len(steps) == want, (name, p.key)
            cost = sum(int(COST.search(d.nodes[n]).group(1)) for n in steps)
            assert cost == counts[p.key].params, (name, p.key)  # disjoint steps covering the part
        drawn = [COST.search(d.nodes[n]) for n in d.nodes if COST.search(d.nodes[n])]
        assert sum(int(m.group(1)) for m in drawn) == sum(counts[p.key].params for p in parts)
        assert sum(int(m.group(2)) for m in drawn) == sum(counts[p.key].conv_linear_macs for p in parts)


@pytest.mark.parametrize("path", NETWORK_PRESETS, ids=IDS)
def test_annotations_add_up_to_the_closed_form(path):
    from analysis.complexity import analyze

    cfg = small(path)
    report = analyze(cfg)
    for level in ("stage", "module"):
        source = build_network_diagram(cfg, level=level, annotate="gflops").source
        costs = [(int(a), int(b)) for a, b in COST.findall(source)]
        assert sum(a for a, _ in costs) == hc.count_params(cfg) == report.params
        assert sum(b for _, b in costs) == report.conv_linear_macs
        assert dg.build_diagram(cfg, level=level, annotate="params").source.count("params=") == len(costs)
        total = report.conv_linear_macs / 2**30
        assert f"total {total:.3f} GFLOPs" in source or f"total {total:.1f} GFLOPs" in source
        assert "paper convention" in source
        assert ("window-attention" in source) == (report.attention_macs > 0)


@pytest.mark.parametrize("path", NETWORK_PRESETS, ids=IDS)
def test_every_node_names_modules_of_the_built_model(path):
    cfg = small(path)
    names = set(built_modules(path))
    seen = 0
    views = [("stage", None), ("module", None), ("block", network_module_names(cfg)[0])]
    for level, module in views:
        d = read(build_network_diagram(cfg, level=level, module=module).source)
        for n in d.nodes:
            for q in d.prefixes(n):
                assert q in names, (level, q)
                seen += 1
    assert seen > 20


@needs_dot
@pytest.mark.parametrize("path", NETWORK_PRESETS, ids=IDS)
def test_dot_renders_every_level_without_warnings(path):
    cfg = small(path)
    for level, annotate in (("stage", "gflops"), ("module", "params"), ("block", None)):
        source = build_network_diagram(cfg, level=level, annotate=annotate).source
        proc = subprocess.run(["dot", "-Tsvg"], input=source.encode(), capture_output=True, timeout=120)
        assert proc.returncode == 0 and proc.stdout.startswith(b"<?xml"), level
        assert proc.stderr.decode().strip() == "", (level, proc.stderr.decode())
        svg = proc.stdout.decode()
        edges = read(source).edge_classes
        for cls in ("fuse_up", "fuse_down", "fuse_identity"):
            assert svg.count(f'class="edge {cls}"') == edges[cls], (level, cls)


def lite_with_fuse(stage_off: int):
    path = next(p for p in NETWORK_PRESETS if hc.load_config(p).arch == "litehrnet"
                and "LITE" in p.read_text())
    data = yaml.safe_load(path.read_text())
    spec = data["backbone"]["extra"]["stages_spec"]
    spec["with_fuse"] = [i != stage_off for i in range(len(spec["with_fuse"]))]
    return hc.load_config(data).with_input(SMALL)


def test_a_stage_with_fusion_off_draws_no_sums():
    cfg = lite_with_fuse(1)
    plans = cfg.spec.parts(cfg.backbone)
    stage_of = {q: p.stage for p in plans for q in p.prefixes}
    stages = sorted({p.stage for p in plans if p.kind == "branch"})
    off = stages[1]
    assert not [p for p in plans if p.kind == "fusion" and p.stage == off]
    for level in ("stage", "module"):
        d = read(build_network_diagram(cfg, level=level).source)
        sums = Counter(stage_of[d.prefixes(n)[0]] for n in d.of_class("fuse"))
        assert sums[off] == 0 and all(sums[s] > 0 for s in stages if s != off), (level, sums)
        assert (d.node_classes, +Counter({k: d.edge_classes[k] for k in expected(cfg, level)[1]})) == expected(cfg, level)
        assert reachable(d, ["input"]) >= set(d.nodes) - set(d.of_class("header"))
    block = build_network_diagram(cfg, level="block", module=f"{off}.module0")
    d = read(block.source)
    assert d.node_classes["fuse"] == d.node_classes["fuse_unit"] == 0
    assert "fusion off" in block.source


def test_unknown_block_strings_are_shown_as_they_are():
    cfg = small(next(p for p in NETWORK_PRESETS if hc.load_config(p).arch == "hrformer"))
    spec = network_spec(cfg.arch)
    renamed = dataclasses.replace(spec, parts=lambda section: tuple(
        dataclasses.replace(p, block="XFORMER_V9") if p.block == "HRFORMER" else p for p in spec.parts(section)))
    register(renamed)
    try:
        source = build_network_diagram(cfg, level="module").source
    finally:
        register(spec)
    assert "XFORMER_V9" in source and BLOCK_LABELS["HRFORMER"] not in source
    assert BLOCK_LABELS["HRFORMER"] in build_network_diagram(cfg, level="module").source


def test_errors():
    cfg = small(NETWORK_PRESETS[0])
    names = network_module_names(cfg)
    with pytest.raises(dg.DiagramError, match=re.escape(names[0])) as err:
        build_network_diagram(cfg, level="block", module="stage9.module0")
    assert "stage9.module0" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(dg.DiagramError, match="'layer'"):
        dg.build_diagram(cfg, level="layer")
    with pytest.raises(dg.DiagramError, match="only used at block level"):
        dg.build_diagram(cfg, level="module", module=names[0])
    with pytest.raises(dg.DiagramError, match="annotate"):
        dg.build_diagram(cfg, annotate="macs")
    with pytest.raises(hc.ConfigError, match="input_size"):
        dg.build_diagram(cfg, input_hw=(100, 100))
    # spellings of a module name the HRNet diagram takes work here too
    stage, m = names[-1].split(".module")
    assert build_network_diagram(cfg, level="block", module=f"{stage}_module{m}").source == \
        build_network_diagram(cfg, level="block", module=names[-1]).source
