"""Architecture: the current config as an interactive view (zoom, pan, hover a node for its numbers, collapse
a stage, search a state_dict key) and as the paper-layout Graphviz diagram with SVG / PNG / DOT downloads."""

from __future__ import annotations

import streamlit as st

from analysis.diagram.build import dot_program, module_names
from app import common
from app.arch_interactive import interactive
from hrnet_core import UserInputError

LEVELS = {"stage": "Stage", "module": "Module", "block": "Block (one module opened up)"}
ANNOTATIONS = {None: "none", "params": "params", "gflops": "GFLOPs"}
ss = st.session_state


def page() -> None:
    cfg = common.current_config()
    st.title("Architecture")
    st.markdown(common.model_caption(cfg))
    if common.not_available(cfg, "diagram"):  # another network whose diagram is not drawn yet: one line
        return
    st.caption("Depth left to right, resolution top to bottom (1/4 at the top). Modules whose fusion is off show "
               "no exchange, so the 1-, 3- and 8-fusion variants differ at a glance.")
    c1, c2, c3 = st.columns(3)
    level = c1.radio("Level of detail", list(LEVELS), format_func=LEVELS.get, horizontal=True, key="a_level")
    annotate = c2.radio("Annotate (static diagram)", list(ANNOTATIONS), format_func=ANNOTATIONS.get,
                        horizontal=True, key="a_annotate")
    module = None
    if level == "block":
        names = module_names(cfg)
        if ss.get("a_module") not in names:
            ss.a_module = names[0]
        module = c3.selectbox("Module", names, key="a_module")

    st.subheader("Interactive view")
    with common.guard("interactive view"):
        interactive(cfg, level, module)

    st.subheader("Static diagram (Graphviz)")
    with common.guard("diagram"):
        dot = common.diagram_dot(cfg, level, module, annotate)
        st.graphviz_chart(dot, width="stretch")
        try:
            dot_program()
            formats = ("svg", "png", "dot")
        except UserInputError as err:  # no Graphviz: the chart above is drawn by the browser, DOT still downloads
            st.warning(str(err))
            formats = ("dot",)
        cols = st.columns(3)
        stem = f"{cfg.name}_{level}" + (f"_{module}" if module else "")
        mimes = {"svg": "image/svg+xml", "png": "image/png", "dot": "text/vnd.graphviz"}
        for col, fmt in zip(cols, formats):
            col.download_button(
                f"Download {fmt.upper()}",
                # Deferred: Graphviz renders only when the button is pressed (then cached).
                data=lambda fmt=fmt: common.diagram_bytes(cfg, level, module, annotate, fmt),
                file_name=f"{stem}.{fmt}", mime=mimes[fmt], key=f"a_dl_{fmt}", on_click="ignore",
            )
        with st.expander("DOT source"):
            st.code(dot, language="dot")


page()
