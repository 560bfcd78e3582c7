"""hrnet-explorer in the browser: `make run` (pose W32 256x192 and the astronaut photo by default)."""

import os

# Before torch loads (through app.common): Streamlit runs the pages in threads of their own, each with its own
# OpenMP team, and libgomp's default wait policy lets an idle team spin on the cores the next one computes on
# (the profile of W32 measured 5x slower in a second thread than from the CLI). PASSIVE makes idle teams sleep.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import streamlit as st  # noqa: E402

from app import warmup  # noqa: E402

warmup.wait()  # under `make run` (app.serve) the imports below were started at server start: one thread imports

from app.common import SHOWN_KEY, guard, init_state, model_caption, shown_model, sync_url  # noqa: E402
from app.logic.heap import freeze_once  # noqa: E402

st.set_page_config(page_title="hrnet-explorer", page_icon=":material/hub:", layout="wide")

PAGES = [
    st.Page("app/build.py", title="Build", icon=":material/construction:", default=True),
    st.Page("app/architecture.py", title="Architecture", icon=":material/account_tree:", url_path="architecture"),
    st.Page("app/complexity.py", title="Complexity", icon=":material/analytics:", url_path="complexity"),
    st.Page("app/feature_maps.py", title="Feature maps", icon=":material/image:", url_path="feature-maps"),
    st.Page("app/ablation.py", title="Ablation", icon=":material/science:", url_path="ablation"),
    st.Page("app/design_space.py", title="Design space", icon=":material/scatter_plot:", url_path="design-space"),
    st.Page("app/system.py", title="System", icon=":material/memory:", url_path="system"),
]

page = st.navigation(PAGES)
sidebar_model = st.sidebar.empty()  # filled after the page ran: it may show a checkpoint's own model
with guard("app"):
    init_state()
    st.session_state.pop(SHOWN_KEY, None)
try:
    with guard(page.title):
        page.run()
finally:  # also after st.stop() / st.rerun() inside the page
    with guard("app"), sidebar_model.container():
        shown_cfg, source = shown_model()
        st.caption(source)
        st.markdown(model_caption(shown_cfg))
    with guard("link"):
        sync_url()  # reload, a new tab or a copied link restore the model
    freeze_once(page.url_path or "build")  # the collector skips what this page's first run left (app.logic.heap)
