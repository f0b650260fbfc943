"""``python -m engine``: the command line (``worker`` runs one JSON job for the QGIS plugin)."""

import os
import sys

# OpenMP threads that wait by spinning (the default) steal the cores from everything else on a busy machine (QGIS,
# other jobs): one XGBoost fit took 5.1 s instead of 0.8 s with two other processes on 2 cores. Set before any
# OpenMP library loads; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
