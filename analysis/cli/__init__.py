"""The ``hrnet-explorer`` command line (``analysis.cli:main``; ``python -m analysis.cli``, also under torchrun).

Public API: ``main(argv) -> exit status`` and ``build_parser()``. One sub-command per module: ``inspect``,
``analyze``, ``ablate``, ``visual`` (diagram, features, pose), ``export``; shared argument checks in ``args``.
"""

from analysis.cli.entry import build_parser, main

__all__ = ["build_parser", "main"]
