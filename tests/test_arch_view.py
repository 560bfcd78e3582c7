"""The interactive architecture view (issue 12): Graphviz positions plus each node's numbers, read from the
diagram and the analytic count; the plotly figure; the Architecture page and Build's preview (AppTest)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from analysis.complexity import analyze
from analysis.diagram.build import build_diagram, module_names
from app.logic.arch_view import arch_figure, build_layout, dot_json, dot_layout, svg_extent
from app.logic.config_edit import load_preset

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "streamlit_app.py")
pytestmark = [pytest.mark.skipif(not Path("/usr/bin/dot").exists() and not __import__("shutil").which("dot"),
                                 reason="needs Graphviz dot"),
              pytest.mark.usefixtures("app_dirs")]  # runs and saved configs in tmp_path


def _layout(name: str, level: str = "module", module: str | None = None, svg: bool = False):
    cfg = load_preset(name)
    source = build_diagram(cfg, level=level, module=module).source
    if svg:
        positions, drawing = dot_layout(source)
        return cfg, build_layout(cfg, positions, analyze(cfg).breakdown, drawing)
    return cfg, build_layout(cfg, dot_json(source), analyze(cfg).breakdown)


@pytest.mark.parametrize("name", ["pose_hrnet_w32_256x192", "seg_hrnetv2_w48", "cls_hrnet_w18_small_v1",
                                  "higherhrnet_w32_512", "det_hrnetv2p_w32"])
@pytest.mark.parametrize("level", ["stage", "module"])
def test_node_numbers_add_up_to_the_model(name, level):
    cfg, layout = _layout(name, level)
    report = analyze(cfg)
    assert sum(n.params or 0 for n in layout.nodes) == report.params
    assert sum(n.gflops or 0 for n in layout.nodes) == pytest.approx(report.gflops_paper, rel=1e-9)
    # every node that stands for submodules reads them off the breakdown, shapes (N, C, H, W)
    for n in layout.nodes:
        if n.prefixes:
            assert n.output_shape is not None and len(n.output_shape) in (2, 4) and n.output_shape[0] == 1
    xs = [n.x for n in layout.nodes if n.kind == "io"]
    assert xs and 0 <= min(xs) < max(n.x for n in layout.nodes) <= layout.width  # depth runs left to right


def test_hover_tells_params_gflops_shape_resolution_block_and_prefix():
    cfg, layout = _layout("pose_hrnet_w32_256x192")
    rows = analyze(cfg).breakdown
    node = next(n for n in layout.nodes if n.prefixes == ("stage3.1.branches.2",))
    under = rows[rows["name"].str.startswith("stage3.1.branches.2.")]
    assert node.params == int(under["params"].sum()) and node.output_shape == (1, 128, 16, 12)
    assert node.resolution == "1/16" and node.block == "BasicBlock"
    text = node.hover()
    assert f"params: {node.params:,}" in text and "(1, 128, 16, 12)" in text and "stage3.1.branches.2" in text
    fused = next(n for n in layout.nodes if n.prefixes == ("stage3.2.fuse_layers.0",))  # the sum into branch 0
    assert fused.output_shape == (1, 32, 64, 48) and fused.resolution == "1/4"
    stem = next(n for n in layout.nodes if n.id == "layer1")
    assert stem.block == "Bottleneck"


def test_collapse_keeps_totals_and_find_zooms():
    cfg, layout = _layout("pose_hrnet_w32_256x192")
    assert "stage3" in layout.groups() and "stage4" in layout.groups()
    folded = layout.collapse(["stage3"])
    group = next(n for n in folded.nodes if n.kind == "group")
    assert sum(n.params or 0 for n in folded.nodes) == analyze(cfg).params
    assert group.params == sum(n.params or 0 for n in layout.nodes if n.group == "stage3")
    assert not any(n.group == "stage3" and n.kind != "group" for n in folded.nodes)
    assert len(folded.nodes) < len(layout.nodes) and all(e.tail != e.head for e in folded.edges)
    found = layout.find("stage4.2.fuse_layers")
    assert [n.id for n in found] and all(n.prefixes[0].startswith("stage4.2.fuse_layers") for n in found)
    fig = arch_figure(layout, found)
    hover = next(t for t in fig.data if t.name == "nodes")
    assert len(hover.hovertext) == len(layout.nodes)
    lo, hi = fig.layout.xaxis.range
    assert hi - lo < layout.width / 3  # zoomed in on the match




def _svg_label_position(svg: str, node_id: str) -> tuple[float, float]:
    """The first label line of ``node_id`` in Graphviz's SVG, in the SVG's own coordinates (y down)."""
    tx, ty = (float(v) for v in re.search(r'translate\(([-\d.]+) ([-\d.]+)\)', svg).groups())
    group = re.search(rf'<g id="node\d+" class="[^"]*"[^>]*>\s*<title>{re.escape(node_id)}</title>(.*?)</g>', svg, re.S)
    x, y = (float(v) for v in re.search(r'<text[^>]* x="([-\d.]+)" y="([-\d.]+)"', group.group(1)).groups())
    return x + tx, y + ty


@pytest.mark.parametrize("level", ["stage", "module", "block"])
def test_the_drawing_under_the_view_is_graphviz_svg_aligned_with_the_nodes(level):
    """The figure's background is the same dot run's SVG placed in the layout's coordinates, so its labels (which
    grow with the zoom) sit on the hover markers and outlines."""
    _, layout = _layout("pose_hrnet_w32_256x192", level, svg=True)
    left, top, width, height = svg_extent(layout)
    assert width > layout.width and height > layout.height  # Graphviz pads the bounding box
    fig = arch_figure(layout, stage_labels=level != "stage")
    (image,) = fig.layout.images
    assert image.source.startswith("data:image/svg+xml;base64,") and image.xref == "x" and image.yref == "y"
    assert (image.x, image.y, image.sizex, image.sizey) == (left, top, width, height)
    assert not any(t.mode == "text" for t in fig.data)  # labels are the drawing's, not fixed-size text
    for node in [n for n in layout.nodes if n.kind in ("io", "branch", "block")][:6]:
        sx, sy = _svg_label_position(layout.svg, node.id)
        assert abs(left + sx - node.x) < 1.0 and abs(top - sy - node.y) < node.h / 2  # the label inside its box
    xr, yr = fig.layout.xaxis.range, fig.layout.yaxis.range
    px_per_pt = 1050 / (xr[1] - xr[0])
    assert fig.layout.height == pytest.approx(min(720, max(200, (yr[1] - yr[0]) * px_per_pt)), abs=1)  # fills the frame


def test_module_level_names_the_stages_above_the_drawing_and_collapsed_groups_keep_a_label():
    _, layout = _layout("pose_hrnet_w32_256x192", "module", svg=True)
    fig = arch_figure(layout, stage_labels=True)
    assert [a.text for a in fig.layout.annotations] == ["<b>stage 2</b>", "<b>stage 3</b>", "<b>stage 4</b>"]
    assert all(a.y > layout.height for a in fig.layout.annotations)
    folded = arch_figure(layout.collapse(["stage3"]))
    (text,) = [t for t in folded.data if t.mode == "text"]
    members = sum(n.group == "stage3" for n in layout.nodes)
    assert list(text.text) == [f"stage3 (collapsed: {members} nodes)"]
    assert any(sh.fillcolor == "#f0f0f0" and sh.layer == "above" for sh in folded.layout.shapes)


@pytest.mark.parametrize("name", ["pose_hrnet_w32_256x192", "networks/litehrnet_18_256x192"])
def test_search_outlines_the_fusion_sums_at_block_level(name):
    """A block level sum (and an upsampling) has no parameters of its own; searching its fusion finds it."""
    cfg = load_preset(name.split("/")[-1])
    module = module_names(cfg)[-1]  # the last module: every branch, fused
    _, layout = _layout(name.split("/")[-1], "block", module, svg=True)
    found = layout.find("fuse_layers")
    assert {n.kind for n in found} >= {"fuse", "fuse_unit"} and any(n.id.startswith("sum") for n in found)
    sums = [n for n in layout.nodes if n.id.startswith("sum")]
    assert sums and all(n in found for n in sums)
    fig = arch_figure(layout, found)
    outlined = [sh for sh in fig.layout.shapes if sh.line.width == 3]
    assert len(outlined) == len(found)


def test_the_build_pills_number_modules_as_the_diagram_does():
    cfg = load_preset("pose_hrnet_w32_256x192")
    at = AppTest.from_file(APP, default_timeout=180).run()
    for s in range(len(cfg.stages)):
        names = [m.split(".")[1] for m in module_names(cfg) if m.startswith(f"stage{s + 2}.")]
        assert at.pills(key=f"b_fuse_{s}").options == names  # stage3.module0 is the pill module0 of Stage 3


def test_architecture_page_interactive_view():
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page("app/architecture.py").run()
    assert not at.exception and not at.error
    assert len(at.get("plotly_chart")) == 1 and len(at.get("graphviz_chart")) == 1
    spec = at.get("plotly_chart")[0].proto.spec
    assert "params: " in spec and "state_dict: stage4" in spec
    at.text_input(key="a_view_find").input("stage4.2.fuse").run()
    assert any("matches 'stage4.2.fuse'" in c.value for c in at.caption)
    at.multiselect(key="a_view_collapse").set_value(["stage3"]).run()
    assert "stage3 (collapsed" in at.get("plotly_chart")[0].proto.spec
    at.radio(key="a_level").set_value("module").run()
    assert not at.error and "stage3 (collapsed" in at.get("plotly_chart")[0].proto.spec
    at.switch_page("app/build.py").run()
    at.toggle(key="b_interactive").set_value(True).run()
    assert not at.error and len(at.get("plotly_chart")) == 1
