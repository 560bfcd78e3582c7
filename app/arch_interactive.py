"""The interactive architecture view as a Streamlit widget (the Architecture page and the Build page's preview)."""

from __future__ import annotations

import streamlit as st

from app import common
from app.logic.arch_view import arch_figure

ss = st.session_state


def interactive(cfg, level: str, module: str | None, key: str = "a_view") -> None:
    """The plotly view of ``cfg``'s diagram with its collapse and search controls (also Build's preview)."""
    layout = common.arch_layout(cfg, level, module)
    c1, c2 = st.columns([2, 1])
    groups = layout.groups()
    ss[f"{key}_collapse"] = [g for g in ss.get(f"{key}_collapse", []) if g in groups]
    collapsed = c1.multiselect("Collapse", groups, key=f"{key}_collapse",
                               help="Draw a stage (or transition, head part) as one box with its totals.")
    query = c2.text_input("Find a module by state_dict key", key=f"{key}_find", placeholder="e.g. stage3.1.fuse_layers")
    shown = layout.collapse(collapsed)
    found = shown.find(query)
    if query.strip():
        st.caption(f"{len(found)} node{'s match' if len(found) != 1 else ' matches'} {query.strip()!r}"
                   + (": outlined, the view zoomed to them" if found else ""))
    st.plotly_chart(arch_figure(shown, found, stage_labels=level != "stage"), key=f"{key}_chart", width="stretch",
                    config={"scrollZoom": True, "displaylogo": False})
    st.caption("Scroll to zoom (the labels grow with it: stages at the whole view, then modules, then units), "
               "drag to pan, double-click to fit; hover a node for its params, GFLOPs (paper: MACs / 2^30, batch 1), "
               "output shape (N, C, H, W), resolution, block type and state_dict prefixes.")
