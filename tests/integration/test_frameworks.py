"""Django and Flask as their users run them: the examples under real Apache/mod_wsgi.

Each example is copied to a directory www-data can read and served as it is, with the
framework's debug off (templates cached). Every edit is checked on the request after
each daemon has seen it, with the daemon pids and the log lines.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from apache import Apache, ApacheSite, Response, prepare_run_dir, wait_for
from catalogs import mo_bytes
from support import PROBE, seen

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FIELD = re.compile(r'id="(\w+)">([^<]*)<')
# What a save in each step looks for in the log.
ACTED = " changed: "
KEPT = "new code not loaded, old code still serving: "
EMPTIED = " changed: template caches emptied"
RECOMPILED = " changed: translation catalogs emptied"
BROKEN = 'VERSION = "%d"\nBROKEN = undefined_name\n'  # compiles, fails when imported
CATALOG = "polls/locale/fr/LC_MESSAGES/django.mo"  # the Django example's French catalog
GRACE = 0.25  # as in schedules.py: the time a save takes to reach every process


def page(server: Apache) -> dict[str, str]:
    """The example's page as {field: value}: view, template, greeting, pid (and
    welcome, in French)."""
    response = server.get("/", headers={"Accept-Language": "fr"})
    assert response.status == 200, response.text
    return dict(FIELD.findall(response.text))


@pytest.fixture
def example() -> Iterator[Callable[[str], ApacheSite]]:
    """copy(name): examples/NAME in a fresh directory www-data can read, with the probe."""
    made: list[Path] = []

    def copy(name: str) -> ApacheSite:
        root = prepare_run_dir()
        made.append(root)
        shutil.copytree(EXAMPLES / name, root, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
        for directory, _, files in os.walk(root):
            os.chmod(directory, 0o755)
            for name_ in files:
                os.chmod(os.path.join(directory, name_), 0o644)
        site = ApacheSite(root)
        site.write("probe/probe.wsgi", PROBE)
        return site

    yield copy
    for root in made:
        shutil.rmtree(root, ignore_errors=True)


class Steps:
    """Edits to a served example, each checked on the next request."""

    def __init__(self, server: Apache, site: ApacheSite, processes: int) -> None:
        self.server, self.site, self.processes = server, site, processes

    def warm(self) -> set[int]:
        """Requests until every daemon process has answered twice: it watches, and has
        registered the modules its first request imported (Django's views and urls)."""
        served: dict[int, int] = {}

        def enough() -> bool:
            pid = int(page(self.server)["pid"])
            served[pid] = served.get(pid, 0) + 1
            return sum(n >= 2 for n in served.values()) >= self.processes

        wait_for(enough, 20, f"{self.processes} processes answering twice")
        return set(served)

    def seen(self, path: Path) -> None:
        """Wait until every process has seen `path` change; the log tail if not."""
        try:
            seen(self.server, path, self.processes)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.server.error_log()[-6000:]}") from None

    def edit(self, relpath: str, old: str, new: str) -> Path:
        path = self.site.root / relpath
        text = path.read_text()
        assert old in text, (relpath, old)
        return self.site.write(relpath, text.replace(old, new))

    def served(self, relpath: str, old: str, new: str, **expect: str) -> None:
        """A save every process has seen: the next request is new code, from a new pid
        under daemon mode (one pid in embedded mode), and the log says why."""
        before = self.warm()
        acted = self.server.error_log().count(ACTED)
        path = self.edit(relpath, old, new)
        self.seen(path)
        shown = page(self.server)
        assert {k: shown[k] for k in expect} == expect, shown
        if self.server.mode == "daemon":
            assert int(shown["pid"]) not in before, (before, shown)
        else:
            assert {int(shown["pid"])} == before
        log = self.server.wait_for_log(ACTED, count=acted + 1)
        assert f"{path} (1 file) changed" in log

    def reset(self, relpath: str, old: str, new: str, **expect: str) -> None:
        """A template save every process has seen: the next request, and every process
        after it, serve it from the same pids (their template caches emptied, no restart
        and no reload), and the log says so for each."""
        self.emptied(lambda: self.edit(relpath, old, new), EMPTIED, expect)

    def recompile(self, relpath: str, messages: dict[str, str], **expect: str) -> None:
        """A catalog compiled again (written in place, as msgfmt writes it): served as
        a template save is, with the catalogs emptied instead."""
        def write() -> Path:
            path = self.site.root / relpath
            path.write_bytes(mo_bytes(messages))
            return path

        self.emptied(write, RECOMPILED, expect)

    def emptied(self, write: Callable[[], Path], said: str, expect: dict[str, str]) -> None:
        before = self.warm()
        count = self.server.error_log().count(said)
        path = write()
        self.seen(path)
        answered: set[int] = set()

        def all_new() -> bool:
            shown = page(self.server)
            assert {k: shown[k] for k in expect} == expect, shown
            assert int(shown["pid"]) in before, (before, shown)
            answered.add(int(shown["pid"]))
            return answered == before

        wait_for(all_new, 20, "every process serving the saved file")
        log = self.server.wait_for_log(said, count=count + len(before))
        assert f"{path} (1 file){said}" in log

    def kept(
        self, relpath: str, saves: tuple[str, str, str], blame: str,
        kept: dict[str, str], fixed: dict[str, str],
    ) -> None:
        """A broken save (`saves`: old text, broken, fixed): the next request is the old
        code (`kept`) from the same processes and the log names the file and line; then
        the fix is served (`fixed`)."""
        old, broken, fix = saves
        before = self.warm()
        count = self.server.error_log().count(KEPT)
        path = self.edit(relpath, old, broken)
        self.seen(path)
        shown = page(self.server)
        assert int(shown["pid"]) in before and {k: shown[k] for k in kept} == kept, shown
        log = self.server.wait_for_log(KEPT, count=count + 1)
        assert f"{KEPT}{blame}" in log, log[-3000:]
        self.edit(relpath, broken, fix)  # already pending: wait for it to be served
        wait_for(lambda: page(self.server).items() >= fixed.items(), 10, "the fix served")



def errors_then_fixes(steps: Steps, site: ApacheSite, views: tuple[str, int],
                      settings: tuple[str, int]) -> None:
    """A syntax error, then an import-time error in the views (line `views[1]`), then a
    NameError in the settings: each keeps the old code serving, logged with its file and
    line, until its fix is served."""
    (view_file, view_line), (settings_file, settings_line) = views, settings
    steps.kept(view_file, ('VERSION = "2"', 'VERSION = "3"\ndef (', 'VERSION = "3"'),
               f"{site.root}/{view_file}:{view_line}: SyntaxError", {"view": "2"},
               {"view": "3"})
    steps.kept(view_file, ('VERSION = "3"\n', BROKEN % 4, 'VERSION = "4"\n'),
               f"{site.root}/{view_file}:{view_line}: NameError", {"view": "3"},
               {"view": "4"})
    steps.kept(settings_file, ('"salut"', "undefined_name", '"hola"'),
               f"{site.root}/{settings_file}:{settings_line}: NameError",
               {"greeting": "salut"}, {"greeting": "hola"})


def test_django_daemon_mode_serves_views_templates_settings_and_keeps_broken_saves_out(
    example: Callable[[str], ApacheSite], apache: Callable[..., Apache]
) -> None:
    """The Django example, preloaded in 2 daemon processes with DEBUG off: a view, a
    template (no `watch=`), a setting; then a syntax error and an import-time error in
    views and in settings, each kept out with the file and line logged, then fixed."""
    site = example("django")
    server = apache(site, processes=2, threads=5)
    log = server.wait_for_log("watching for code changes")
    assert f"templates {site.root}/polls/templates" in log
    steps = Steps(server, site, processes=2)
    steps.served("polls/views.py", 'VERSION = "1"', 'VERSION = "2"', view="2")
    steps.reset("polls/templates/polls/index.html", '"template">1', '"template">2',
                template="2", view="2")
    steps.recompile(CATALOG, {"Welcome": "Salut"}, welcome="Salut", template="2")
    steps.served("mysite/settings.py", 'GREETING = "hello"', 'GREETING = "salut"',
                 greeting="salut")
    errors_then_fixes(steps, site, ("polls/views.py", 7), ("mysite/settings.py", 13))


def test_django_saved_views_not_imported_yet_are_logged_with_file_and_line(
    example: Callable[[str], ApacheSite], apache: Callable[..., Apache]
) -> None:
    """A daemon that has served nothing has not imported views.py: a syntax error saved
    there gets a line from the middleware naming file and line before Django fails."""
    site = example("django")
    server = apache(site, processes=1, threads=5, ready_path="/probe")
    path = site.write("polls/views.py", (site.root / "polls/views.py").read_text() + "def (\n")
    response = server.get("/")
    assert response.status == 500
    log = server.wait_for_log("nothing has imported it yet")
    assert f"{path}:12: SyntaxError" in log


def test_django_under_8_clients_while_views_are_saved_serves_no_old_code(
    example: Callable[[str], ApacheSite], apache: Callable[..., Apache]
) -> None:
    """8 clients browse while views.py is saved 5 times: no request that starts 0.25 s
    after a save has completed gets an older view, and none fails."""
    site = example("django")
    server = apache(site, processes=2, threads=8)
    steps = Steps(server, site, processes=2)
    steps.warm()
    saves: list[tuple[float, int]] = [(0.0, 1)]  # (completed at, version)
    answers: list[tuple[float, int, int]] = []  # (started at, status, version)
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            started = time.monotonic()
            response: Response = server.get("/")
            fields = dict(FIELD.findall(response.text))
            answers.append((started, response.status, int(fields.get("view", 0))))

    def newest_served(version: int) -> Callable[[], bool]:
        return lambda: any(a[2] == version for a in answers[-8:])

    def required(started: float) -> int:
        return max(v for t, v in saves if t + GRACE <= started)

    clients = [threading.Thread(target=client) for _ in range(8)]
    for thread in clients:
        thread.start()
    try:
        for version in range(2, 7):
            steps.edit("polls/views.py", f'VERSION = "{version - 1}"', f'VERSION = "{version}"')
            saves.append((time.monotonic(), version))
            wait_for(newest_served(version), 15, f"version {version} served")
    finally:
        stop.set()
        for thread in clients:
            thread.join()
    failed = [a for a in answers if a[1] != 200]
    assert failed == [], f"{failed[:5]}\n{server.error_log()[-6000:]}"
    stale = [(a, required(a[0])) for a in answers if a[2] < required(a[0])]
    assert stale == [], stale[:5]
    assert len(answers) > 40


def test_flask_daemon_mode_serves_views_templates_config_and_keeps_broken_saves_out(
    example: Callable[[str], ApacheSite], apache: Callable[..., Apache]
) -> None:
    """The Flask example (an app factory, a blueprint with its own templates, debug
    off), preloaded in 2 daemon processes: the same steps as for Django."""
    site = example("flask")
    server = apache(site, processes=2, threads=5)
    log = server.wait_for_log("watching for code changes")
    assert f"{site.root}/hello/pages/templates" in log and f"{site.root}/hello/templates" in log
    run_flask_steps(Steps(server, site, processes=2), site)


def test_flask_embedded_mode_reloads_in_process(
    example: Callable[[str], ApacheSite], apache: Callable[..., Apache]
) -> None:
    """The same steps in embedded mode: one Apache child reloads in process."""
    site = example("flask")
    server = apache(site, mode="embedded", threads=5)
    run_flask_steps(Steps(server, site, processes=1), site)
    assert "reloaded in" in server.error_log()


def run_flask_steps(steps: Steps, site: ApacheSite) -> None:
    views, config = "hello/pages/views.py", "hello/config.py"
    steps.served(views, 'VERSION = "1"', 'VERSION = "2"', view="2")
    steps.reset("hello/pages/templates/pages/index.html", '"template">1', '"template">2',
                template="2")
    steps.reset("hello/templates/base.html", '"layout">1', '"layout">2', layout="2")
    steps.served(config, 'GREETING = "hello"', 'GREETING = "salut"', greeting="salut")
    errors_then_fixes(steps, site, (views, 6), (config, 1))


def test_django_embedded_mode_reloads_views_templates_and_settings_in_process(
    example: Callable[[str], ApacheSite], apache: Callable[..., Apache]
) -> None:
    """What an in-process reload of a Django project does: views, templates and
    settings are served anew (their caches reset); the startup log says what is not."""
    site = example("django")
    server = apache(site, mode="embedded", threads=5)
    steps = Steps(server, site, processes=1)
    steps.served("polls/views.py", 'VERSION = "1"', 'VERSION = "2"', view="2")
    steps.reset("polls/templates/polls/index.html", '"template">1', '"template">2',
                template="2")
    steps.recompile(CATALOG, {"Welcome": "Salut"}, welcome="Salut", template="2")
    steps.served("mysite/settings.py", 'GREETING = "hello"', 'GREETING = "salut"',
                 greeting="salut", view="2", template="2", welcome="Salut")
    assert "not models or INSTALLED_APPS" in server.error_log()
