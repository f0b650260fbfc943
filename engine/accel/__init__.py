"""Layer 4, accel.

Hand-written kernels: tree ensembles compiled with llvmlite and blocked k-NN search, each
checked against the library's own result when built, and switched off by ``LANDPROBE_NO_JIT=1``. Imports core.
"""

from __future__ import annotations

import os

#: Set to anything but 0 to switch every hand-written kernel off: the libraries' own routes are used instead.
SWITCH = "LANDPROBE_NO_JIT"


def enabled() -> bool:
    """Whether the hand-written kernels may be used (``LANDPROBE_NO_JIT`` unset or 0)."""
    return os.environ.get(SWITCH, "0").strip() in ("", "0")
