"""Build the plugin zip that QGIS installs with Plugins > Manage and Install Plugins > Install from ZIP.

Run with any Python 3:  python3 scripts/build_zip.py [--output dist/]

The zip holds one folder, ``landprobe/``: the plugin (``__init__.py``, ``metadata.txt``, ``plugin/``), the engine
package it starts in its own environment (``engine/``), the lock files that environment is built from
(``requirements/``), the icon, the graphical models and the sample scene (``resources/``), the set-up scripts and
the README and licences. Tests, benchmarks, CI files and caches are left out. Prints the zip's path and size.
"""

from __future__ import annotations

import argparse
import configparser
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDER = "landprobe"
INCLUDE = ["__init__.py", "metadata.txt", "README.md", "LICENSE", "pyproject.toml", "Makefile", "plugin", "engine",
           "requirements", "resources", "scripts/common.sh", "scripts/setup.sh", "scripts/demo.sh",
           "scripts/lock.sh"]
SKIP_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache", "screenshots"}  # the README's pictures stay on GitHub
SKIP_SUFFIXES = {".pyc", ".pyo"}


def plugin_files(root: Path = ROOT) -> list[Path]:
    """The files that go into the zip, relative to ``root``, in a stable order."""
    files: list[Path] = []
    for entry in INCLUDE:
        path = root / entry
        if path.is_file():
            files.append(path.relative_to(root))
        elif path.is_dir():
            files += [p.relative_to(root) for p in sorted(path.rglob("*"))
                      if p.is_file() and not (SKIP_PARTS & set(p.parts)) and p.suffix not in SKIP_SUFFIXES
                      and ".landprobe-tmp-" not in p.name]
    return files


def build(output_dir: Path) -> Path:
    """Write ``landprobe-<version>.zip`` into ``output_dir``; return its path."""
    meta = configparser.ConfigParser()
    meta.read(ROOT / "metadata.txt", encoding="utf-8")
    version = meta["general"]["version"]
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / f"landprobe-{version}.zip"
    tmp = target.with_name(target.name + ".part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for rel in plugin_files():
            info = zipfile.ZipInfo.from_file(ROOT / rel, f"{FOLDER}/{rel.as_posix()}")
            info.date_time = (2026, 1, 1, 0, 0, 0)  # reproducible: the same files give the same zip
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, (ROOT / rel).read_bytes())
    tmp.replace(target)
    return target


def main() -> int:
    """Build the zip and print where it is."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "dist")
    args = parser.parse_args()
    target = build(args.output)
    with zipfile.ZipFile(target) as zf:
        count = len(zf.namelist())
    print(f"{target} ({target.stat().st_size / 1e6:.2f} MB, {count} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
