"""A small builder of LLVM IR text for the generated kernels (:mod:`engine.accel.knn_blocks`)."""

from __future__ import annotations

LANES = 16  # the default vector width: 16 float32 in a 512-bit register


class IrBuilder:
    """Lines of LLVM IR, fresh value names and a few helpers."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._n = 0

    def __call__(self, text: str) -> str:
        """Append ``%name = text`` for a fresh name and return the name."""
        self._n += 1
        name = f"%v{self._n}"
        self.lines.append(f"  {name} = {text}")
        return name

    def put(self, *lines: str) -> None:
        """Append lines as they are."""
        self.lines += list(lines)

    def splat(self, t: str, value: str, width: int = LANES) -> str:
        """A vector of ``width`` copies of ``value``."""
        one = self(f"insertelement <{width} x {t}> poison, {t} {value}, i64 0")
        return self(f"shufflevector <{width} x {t}> {one}, <{width} x {t}> poison, <{width} x i32> zeroinitializer")

    def at(self, t: str, array: str, index: str) -> str:
        """The address of ``array[index]`` (elements of type ``t``)."""
        return self(f"getelementptr {t}, ptr {array}, i64 {index}")

    def load(self, t: str, array: str, index: str, align: int = 0) -> str:
        """``array[index]``; a vector type loads consecutive elements from there."""
        element = t.split(" x ")[-1].rstrip(">")
        return self(f"load {t}, ptr {self.at(element, array, index)}" + (f", align {align}" if align else ""))

    def squares(self, pairs: list[tuple[str, str]], t: str, acc: str = "") -> str:
        """``acc`` plus the sum of ``(a - b) ** 2`` in order: fmul first (without ``acc``), then fused multiply-adds."""
        for a, b in pairs:
            diff = self(f"fsub {t} {a}, {b}")
            acc = self(f"fmul {t} {diff}, {diff}") if not acc else self(
                f"call {t} @llvm.fma.{suffix(t)}({t} {diff}, {t} {diff}, {t} {acc})")
        return acc

    def fold(self, vector: str, order: str) -> str:
        """The least (``olt``) or greatest (``ogt``) of 16 floats that are not NaN, by halving (4 steps)."""
        width = LANES
        while width > 1:
            half = width // 2
            v = f"<{width} x float>"
            upper = self(f"shufflevector {v} {vector}, {v} poison, <{half} x i32> "
                         f"<{', '.join(f'i32 {half + j}' for j in range(half))}>")
            lower = self(f"shufflevector {v} {vector}, {v} poison, <{half} x i32> "
                         f"<{', '.join(f'i32 {j}' for j in range(half))}>")
            h = f"<{half} x float>"
            first = self(f"fcmp {order} {h} {upper}, {lower}")
            vector = self(f"select <{half} x i1> {first}, {h} {upper}, {h} {lower}")
            width = half
        return self(f"extractelement <1 x float> {vector}, i64 0")

    def lanes(self, t: str, vector: str, width: int = LANES) -> list[str]:
        """The elements of ``vector``."""
        return [self(f"extractelement <{width} x {t}> {vector}, i64 {j}") for j in range(width)]


def suffix(t: str) -> str:
    """The intrinsic suffix of a type, e.g. ``v16f32`` or ``f64``."""
    if not t.startswith("<"):
        return {"float": "f32", "double": "f64"}.get(t, t)
    lanes, _, scalar = t.strip("<>").split()
    return f"v{lanes}{'f32' if scalar == 'float' else 'f64'}"


def const_vector(t: str, values: list[str]) -> str:
    """A constant vector of type ``t`` elements."""
    return "<" + ", ".join(f"{t} {v}" for v in values) + ">"
