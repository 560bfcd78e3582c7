"""The ``hrnet-explorer`` command line: one sub-command per module in ``COMMANDS``.

Every user error (missing file, bad YAML, invalid config, bad checkpoint or image, a bad argument) ends
with exit status 2 and one line on stderr naming the file or field, never a traceback. Anything else is a
bug: one line "internal error: ..." and exit status 1 (``HRNET_EXPLORER_DEBUG=1`` shows the traceback).
Output never fails on text the terminal cannot encode (a surrogate in a file name): it is escaped.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from analysis.settings import DEBUG_ENV
from hrnet_core.errors import UserInputError, quote

# Each module defines ``register(subparsers)``, adding a parser whose ``func(args) -> int`` runs it.
COMMANDS = (
    "analysis.cli.inspect",
    "analysis.cli.analyze",
    "analysis.cli.ablate",
    "analysis.cli.visual",
    "analysis.cli.export",
    "analysis.cli.space",
)


class OneLineParser(argparse.ArgumentParser):
    """argparse with its usage errors as one line (``prog: error: ...``) and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see --help)\n")


def _escape_unencodable() -> None:
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # a detached or closed stream: leave it as it is
                pass


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="hrnet-explorer", description="Build, inspect, measure and ablate HRNet from configs."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    _escape_unencodable()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, or a usage error already printed as one line
        return int(done.code or 0) if not isinstance(done.code, str) else 2
    try:
        return int(args.func(args) or 0)
    except UserInputError as err:
        print(f"hrnet-explorer {args.command}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hrnet-explorer {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - one guard for every command: a bug is one line, not a traceback
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        print(f"hrnet-explorer {args.command}: internal error: {type(err).__name__}: {quote(str(err), 200)[1:-1]} "
              f"(rerun with {DEBUG_ENV}=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
