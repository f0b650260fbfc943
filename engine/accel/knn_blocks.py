"""k nearest neighbours and their votes, by a compiled search over blocks of reference samples (llvmlite).

Setup: the standardised reference samples are rotated onto their principal axes (distances do not change) and cut
into blocks of up to 16 samples that lie close together (a k-d tree's leaves), each with its bounding box.

Search, 16 neighbouring pixels at a time (one SIMD lane each): a lower bound of the 16 pixels' distance to each
block comes from the boxes (the leading axes, 16 blocks at a time); blocks are visited nearest first, skipped when
no pixel can have a neighbour there, and the search stops when no block is left that could. In a visited block each
sample is compared with the 16 pixels at once, dropped after its first features when all 16 are already farther
than their k+1-th nearest, and otherwise goes into each pixel's sorted list of k+1 without branches.

The search runs in float32, then is made exact. A float32 squared distance is within ``(m + 2) 2**-24`` of the
exact one (``m`` features, all terms positive; the test allows twice that), and rounding the rotated coordinates
moves a distance by at most ``2**-24`` of the two norms. So when a pixel's k+1-th distance exceeds its k-th by more
than both errors, its k nearest are its first k in float32. Those are measured again in float64 in the original
coordinates (as SciPy's k-d tree measures them, to rounding) and ordered by (distance, row): the neighbours,
distances and votes are those of an exact float64 search. A pixel that fails the test (a near tie between its k-th
and k+1-th neighbour, or not a number) is flagged, for the caller to ask the k-d tree.

The kernel only reads the arrays it is given and writes the output arrays.
"""

from __future__ import annotations

import ctypes

import numpy as np

from .llvm_ir import IrBuilder, const_vector, suffix
from .llvm_jit import Kernel, compile_function, constant, split_rows

LANES = 16  # pixels at once: one 512-bit vector of float32 (as in engine.accel.llvm_ir)
BLOCK = 16  # reference samples per block at most
MAX_K = 15  # the lists hold k + 1 samples in vectors; more would only cost
BOUND_FEATURES = 4  # leading principal axes used for the bounds (most of the spread)
EARLY_FEATURES = 2  # features summed before a sample may be dropped
INF = "0x7FF0000000000000"
UNIT = 2.0**-24  # float32 unit roundoff


def blocks(reference: np.ndarray) -> list[np.ndarray]:
    """Row numbers of ``reference`` in blocks of at most :data:`BLOCK`: the leaves of a k-d tree.

    Each split is along the widest feature, at the median, rounded so that the lower part is a whole number of
    blocks.
    """
    out: list[np.ndarray] = []
    stack = [np.arange(len(reference))]
    while stack:
        rows = stack.pop()
        if len(rows) <= BLOCK:
            out.append(rows)
            continue
        part = reference[rows].astype("float64")
        feature = int(np.argmax(part.max(axis=0) - part.min(axis=0)))
        rows = rows[np.argsort(part[:, feature], kind="stable")]
        cut = BLOCK * -(-len(rows) // (2 * BLOCK))
        stack += [rows[cut:], rows[:cut]]
    return out


class _Kernel:
    """The kernel's IR, built part by part (see :func:`kernel_ir`)."""

    def __init__(self, m: int, k: int, keep: int, n_blocks: int, n_classes: int, rotation: np.ndarray,
                 shift: np.ndarray, norm: float, mean: np.ndarray | None, scale: np.ndarray | None) -> None:
        self.m, self.k, self.keep, self.n_blocks, self.n_classes = m, k, keep, n_blocks, n_classes
        self.rotation, self.shift, self.norm, self.mean, self.scale = rotation, shift, norm, mean, scale
        self.words = -(-n_blocks // LANES)  # block keys, 16 to a vector
        self.q = min(BOUND_FEATURES, m)
        self.vf, self.vd, self.vi, self.vl, self.vb = (
            f"<{LANES} x {t}>" for t in ("float", "double", "i32", "i64", "i1"))
        self.ir = IrBuilder()

    def build(self) -> str:
        ir = self.ir
        ir.put("define void @knn(ptr noalias readonly %x, i64 %groups, i64 %stride, ptr noalias readonly %scan, "
               "ptr noalias readonly %start, ptr noalias readonly %lo, ptr noalias readonly %hi, "
               "ptr noalias readonly %lot, ptr noalias readonly %hit, "
               "ptr noalias readonly %rows, ptr noalias readonly %ref64, ptr noalias readonly %y, "
               "ptr noalias %outd, ptr noalias %outi, ptr noalias %proba, ptr noalias %ok) nounwind {", "entry:")
        ir.put("  %any = icmp sgt i64 %groups, 0", "  br i1 %any, label %group, label %done",
               "group:", "  %g = phi i64 [0, %entry], [%gnext, %written]", f"  %row0 = mul i64 %g, {LANES}")
        self.pixels()
        self.bounds()
        self.search()
        self.check()
        self.rerank()
        self.votes()
        ir.put("  br label %written", "written:", "  %gnext = add i64 %g, 1",
               "  %gmore = icmp slt i64 %gnext, %groups", "  br i1 %gmore, label %group, label %done",
               "done:", "  ret void", "}")
        vf, vd = self.vf, self.vd
        ir.put(f"declare {vf} @llvm.fma.v{LANES}f32({vf}, {vf}, {vf})",
               f"declare {vd} @llvm.fma.v{LANES}f64({vd}, {vd}, {vd})", f"declare {vd} @llvm.sqrt.v{LANES}f64({vd})",
               f"declare {vf} @llvm.maxnum.v{LANES}f32({vf}, {vf})",
               f"declare {vf} @llvm.minnum.v{LANES}f32({vf}, {vf})",
               f"declare i{LANES} @llvm.cttz.i{LANES}(i{LANES}, i1)")
        for t in ("double", "i32"):
            v = f"<{LANES} x {t}>"
            ir.put(f"declare {v} @llvm.masked.gather.v{LANES}{suffix(t)}.v{LANES}p0(<{LANES} x ptr>, i32, "
                   f"<{LANES} x i1>, {v})")
        return "\n".join(ir.lines)

    def gather(self, t: str, array: str, index: str) -> str:
        """``array[index]`` for a vector of 16 int64 ``index``."""
        pointers = self.ir(f"getelementptr {t}, ptr {array}, {self.vl} {index}")
        size, every = 8 if t in ("double", "i64") else 4, const_vector("i1", ["true"] * LANES)
        return self.ir(f"call <{LANES} x {t}> @llvm.masked.gather.v{LANES}{suffix(t)}.v{LANES}p0(<{LANES} x ptr> "
                       f"{pointers}, i32 {size}, {self.vb} {every}, <{LANES} x {t}> poison)")

    def row(self, lane: int, width: int) -> str:
        """The index of the first element of ``lane``'s row in an array of ``width`` per pixel."""
        return self.ir(f"mul i64 {self.ir(f'add i64 %row0, {lane}')}, {width}")

    def pixels(self) -> None:
        """The 16 pixels: original features in float64, rotated ones in float32, and the error of rotating."""
        ir, vf, vd, m = self.ir, self.vf, self.vd, self.m
        self.x64 = []
        for f in range(m):
            vector = "poison"
            for lane in range(LANES):
                at = ir(f"add i64 {self.row(lane, m)}, {f}")
                vector = ir(f"insertelement {vf} {vector}, float {ir.load('float', '%x', at)}, i64 {lane}")
            if self.mean is not None:  # standardise as numpy does in float32: (x - mean) / scale
                mean, scale = (ir.splat("float", constant(float(v[f]))) for v in (self.mean, self.scale))
                vector = ir(f"fdiv {vf} {ir(f'fsub {vf} {vector}, {mean}')}, {scale}")
            self.x64.append(ir(f"fpext {vf} {vector} to {vd}"))
        self.xr, norm = [], ""
        for axis in range(m):
            acc = ir.splat("double", constant(self.shift[axis]))
            for f in range(m):
                weight = ir.splat("double", constant(self.rotation[axis, f]))
                acc = ir(f"call {vd} @llvm.fma.v{LANES}f64({vd} {self.x64[f]}, {vd} {weight}, {vd} {acc})")
            self.xr.append(ir(f"fptrunc {vd} {acc} to {vf}"))
            norm = ir(f"fmul {vd} {acc}, {acc}") if not norm else ir(
                f"call {vd} @llvm.fma.v{LANES}f64({vd} {acc}, {vd} {acc}, {vd} {norm})")
        norm = ir(f"fadd {vd} {ir(f'call {vd} @llvm.sqrt.v{LANES}f64({vd} {norm})')}, "
                  f"{ir.splat('double', constant(self.norm))}")
        # rounding both rotated points moves a distance by at most UNIT * (|x| + |r|); plus the float64 rotation's
        # error (under 1e-11 of the norms up to 64 features) and float32 underflow (under 1e-18)
        slope, floor = ir.splat("double", constant(UNIT * 1.01 + 1e-11)), ir.splat("double", "1.0e-18")
        self.error = ir(f"call {vd} @llvm.fma.v{LANES}f64({vd} {norm}, {vd} {slope}, {vd} {floor})")

    def bounds(self) -> None:
        """Each block's key: a lower bound of its squared distance to the box of the 16 pixels (16 blocks at once)."""
        ir, vf, q, padded = self.ir, self.vf, self.q, self.words * LANES
        low = [ir.splat("float", ir.fold(self.xr[f], "olt")) for f in range(q)]
        high = [ir.splat("float", ir.fold(self.xr[f], "ogt")) for f in range(q)]
        self.keys = []
        for w in range(self.words):
            acc = ""
            for f in range(q):
                lo, hi = (ir.load(vf, name, str(f * padded + w * LANES), 4) for name in ("%lot", "%hit"))
                acc = self.gap_squares(ir(f"fsub {vf} {lo}, {high[f]}"), ir(f"fsub {vf} {low[f]}, {hi}"), acc)
            self.keys.append(acc)
        ir.put("  br label %bounded", "bounded:")

    def gap_squares(self, below: str, above: str, acc: str) -> str:
        """``acc`` plus the square of the gap to a box side (the larger of ``below``, ``above`` and 0)."""
        ir, vf = self.ir, self.vf
        gap = ir(f"call {vf} @llvm.maxnum.v{LANES}f32({vf} {below}, {vf} {above})")
        gap = ir(f"call {vf} @llvm.maxnum.v{LANES}f32({vf} {gap}, {vf} zeroinitializer)")
        return ir(f"fmul {vf} {gap}, {gap}") if not acc else ir(
            f"call {vf} @llvm.fma.v{LANES}f32({vf} {gap}, {vf} {gap}, {vf} {acc})")

    def search(self) -> None:
        """Visit blocks nearest first; scan a block's samples against the 16 pixels, keeping each pixel's k+1."""
        ir, vf, vi, vb, keep = self.ir, self.vf, self.vi, self.vb, self.keep
        last = keep - 1
        inf = const_vector("float", [INF] * LANES)
        keys = self.keys
        ir.put("  br label %next", "next:")
        for j in range(keep):  # the pixels' j-th nearest so far (squared float32 distances, scan positions)
            ir.put(f"  %B{j} = phi {vf} [{inf}, %bounded], [%B{j}, %skip], [%NB{j}, %sampled]",
                   f"  %I{j} = phi {vi} [zeroinitializer, %bounded], [%I{j}, %skip], [%NI{j}, %sampled]")
        for w in range(self.words):  # the blocks visited or skipped so far, a bit each (no stores: no stalls)
            padding = sum(1 << j for j in range(LANES) if w * LANES + j >= self.n_blocks)  # not blocks: never picked
            signed = padding - (1 << LANES) if padding >= 1 << (LANES - 1) else padding
            ir.put(f"  %done{w} = phi i{LANES} [{signed}, %bounded], [%done{w}x, %skip], [%done{w}x, %sampled]")
        words = [ir(f"select {vb} {ir(f'bitcast i{LANES} %done{w} to {vb}')}, {vf} {inf}, {vf} {keys[w]}")
                 for w in range(self.words)]
        least = words[0]
        for word in words[1:]:
            least = ir(f"call {vf} @llvm.minnum.v{LANES}f32({vf} {least}, {vf} {word})")
        least, farthest = ir.fold(least, "olt"), ir.fold(f"%B{last}", "ogt")
        ir.put(f"  br i1 {ir(f'fcmp olt float {least}, {farthest}')}, label %pick, label %searched", "pick:")
        where, spread = "0", ir.splat("float", least)
        for w in reversed(range(self.words)):  # the first block with that key
            bits = ir(f"bitcast {vb} {ir(f'fcmp oeq {vf} {words[w]}, {spread}')} to i{LANES}")
            lane = ir(f"zext i{LANES} {ir(f'call i{LANES} @llvm.cttz.i{LANES}(i{LANES} {bits}, i1 false)')} to i64")
            where = ir(f"select i1 {ir(f'icmp ne i{LANES} {bits}, 0')}, i64 {ir(f'add i64 {lane}, {w * LANES}')}, "
                       f"i64 {where}")
        ir.put(f"  %blk = add i64 {where}, 0")
        word, lane = ir(f"udiv i64 %blk, {LANES}"), ir(f"urem i64 %blk, {LANES}")
        bit = ir(f"trunc i64 {ir(f'shl i64 1, {lane}')} to i{LANES}")
        for w in range(self.words):
            mine = ir(f"select i1 {ir(f'icmp eq i64 {word}, {w}')}, i{LANES} {bit}, i{LANES} 0")
            ir.put(f"  %done{w}x = or i{LANES} %done{w}, {mine}")
        box, bound = ir(f"mul i64 %blk, {self.m}"), ""
        for f in range(self.q):  # the block's bounds for each of the 16 pixels: none below its k+1-th, skip it
            at = ir(f"add i64 {box}, {f}")
            lo, hi = ir.splat("float", ir.load("float", "%lo", at)), ir.splat("float", ir.load("float", "%hi", at))
            bound = self.gap_squares(ir(f"fsub {vf} {lo}, {self.xr[f]}"), ir(f"fsub {vf} {self.xr[f]}, {hi}"), bound)
        useless = ir(f"bitcast {vb} {ir(f'fcmp oge {vf} {bound}, %B{last}')} to i{LANES}")
        ir.put(f"  br i1 {ir(f'icmp eq i{LANES} {useless}, -1')}, label %skip, label %visit", "skip:",
               "  br label %next", "visit:")
        first = ir(f"sext i32 {ir.load('i32', '%start', '%blk')} to i64")
        end = ir(f"sext i32 {ir.load('i32', '%start', ir('add i64 %blk, 1'))} to i64")
        ir.put("  br label %sample", "sample:", f"  %r = phi i64 [{first}, %visit], [%rnext, %sampled]")
        for j in range(keep):
            ir.put(f"  %C{j} = phi {vf} [%B{j}, %visit], [%NB{j}, %sampled]",
                   f"  %J{j} = phi {vi} [%I{j}, %visit], [%NI{j}, %sampled]")
        base = ir(f"mul i64 %r, {self.m}")
        acc, early = "", min(EARLY_FEATURES, self.m - 1)
        for f in range(self.m):
            value = ir.splat("float", ir.load("float", "%scan", ir(f"add i64 {base}, {f}")))
            acc = ir.squares([(self.xr[f], value)], vf, acc)
            if f + 1 == early:  # all 16 already beyond their k+1-th (sums only grow): drop the sample
                far = ir(f"bitcast {vb} {ir(f'fcmp oge {vf} {acc}, %C{last}')} to i{LANES}")
                ir.put(f"  br i1 {ir(f'icmp eq i{LANES} {far}, -1')}, label %sampled, label %full", "full:")
        closer = ir(f"bitcast {vb} {ir(f'fcmp olt {vf} {acc}, %C{last}')} to i{LANES}")
        ir.put(f"  br i1 {ir(f'icmp ne i{LANES} {closer}, 0')}, label %insert, label %sampled", "insert:")
        t, ti = acc, ir.splat("i32", ir("trunc i64 %r to i32"))
        for j in range(keep):  # into each lane's sorted list by compare-and-swap, without branches
            swap = ir(f"fcmp olt {vf} {t}, %C{j}")
            ir.put(f"  %SB{j} = select {vb} {swap}, {vf} {t}, {vf} %C{j}",
                   f"  %SI{j} = select {vb} {swap}, {vi} {ti}, {vi} %J{j}")
            if j + 1 < keep:
                t, ti = (ir(f"select {vb} {swap}, {vf} %C{j}, {vf} {t}"),
                         ir(f"select {vb} {swap}, {vi} %J{j}, {vi} {ti}"))
        ir.put("  br label %sampled", "sampled:")
        early_block = "%sample" if early > 0 else None
        sources = [s for s in (early_block, "%full") if s] if early > 0 else ["%sample"]
        for j in range(keep):
            ir.put(f"  %NB{j} = phi {vf} " + ", ".join(f"[%C{j}, {s}]" for s in sources) + f", [%SB{j}, %insert]",
                   f"  %NI{j} = phi {vi} " + ", ".join(f"[%J{j}, {s}]" for s in sources) + f", [%SI{j}, %insert]")
        ir.put("  %rnext = add i64 %r, 1")
        ir.put(f"  br i1 {ir(f'icmp slt i64 %rnext, {end}')}, label %sample, label %next", "searched:")

    def check(self) -> None:
        """Per pixel: whether its k nearest are surely among the k+1 kept."""
        ir, vf, vd, vb = self.ir, self.vf, self.vd, self.vb
        last = ir(f"fpext {vf} %B{self.keep - 1} to {vd}")
        sure = ir(f"fcmp olt {vd} {last}, {ir.splat('double', INF)}")
        if self.keep > self.k:
            gamma = 2 * (self.m + 4) * UNIT  # twice the bound on the relative error of a float32 squared distance
            kth = ir(f"fmul {vd} {ir(f'fpext {vf} %B{self.k - 1} to {vd}')}, "
                     f"{ir.splat('double', constant(1 / (1 - gamma)))}")
            reach = ir(f"call {vd} @llvm.fma.v{LANES}f64({vd} {self.error}, {vd} {ir.splat('double', '2.0')}, "
                       f"{vd} {ir(f'call {vd} @llvm.sqrt.v{LANES}f64({vd} {kth})')})")
            limit = ir(f"fmul {vd} {ir(f'fmul {vd} {reach}, {reach}')}, "
                       f"{ir.splat('double', constant((1 + gamma) * (1 + 1e-12)))}")
            sure = ir(f"and {vb} {sure}, {ir(f'fcmp ogt {vd} {last}, {limit}')}")
        flags = ir(f"zext {vb} {sure} to <{LANES} x i8>")
        ir.put(f"  store <{LANES} x i8> {flags}, ptr {ir.at('i8', '%ok', '%row0')}, align 1")

    def rerank(self) -> None:
        """The first k kept, measured in float64 in the original coordinates and ordered by (distance, row)."""
        ir, vd, vi, vb, m = self.ir, self.vd, self.vi, self.vb, self.m
        candidates = []
        for j in range(self.k):  # a confirmed pixel's k nearest are its first k in float32 (the check says so)
            rows = self.gather("i32", "%rows", ir(f"sext {vi} %I{j} to {self.vl}"))
            start = ir(f"mul {self.vl} {ir(f'sext {vi} {rows} to {self.vl}')}, {ir.splat('i64', str(m))}")
            pairs = [(self.x64[f], self.gather("double", "%ref64", ir(f"add {self.vl} {start}, "
                                                                      f"{ir.splat('i64', str(f))}")))
                     for f in range(m)]
            candidates.append((ir.squares(pairs, vd), rows))
        best = [(ir.splat("double", INF), ir.splat("i32", "0"))] * self.k  # row 0: a safe index even if unfilled
        for d, row in candidates:  # insertion by (distance, row), without branches
            new = []
            for s, srow in best:
                tie = ir(f"and {vb} {ir(f'fcmp oeq {vd} {d}, {s}')}, {ir(f'icmp slt {vi} {row}, {srow}')}")
                swap = ir(f"or {vb} {ir(f'fcmp olt {vd} {d}, {s}')}, {tie}")
                new.append((ir(f"select {vb} {swap}, {vd} {d}, {vd} {s}"),
                            ir(f"select {vb} {swap}, {vi} {row}, {vi} {srow}")))
                d, row = (ir(f"select {vb} {swap}, {vd} {s}, {vd} {d}"),
                          ir(f"select {vb} {swap}, {vi} {srow}, {vi} {row}"))
            best = new
        self.neighbours = [(ir(f"call {vd} @llvm.sqrt.v{LANES}f64({vd} {d})"), row) for d, row in best]
        ir.put(f"  br i1 {ir('icmp eq ptr %outd, null')}, label %ranked, label %neighbours", "neighbours:")
        for j, (d, row) in enumerate(self.neighbours):  # slot-major: 16 pixels' j-th neighbours side by side
            at = ir(f"add i64 {ir(f'mul i64 %stride, {j}')}, %row0")
            ir.put(f"  store {vd} {d}, ptr {ir.at('double', '%outd', at)}, align 8",
                   f"  store {self.vl} {ir(f'sext {vi} {row} to {self.vl}')}, ptr {ir.at('i64', '%outi', at)}, align 8")
        ir.put("  br label %ranked", "ranked:")

    def votes(self) -> None:
        """Class votes weighted by 1 / distance (exact matches take all), as probabilities."""
        ir, vd, vi, vb = self.ir, self.vd, self.vi, self.vb
        zero = f"{vd} zeroinitializer"
        exact = ir(f"fcmp oeq {vd} {self.neighbours[0][0]}, zeroinitializer")
        for d, _ in self.neighbours[1:]:
            exact = ir(f"or {vb} {exact}, {ir(f'fcmp oeq {vd} {d}, zeroinitializer')}")
        weights, classes = [], []
        for d, row in self.neighbours:
            is_zero = ir(f"fcmp oeq {vd} {d}, zeroinitializer")
            match = ir(f"select {vb} {is_zero}, {vd} {ir.splat('double', '1.0')}, {zero}")
            inverse = ir(f"fdiv {vd} {ir.splat('double', '1.0')}, {d}")
            weights.append(ir(f"select {vb} {exact}, {vd} {match}, {vd} {inverse}"))
            classes.append(self.gather("i32", "%y", ir(f"sext {vi} {row} to {self.vl}")))
        totals, shares = "", []
        for c in range(self.n_classes):
            votes = zero
            mine = ir.splat("i32", str(c))
            for weight, cls in zip(weights, classes, strict=True):
                part = ir(f"select {vb} {ir(f'icmp eq {vi} {cls}, {mine}')}, {vd} {weight}, {zero}")
                votes = f"{vd} {ir(f'fadd {votes}, {part}')}"
            shares.append(votes.split()[-1])
            totals = shares[-1] if not totals else ir(f"fadd {vd} {totals}, {shares[-1]}")
        for c, votes in enumerate(shares):  # class-major, like the neighbours
            share = ir(f"fptrunc {vd} {ir(f'fdiv {vd} {votes}, {totals}')} to {self.vf}")
            at = ir(f"add i64 {ir(f'mul i64 %stride, {c}')}, %row0")
            ir.put(f"  store {self.vf} {share}, ptr {ir.at('float', '%proba', at)}, align 4")


def kernel_ir(m: int, k: int, keep: int, n_blocks: int, n_classes: int, rotation: np.ndarray, shift: np.ndarray,
              norm: float, mean: np.ndarray | None = None, scale: np.ndarray | None = None) -> str:
    """The IR of ``knn(x, groups, stride, scan, start, lo, hi, lot, hit, rows, ref64, y, outd, outi, proba, ok)``.

    ``x``: 16 ``groups`` of float32 pixels of ``m`` features (raw when ``mean`` and ``scale`` are given: the kernel
    standardises them); ``scan``: the rotated float32 reference rows in block order, block ``b`` being rows
    ``start[b]`` to ``start[b + 1]`` (int32); ``lo``, ``hi``: the float32 box of each block (block, axis), and
    ``lot``, ``hit`` its leading axes again (axis, block, padded to 16 blocks with +inf); ``rows``: the reference
    row of each scan row (int32); ``ref64``: the reference rows in float64; ``y``: their classes (int32).
    ``rotation`` and ``shift`` map a pixel onto the principal axes and ``norm`` bounds the rotated rows' norms and
    the shift. For each pixel: ``ok`` (1 when confirmed) and, when confirmed, its ``k`` nearest (distances in
    ``outd``, rows in ``outi``, ascending, skipped when ``outd`` is null) and the class shares of their votes
    (float32) in ``proba``; the outputs are slot-major with ``stride`` pixels per slot.
    """
    return _Kernel(m, k, keep, n_blocks, n_classes, rotation, shift, norm, mean, scale).build()


class BlockNeighbours:
    """The ``k`` nearest reference rows and their class votes, by the compiled block search; thread-safe."""

    def __init__(self, reference: np.ndarray, classes: np.ndarray, n_classes: int, k: int,
                 mean: np.ndarray | None = None, scale: np.ndarray | None = None) -> None:
        """Rotate ``reference`` (float32 rows) onto its principal axes, cut it into blocks and compile the kernel.

        With ``mean`` and ``scale`` (float32, one per feature) the pixels given to :meth:`query` and :meth:`votes`
        are raw and the kernel standardises them, as ``(x - mean) / scale`` in float32 does.

        Raises:
            ImportError: without llvmlite.
            ValueError: with fewer than ``k`` rows, or ``k`` over :data:`MAX_K`.

        """
        if not 1 <= k <= min(len(reference), MAX_K):
            raise ValueError(f"k={k} needs 1 to {min(len(reference), MAX_K)}")
        reference = np.ascontiguousarray(reference, dtype="float32")
        self.k, self.n_classes, self.threads = k, n_classes, 1
        self.m = m = reference.shape[1]
        self._ref64 = reference.astype("float64")
        centre = self._ref64.mean(axis=0)
        _, axes = np.linalg.eigh(np.cov((self._ref64 - centre).T, bias=True).reshape(m, m))
        rotation = np.ascontiguousarray(axes[:, ::-1].T)  # rows: principal axes, largest spread first
        shift = -(rotation @ centre)
        rotated = (self._ref64 @ rotation.T + shift).astype("float32")
        leaves = blocks(rotated)
        order = np.concatenate(leaves)
        self._scan = np.ascontiguousarray(rotated[order])
        self._rows = order.astype("int32")
        self._start = np.cumsum([0] + [len(leaf) for leaf in leaves]).astype("int32")
        self._lo = np.ascontiguousarray([rotated[leaf].min(axis=0) for leaf in leaves], dtype="float32")
        self._hi = np.ascontiguousarray([rotated[leaf].max(axis=0) for leaf in leaves], dtype="float32")
        padded = -(-len(leaves) // LANES) * LANES  # the leading axes again, axis by axis, for 16 blocks at a time
        q = min(BOUND_FEATURES, m)
        self._lot = np.full((q, padded), np.inf, dtype="float32")
        self._hit = np.full((q, padded), np.inf, dtype="float32")
        self._lot[:, :len(leaves)], self._hit[:, :len(leaves)] = self._lo.T[:q], self._hi.T[:q]
        self._y = np.ascontiguousarray(classes, dtype="int32")
        norm = (float(np.sqrt((rotated.astype("float64") ** 2).sum(axis=1)).max())
                + 2 * float(np.sqrt((centre**2).sum()))) * (1 + 1e-6)  # rotated rows, and the shift
        if mean is not None:
            mean, scale = np.asarray(mean, dtype="float32"), np.asarray(scale, dtype="float32")
        ir = kernel_ir(m, k, min(k + 1, len(reference)), len(leaves), n_classes, rotation, shift, norm, mean, scale)
        self._kernel: Kernel = compile_function(ir, "knn", [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64]
                                                + [ctypes.c_void_p] * 13, optimise_ir=True)

    def set_threads(self, n: int) -> None:
        """Threads of :meth:`votes` (the kernel releases the GIL)."""
        self.threads = max(1, n)

    def query(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """For rows ``x``: distances (n, k), rows (n, k), class shares (n, classes) and confirmed (n,).

        Rows not confirmed hold no results: ask a float64 search.
        """
        return self._run(x, neighbours=True)

    def votes(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For rows ``x``: class shares (n, classes) and confirmed (n,), as :meth:`query`, on ``threads``."""
        return split_rows(lambda part: self._run(part, neighbours=False)[2:], x, self.threads, 32_768)

    def _run(self, x: np.ndarray, neighbours: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        x = np.ascontiguousarray(x, dtype="float32")
        n = len(x)
        stride = -(-n // LANES) * LANES  # outputs are slot-major: (slot, pixel)
        dist = np.empty((self.k, stride if neighbours else 0), dtype="float64")
        rows = np.empty((self.k, stride if neighbours else 0), dtype="int64")
        proba = np.empty((self.n_classes, stride), dtype="float32")
        ok = np.zeros(stride, dtype="bool")
        whole = n // LANES * LANES
        tail = np.zeros((LANES, self.m), dtype="float32")  # the last, partial group of 16 pixels
        tail[:n - whole] = x[whole:]
        for pixels, start, groups in ((x, 0, whole // LANES), (tail, whole, int(whole < n))):
            if groups:
                self._kernel(pixels.ctypes.data, groups, stride, self._scan.ctypes.data, self._start.ctypes.data,
                             self._lo.ctypes.data, self._hi.ctypes.data, self._lot.ctypes.data, self._hit.ctypes.data,
                             self._rows.ctypes.data, self._ref64.ctypes.data, self._y.ctypes.data,
                             dist.ctypes.data + 8 * start if neighbours else None,
                             rows.ctypes.data + 8 * start if neighbours else None,
                             proba.ctypes.data + 4 * start, ok.ctypes.data + start)
        return dist[:, :n].T, rows[:, :n].T, proba[:, :n].T, ok[:n]
