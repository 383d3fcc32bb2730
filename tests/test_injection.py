"""Where the live reload script tag goes, and every response it must leave alone."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from helpers import call
from reload_middleware.acting.response_bodies import ClosingBody
from reload_middleware.live.injection import Injecting, eligible, html, in_memory
from reload_middleware.live.markup import closing, insert

sys.path.insert(0, str(Path(__file__).resolve().parent / "integration"))
from pages import CLOSING, CLOSING_IDS

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

TAG = b'<script src="/t.js"></script>'
PAGE = b"<html><body><p>hi</p></body></html>"
HTML = [("Content-Type", "text/html; charset=utf-8")]


@pytest.mark.parametrize(("content_type", "expected"), [
    ("text/html", True),
    ("TEXT/HTML; Charset=UTF-8", True),
    ('text/html; charset="iso-8859-1"', True),
    ("text/html; charset=windows-1252", True),
    ("text/html; charset=utf-16", False),
    ("text/html; charset=utf-32le", False),
    ("application/xhtml+xml", False),
    ("application/json", False),
    ("text/plain", False),
    (None, False),
], ids=["bare", "any-case", "quoted-latin1", "cp1252", "utf16", "utf32", "xhtml", "json",
        "plain", "none"])  # fmt: skip
def test_html_in_an_ascii_compatible_charset(content_type: str | None, expected: bool) -> None:
    """Only HTML whose `</body>` is ASCII bytes can be searched and edited as bytes."""
    assert html(content_type) is expected


@pytest.mark.parametrize(("status", "headers", "method", "expected"), [
    ("200 OK", HTML, "GET", True),
    ("404 Not Found", HTML, "GET", True),
    ("500 Internal Server Error", HTML, "GET", True),
    ("200 OK", HTML, "HEAD", False),
    ("200 OK", HTML, "POST", False),
    ("204 No Content", HTML, "GET", False),
    ("206 Partial Content", HTML, "GET", False),
    ("304 Not Modified", HTML, "GET", False),
    ("302 Found", HTML, "GET", False),
    ("200 OK", [*HTML, ("Content-Encoding", "gzip")], "GET", False),
    ("200 OK", [*HTML, ("content-encoding", "br")], "GET", False),
    ("200 OK", [*HTML, ("Content-Encoding", "identity")], "GET", True),
    ("200 OK", [*HTML, ("Content-Disposition", "attachment; filename=a.html")], "GET", False),
    ("200 OK", [("Content-Type", "application/json")], "GET", False),
    ("bogus", HTML, "GET", False),
], ids=["ok", "not-found", "error", "head", "post", "204", "206", "304", "redirect", "gzip",
        "br", "identity", "attachment", "json", "bad-status"])  # fmt: skip
def test_eligible_heads(status: str, headers: list[tuple[str, str]], method: str,
                        expected: bool) -> None:
    """A tag only goes into whole, unencoded HTML bodies that a browser renders."""
    assert eligible(status, headers, method) is expected


@pytest.mark.parametrize(("page", "expected"), [
    (PAGE, b"<html><body><p>hi</p>" + TAG + b"</body></html>"),
    (b"<BODY>x</BODY >", b"<BODY>x" + TAG + b"</BODY >"),
    (b"<p>'</body>' in a script</p></body>", b"<p>'</body>' in a script</p>" + TAG + b"</body>"),
    (b"<div hx-swap-oob=true>a fragment</div>", None),
], ids=["page", "upper-case", "last-one", "fragment"])
def test_insert_before_the_last_closing_body(page: bytes, expected: bytes | None) -> None:
    """The tag goes before the last `</body>`; an htmx fragment has none and gets none."""
    assert insert(page, TAG) == expected


@pytest.mark.parametrize(("page", "expected"), CLOSING, ids=CLOSING_IDS)
def test_closing_is_a_closing_tag_the_browser_reads(page: bytes, expected: bytes | None) -> None:
    """The tag goes where `|` is: before the last `</body>` that is markup (not in a
    comment, a script's or style's text, an attribute), else the last `</html>`."""
    at = closing(page)
    assert (None if at is None else page[:at] + b"|" + page[at:]) == expected


def test_closing_is_linear_on_hostile_pages() -> None:
    """Pages built to make a scanner backtrack are read in one pass, and read right: the
    `</body>` at their end is an attribute's, a comment's, or markup."""
    pages = [
        (b"<a " + b"b=" * 500_000, None),  # an unquoted value that runs into `</body`
        (b"<a" + b' "x' * 300_000, None),  # attribute names, the last one `</body`'s
        (b"<!--" + b"--" * 500_000, None),  # a comment `</body>` does not end
        (b"</a" + b"/" * 1_000_000, None),  # an end tag that ends at `</body>`'s `>`
        (b"<" * 1_000_000, 1_000_000),  # text
        (b"<b title='x'>" * 100_000, 1_300_000),  # markup
    ]
    for page, expected in pages:
        started = time.perf_counter()
        assert closing(page + b"</body>") == expected, page[:20]
        assert time.perf_counter() - started < 1.0, page[:20]


def test_in_memory_bodies() -> None:
    """Lists are in memory; an iterator only with a declared length under the cap."""
    assert in_memory([b"a"], [])
    assert in_memory(iter([b"a"]), [("Content-Length", "1")])
    assert not in_memory(iter([b"a"]), [])
    assert not in_memory(iter([b"a"]), [("Content-Length", str(10**9))])


def app_of(
    body: Callable[[], Iterable[bytes]], headers: list[tuple[str, str]] = HTML
) -> WSGIApplication:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", headers)
        return body()

    return app


def injecting(app: WSGIApplication) -> WSGIApplication:
    return Injecting(app, lambda environ, headers: TAG)


def test_a_page_gets_the_tag_and_its_length() -> None:
    """A list body with `</body>`: one tag, Content-Length corrected."""
    response = call(injecting(app_of(lambda: [PAGE], [*HTML, ("Content-Length", "35")])))
    assert response.body == PAGE.replace(b"</body>", TAG + b"</body>")
    assert response.headers["Content-Length"] == str(len(response.body))


class FileWrapper:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)


@pytest.mark.parametrize("case", ["json", "gzip", "fragment", "file-wrapper", "no-length"])
def test_other_responses_are_the_same_object(case: str) -> None:
    """What gets no tag reaches the server as the app's own body object."""
    made: list[Iterable[bytes]] = []
    headers = {
        "json": [("Content-Type", "application/json")],
        "gzip": [*HTML, ("Content-Encoding", "gzip")],
        "fragment": HTML,
        "file-wrapper": [*HTML, ("Content-Length", "35")],
        "no-length": HTML,
    }[case]

    def body() -> Iterable[bytes]:
        made.append(
            FileWrapper([PAGE]) if case == "file-wrapper"
            else iter([PAGE]) if case == "no-length"
            else [b"<p>fragment</p>"] if case == "fragment" else [PAGE])
        return made[0]

    environ = {"wsgi.file_wrapper": FileWrapper}
    response = call(injecting(app_of(body, headers)), environ=environ, close=False)
    assert response.iterable is made[0]


def test_start_response_during_iteration_and_write_pass_through() -> None:
    """A generator that starts its response late, and a legacy write(), stream as made."""
    def late(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", HTML)
        yield PAGE

    def legacy(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", HTML)(PAGE)
        return []

    assert call(injecting(late)).body == PAGE
    written: list[bytes] = []

    def server_start(status: str, headers: list[tuple[str, str]], exc: object = None
                     ) -> Callable[[bytes], object]:
        return written.append

    assert list(injecting(legacy)({"REQUEST_METHOD": "GET"}, server_start)) == []
    assert written == [PAGE]


def test_a_tag_refused_by_the_headers_leaves_the_page_alone() -> None:
    """`tag()` answering None (a policy that would block it): the app's own body object,
    its own headers; `tag()` is given the response's headers."""
    seen: list[list[tuple[str, str]]] = []

    def refuse(environ: WSGIEnvironment, headers: list[tuple[str, str]]) -> bytes | None:
        seen.append(headers)
        return None

    made = [PAGE]
    response = call(Injecting(app_of(lambda: made), refuse), close=False)
    assert response.iterable is made and seen == [HTML]


def test_a_read_iterator_is_closed() -> None:
    """A body read to add the tag is closed, as the server would have closed it."""
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            return iter([PAGE])

        def close(self) -> None:
            closed.append(True)

    response = call(injecting(app_of(Body, [*HTML, ("Content-Length", "35")])))
    assert TAG in response.body and closed == [True]


def test_our_own_closing_wrapper_is_looked_through() -> None:
    """A list inside the middleware's closing wrapper is in memory; the wrapper's close()
    still runs when the server closes the response (a restart fires only after it)."""
    after: list[str] = []

    def wrapped(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", HTML)
        return ClosingBody([PAGE], lambda: after.append("closed"))

    response = call(injecting(wrapped), close=False)
    assert TAG in response.body and after == []
    response.close()
    assert after == ["closed"]


class Held:
    """A response object as Django's: its whole body in `content`, and `streaming` says
    whether it is (StreamingHttpResponse, FileResponse) or not (HttpResponse)."""

    def __init__(self, streaming: bool) -> None:
        self.streaming = streaming
        self.closed = False

    @property
    def content(self) -> bytes:
        assert not self.streaming, "a streamed body was read whole"
        return PAGE

    def __iter__(self) -> Iterator[bytes]:
        return iter([PAGE])

    def close(self) -> None:
        self.closed = True


def test_a_response_holding_its_body_gets_the_tag_without_a_length() -> None:
    """Django's HttpResponse (without CommonMiddleware, no Content-Length) gets the tag
    and its length; a streaming response goes through untouched, and the middleware is
    told once of such a page."""
    told: list[str] = []
    page = Held(streaming=False)
    response = call(Injecting(app_of(lambda: page), lambda e, h: TAG,
                              lambda environ: told.append("streamed")))
    assert TAG in response.body and page.closed
    assert response.headers["Content-Length"] == str(len(PAGE + TAG))
    stream = Held(streaming=True)
    response = call(Injecting(app_of(lambda: stream), lambda e, h: TAG,
                              lambda environ: told.append("streamed")), close=False)
    assert response.iterable is stream and told == ["streamed"]


DJANGO = """
import django
from django.conf import settings
settings.configure()
django.setup()
from django.http import HttpResponse, StreamingHttpResponse
from reload_middleware.live.injection import Injecting
def app(environ, start_response):
    page = "<html><body>hi</body></html>"
    response = StreamingHttpResponse([page]) if environ["PATH_INFO"] == "/s" else HttpResponse(page)
    start_response("200 OK", list(response.items()))
    return response
tagged = Injecting(app, lambda environ, headers: b"<script></script>")
for path in ("/", "/s"):
    print(b"".join(tagged({"REQUEST_METHOD": "GET", "PATH_INFO": path}, lambda *a: None)))
"""


def test_a_real_django_page_without_a_length_gets_the_tag() -> None:
    done = subprocess.run([sys.executable, "-c", DJANGO], capture_output=True, text=True,
                          check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["b'<html><body>hi<script></script></body></html>'",
                                   "b'<html><body>hi</body></html>'"]
