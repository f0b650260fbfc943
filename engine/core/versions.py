"""The versions of the engine and of the libraries it runs on, read from package metadata (nothing imported)."""

from __future__ import annotations

import platform

from .. import __version__


def package_versions(names: tuple[str, ...]) -> dict[str, str | None]:
    """Installed versions of distributions ``names`` (``None`` when missing), read from metadata, nothing imported."""
    # Lazy: keeps a trivial job's start-up light.
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries a model depends on (read from package metadata, nothing imported)."""
    installed = package_versions(("numpy", "scikit-learn", "xgboost-cpu", "xgboost", "rasterio", "torch"))
    return {"python": platform.python_version(), "landprobe": __version__,
            **{k: v for k, v in installed.items() if v is not None}}
