"""The project's `.streamlit/config.toml` is what Streamlit itself reads when `make run` starts it from the project
root: no file watcher (it would watch the whole tree recursively), no Deploy button, no usage statistics, local
address, headless."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT

WANTED = {("server", "fileWatcherType"): '"none"', ("server", "address"): '"127.0.0.1"',
          ("server", "headless"): "true", ("browser", "gatherUsageStats"): "false",
          ("client", "toolbarMode"): '"minimal"', ("runner", "magicEnabled"): "false"}


def _effective_options() -> dict[tuple[str, str], str]:
    """``streamlit config show`` run from the project root: section, option -> value as it prints it."""
    out = subprocess.run([sys.executable, "-m", "streamlit", "config", "show"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    options, section = {}, None
    for line in out.splitlines():
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif " = " in line and not line.startswith("#"):
            key, value = line.split(" = ", 1)
            options[(section, key.strip())] = value.strip()
    return options


def test_make_run_needs_no_flags():
    options = _effective_options()
    assert {k: options.get(k) for k in WANTED} == WANTED
    makefile = (ROOT / "Makefile").read_text()
    run = next(line for line in makefile.splitlines() if "streamlit run" in line)
    assert "--server" not in run and "--browser" not in run  # every setting comes from the config file
