"""Progress of a long forward pass, reported from inside it, so a page can show a bar and stop it.

``throttled(report)`` forwards a ``(fraction, text)`` progress report at most every ``min_interval_s`` (and
always the last one, 1.0): a measured profile reports after every part it times, far more often than a bar
needs drawing.

``forward_progress(model, report)`` calls ``report(fraction)`` (0..1) as the model's convolutions and linear
layers run, at most every ``min_interval_s``. An exception ``report`` raises aborts the forward pass where
it is: a Streamlit page passes a function that updates ``st.progress``; when the user presses Cancel (or
changes any input) Streamlit stops the running script at that update, so the run ends within one layer.
Hooks act only in the thread that entered the context (a model cached for several sessions may run
elsewhere at the same time) and are removed on exit, also after an exception.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from torch import nn

COUNTED = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


@contextlib.contextmanager
def forward_progress(model: nn.Module, report: Callable[[float], None], min_interval_s: float = 0.1) -> Iterator[None]:
    """Report the fraction of ``model``'s conv / linear layers run so far (see the module docstring)."""
    layers = [m for m in model.modules() if isinstance(m, COUNTED)]
    total = max(1, len(layers))
    owner = threading.get_ident()
    state = {"done": 0, "last": 0.0}

    def hook(module, args, output):
        if threading.get_ident() != owner:
            return
        state["done"] += 1
        now = time.perf_counter()
        if now - state["last"] >= min_interval_s:
            state["last"] = now
            report(min(1.0, state["done"] / total))

    handles = [m.register_forward_hook(hook) for m in layers]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def throttled(report: Callable[[float, str], None], min_interval_s: float = 0.1) -> Callable[[float, str], None]:
    """``report`` called at most every ``min_interval_s`` seconds, and always for a fraction of 1.0 (see the
    module docstring). Exceptions ``report`` raises pass through (a page's Cancel stops the work there)."""
    last = [float("-inf")]

    def forward(fraction: float, text: str) -> None:
        now = time.perf_counter()
        if fraction >= 1.0 or now - last[0] >= min_interval_s:
            last[0] = now
            report(fraction, text)

    return forward
