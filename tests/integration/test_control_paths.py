"""The control endpoint's path through real HTTP servers: what each one lets reach it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
import waitress  # type: ignore[import-untyped]

from reload_middleware.operations.control import Control

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

pytestmark = pytest.mark.integration
SECRET = "s3cret-token-0123456789"
TRICKS = ["/%5F%5Freload__", "/__reload%5F%5F", "//__reload__"]


def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"app"]


def endpoint() -> WSGIApplication:
    return Control(app, "/__reload__", SECRET, status=lambda: {"ok": True}, force=lambda: None)


def reached(port: int, target: str) -> str:
    """Send one GET with the token for `target`, exactly as written: what answered it."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(
            f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            f"Authorization: Bearer {SECRET}\r\n\r\n".encode()
        )
        reply = b""
        while chunk := conn.recv(4096):
            reply += chunk
    if reply.endswith(b"\r\n\r\napp"):
        return "app"
    return {b"200": "endpoint", b"404": "404"}[reply.split(b" ", 2)[1]]


@contextmanager
def in_thread(run: Callable[[], object], stop: Callable[[], object]) -> Iterator[None]:
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop()
        thread.join(5)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_waitress_gives_the_raw_path_and_tricks_get_404() -> None:
    """waitress passes REQUEST_URI: only the literal path reaches the endpoint."""
    server = waitress.create_server(endpoint(), host="127.0.0.1", port=0)
    with in_thread(server.run, server.close):
        port = server.effective_port
        assert reached(port, "/__reload__?x=1") == "endpoint"
        assert [reached(port, trick) for trick in TRICKS] == ["404", "404", "404"]
        assert reached(port, "/index") == "app"


def test_wsgiref_gives_no_raw_path_so_decoded_forms_reach_it() -> None:
    """wsgiref passes only PATH_INFO, decoded and with leading slashes merged: every form
    reaches the endpoint, which is what SECURITY.md tells a front proxy rule to cover."""
    with make_server("127.0.0.1", 0, endpoint(), handler_class=_Quiet) as server, in_thread(
        server.serve_forever, server.shutdown
    ):
        port = server.server_port
        assert reached(port, "/__reload__") == "endpoint"
        assert [reached(port, trick) for trick in TRICKS] == ["endpoint"] * 3
