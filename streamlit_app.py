"""hrnet-explorer in the browser: `make run` (pose W32 256x192 and the astronaut photo by default)."""

import streamlit as st

from app.common import guard, init_state, model_caption

st.set_page_config(page_title="hrnet-explorer", page_icon=":material/hub:", layout="wide")

PAGES = [
    st.Page("app/build.py", title="Build", icon=":material/construction:", default=True),
    st.Page("app/architecture.py", title="Architecture", icon=":material/account_tree:", url_path="architecture"),
    st.Page("app/complexity.py", title="Complexity", icon=":material/analytics:", url_path="complexity"),
    st.Page("app/feature_maps.py", title="Feature maps", icon=":material/image:", url_path="feature-maps"),
    st.Page("app/ablation.py", title="Ablation", icon=":material/science:", url_path="ablation"),
    st.Page("app/system.py", title="System", icon=":material/memory:", url_path="system"),
]

page = st.navigation(PAGES)
with guard("app"):
    init_state()
    with st.sidebar:
        st.caption("Current model")
        st.markdown(model_caption(st.session_state.cfg))
with guard(page.title):
    page.run()
