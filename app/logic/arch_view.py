"""The interactive architecture view: the diagram's Graphviz layout (``dot -Tjson`` positions) as data, and
a plotly figure of it that zooms, pans and tells each node's numbers on hover.

The figure draws Graphviz's own SVG of the same layout (one ``dot`` run writes both) as its background in data
coordinates, so boxes, edges and labels are the static diagram's and the text grows with the zoom: at the whole
view the stage names (drawn on top, fixed size) are what one reads, zoomed in the module headers and then each
unit's label. Hover markers, search outlines and collapsed groups are drawn over it.

Everything a node says is read from the one description of the model: the diagram (``analysis.diagram``:
nodes, labels, the state_dict ``prefixes`` each stands for, edges) and the analytic count
(``analysis.complexity.analyze(cfg).breakdown``: params, paper-convention MACs, output shape and resolution of
every leaf module), summed over the node's prefixes as ``analysis.diagram.costs.CostTable`` does.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from analysis.diagram.build import BLOCK_NAMES, DOT_TIMEOUT_S, DiagramError, dot_program
from analysis.diagram.costs import CostTable
from app.logic.networks import is_network
from hrnet_core import HRNetConfig

POINTS_PER_INCH = 72.0


@dataclass(frozen=True)
class ArchNode:
    """One diagram node at its layout position (points, y up): ``x, y`` its centre, ``w, h`` its size.

    ``prefixes``: the state_dict prefixes it stands for; ``group``: their first component (``stage3``,
    ``transition2``, ``final_layer``...), what expand / collapse works on; ``keys``: further state_dict names
    search finds it by (besides its prefixes): for a node without parameters of its own (a block level sum, an
    upsampling), the fusion it belongs to. ``params``, ``gflops`` (MACs / 2**30,
    batch 1), ``output_shape`` ``(N, C, H, W)`` of its last leaf, ``resolution`` (``1/8``) and ``block``
    (``BasicBlock`` / ``Bottleneck`` for residual units) are ``None`` / ``""`` for nodes without submodules.
    """

    id: str
    label: str
    kind: str
    x: float
    y: float
    w: float
    h: float
    fill: str = "white"
    prefixes: tuple[str, ...] = ()
    group: str = ""
    keys: tuple[str, ...] = ()
    params: int | None = None
    gflops: float | None = None
    output_shape: tuple[int, ...] | None = None
    resolution: str = ""
    block: str = ""

    def hover(self) -> str:
        """The hover text (HTML line breaks), every figure with its unit."""
        lines = [f"<b>{(self.label.splitlines() or [self.id])[0]}</b>"]  # a label-less node (a junction): its id
        if self.params is not None:
            lines.append(f"params: {self.params:,}")
            lines.append(f"GFLOPs (paper, MACs/2^30): {self.gflops:.4g}")
        if self.output_shape:
            lines.append("output (N, C, H, W): (" + ", ".join(str(v) for v in self.output_shape) + ")")
        if self.resolution:
            lines.append(f"resolution: {self.resolution} of the input")
        if self.block:
            lines.append(f"block: {self.block}")
        if self.prefixes:
            shown = self.prefixes if len(self.prefixes) <= 4 else (*self.prefixes[:4], f"… {len(self.prefixes) - 4} more")
            lines.append("state_dict: " + ", ".join(shown))
        return "<br>".join(lines)


@dataclass(frozen=True)
class ArchEdge:
    """One drawn edge: its spline sampled as a polyline (points), its class and colour."""

    tail: str
    head: str
    kind: str
    color: str
    xs: tuple[float, ...]
    ys: tuple[float, ...]


@dataclass(frozen=True)
class ArchLayout:
    """A laid-out diagram: nodes, drawn edges, the bounding box ``width x height`` (points) and its title."""

    nodes: tuple[ArchNode, ...]
    edges: tuple[ArchEdge, ...]
    width: float
    height: float
    title: str = ""
    svg: str = ""  # Graphviz's SVG of this layout (``dot_layout``); "" draws boxes and labels instead

    def groups(self) -> list[str]:
        """Groups of more than one node (stages, and heads built of several parts), left to right."""
        seen: dict[str, list[float]] = {}
        for n in self.nodes:
            if n.group:
                seen.setdefault(n.group, []).append(n.x)
        return [g for g, xs in sorted(seen.items(), key=lambda kv: min(kv[1])) if len(xs) > 1]

    def find(self, query: str) -> list[ArchNode]:
        """Nodes whose state_dict prefixes or label contain ``query`` (case-insensitive); ``[]`` for blank."""
        q = query.strip().lower()
        if not q:
            return []
        return [n for n in self.nodes if any(q in p.lower() for p in (*n.prefixes, *n.keys)) or q in n.label.lower()]

    def collapse(self, groups) -> ArchLayout:
        """The layout with each group in ``groups`` drawn as one node over its members' box (their params and
        GFLOPs summed; no one output shape: a stage has one per branch); edges inside a group vanish, edges into
        or out of it end at its centre."""
        groups = [g for g in groups if g in self.groups()]
        if not groups:
            return self
        nodes, owner = [], {}
        for g in groups:
            members = [n for n in self.nodes if n.group == g]
            x0, x1 = min(n.x - n.w / 2 for n in members), max(n.x + n.w / 2 for n in members)
            y0, y1 = min(n.y - n.h / 2 for n in members), max(n.y + n.h / 2 for n in members)
            params = sum(n.params or 0 for n in members)
            gflops = sum(n.gflops or 0.0 for n in members)
            prefixes = tuple(p for n in members for p in n.prefixes)
            blocks = sorted({n.block for n in members if n.block})
            node = ArchNode(id=f"group:{g}", label=f"{g} (collapsed: {len(members)} nodes)", kind="group",
                            x=(x0 + x1) / 2, y=(y0 + y1) / 2, w=x1 - x0, h=y1 - y0, fill="#f0f0f0",
                            prefixes=prefixes, group=g, keys=tuple(k for n in members for k in n.keys), params=params, gflops=gflops, output_shape=None,
                            resolution="", block=" / ".join(blocks))
            nodes.append(node)
            owner.update({n.id: node for n in members})
        nodes = [n for n in self.nodes if n.id not in owner] + nodes
        by_id = {n.id: n for n in nodes}
        edges = []
        for e in self.edges:
            a, b = owner.get(e.tail), owner.get(e.head)
            if a is None and b is None:
                edges.append(e)
            elif a is not b:
                ta, hb = a or by_id.get(e.tail), b or by_id.get(e.head)
                if ta is not None and hb is not None:
                    edges.append(replace(e, tail=ta.id, head=hb.id, xs=(ta.x, hb.x), ys=(ta.y, hb.y)))
        return replace(self, nodes=tuple(nodes), edges=tuple(edges))


# ---- from the diagram ------------------------------------------------------------------------------


def dot_layout(source: str) -> tuple[dict, str]:
    """``dot -Tjson`` (positions in points, y up) and ``-Tsvg`` of a DOT ``source`` from one layout run.
    Raises ``DiagramError``."""
    with tempfile.TemporaryDirectory(prefix="hrnet_dot_") as tmp:
        out_json, out_svg = Path(tmp) / "layout.json", Path(tmp) / "layout.svg"
        try:
            proc = subprocess.run([dot_program(), "-Tjson", "-o", str(out_json), "-Tsvg", "-o", str(out_svg)],
                                  input=source.encode("utf-8"), capture_output=True, timeout=DOT_TIMEOUT_S,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise DiagramError(f"Graphviz dot took over {DOT_TIMEOUT_S} s; try a coarser level") from None
        if proc.returncode != 0 or not out_json.exists() or not out_svg.exists():
            first = (proc.stderr.decode("utf-8", "replace").strip().splitlines() or [f"exit {proc.returncode}"])[0]
            raise DiagramError(f"Graphviz dot failed: {first}")
        return json.loads(out_json.read_text(encoding="utf-8")), out_svg.read_text(encoding="utf-8")


def dot_json(source: str) -> dict:
    """``dot -Tjson`` of a DOT ``source`` (positions in points, y up). Raises ``DiagramError``."""
    return dot_layout(source)[0]


def _bezier(points: list[tuple[float, float]], steps: int = 8) -> list[tuple[float, float]]:
    """Graphviz's piecewise cubic B-spline control points (1 + 3k of them) sampled as a polyline."""
    out = [points[0]]
    for i in range(0, len(points) - 3, 3):
        p0, p1, p2, p3 = points[i:i + 4]
        for k in range(1, steps + 1):
            t = k / steps
            a, b, c, d = (1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t * t * (1 - t), t ** 3
            out.append((a * p0[0] + b * p1[0] + c * p2[0] + d * p3[0], a * p0[1] + b * p1[1] + c * p2[1] + d * p3[1]))
    return out


def _edge_points(pos: str) -> list[tuple[float, float]]:
    pts, end = [], None
    for tok in pos.split():
        parts = tok.split(",")
        if parts[0] == "e":
            end = (float(parts[1]), float(parts[2]))
        elif parts[0] != "s":
            pts.append((float(parts[0]), float(parts[1])))
    line = _bezier(pts) if len(pts) >= 4 else pts
    return line + ([end] if end else [])


def _stage_blocks(cfg: HRNetConfig) -> dict[str, str]:
    """The breakdown's ``stage`` value -> the block type of that stage's residual units (another network's: the
    ``block`` of its parts plan's per-branch parts, e.g. ``CCW``, ``HRFORMER``)."""
    if is_network(cfg):
        out: dict[str, str] = {}
        for p in cfg.spec.parts(cfg.backbone):
            if p.kind in ("layer1", "branch") and p.branch is not None and p.block:
                out.setdefault(p.stage, BLOCK_NAMES.get(p.block, p.block))
        return out
    out = {"stage1": BLOCK_NAMES[cfg.stage1.block]}
    out.update({f"stage{s + 2}": BLOCK_NAMES[st.block] for s, st in enumerate(cfg.stages)})
    return out


def build_layout(cfg: HRNetConfig, layout: dict, breakdown: pd.DataFrame, svg: str = "") -> ArchLayout:
    """An ``ArchLayout`` from ``dot -Tjson`` output of ``analysis.diagram.build_diagram(cfg, ...)`` and the
    analytic breakdown of the same model (``analysis.complexity.analyze(cfg).breakdown``); ``svg``: the same
    run's SVG (``dot_layout``), the figure's background."""
    params = breakdown.groupby("name", sort=False)["params"].sum()
    macs = breakdown.groupby("name", sort=False)["macs"].sum()
    costs = CostTable({k: int(v) for k, v in params.items() if v}, {k: int(v) for k, v in macs.items() if v},
                      tuple(cfg.input_hw))
    names = breakdown["name"].tolist()
    branch = [None if pd.isna(v) else int(v) for v in breakdown["branch"]]
    blocks = _stage_blocks(cfg)
    objects = [o for o in layout.get("objects", []) if "pos" in o and o.get("class") != "header"]
    every = [p for o in objects for p in o.get("prefixes", "").split()]
    # rows no node stands for (a module's parameterless sums and ReLUs): they end the node before them
    unowned = [not any(n == p or n.startswith(p + ".") for p in every) for n in names]
    nodes, ids = [], {}
    for obj in objects:
        x, y = (float(v) for v in obj["pos"].split(","))
        prefixes = tuple(obj.get("prefixes", "").split())
        node = ArchNode(id=obj["name"], label=obj.get("label", obj["name"]).replace("\\n", "\n"),
                        kind=obj.get("class", ""), x=x, y=y, w=float(obj.get("width", 0.5)) * POINTS_PER_INCH,
                        h=float(obj.get("height", 0.5)) * POINTS_PER_INCH, fill=obj.get("fillcolor", "white"),
                        keys=tuple(obj.get("keys", "").split()))
        if prefixes:
            rows = [i for i, n in enumerate(names) if any(n == p or n.startswith(p + ".") for p in prefixes)]
            end = rows[-1] if rows else None
            while end is not None and end + 1 < len(names) and unowned[end + 1] \
                    and branch[end] is not None and branch[end + 1] == branch[end]:
                end += 1  # e.g. an exchange unit's sum and ReLU: its output is the fused map
            last = breakdown.iloc[end] if rows else None
            first = breakdown.iloc[rows[0]] if rows else None
            block = ""
            if first is not None and first["component"] in ("layer1", "branch_blocks"):
                block = blocks.get(first["stage"], "")
            node = replace(node, prefixes=prefixes, group=prefixes[0].split(".")[0], params=costs.params(prefixes),
                           gflops=costs.gflops(prefixes),
                           output_shape=tuple(int(v) for v in last["output_shape"])
                           if last is not None and last["output_shape"] is not None else None,  # networks: by part
                           resolution=str(last["resolution"]) if last is not None else "", block=block)
        ids[obj["_gvid"]] = node.id
        nodes.append(node)
    edges = []
    for e in layout.get("edges", []):
        if e.get("style") == "invis" or "pos" not in e:
            continue
        pts = _edge_points(e["pos"])
        edges.append(ArchEdge(tail=ids.get(e["tail"], ""), head=ids.get(e["head"], ""), kind=e.get("class", ""),
                              color=e.get("color", "#555555"), xs=tuple(p[0] for p in pts), ys=tuple(p[1] for p in pts)))
    x0, y0, x1, y1 = (float(v) for v in layout.get("bb", "0,0,1,1").split(","))
    return ArchLayout(tuple(nodes), tuple(edges), x1 - x0, y1 - y0, str(layout.get("label", "")).replace("\\l", "\n"),
                      svg)


# ---- the figure --------------------------------------------------------------------------------------


def svg_extent(layout: ArchLayout) -> tuple[float, float, float, float] | None:
    """Where ``layout.svg`` lies in the layout's coordinates: ``(left, top, width, height)`` in points (Graphviz
    pads the drawing evenly around the bounding box); ``None`` without an SVG."""
    m = re.search(r'viewBox="([-\d.]+) ([-\d.]+) ([-\d.]+) ([-\d.]+)"', layout.svg)
    if m is None:
        return None
    w, h = float(m.group(3)), float(m.group(4))
    return -(w - layout.width) / 2, layout.height + (h - layout.height) / 2, w, h


def stage_spans(layout: ArchLayout) -> list[tuple[str, float, float]]:
    """``(group, left, right)`` of every stage group (``stage2``...), left to right, in points."""
    out = []
    for g in layout.groups():
        if g.startswith("stage"):
            members = [n for n in layout.nodes if n.group == g]
            out.append((g, min(n.x - n.w / 2 for n in members), max(n.x + n.w / 2 for n in members)))
    return out


def arch_figure(layout: ArchLayout, found=(), height: int | None = None, page_px: int = 1050,
                stage_labels: bool = False) -> go.Figure:
    """The layout as a plotly figure: Graphviz's SVG of it as the background in data coordinates (labels scale
    with the zoom; without ``layout.svg``: boxes as shapes, edges as lines, labels as fixed-size text), one
    invisible marker per node carrying its hover text (nearest node under the cursor), collapsed groups as grey
    boxes over their members, nodes in ``found`` outlined in black with the view zoomed to them, and with
    ``stage_labels`` each stage's name over its columns (fixed size: readable at the whole view). Drag to pan,
    scroll to zoom, double-click to fit. ``height`` (px; default: the drawing's aspect at ``page_px`` wide, 200
    to 720, so the drawing fills the frame)."""
    extent = svg_extent(layout)
    left, top, width, tall = extent if extent else (-10.0, layout.height + 10, layout.width + 20, layout.height + 20)
    band = 26.0 if stage_labels else 0.0  # room above the drawing for the stage names
    xr0, yr0 = [left, left + width], [top - tall, top + band]
    if height is None:
        height = int(min(720, max(200, page_px * (yr0[1] - yr0[0]) / max(xr0[1] - xr0[0], 1.0))))
    fig = go.Figure()
    drawn = [n for n in layout.nodes if n.kind == "group"] if extent else list(layout.nodes)
    if not extent:
        by_color: dict[str, tuple[list, list]] = {}
        for e in layout.edges:
            xs, ys = by_color.setdefault(e.color, ([], []))
            xs.extend([*e.xs, None])
            ys.extend([*e.ys, None])
        for color, (xs, ys) in by_color.items():
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"color": color, "width": 1}, hoverinfo="skip",
                                     showlegend=False))
    hit = {n.id for n in found}
    shapes = [dict(type="rect", x0=n.x - n.w / 2, x1=n.x + n.w / 2, y0=n.y - n.h / 2, y1=n.y + n.h / 2,
                   fillcolor=n.fill if n.fill.startswith("#") else "white", layer="above" if extent else "below",
                   line={"color": "#000000" if n.id in hit else "#888888", "width": 3 if n.id in hit else 0.8})
              for n in drawn]
    boxed = {n.id for n in drawn}  # their outline is the box above
    shapes += [dict(type="rect", x0=n.x - n.w / 2 - 2, x1=n.x + n.w / 2 + 2, y0=n.y - n.h / 2 - 2, y1=n.y + n.h / 2 + 2,
                    layer="above", line={"color": "#000000", "width": 3})
               for n in layout.nodes if n.id in hit and n.id not in boxed]
    if drawn:
        fig.add_trace(go.Scatter(x=[n.x for n in drawn], y=[n.y for n in drawn], mode="text",
                                 text=[n.label.replace("\n", "<br>") for n in drawn],
                                 textfont={"size": 9, "color": "#222222", "family": "Helvetica, Arial, sans-serif"},
                                 hoverinfo="skip", showlegend=False))
    fig.add_trace(go.Scatter(x=[n.x for n in layout.nodes], y=[n.y for n in layout.nodes], mode="markers",
                             marker={"size": 18, "opacity": 0, "symbol": "square"}, name="nodes",
                             customdata=[n.id for n in layout.nodes], hovertext=[n.hover() for n in layout.nodes],
                             hoverinfo="text", showlegend=False))
    images = []
    if extent:
        images.append(dict(source="data:image/svg+xml;base64," + base64.b64encode(layout.svg.encode("utf-8")).decode(),
                           xref="x", yref="y", x=left, y=top, sizex=width, sizey=tall, sizing="stretch",
                           layer="below"))
    spans = stage_spans(layout) if stage_labels else []
    annotations = [dict(x=(a + b) / 2, y=top + band / 2, xref="x", yref="y", text=f"<b>stage {g[5:]}</b>",
                        showarrow=False, font={"size": 13, "color": "#333333"}) for g, a, b in spans]
    shapes += [dict(type="line", x0=a, x1=b, y0=top + 2, y1=top + 2, layer="above", line={"color": "#999999", "width": 1})
               for _, a, b in spans]
    if hit:
        pad = 60
        xr = [min(n.x - n.w / 2 for n in found) - pad, max(n.x + n.w / 2 for n in found) + pad]
        yr = [min(n.y - n.h / 2 for n in found) - pad, max(n.y + n.h / 2 for n in found) + pad]
    else:
        xr, yr = xr0, yr0
    fig.update_layout(shapes=shapes, images=images, annotations=annotations, height=height,
                      margin={"l": 0, "r": 0, "t": 0, "b": 0}, dragmode="pan", hovermode="closest", hoverdistance=-1,
                      plot_bgcolor="white", paper_bgcolor="white",
                      hoverlabel={"align": "left", "bgcolor": "white", "font": {"size": 12, "color": "#111111"}})
    fig.update_xaxes(visible=False, range=xr)
    fig.update_yaxes(visible=False, range=yr, scaleanchor="x", scaleratio=1)
    return fig
