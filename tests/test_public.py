"""The public surface is small and pinned."""

from __future__ import annotations

import importlib.metadata
import inspect
import subprocess
import sys
from dataclasses import fields

import pytest

import reload_middleware
from reload_middleware import ReloadMiddleware, config
from reload_middleware.config import Settings


def test_public_names() -> None:
    """The package exports the middleware, track() and the version, nothing else."""
    assert reload_middleware.__all__ == ["ReloadMiddleware", "__version__", "track"]


def test_version_comes_from_one_place() -> None:
    """__version__ is the installed distribution's version."""
    assert reload_middleware.__version__ == importlib.metadata.version("reload-middleware")


def test_every_option_is_a_typed_keyword_with_the_settings_default() -> None:
    """`ReloadMiddleware(app, watch, *, ...)` declares every option `Settings` has, in its
    order, with its default and its type, and nothing private: what an IDE and mypy show
    is what the middleware reads (docs/configuration.md is rendered from the same)."""
    parameters = list(inspect.signature(ReloadMiddleware).parameters.values())
    assert [p.name for p in parameters[1:]] == [f.name for f in fields(Settings)] == (
        [*config.PARSERS])
    for parameter, field in zip(parameters[1:], fields(Settings), strict=True):
        assert parameter.default == (() if field.name in config.LISTS else field.default)
        assert parameter.kind == (parameter.POSITIONAL_OR_KEYWORD if field.name == "watch"
                                  else parameter.KEYWORD_ONLY)
        assert parameter.annotation != inspect.Parameter.empty, field.name
        if field.type.startswith("config."):  # an enumeration: the same Literal
            assert parameter.annotation == field.type


def test_a_misspelt_keyword_is_a_type_error() -> None:
    """Python itself refuses an option the signature does not name."""
    with pytest.raises(TypeError, match="settel"):
        ReloadMiddleware(lambda environ, start_response: [], settel=0.1)  # type: ignore[call-arg]


LIVE_OFF = """
import sys
from reload_middleware import ReloadMiddleware
def app(environ, start_response):
    start_response("200 OK", [])
    return [b"hi"]
middleware = ReloadMiddleware(app)
environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.multithread": False}
assert b"".join(middleware(environ, lambda *args: None)) == b"hi"
print(sorted(name for name in sys.modules if name.startswith("reload_middleware.live.")))
"""


def test_live_reload_is_loaded_only_where_it_is_on() -> None:
    """A process without live reload pays no import for it: only the interpreter's
    registry of beacons is loaded."""
    done = subprocess.run([sys.executable, "-c", LIVE_OFF], capture_output=True, text=True,
                          check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["['reload_middleware.live.beacons']"]
