"""The server-start warm-up (app.warmup, started by app.serve = make run): the pages' imports, read without
running a page, done in one thread that the main script waits for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from app import warmup

ROOT = Path(__file__).resolve().parents[1]


def test_page_imports_are_read_from_the_page_files_without_running_them(tmp_path):
    found = dict(warmup.page_imports())
    assert "interactive" in found["app.arch_interactive"]  # app/build.py: from app.arch_interactive import interactive
    assert "streamlit" in found and "__future__" not in found
    (tmp_path / "page.py").write_text("import json\nfrom os import path as p\nraise SystemExit('ran')\n")
    assert warmup.page_imports(tmp_path) == [("json", ()), ("os", ("path",))]


def test_a_module_that_fails_to_import_is_named_not_raised(tmp_path):
    (tmp_path / "page.py").write_text("import json\nimport no_such_module_for_the_warmup\nfrom json import nosuch\n")
    assert warmup.run(tmp_path) == ["no_such_module_for_the_warmup", "json"]


def test_wait_returns_at_once_when_nothing_was_started():
    assert warmup.wait(timeout_s=0)


def test_a_started_warm_up_imports_every_page_module_before_wait_returns():
    code = ("import sys\nfrom app import warmup\nassert 'app.common' not in sys.modules\n"
            "warmup.start(wait_for_server=False)\nassert warmup.wait()\n"
            "missing = [m for m, _ in warmup.page_imports() if m not in sys.modules]\nprint(missing)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_server_picks_uvloop_and_httptools():
    """Streamlit's uvicorn takes uvloop and httptools when they are installed (pyproject's dependencies): on asyncio
    and h11 each of the first page's ~100 script files took 44 ms to answer, with them 2.6 ms (README, "Where the
    time went"). Fails when either is missing from the environment ``make`` installs."""
    import uvicorn

    config = uvicorn.Config(app=lambda scope, receive, send: None)  # "auto" loop and HTTP parser, as Streamlit's
    config.load()
    assert config.http_protocol_class.__module__ == "uvicorn.protocols.http.httptools_impl"
    if sys.platform != "win32":  # uvloop has no Windows build
        assert config.get_loop_factory().__module__.split(".")[0] == "uvloop"
