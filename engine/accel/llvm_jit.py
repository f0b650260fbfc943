"""Machine code from LLVM IR with llvmlite, for the few numeric kernels generated at run time.

The kernels (:mod:`engine.accel.tree_compiler`, :mod:`engine.accel.knn_blocks`) only read and write the numpy arrays
they are
given. llvmlite is optional: callers catch ``ImportError`` and keep their numpy or library path.
"""

from __future__ import annotations

import ctypes
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

_lock = threading.Lock()
_initialised = False


def constant(value: float) -> str:
    """A floating-point constant in LLVM's exact hexadecimal form (the value's float64 bits)."""
    (bits,) = struct.unpack("<Q", struct.pack("<d", float(value)))
    return f"0x{bits:016X}"


class Kernel:
    """A compiled function and the execution engine that owns its code; calls release the GIL (ctypes)."""

    def __init__(self, owner: Any, function: Callable[..., None]) -> None:
        """Keep the code's owner alive as long as the function."""
        self._owner, self.function = owner, function

    def __call__(self, *args: Any) -> None:
        """Call the function with pointers and integers."""
        self.function(*args)


def compile_function(ir: str, name: str, argtypes: list[Any], optimise_ir: bool = False) -> Kernel:
    """Compile module ``ir`` for this machine's CPU and return its function ``name`` (returning void).

    ``optimise_ir`` runs LLVM's O2 IR passes first (worth it for small hand-written kernels; generated trees are
    already what the CPU should run, and the passes would triple their compile time).

    Raises:
        ImportError: without llvmlite.
        RuntimeError: if LLVM rejects the module.

    """
    global _initialised
    # Lazy: optional: without llvmlite the library's own route is used.
    import llvmlite.binding as llvm

    with _lock:  # llvmlite serialises its calls anyway; this also guards the one-time initialisation
        if not _initialised:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            _initialised = True
        module = llvm.parse_assembly(ir)
        module.verify()
        machine = llvm.Target.from_default_triple().create_target_machine(
            cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=2)
        if optimise_ir:
            builder = llvm.create_pass_builder(machine, llvm.create_pipeline_tuning_options(speed_level=2))
            builder.getModulePassManager().run(module, builder)
        engine = llvm.create_mcjit_compiler(module, machine)
        engine.finalize_object()
        prototype = ctypes.CFUNCTYPE(None, *argtypes)
        return Kernel((engine, machine), prototype(engine.get_function_address(name)))


def split_rows(function: Callable[[np.ndarray], Any], x: np.ndarray, threads: int, min_rows: int) -> Any:
    """``function(x)``, with the rows split over ``threads`` threads when there are ``min_rows`` or more.

    ``function`` returns an array, or a tuple of arrays, with one row per row of ``x``; the parts are joined again.
    """
    if threads <= 1 or len(x) < min_rows:
        return function(x)

    step = -(-len(x) // threads)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        parts = list(pool.map(function, [x[i:i + step] for i in range(0, len(x), step)]))
    if isinstance(parts[0], tuple):
        return tuple(np.concatenate(column) for column in zip(*parts, strict=True))
    return np.concatenate(parts)
