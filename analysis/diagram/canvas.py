"""The drawing surface both diagram builders share (HRNet's ``analysis.diagram.build`` and the other networks'
``analysis.diagram.network``): columns of nodes (one Graphviz rank each, ordered top to bottom by branch), free
nodes, classed edges and the exchange-edge colours, emitted as one ``graphviz.Digraph`` in the paper's layout
(depth left to right). Every node and edge carries a ``class`` attribute (kept in SVG output)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import graphviz

from hrnet_core.errors import UserInputError

LEVELS = ("stage", "module", "block")
ANNOTATIONS = ("params", "gflops")
ROW_FILL = ("#fff2cc", "#d9ead3", "#cfe2f3", "#f4cccc", "#ead1dc", "#fce5cd", "#d0e0e3", "#e6e6e6")
UP_COLOUR = "#1f77b4"
DOWN_COLOUR = "#d62728"
SAME_COLOUR = "#8c8c8c"
FONT = "Helvetica"


class DiagramError(UserInputError):
    """A diagram that cannot be made as asked: unknown level / module / format, or Graphviz missing."""


def dot_text(text: str, newline: str = "\\n") -> str:
    """Label text for DOT: backslashes kept literal, line breaks as DOT escapes (one line per statement in the
    source)."""
    return text.replace("\\", "\\\\").replace("\n", newline)


def row_fill(b: int) -> dict:
    """Node attributes of branch ``b``'s row colour."""
    return {"fillcolor": ROW_FILL[b % len(ROW_FILL)]}


@dataclass
class Node:
    id: str
    label: str
    cls: str
    attrs: dict = field(default_factory=dict)


@dataclass
class Column:
    nodes: list[Node]
    header: str | None = None


class Canvas:
    """Columns, free nodes and edges of one diagram; ``graph(name, title)`` emits them."""

    def __init__(self) -> None:
        self.columns: list[Column] = []
        self.free: list[Node] = []
        self.edges: list[tuple[str, str, str, dict]] = []

    def node(self, nid: str, label: str, cls: str, prefixes=(), note: str | None = None, exact: str | None = None,
             **attrs) -> Node:
        """A node; ``prefixes``: the state_dict prefixes it stands for (attribute ``prefixes``, kept by
        ``dot -Tjson`` and read by the app's view); ``note``: an annotation line added to the label, ``exact``
        its exact figures in the tooltip (an annotated sum is drawn as a box: a circle would be huge)."""
        if prefixes:
            attrs.setdefault("prefixes", " ".join(prefixes))
        if note is not None:
            label += "\n" + note
            if exact:
                attrs["tooltip"] = f"{attrs['tooltip']} ({exact})" if "tooltip" in attrs else exact
            if attrs.get("shape") == "circle":
                attrs.update(shape="box", style="rounded,filled")
                label = label.replace("Σ\n", "Σ ", 1)
        return Node(nid, label, cls, attrs)

    def column(self, nodes: list[Node], header: str | None = None) -> None:
        if nodes:
            self.columns.append(Column(nodes, header))

    def edge(self, a: str, b: str, cls: str, **attrs) -> None:
        self.edges.append((a, b, cls, attrs))

    def fuse_edge(self, src: str, dst: str, j: int, i: int, tooltip: str) -> None:
        """Exchange edge from branch ``j`` into fused output ``i``: grey the same branch, blue from a lower
        resolution, red from a higher one; ``tooltip`` says what the fusion unit is."""
        if j == i:
            self.edge(src, dst, "fuse_identity", color=SAME_COLOUR, tooltip=tooltip)
        else:
            cls, colour = ("fuse_up", UP_COLOUR) if j > i else ("fuse_down", DOWN_COLOUR)
            self.edge(src, dst, cls, color=colour, tooltip=tooltip)

    def graph(self, name: str, title: str) -> graphviz.Digraph:
        """Every column as a ``rank=same`` subgraph (invisible ``layout`` edges keep its order), then the free
        nodes and the edges; ``title`` under the drawing."""
        g = graphviz.Digraph(name=re.sub(r"\W", "_", name) or "network")
        g.attr("graph", rankdir="LR", newrank="true", nodesep="0.18", ranksep="0.32", fontname=FONT, fontsize="12",
               label=dot_text(title, "\\l"), labelloc="b", labeljust="l", bgcolor="white", pad="0.2")
        g.attr("node", shape="box", style="rounded,filled", fillcolor="white", fontname=FONT, fontsize="10",
               margin="0.08,0.04", penwidth="0.8")
        g.attr("edge", arrowsize="0.6", penwidth="0.9", color="#555555", fontname=FONT, fontsize="9")
        headers = 0
        for col in self.columns:
            with g.subgraph() as sub:
                sub.attr(rank="same")
                ids = []
                if col.header is not None:
                    hid = f"header{headers}"
                    headers += 1
                    sub.node(hid, dot_text(col.header), shape="plaintext", style="", fontsize="10",
                             fontcolor="#444444", **{"class": "header"})
                    ids.append(hid)
                for n in col.nodes:
                    sub.node(n.id, dot_text(n.label), **{"class": n.cls}, **n.attrs)
                    ids.append(n.id)
                for a, b in zip(ids, ids[1:]):  # keeps the column's top-to-bottom order (branch 0 on top)
                    sub.edge(a, b, style="invis", **{"class": "layout"})
        for n in self.free:
            g.node(n.id, dot_text(n.label), **{"class": n.cls}, **n.attrs)
        for a, b, cls, attrs in self.edges:
            g.edge(a, b, **{"class": cls}, **attrs)
        return g


__all__ = ["ANNOTATIONS", "DOWN_COLOUR", "FONT", "LEVELS", "DiagramError", "ROW_FILL", "SAME_COLOUR", "UP_COLOUR", "Canvas", "Column", "Node", "dot_text",
           "row_fill"]
