"""The app's Streamlit-free logic: pure functions returning dataclasses or DataFrames, tested without Streamlit."""
