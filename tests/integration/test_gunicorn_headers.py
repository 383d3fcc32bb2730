"""What a `SCRIPT_NAME` request header can do under real gunicorn, which takes it as the
mount from 127.0.0.1 (its default `forwarded_allow_ips`): the control endpoint stays
at its one path, and the live script tag stays on the page's own origin."""

from __future__ import annotations

import json
import re
import socket
from contextlib import AbstractContextManager
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from apache import free_port
from procs import gunicorn, running

pytestmark = pytest.mark.integration
SECRET = "s3cret-token-0123456789"
APP = f"""\
from reload_middleware import ReloadMiddleware


def app(environ, start_response):
    body = b"<html><body><p>page</p></body></html>"
    start_response("200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(body)))])
    return [body]


application = ReloadMiddleware(app, control="/__reload__", secret={SECRET!r}, live=True,
                               settle=0.02)
"""
TOKEN = {"Authorization": f"Bearer {SECRET}"}


def send(
    port: int, target: str, headers: dict[str, str], method: str = "GET"
) -> tuple[int, bytes]:
    """One request for `target` exactly as written, with `headers`: (status, body)."""
    lines = [f"{method} {target} HTTP/1.1", "Host: localhost", "Connection: close",
             "Content-Length: 0", *(f"{k}: {v}" for k, v in headers.items())]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def served(project: Path, port: int, *options: str) -> AbstractContextManager[list[str]]:
    """The app above under gunicorn, one sync worker, with gunicorn `options`."""
    (project / "headers_app.py").write_text(APP)
    argv = gunicorn(port, "sync", workers=1, app="headers_app:application", options=options)
    return running(argv, project, port)


def test_a_header_mount_does_not_move_the_control_endpoint(project: Path) -> None:
    """`/x/__reload__` with `SCRIPT_NAME: /x` gets a bare 404, GET or POST, token and
    all; the endpoint answers at `/__reload__` only."""
    port = free_port()
    with served(project, port):
        status, body = send(port, "/__reload__", TOKEN)
        assert status == 200 and "pid" in json.loads(body)
        mounted = {**TOKEN, "SCRIPT_NAME": "/x"}
        assert send(port, "/x/__reload__", mounted) == (404, b"Not Found\n")
        assert send(port, "/x/__reload__", mounted, "POST") == (404, b"Not Found\n")
        # gunicorn did take the header: the app got the rest of the path as PATH_INFO.
        status, body = send(port, "/x/page", {"SCRIPT_NAME": "/x"})
        assert status == 200 and b'src="./__reload_middleware__/live.js' in body


def test_a_mount_gunicorn_was_started_with_is_believed(project: Path) -> None:
    """`--env SCRIPT_NAME=/x`: the endpoint is `/x/__reload__`, with a header that repeats
    that mount or without one; a header with another mount gets 404 there too."""
    port = free_port()
    with served(project, port, "--env", "SCRIPT_NAME=/x"):
        status, body = send(port, "/x/__reload__", TOKEN)
        assert status == 200 and "pid" in json.loads(body)
        assert send(port, "/x/__reload__", {**TOKEN, "SCRIPT_NAME": "/x"})[0] == 200
        assert send(port, "/y/__reload__", {**TOKEN, "SCRIPT_NAME": "/y"}) == (
            404, b"Not Found\n")
        status, body = send(port, "/x/page", {})
        assert b'<script src="/x/__reload_middleware__/live.js?v=' in body


@pytest.mark.parametrize("target", ["//evil.example/page", "//evil.example/a/page"])
def test_a_header_mount_cannot_point_the_live_tag_elsewhere(project: Path, target: str) -> None:
    """`//evil.example/...` with `SCRIPT_NAME: //evil.example`: the page's tag names no
    other host, and resolves to a script of the page's own origin."""
    port = free_port()
    with served(project, port):
        status, body = send(port, target, {"SCRIPT_NAME": "//evil.example"})
        assert status == 200
        found = re.search(rb'<script src="([^"]+)"></script></body>', body)
        assert found, body
        assert b"//evil.example" not in body
        page = f"http://127.0.0.1:{port}{target}"
        script = urlsplit(urljoin(page, found.group(1).decode()))
        assert script.netloc == f"127.0.0.1:{port}"
        assert script.path.endswith("/__reload_middleware__/live.js")
        status, body = send(port, "/__reload_middleware__/live.js", {})
        assert status == 200 and b"SharedWorker" in body
