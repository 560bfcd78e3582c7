"""The ``hrnet-explorer`` command line: one sub-command per module in ``COMMANDS``.

Every user error (missing file, bad YAML, invalid config, bad checkpoint or image) ends with exit
status 2 and one line on stderr naming the file or field, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from hrnet_core.errors import UserInputError

# Each module defines ``register(subparsers)``, adding a parser whose ``func(args) -> int`` runs it.
COMMANDS = (
    "analysis.cli_inspect",
    "analysis.cli_analyze",
    "analysis.cli_ablate",
    "analysis.cli_visual",
    "analysis.cli_export",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hrnet-explorer", description="Build, inspect, measure and ablate HRNet from configs."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserInputError as err:
        print(f"hrnet-explorer {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hrnet-explorer {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
