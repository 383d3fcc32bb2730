"""The example application: edit VERSION in version.py; the open page shows it."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from . import version

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    # A page with </body>: under `make demo` (live reload on) it updates itself on a save.
    body = (
        "<!doctype html><html><head><title>reload-middleware demo</title></head><body>"
        f"<p>version {version.VERSION} from pid {os.getpid()}</p></body></html>\n"
    ).encode()
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]
