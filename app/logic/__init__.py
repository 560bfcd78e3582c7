"""Streamlit-free view logic of the app: form binding and saved configs (``config_edit``), comparison tables and
their styling (``compare``), the
ablation runs' tables (``run_tables``), the model's identity (``identity``) and URL state (``url_state``), the
interactive architecture view's layout (``arch_view``), table display specs (``tables``), form extras
(``form_extra``), messages (``messages``), run progress (``run_progress``) and the System page (``system_info``). Pure functions returning dataclasses or DataFrames, testable without a browser;
pages in ``app/`` only draw.
"""
