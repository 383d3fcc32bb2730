"""Live browser reload: the script tag's version, the reserved path and its events.

A page gets `<script src="PREFIX/live.js?v=VERSION">`; VERSION is the version of the
code that rendered it: the newest change time (microseconds) of the files this process
loaded its code from, the same in every process that loaded the same files. The
script asks `PREFIX/events?v=VERSION` in a loop; the answer is this process's version,
counting changes its watcher has recorded and its confirm step would accept, and how
long to wait before asking again. The browser reloads when the answer is newer. The
reload is the request that restarts or reloads: nothing here acts on a change. When
every file newer than VERSION is a stylesheet (static_files.py), the answer also says
`"styles": true` and the pages swap their stylesheets instead of reloading.

>>> newest({"/a.py": (5_000, 1, 1, 7_000, ()), "/b.py": None})
7
>>> cap(None), cap(4), cap(1)
(1, 2, 0)
"""

from __future__ import annotations

import functools
import json
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from .. import logs
from ..acting.responses import reply
from ..integrations import servers
from ..watching.changes import Changes
from ..watching.file_state import Stat, differs, stat_of
from . import csp
from .injection import Injecting
from .tag import NONCE_KEY, PREFIX, script_base, script_tag

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from .injection import Headers

Answer = dict[str, int | bool]  # {"version": ..., "wait": ms, "styles": True when so}
LOOK = 0.02  # seconds between two looks of a waiting events request while events keep coming
LIFE = 20.0  # seconds an events request waits at most (proxies cut idle ones at 30-60 s)
SHORT_POLL_MS = 200  # where a waiting request would hold the only worker: cheap answers
BUSY_MS = 2000  # beyond the cap of waiting requests
AFTER_RESTART_MS = 300  # a process on its way out: ask the next one a moment later


def newest(states: Mapping[str, Stat]) -> int:
    """The latest mtime or ctime among `states`, in microseconds (0 when none).

    The ctime counts because a restored file keeps an old mtime: the ctime says when
    it came back. Microseconds: exact in a JavaScript number.
    """
    times = [max(s[0], s[3]) for s in states.values() if s is not None and s[0] > 0]
    return max(times, default=0) // 1000


def changed_at(path: str, before: Stat, stat: Callable[[str], Stat] = stat_of) -> int:
    """When a pending path changed (microseconds), or 0 when its confirm would refuse it.

    A deleted file has no times: its directory's change, stable across asks, stands in.
    """
    now = stat(path)
    if not differs(before, now):
        return 0
    if now is None:
        now = stat(os.path.dirname(path)) if os.path.isabs(path) else None
    return newest({path: now})


def cap(threads: int | None) -> int:
    """How many events requests may wait at once in a process of `threads` threads:
    half of them, so pages keep the rest; 1 where the server does not tell."""
    return 1 if threads is None else threads // 2


def server_threads(modules: Mapping[str, object] = sys.modules) -> int | None:
    """The threads per process the server reports: mod_wsgi or uWSGI, else None."""
    mod_wsgi = modules.get("mod_wsgi")
    threads = getattr(mod_wsgi, "threads_per_process", None)
    if isinstance(threads, int) and threads > 0:
        return threads
    opt = getattr(modules.get("uwsgi"), "opt", None)
    value = opt.get("threads") if isinstance(opt, dict) else None
    try:
        return int(value) if isinstance(value, bytes | str) else None
    except ValueError:
        return None


def script() -> bytes:
    """The client (page and shared worker in one file), shipped in the package."""
    from importlib import resources  # only with live on: 3 MB of modules otherwise unused

    return resources.files(__package__).joinpath("live.js").read_bytes()


class Beacon:
    """What the events endpoint of one middleware knows: its changes and restarts. A
    middleware makes one only when live reload is on; the interpreter's `Beacons`
    releases it when the server stops the process.

        beacon = Beacon(middleware_changes, ignored=storm_guard.ignored)
        beacon.release()      # a restart is decided: every waiting request answers now
    """

    def __init__(self, changes: Changes, ignored: Iterable[str] = (),
                 stylesheet: Callable[[str], bool] = lambda path: False) -> None:
        self._changes = changes
        self._ignored = ignored
        self._stylesheet = stylesheet
        self._released = threading.Event()
        # Waiting events requests wake at each record (in the watcher's thread) and release.
        self._news = threading.Condition()
        changes.listen(self._hear)
        self._lock = threading.Lock()
        self._waiting = 0
        self.told = logs.Once()  # why pages went without the tag: said once per reason

    @functools.cached_property
    def script(self) -> bytes:
        """The client, read once, when first asked for (never while live is off)."""
        return script()

    def version(self) -> int:
        """The code version: loaded files, and recorded changes confirm would accept."""
        return max(self._times().values(), default=0)

    def _times(self) -> dict[str, int]:
        """When each file changed last (microseconds): the loaded files' baselines, then
        the recorded changes that confirm would accept."""
        baselines = self._changes.baselines
        ignored = set(self._ignored)
        times = {path: newest({path: state}) for path, state in list(baselines.items())}
        for path in self._changes.pending - ignored:
            times[path] = max(times.get(path, 0), changed_at(path, baselines.get(path)))
        return times

    def report(self, known: int, wait: int, version: int | None = None) -> Answer:
        """The events answer for a page at version `known`: the version (`version` when
        just read), how long to wait, and `styles` when every file newer than `known` is
        a stylesheet (the pages swap them instead of reloading)."""
        times = self._times()
        version = max(times.values(), default=0) if version is None else version
        answer: Answer = {"version": version, "wait": wait}
        if version > known and all(self._stylesheet(p) for p, at in times.items() if at > known):
            answer["styles"] = True
        return answer

    def loaded(self) -> int:
        """The version of the code serving now, for the page's script tag."""
        return newest(self._changes.baselines)

    def release(self) -> None:
        """A restart is decided: answer every waiting request, and wait for none."""
        self._released.set()
        self._hear()

    def _hear(self) -> None:
        with self._news:
            self._news.notify_all()

    def _news_since(self, seq: int) -> bool:
        return self._released.is_set() or self._changes.seq != seq

    def answer(self, environ: WSGIEnvironment) -> Answer:
        """The events answer for a page at version `v`: waits while nothing is newer."""
        try:
            known = int(_query(environ).get("v", "0"))
        except ValueError:
            known = 0
        if self._released.is_set():
            return self.report(known, AFTER_RESTART_MS)
        if not environ.get("wsgi.multithread"):
            return self.report(known, SHORT_POLL_MS)
        with self._lock:
            admitted = self._waiting < cap(server_threads())
            self._waiting += admitted
        if not admitted:
            return self.report(known, BUSY_MS + random.randrange(500))
        try:
            return self._wait(known)
        finally:
            with self._lock:
                self._waiting -= 1

    def _wait(self, known: int) -> Answer:
        """Wait until the version passes `known`, a restart is decided, or LIFE is over.
        A record wakes the wait: the version is looked at again (once a LOOK at most,
        however many events come: it reads every baseline)."""
        seq, deadline = -1, time.monotonic() + LIFE
        while (left := deadline - time.monotonic()) > 0 and not self._released.is_set():
            if self._changes.seq != seq:
                seq = self._changes.seq
                version = self.version()
                if version > known:
                    return self.report(known, AFTER_RESTART_MS, version)
                self._released.wait(min(LOOK, left))
                continue
            with self._news:
                self._news.wait_for(functools.partial(self._news_since, seq), left)
        return self.report(known, AFTER_RESTART_MS if self._released.is_set() else 0)


def _query(environ: WSGIEnvironment) -> dict[str, str]:
    pairs = (p.partition("=") for p in environ.get("QUERY_STRING", "").split("&") if p)
    return {k: v for k, _, v in pairs}


def reserved(environ: WSGIEnvironment) -> bool:
    """Whether a request is for the reserved path (it never acts on a change)."""
    return str(environ.get("PATH_INFO", "")).startswith(PREFIX)


def front(app: WSGIApplication, beacon: Beacon | None, on: bool) -> WSGIApplication:
    """`app` behind `Front` when live reload is `on`, else `app` itself. There is no
    `beacon` where live reload was never on: then `app` itself too."""
    return Front(app, beacon) if on and beacon is not None else app


class Front:
    """`app` with live reload: the reserved path answered here, pages given the tag.

        application = Front(app, Beacon(changes))
    """

    def __init__(self, app: WSGIApplication, beacon: Beacon) -> None:
        self._beacon = beacon
        self._app = Injecting(app, self._tag, self._streamed)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if reserved(environ):
            return self._serve(environ, start_response)
        return self._app(environ, start_response)

    def _streamed(self, environ: WSGIEnvironment) -> None:
        """A page left without the tag, its body not in memory: said once."""
        if self._beacon.told.first("streamed"):
            logs.info("live reload: an HTML page got no script tag: its body is neither a "
                      "list nor of a declared length, so it may be streamed (docs/"
                      "live-reload.md, Which responses get the script); said once")

    def _tag(self, environ: WSGIEnvironment, headers: Headers) -> bytes | None:
        """The tag for one page, or None where the response's policy would block it.

        Its URL is of the page's own origin whatever SCRIPT_NAME a request header set
        (tag.py); its nonce the one the policy names, or the app handed over."""
        offered = environ.get(NONCE_KEY)
        if offered is not None and not (isinstance(offered, str) and csp.NONCE.fullmatch(offered)):
            if self._beacon.told.first("bad nonce"):
                logs.error("live reload: environ[%r] is not a CSP nonce (base64); not used",
                           NONCE_KEY)
            offered = None
        scheme = str(environ.get("wsgi.url_scheme", "http"))
        verdict = csp.verdict(headers, offered, scheme)
        if not verdict.allowed:
            if self._beacon.told.first(("blocked", verdict.why)):
                logs.info("live reload: no script tag in pages whose Content-Security-Policy "
                          "blocks it: %s (docs/live-reload.md, Content-Security-Policy)",
                          verdict.why)
            return None
        base = script_base(servers.server_mount(environ), str(environ.get("SCRIPT_NAME", "")),
                           str(environ.get("PATH_INFO", "")))
        return script_tag(base, self._beacon.loaded(), verdict.nonce)

    def _serve(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        name = str(environ.get("PATH_INFO", ""))[len(PREFIX):]
        if name not in ("live.js", "events"):
            return reply(start_response, 404, "text/plain", b"not found\n")
        if environ.get("REQUEST_METHOD") != "GET":
            return reply(start_response, 405, "text/plain", b"GET only\n", [("Allow", "GET")])
        if name == "live.js":
            return reply(start_response, 200, "text/javascript; charset=utf-8",
                         self._beacon.script)
        body = json.dumps(self._beacon.answer(environ)).encode()
        return reply(start_response, 200, "application/json", body)
