"""Plotly figures as files for a paper's appendix: SVG, PDF or PNG through plotly's own ``Figure.to_image``, which
Kaleido draws in the system's Chromium (Debian's ``chromium``, as for the browser tests; ``make sysdeps``).

Each call starts the browser: about 2.5 s on this 2-core machine, so the app asks for a file only when its
button is pressed.
"""

from __future__ import annotations

import importlib.util
import shutil

from hrnet_core.errors import UserInputError

MIMES = {"svg": "image/svg+xml", "pdf": "application/pdf", "png": "image/png"}
WIDTH_PX = 1000  # a page-wide figure; the figure's own height is kept


class FigureExportError(UserInputError):
    """A figure that cannot be written as asked: unknown format, or Kaleido / Chromium missing."""


def export_unavailable() -> str | None:
    """Why figures cannot be written here (one line), or ``None`` when they can."""
    if importlib.util.find_spec("kaleido") is None:
        return "SVG / PDF figures need the kaleido package (pip install -e '.' installs it)"
    if not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome", "chrome")):
        return "SVG / PDF figures need Chromium (make sysdeps installs Debian's chromium)"
    return None


def figure_bytes(fig, fmt: str, width: int = WIDTH_PX) -> bytes:
    """``fig`` (a plotly ``Figure``) as ``fmt`` (``svg`` / ``pdf`` / ``png``) bytes, ``width`` px wide at the
    figure's own height. Raises ``FigureExportError`` (unknown format, no Kaleido or Chromium, a failed draw)."""
    if fmt not in MIMES:
        raise FigureExportError(f"figure format {fmt!r}: expected one of {', '.join(MIMES)}")
    why = export_unavailable()
    if why:
        raise FigureExportError(why)
    try:
        return fig.to_image(format=fmt, width=width, height=fig.layout.height or 500)
    except Exception as err:  # noqa: BLE001 - Kaleido's errors come from the browser: one line, named
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise FigureExportError(f"drawing the figure as {fmt.upper()} failed: {first}") from None


__all__ = ["MIMES", "FigureExportError", "export_unavailable", "figure_bytes"]
