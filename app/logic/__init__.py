"""Streamlit-free view logic of the app: form binding and saved configs (``config_edit``), comparison tables and
their styling (``compare``), the
ablation runs' tables (``run_tables``). Pure functions returning dataclasses or DataFrames, testable without a browser;
pages in ``app/`` only draw.
"""
