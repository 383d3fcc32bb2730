"""The few responses the middleware answers itself: plain WSGI, no framework.

Locations are relative (built from the server's SCRIPT_NAME and PATH_INFO, never from
the Host header) and made of percent-encoded parts only, and every text from the
filesystem is escaped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import quote

from .preflight import Failure

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


def reply(start_response: StartResponse, status: int, kind: str, body: bytes,
          extra: Iterable[tuple[str, str]] = (), *, head: bool = False) -> list[bytes]:
    """A small complete answer: its length given, never cached, never sniffed, and no
    Access-Control-* header, so other origins may not read it. `head`: the body left out.

    >>> reply(lambda status, headers: print(status, headers[0]), 404, "text/plain", b"no\\n")
    404 Not Found ('Content-Type', 'text/plain')
    [b'no\\n']
    """
    start_response(f"{status} {HTTPStatus(status).phrase}", [
        ("Content-Type", kind), ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"), *extra,
    ])
    return [b"" if head else body]


def same_url(environ: WSGIEnvironment) -> str:
    """A relative Location for this request's own path and query string."""
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    path = quote(_wsgi_bytes(path), safe="/;=,@:!$&'()*+~")
    # One leading slash: '//host/x' would be a redirect to another host.
    location = "/" + path.lstrip("/")
    query = encoded_query(environ.get("QUERY_STRING", ""))
    return f"{location}?{query}" if query else location


_ESCAPE = re.compile(r"(%[0-9A-Fa-f]{2})")
_QUERY_SAFE = "/?;=,@:!$&'()*+~"  # RFC 3986 query characters, kept as sent


def encoded_query(query: str) -> str:
    r"""The query string with valid %XX escapes kept and everything else percent-encoded,
    so nothing the server passed raw (CR, LF, space, '#') reaches a header.

    >>> encoded_query("q=a%20b&x=1\r\nSet-Cookie: y")
    'q=a%20b&x=1%0D%0ASet-Cookie:%20y'
    """
    parts = _ESCAPE.split(query)  # odd items are the escapes themselves
    return "".join(
        part if i % 2 else quote(_wsgi_bytes(part), safe=_QUERY_SAFE)
        for i, part in enumerate(parts)
    )


def _wsgi_bytes(text: str) -> bytes:
    """The request's own bytes: PEP 3333 servers pass them decoded as latin-1."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:  # a server that passed real Unicode
        return text.encode("utf-8")


def retry(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """307 to the same URL: the restarted process answers it, method and body kept."""
    body = b"Restarting to load new code; retrying.\n"
    start_response(
        "307 Temporary Redirect",
        [
            ("Location", same_url(environ)),
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("Retry-After", "1"),
        ],
    )
    return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else body]


def failure(failure: Failure, start_response: StartResponse) -> Iterable[bytes]:
    """The debug 500 page: file, line and traceback, escaped. Development only."""
    body = (
        "<!doctype html><title>Code reload failed</title>"
        "<h1>The new code could not be loaded</h1>"
        f"<p><code>{html.escape(failure.summary)}</code></p>"
        f"<pre>{html.escape(failure.traceback)}</pre>"
        "<p>The previous code is still loaded; saving a fix retries.</p></body>"
    ).encode("utf-8", "backslashreplace")  # a file name not in UTF-8 shows as \udcff
    start_response(
        "500 Internal Server Error",
        [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]
