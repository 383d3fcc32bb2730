"""`manage.py runserver` serving a project whose wsgi.py is wrapped as the README says:
Django's autoreloader restarts its child at each change, and the middleware stays out
of its way with one log line (docs/frameworks.md, "Django")."""

from __future__ import annotations

import http.client
import re
import shutil
import sys
import time
from pathlib import Path

import pytest
from apache import free_port, wait_for
from procs import get, running

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "django"

WSGI = """\
import os
from django.core.wsgi import get_wsgi_application
from reload_middleware import ReloadMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
application = ReloadMiddleware(get_wsgi_application())
"""

MANAGE = """\
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
from django.core.management import execute_from_command_line
execute_from_command_line(sys.argv)
"""


def shown(port: int) -> str | None:
    """The view's VERSION on the page, or None while the server is restarting."""
    try:
        status, body = get(port, "/")
    except (OSError, http.client.HTTPException):
        return None
    found = re.search(r'<b id="view">(.*?)</b>', body)
    return found.group(1) if status == 200 and found else None


def save(views: Path) -> float:
    """Save the view at VERSION 2 (again: a new mtime); when it was saved."""
    views.write_text(re.sub(r'VERSION = "\d+"', 'VERSION = "2"', views.read_text()))
    return time.monotonic()


def test_runserver_reloads_by_itself_and_the_middleware_stays_out(tmp_path: Path) -> None:
    pytest.importorskip("django")
    project = tmp_path / "site"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__"))
    (project / "mysite" / "wsgi.py").write_text(WSGI)
    (project / "manage.py").write_text(MANAGE)
    with (project / "mysite" / "settings.py").open("a") as settings:
        settings.write('WSGI_APPLICATION = "mysite.wsgi.application"\n')
    port = free_port()
    views = project / "polls" / "views.py"
    with running([sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}"],
                 project, port) as output:
        wait_for(lambda: shown(port) == "1", 20, "the page")
        saved = [save(views)]

        def served() -> bool:
            # Django's stat reloader takes the mtime it first sees as a file's baseline,
            # and it first sees views.py up to a second after the import: a save in
            # between goes unseen by it, so a save not served after 3 s is made again.
            if shown(port) == "2":
                return True
            if time.monotonic() - saved[-1] > 3:
                saved.append(save(views))
            return False

        wait_for(served, 20, "the saved view, through runserver's reload")
    log = output[0]
    # One line per process the autoreloader started: before the save and after it (and
    # after a save made again, when the first one went unseen).
    said = log.count("Django's runserver restarts this process at each change")
    assert 2 <= said <= len(saved) + 1, log
    assert "watching for code changes: mode" not in log, log
    assert "already registered" not in log, log
    assert "changed: reload" not in log, log
