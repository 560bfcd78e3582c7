"""Keep the server's garbage collector off the long-lived heap.

A served app holds a large heap that lives as long as the process: torch, pandas, plotly and Streamlit
modules, built models and cached reports. Each rerun makes enough surviving objects that CPython runs a
full (generation 2) collection about once per edit, and traversing that heap took 170-240 ms on a 2-core
machine: the server sent nothing while it ran, so an edit's numbers came that much later
(``bench/ui_browser_latency.py``). ``gc.freeze()`` moves every object tracked now into the permanent
generation, which collections skip; objects made later are collected as before, and reference counting
still frees everything that is not in a cycle.

``freeze_once(tag)`` freezes once per tag per process: the app calls it after each page's first run, when
that page's imports and caches are in place. What it costs: a cycle already unreachable at that moment,
or one that becomes so later among the frozen objects, stays in memory (a page's first-run leftovers).
"""

from __future__ import annotations

import gc
import threading

_FROZEN: set[str] = set()
_LOCK = threading.Lock()


def freeze_once(tag: str) -> bool:
    """``gc.freeze()`` the first time ``tag`` is seen in this process; True when it froze now."""
    with _LOCK:
        if tag in _FROZEN:
            return False
        _FROZEN.add(tag)
    gc.freeze()
    return True
