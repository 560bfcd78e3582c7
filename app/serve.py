"""What ``make run`` starts: ``streamlit run streamlit_app.py ARGS`` with the app's imports warmed up while the
server starts (``app.warmup``). Settings come from ``.streamlit/config.toml`` as under ``streamlit run``.

    python -m app.serve [streamlit run options, e.g. --server.port 8502]
"""

from __future__ import annotations

import sys
from pathlib import Path

from app import warmup

MAIN_SCRIPT = Path(__file__).resolve().parents[1] / "streamlit_app.py"


def main(argv: list[str] | None = None) -> None:
    """Start the warm-up, then Streamlit's own command line (``streamlit run``); exits as it does."""
    from streamlit.web import cli

    warmup.start()
    sys.argv = ["streamlit", "run", str(MAIN_SCRIPT), *(sys.argv[1:] if argv is None else argv)]
    cli.main()


if __name__ == "__main__":
    main()
