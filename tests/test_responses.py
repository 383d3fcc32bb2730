"""The responses the middleware answers itself: the 307 retry and the debug 500 page."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from reload_middleware.acting import responses
from reload_middleware.acting.preflight import Failure

if TYPE_CHECKING:
    from _typeshed import OptExcInfo


class StartResponse:
    """Records what the page passed to start_response."""

    def __init__(self) -> None:
        self.status = ""
        self.headers: list[tuple[str, str]] = []

    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None, /
    ) -> Callable[[bytes], object]:
        self.status, self.headers = status, headers
        return lambda data: None

    def header(self, name: str) -> str:
        [value] = [v for k, v in self.headers if k.lower() == name.lower()]
        return value


def environ(
    path: str = "/", script: str = "", query: str = "", method: str = "GET"
) -> dict[str, Any]:
    """A WSGI environ for one request (PATH_INFO as servers give it: latin-1 text)."""
    return {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": script,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "HTTP_HOST": "attacker.example",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
    }


SAME_URL = [
    # (id, SCRIPT_NAME, PATH_INFO, QUERY_STRING, Location)
    ("root", "", "/", "", "/"),
    ("empty-path", "", "", "", "/"),
    ("path", "", "/blog/post/1", "", "/blog/post/1"),
    ("script-name", "/myproject", "/admin/", "", "/myproject/admin/"),
    ("script-name-only", "/myproject", "", "", "/myproject"),
    ("query", "", "/search", "q=reload&page=2", "/search?q=reload&page=2"),
    ("query-kept-encoded", "", "/search", "q=a%20b&x=%2F", "/search?q=a%20b&x=%2F"),
    ("space", "", "/a b", "", "/a%20b"),
    ("reserved-kept", "", "/a;b=c,d@e:f!$&'()*+~", "", "/a;b=c,d@e:f!$&'()*+~"),
    ("question-mark-in-path", "", "/what?", "", "/what%3F"),
    ("hash-in-path", "", "/c#", "", "/c%23"),
    ("percent-in-path", "", "/100%", "", "/100%25"),
    ("crlf", "", "/a\r\nSet-Cookie: x=1", "", "/a%0D%0ASet-Cookie:%20x=1"),
    ("query-crlf", "", "/x", "a=1\r\nSet-Cookie: y=2", "/x?a=1%0D%0ASet-Cookie:%20y=2"),
    ("query-lone-lf", "", "/x", "a\nb", "/x?a%0Ab"),
    ("query-stray-percent", "", "/x", "p=100%&q=%zz&r=%4", "/x?p=100%25&q=%25zz&r=%254"),
    ("query-lowercase-escape", "", "/x", "q=%e9", "/x?q=%e9"),
    ("query-hash-and-space", "", "/x", "a b#c", "/x?a%20b%23c"),
    ("query-question-mark", "", "/x", "next=/a?b", "/x?next=/a?b"),
    ("query-non-ascii", "", "/x", "q=caf\xc3\xa9", "/x?q=caf%C3%A9"),
    ("query-control-chars", "", "/x", "a\x00\x1b\x7f", "/x?a%00%1B%7F"),
    ("double-slash", "", "//evil.example/x", "", "/evil.example/x"),
    ("many-slashes", "", "////evil.example", "", "/evil.example"),
    ("script-name-double-slash", "//evil.example", "/x", "", "/evil.example/x"),
    ("backslash", "", "/\\evil.example", "", "/%5Cevil.example"),
    ("scheme-in-path", "", "/http://evil.example", "", "/http://evil.example"),
]


@pytest.mark.parametrize(
    ("script", "path", "query", "expected"),
    [row[1:] for row in SAME_URL],
    ids=[row[0] for row in SAME_URL],
)
def test_same_url(script: str, path: str, query: str, expected: str) -> None:
    """The 307 points back at the same page of this site, never at another host."""
    assert responses.same_url(environ(path, script, query)) == expected


def test_same_url_missing_keys() -> None:
    """An environ without SCRIPT_NAME, PATH_INFO or QUERY_STRING redirects to `/`."""
    assert responses.same_url({}) == "/"


def test_same_url_non_ascii_path() -> None:
    """A request for /café is retried at /café, not at a double-encoded URL."""
    path_info = "/café".encode().decode("latin-1")  # what every WSGI server passes
    assert responses.same_url(environ(path_info)) == "/caf%C3%A9"


def test_same_url_text_outside_latin1() -> None:
    """A server that passes real Unicode in PATH_INFO still gets a valid UTF-8 Location."""
    assert responses.same_url(environ("/\u2713")) == "/%E2%9C%93"


def test_retry_response() -> None:
    """The triggering GET gets a 307 to itself that no cache keeps, with a short text body."""
    start = StartResponse()
    body = b"".join(responses.retry(environ("/blog", "/site", "page=2"), start))
    assert start.status == "307 Temporary Redirect"
    assert start.header("Location") == "/site/blog?page=2"
    assert start.header("Cache-Control") == "no-store"
    assert start.header("Retry-After") == "1"
    assert start.header("Content-Type") == "text/plain; charset=utf-8"
    assert body == b"Restarting to load new code; retrying.\n"
    assert start.header("Content-Length") == str(len(body))


def test_retry_response_to_head() -> None:
    """A HEAD gets the same 307 headers and no body."""
    start = StartResponse()
    body = b"".join(responses.retry(environ(method="HEAD"), start))
    assert start.status == "307 Temporary Redirect"
    assert body == b""
    assert start.header("Content-Length") == str(len(b"Restarting to load new code; retrying.\n"))


def test_retry_response_ignores_the_host_header() -> None:
    """The Location is relative, so a forged Host header cannot send the client elsewhere."""
    start = StartResponse()
    responses.retry(environ("/x"), start)
    assert "attacker.example" not in start.header("Location")
    assert start.header("Location").startswith("/")


def test_failure_page() -> None:
    """With debug on, a failed reload shows a 500 page naming the file, line and traceback."""
    failure = Failure(
        "/srv/app/views.py", 12, "SyntaxError: invalid syntax",
        'Traceback (most recent call last):\n  File "/srv/app/views.py", line 12\n',
    )
    start = StartResponse()
    body = b"".join(responses.failure(failure, start))
    text = body.decode()
    assert start.status == "500 Internal Server Error"
    assert start.header("Content-Type") == "text/html; charset=utf-8"
    assert start.header("Content-Length") == str(len(body))
    assert "/srv/app/views.py:12: SyntaxError: invalid syntax" in text
    assert "File &quot;/srv/app/views.py&quot;, line 12" in text
    assert "previous code is still loaded" in text


def test_failure_page_escapes_file_names_and_messages() -> None:
    """Markup in a file name, message or traceback is shown as text, never run."""
    failure = Failure(
        "/srv/app/<script>alert(1)</script>.py", 3, "ValueError: <b>bold</b> & 'quoted'",
        "raise ValueError('<img src=x onerror=alert(1)>')",
    )
    start = StartResponse()
    text = b"".join(responses.failure(failure, start)).decode()
    assert "<script>" not in text
    assert "<img" not in text
    assert "<b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.py:3" in text
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; &#x27;quoted&#x27;" in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text


def test_failure_page_non_ascii_length() -> None:
    """A traceback with non-ASCII text gets a Content-Length in bytes, not characters."""
    failure = Failure("/srv/app/vues.py", 1, "NameError: name 'café' is not defined", "café ✓")
    start = StartResponse()
    body = b"".join(responses.failure(failure, start))
    assert start.header("Content-Length") == str(len(body))
    assert "café ✓".encode() in body


def test_failure_page_names_a_file_that_is_not_utf8() -> None:
    """A file name with a byte that is not UTF-8 (a surrogate in Python) shows escaped."""
    name = os.fsdecode(b"/srv/app/caf\xe9.py")
    failure = Failure(name, 2, "SyntaxError: invalid syntax", f'  File "{name}", line 2\n')
    start = StartResponse()
    body = b"".join(responses.failure(failure, start))
    assert start.status == "500 Internal Server Error"
    assert start.header("Content-Length") == str(len(body))
    assert body.decode().count("/srv/app/caf\\udce9.py") == 2
