"""The public surface is small and pinned."""

from __future__ import annotations

import importlib.metadata

import reload_middleware


def test_public_names() -> None:
    """The package exports the middleware, track() and the version, nothing else."""
    assert reload_middleware.__all__ == ["ReloadMiddleware", "__version__", "track"]


def test_version_comes_from_one_place() -> None:
    """__version__ is the installed distribution's version."""
    assert reload_middleware.__version__ == importlib.metadata.version("reload-middleware")
