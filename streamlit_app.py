"""hrnet-explorer in the browser: `make run`."""

import streamlit as st

st.set_page_config(page_title="hrnet-explorer", layout="wide")
st.title("hrnet-explorer")
st.write("The app's pages are being built; use the CLI (`hrnet-explorer --help`) meanwhile.")
