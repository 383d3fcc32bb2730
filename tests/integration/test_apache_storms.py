"""Real Apache, mod_wsgi daemon mode, two preloaded processes: the storm guard and a
person's saves."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import pytest
from apache import Apache, wait_for
from support import Site, answer, follow, holds, pids_answering, seen, warm

pytestmark = pytest.mark.integration

STORM = "seems to write it"

# The page is read once, at import, as template engines cache it: only a restart serves
# a saved template.
APP = """\
import json, os
from reload_middleware import ReloadMiddleware

with open(os.path.join(os.path.dirname(__file__), "templates", "page.html")) as page:
    PAGE = page.read()


def app(environ, start_response):
    body = json.dumps({"pid": os.getpid(), "page": PAGE}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


application = ReloadMiddleware(app, watch=["templates"], settle=0.05)
"""


def page(save: int) -> str:
    """The template's text at one save: other words each time, as a person edits it."""
    return f"<main>\n  <h1>{'Draft' if save % 2 else 'Title'} {save}</h1>\n</main>\n"


def shows(server: Apache, text: str) -> bool:
    return bool(answer(server)["page"] == text)


def test_a_template_saved_every_two_seconds_is_served_every_time(
    site: Callable[..., Site], apache: Callable[..., Apache]
) -> None:
    """Nine saves about 1.8 s apart, requests after each: the request after each save
    serves its text, so do the next ones until both processes have answered, and the
    storm guard never fires (both processes act on each save; a person's edit is no
    storm)."""
    app = site()
    template = app.write("templates/page.html", page(0))
    app.write("app.wsgi", APP)
    server = apache(app)
    warm(server, page=page(0))
    for save in range(1, 10):
        saved = time.monotonic()
        app.write("templates/page.html", page(save))
        seen(server, template)  # both processes heard of it: the next request acts
        wait_for(functools.partial(shows, server, page(save)), 3, f"save {save} served")
        pids_answering(server, 2, page=page(save))  # old text from neither process
        assert STORM not in server.error_log(), f"storm guard fired at save {save}"
        # The rest of the person's 1.8 s before the next save, watching the log meanwhile.
        rest = max(0.0, 1.8 - (time.monotonic() - saved))
        holds(lambda: STORM not in server.error_log(), rest, f"storm guard fired at {save}")
    assert server.error_log().count("page.html (1 file) changed") >= 18  # 2 per save


# The app notes each start in a file of a directory it also watches, on its first
# request (a write at import, before the middleware looks, may be taken as what loaded).
LOOP = """\
import json, os
from reload_middleware import ReloadMiddleware

LOG = os.path.join(os.path.dirname(__file__), "data", "boot.log")
started = []


def app(environ, start_response):
    if not started:
        started.append(True)
        with open(LOG, "a") as log:
            log.write(f"{os.getpid()} started\\n")
    body = json.dumps({"pid": os.getpid()}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


application = ReloadMiddleware(app, watch=["data"], settle=0.05)
"""


def test_an_app_writing_a_watched_file_at_every_start_stops_restarting(
    site: Callable[..., Site], apache: Callable[..., Apache]
) -> None:
    """Each new process appends to a watched log on its first request: under traffic the
    storm line comes, advising to exclude it, and the processes stop restarting."""
    app = site()
    app.write("data/boot.log", "").chmod(0o666)  # the daemons' user writes it
    app.write("app.wsgi", LOOP)
    server = apache(app)

    def served() -> bool:
        """A request, through the 307s of restarts decided as it came."""
        return follow(server)[0].status == 200

    wait_for(lambda: served() and STORM in server.error_log(), 60, "the storm line")
    assert "exclude='boot.log'" in server.error_log()
    holds(served, 1.0, "an answer")  # the other process may have a restart in flight
    pids = server.daemon_pids()
    holds(lambda: served() and server.daemon_pids() == pids, 3.0,
          "a daemon restarted after the storm line")
