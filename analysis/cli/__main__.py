"""``python -m analysis.cli`` (and ``torchrun -m analysis.cli``)."""

import sys

from analysis.cli.entry import main

if __name__ == "__main__":
    sys.exit(main())
