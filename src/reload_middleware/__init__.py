"""reload_middleware: a WSGI middleware that picks up code changes on the next request.

    from reload_middleware import ReloadMiddleware
    application = ReloadMiddleware(make_app(), watch=["templates"])
"""

from ._version import __version__
from .middleware import ReloadMiddleware, track

__all__ = ["ReloadMiddleware", "__version__", "track"]
