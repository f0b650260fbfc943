"""Exact k nearest neighbours by brute force, compiled with LLVM (llvmlite), for small reference sets.

A k-d tree prunes well in few dimensions, but with a few thousand reference samples in 7 to 12 dimensions it ends
up comparing most of them anyway, one at a time. This kernel compares 8 pixels with every reference sample at
once (one SIMD lane per pixel, float64, fused multiply-add) and keeps each pixel's ``k`` best in a sorted list;
with the sample's 718 references in 7 or 12 dimensions it is about 4x SciPy's ``cKDTree`` on one core. Distances
are the exact float64 Euclidean distances to rounding (1e-16), so the neighbours are the k-d tree's; among samples
at exactly the same distance the first in the reference set wins.

The kernel only reads the pixels and the reference set and writes the two output arrays it is given.
"""

from __future__ import annotations

import ctypes
import threading
from typing import TYPE_CHECKING

from .llvm_jit import Kernel, compile_function

if TYPE_CHECKING:
    import numpy as np

LANES = 8  # pixels compared at once: one 512-bit vector of float64 (two 256-bit halves without AVX-512)

_kernels: dict[tuple[int, int], Kernel] = {}
_lock = threading.Lock()


def _vec(t: str = "double") -> str:
    return f"<{LANES} x {t}>"


def kernel_ir(n_features: int, k: int) -> str:
    """The IR of ``knn(x, groups, ref, nref, bestd, besti)``.

    For ``groups`` x 8 float32 rows of ``x``: the ``k`` smallest squared distances to the float64 rows of ``ref``
    (ascending) and their row numbers. Each row's sorted list lives in ``k`` vectors (one lane per pixel); a
    reference row closer than some pixel's k-th goes in by compare-and-swap down the list, without branches. A
    reference row is dropped after its first features when all 8 partial sums already reach the k-th distances.
    """
    v, f_, kk = _vec(), n_features, k
    lines = ["define void @knn(ptr noalias readonly %x, i64 %groups, ptr noalias readonly %ref, i64 %nref, "
             "ptr noalias %bestd, ptr noalias %besti) nounwind {",
             "entry:", "  %anyg = icmp sgt i64 %groups, 0", "  %anyr = icmp sgt i64 %nref, 0",
             "  %go = and i1 %anyg, %anyr", "  br i1 %go, label %grp, label %done",
             "grp:", "  %g = phi i64 [0, %entry], [%gnext, %grpend]"]
    vi = _vec("i64")
    lines.append(f"  %row0 = mul i64 %g, {LANES}")
    for f in range(f_):  # the 8 pixels' feature f as one vector
        previous = "poison"
        for lane in range(LANES):
            n = f"{f}_{lane}"
            lines += [f"  %xr{n} = add i64 %row0, {lane}", f"  %xo{n} = mul i64 %xr{n}, {f_}",
                      f"  %xi{n} = add i64 %xo{n}, {f}", f"  %xp{n} = getelementptr float, ptr %x, i64 %xi{n}",
                      f"  %xs{n} = load float, ptr %xp{n}", f"  %xd{n} = fpext float %xs{n} to double",
                      f"  %X{n} = insertelement {v} {previous}, double %xd{n}, i64 {lane}"]
            previous = f"%X{n}"
        lines.append(f"  %X{f} = shufflevector {v} {previous}, {v} poison, "
                     f"<{LANES} x i32> <{', '.join(f'i32 {i}' for i in range(LANES))}>")
    inf = f"<{', '.join(['double 0x7FF0000000000000'] * LANES)}>"
    lines += ["  br label %refloop", "refloop:", "  %r = phi i64 [0, %grp], [%rnext, %refnext]"]
    for j in range(kk):  # the 8 pixels' j-th nearest so far: distances and row numbers
        lines += [f"  %B{j} = phi {v} [{inf}, %grp], [%NB{j}, %refnext]",
                  f"  %I{j} = phi {vi} [zeroinitializer, %grp], [%NI{j}, %refnext]"]
    lines.append(f"  %rbase = mul i64 %r, {f_}")
    acc, split = "", max(1, min(f_ - 1, round(f_ / 4)))  # measured: 3 of 12 features, 2 of 7
    for f in range(f_):  # squared distances of the 8 pixels to reference row r
        lines += [f"  %ri{f} = add i64 %rbase, {f}", f"  %rp{f} = getelementptr double, ptr %ref, i64 %ri{f}",
                  f"  %rv{f} = load double, ptr %rp{f}", f"  %re{f} = insertelement {v} poison, double %rv{f}, i64 0",
                  f"  %rs{f} = shufflevector {v} %re{f}, {v} poison, <{LANES} x i32> zeroinitializer",
                  f"  %df{f} = fsub {v} %X{f}, %rs{f}"]
        if f == 0:
            lines.append(f"  %acc0 = fmul {v} %df0, %df0")
        else:
            lines.append(f"  %acc{f} = call {v} @llvm.fma.v{LANES}f64({v} %df{f}, {v} %df{f}, {v} {acc})")
        acc = f"%acc{f}"
        if f == split - 1:  # every pixel already as far as its k-th nearest (sums only grow): skip the rest
            lines += [f"  %far = fcmp oge {v} {acc}, %B{kk - 1}",
                      f"  %farbits = bitcast <{LANES} x i1> %far to i{LANES}",
                      f"  %allfar = icmp eq i{LANES} %farbits, -1", "  br i1 %allfar, label %refnext, label %rest",
                      "rest:"]
    lines += [f"  %lt = fcmp olt {v} {acc}, %B{kk - 1}", f"  %bits = bitcast <{LANES} x i1> %lt to i{LANES}",
              f"  %any = icmp ne i{LANES} %bits, 0", "  br i1 %any, label %ins, label %refnext", "ins:",
              f"  %tie = insertelement {vi} poison, i64 %r, i64 0",
              f"  %ti = shufflevector {vi} %tie, {vi} poison, <{LANES} x i32> zeroinitializer"]
    t, ti = acc, "%ti"
    for j in range(kk):  # insert the new distances into each lane's sorted list, without branches
        lines += [f"  %m{j} = fcmp olt {v} {t}, %B{j}",
                  f"  %SB{j} = select <{LANES} x i1> %m{j}, {v} {t}, {v} %B{j}",
                  f"  %SI{j} = select <{LANES} x i1> %m{j}, {vi} {ti}, {vi} %I{j}"]
        if j + 1 < kk:
            lines += [f"  %T{j} = select <{LANES} x i1> %m{j}, {v} %B{j}, {v} {t}",
                      f"  %TI{j} = select <{LANES} x i1> %m{j}, {vi} %I{j}, {vi} {ti}"]
            t, ti = f"%T{j}", f"%TI{j}"
    lines += ["  br label %refnext", "refnext:"]
    for j in range(kk):
        lines += [f"  %NB{j} = phi {v} [%B{j}, %refloop], [%B{j}, %rest], [%SB{j}, %ins]",
                  f"  %NI{j} = phi {vi} [%I{j}, %refloop], [%I{j}, %rest], [%SI{j}, %ins]"]
    lines += ["  %rnext = add i64 %r, 1", "  %rmore = icmp slt i64 %rnext, %nref",
              "  br i1 %rmore, label %refloop, label %grpend", "grpend:"]
    for lane in range(LANES):  # each pixel's k nearest, in order, to the outputs
        for j in range(kk):
            n = f"{lane}_{j}"
            lines += [f"  %oo{n} = add i64 %row0, {lane}", f"  %om{n} = mul i64 %oo{n}, {kk}",
                      f"  %oi{n} = add i64 %om{n}, {j}",
                      f"  %od{n} = extractelement {v} %NB{j}, i64 {lane}",
                      f"  %odp{n} = getelementptr double, ptr %bestd, i64 %oi{n}",
                      f"  store double %od{n}, ptr %odp{n}",
                      f"  %ox{n} = extractelement {vi} %NI{j}, i64 {lane}",
                      f"  %oxp{n} = getelementptr i64, ptr %besti, i64 %oi{n}", f"  store i64 %ox{n}, ptr %oxp{n}"]
    lines += ["  %gnext = add i64 %g, 1", "  %gmore = icmp slt i64 %gnext, %groups",
              "  br i1 %gmore, label %grp, label %done",
              "done:", "  ret void", "}",
              f"declare {v} @llvm.fma.v{LANES}f64({v}, {v}, {v})"]
    return "\n".join(lines)


def _kernel(n_features: int, k: int) -> Kernel:
    """The compiled kernel for ``n_features`` and ``k`` (compiled once per process, in about 0.1 s)."""
    with _lock:
        if (n_features, k) not in _kernels:
            _kernels[n_features, k] = compile_function(
                kernel_ir(n_features, k), "knn",
                [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p],
                optimise_ir=True)
        return _kernels[n_features, k]


class BruteForceNeighbours:
    """The ``k`` nearest rows of a reference set, by compiled brute force; callable from several threads."""

    def __init__(self, reference: np.ndarray, k: int) -> None:
        """Keep the reference rows (as float64) and compile the kernel.

        Raises:
            ImportError: without llvmlite.
            ValueError: with fewer than ``k`` reference rows.

        """
        import numpy as np

        if not 1 <= k <= len(reference):
            raise ValueError(f"k={k} needs 1 to {len(reference)} reference rows")
        self.reference = np.ascontiguousarray(reference, dtype="float64")
        self.k = k
        self._kernel = _kernel(self.reference.shape[1], k)

    def query(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distances (n, k) float64, ascending, and reference row numbers (n, k) of float32 rows ``x``."""
        import numpy as np

        n = len(x)
        padded = np.zeros((-(-n // LANES) * LANES, self.reference.shape[1]), dtype="float32")
        padded[:n] = x
        bestd = np.empty((len(padded), self.k), dtype="float64")
        besti = np.empty((len(padded), self.k), dtype="int64")
        self._kernel(padded.ctypes.data, len(padded) // LANES, self.reference.ctypes.data, len(self.reference),
                     bestd.ctypes.data, besti.ctypes.data)
        return np.sqrt(bestd[:n]), besti[:n]
