"""``python -m engine``: the command line (``worker`` runs one JSON job for the QGIS plugin)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
