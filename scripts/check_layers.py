"""The layers contract: run by ``make lint`` and ``make test`` (so by CI); exits 1 and names every broken rule.

Rules (see ARCHITECTURE.md):

1. Inside ``engine/``, a module imports only its own layer and the layers below it, in this order: ``core``, ``io``,
   ``samples``, ``accel``, ``embeddings``, ``probes``, ``assess``, ``deep``, ``jobs``, and the top (``api``,
   ``worker``, ``cli``, ``__main__``). ``accel`` (hand-written kernels) imports nothing but ``core``.
2. No import circle anywhere in ``engine/`` or ``plugin/``.
3. Every import of the package's own modules names a module that exists (a lazy import of a moved module would
   otherwise fail only when its line runs, or be swallowed by an ``except ImportError``).
4. ``engine/`` never imports QGIS or Qt; ``plugin/`` never imports the engine or its stack (torch, rasterio, shapely,
   geopandas, pyproj, scikit-learn, xgboost, dask...), which crash QGIS in-process.

Every import counts, at module level or inside a function or an ``if TYPE_CHECKING:`` block: a lazy import hides a
dependency from a reader, not from this check. Standard library only (``ast``), so it runs with any Python 3.11.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["core", "io", "samples", "accel", "embeddings", "probes", "assess", "deep", "jobs", "top"]
#: Layers a layer may import besides itself, when not every lower one (the kernels stay free of the rest).
ONLY = {"accel": {"core"}}
TOP = {"api", "worker", "cli", "__main__"}
ENGINE_STACK = {"torch", "torchvision", "torchgeo", "lightning", "rasterio", "shapely", "geopandas", "pyproj",
                "sklearn", "xgboost", "dask", "distributed", "scipy", "llvmlite", "timm", "onnx", "onnxruntime",
                "pandas", "pyogrio", "matplotlib", "engine", "landprobe_engine"}
QGIS = {"qgis", "PyQt5", "PyQt6", "sip", "processing"}


def module_name(path: Path) -> str:
    """``engine.io.rasters`` for ``engine/io/rasters.py`` (a package is named by its folder)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports (absolute names, relative ones resolved), with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]  # "from . import x"
    return found


def missing_modules(path: Path, top: str, modules: set[str]) -> list[tuple[int, str]]:
    """The package's own modules ``path`` imports that do not exist (``from`` imports: the module part)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [target]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, n) for n in names
                  if n.split(".")[0] == top and n not in modules]
    return found


def layer_of(module: str) -> str | None:
    """The engine layer of ``engine.<layer>...``, ``top`` for the top modules, None for the package itself."""
    parts = module.split(".")
    if len(parts) < 2:
        return None
    return "top" if parts[1] in TOP else parts[1] if parts[1] in LAYERS else None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def check() -> list[str]:
    """Every broken rule, as one line each."""
    problems = []
    for top in ("engine", "plugin"):
        files = sorted((ROOT / top).rglob("*.py"))
        modules = {module_name(p): p for p in files}
        graph: dict[str, set[str]] = {name: set() for name in modules}
        for name, path in modules.items():
            where = path.relative_to(ROOT)
            problems += [f"{where}:{line}: {name} imports {target}, which does not exist"
                         for line, target in missing_modules(path, top, set(modules))]
            for line, target in imports(path):
                first = target.split(".")[0]
                internal = target if target in modules else None
                if internal and internal != name and not name.startswith(internal + "."):
                    graph[name].add(internal)
                if top == "engine" and first in QGIS:
                    problems.append(f"{where}:{line}: the engine imports {target} (QGIS or Qt)")
                if top == "plugin" and first in ENGINE_STACK:
                    problems.append(f"{where}:{line}: the plugin imports {target} (the engine or its stack)")
                if top == "engine" and internal:
                    mine, theirs = layer_of(name), layer_of(internal)
                    if mine is None or theirs is None or mine == theirs:
                        continue
                    allowed = ONLY.get(mine, set(LAYERS[: LAYERS.index(mine)]))
                    if theirs not in allowed:
                        problems.append(f"{where}:{line}: {name} ({mine}) imports {internal} ({theirs}): "
                                        f"{mine} may import only {', '.join(sorted(allowed)) or 'itself'}")
        problems += [f"{top}: import circle: {' -> '.join(c)}" for c in cycles(graph)]
    return problems


def main() -> int:
    """Print the broken rules; 0 when there are none."""
    problems = check()
    for line in problems:
        print(line)
    engine_modules = len(list((ROOT / "engine").rglob("*.py")))
    print(f"Layers contract: {len(problems)} broken rule(s) over {engine_modules} engine modules "
          f"({' < '.join(LAYERS)}).")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
