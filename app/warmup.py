"""The app's imports done once per server, while the server starts and the browser loads Streamlit's scripts.

Streamlit imports the app's modules only when the first visitor's session runs the main script, so that visitor
waited for torch, pandas, plotly, graphviz and the analysis package (about 2 s of a 3.9 s cold first page on
this 2-core machine, measured with ``python -X importtime``; ``bench/ui_browser_latency.py`` prints the cold and
warm first page). ``app.serve`` (what ``make run`` starts) calls ``start()`` before the server; the main
script calls ``wait()`` first, so the modules are imported by one thread at a time (two threads importing the
same modules can meet a circular import half-done). Under plain ``streamlit run`` or ``AppTest`` nothing was
started and ``wait()`` returns at once.

The modules are the pages' own imports, read from their files with ``ast`` (a page's file is never imported
here: importing it would run the page).
"""

from __future__ import annotations

import ast
import importlib
import threading
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent
WAIT_S = 300  # a warm-up that hangs must not hold the page forever: the page then imports for itself

_done = threading.Event()
_started = threading.Event()


def page_imports(app_dir: Path = APP_DIR) -> list[tuple[str, tuple[str, ...]]]:
    """``(module, names)`` of every top-level import in the app's own files (pages, ``common``...), file by
    file: ``import a.b`` gives ``("a.b", ())``, ``from a import b, c`` gives ``("a", ("b", "c"))``."""
    found: list[tuple[str, tuple[str, ...]]] = []
    for path in sorted(app_dir.glob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8"), filename=str(path)).body:
            if isinstance(node, ast.Import):
                found.extend((a.name, ()) for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module != "__future__":
                found.append((node.module, tuple(a.name for a in node.names)))
    return found


def run(app_dir: Path = APP_DIR, wait_for_server: bool = False) -> list[str]:
    """Import every module of ``page_imports(app_dir)`` (and the submodules named in ``from`` imports); the
    names that failed (the page that needs one reports its error itself). ``wait_for_server``: first wait
    until Streamlit's server is listening (at most 30 s)."""
    failed = []
    try:
        if wait_for_server:
            _wait_for_server()
        for module, names in page_imports(app_dir):
            try:
                mod = importlib.import_module(module)
                for name in names:
                    if not hasattr(mod, name):  # a submodule not yet imported (``from app.logic import tables``)
                        importlib.import_module(f"{module}.{name}")
            except Exception:  # noqa: BLE001 - not ours to report: the page's own import says it, in the page
                failed.append(module)
    finally:
        _done.set()
    return failed


def _wait_for_server(timeout_s: float = 30.0) -> None:
    """Until the server listens: importing while it starts held the GIL from it (health 1.0-1.4 s instead of
    0.5 s, measured), and our modules' ``st.cache_data`` decorators, run before the runtime exists, log
    "No runtime found" once each."""
    from streamlit import runtime

    pause = threading.Event()
    for _ in range(int(timeout_s / 0.05)):
        if runtime.exists() and runtime.get_instance().state.name != "INITIAL":
            return
        pause.wait(0.05)


def start(wait_for_server: bool = True) -> threading.Thread:
    """Run ``run(wait_for_server=...)`` in a daemon thread; ``wait()`` waits for it from then on."""
    _started.set()
    thread = threading.Thread(target=run, kwargs={"wait_for_server": wait_for_server}, name="hrnet-explorer warm-up",
                              daemon=True)
    thread.start()
    return thread


def wait(timeout_s: float = WAIT_S) -> bool:
    """Block until a started warm-up has finished (at most ``timeout_s`` s); ``True`` if none was started or it
    finished."""
    return not _started.is_set() or _done.wait(timeout_s)
