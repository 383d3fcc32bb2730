"""Translation catalogs: which directories are watched, and what a recompiled `.mo` does.

The decisions are tested on stand-ins shaped like Django's objects; real Django runs in
a child interpreter (its settings are once per process), real Flask-Babel in process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace as NS
from typing import Any

import pytest

from helpers import DAY, MakeProject, Until, call
from reload_middleware.integrations import templates, translations

sys.path.insert(0, str(Path(__file__).resolve().parent / "integration"))
from catalogs import mo_bytes

ROOT = "/srv/app"


def django(*, i18n: bool = True, locale_paths: tuple[str, ...] = (f"{ROOT}/locale",)
           ) -> dict[str, Any]:
    settings = NS(configured=True, TEMPLATES=[], USE_I18N=i18n, LOCALE_PATHS=locale_paths)
    configs = [NS(path=f"{ROOT}/polls"), NS(path="/venv/site-packages/django/contrib/admin")]
    registry = NS(apps_ready=True, get_app_configs=lambda: configs)
    return {"django.conf": NS(settings=settings), "django.apps": NS(apps=registry)}


def test_django_locale_paths_and_apps_locale_directories_are_watched_and_resettable() -> None:
    """LOCALE_PATHS and each installed app's existing `locale/`, not installed apps':
    watched, resettable, and known as catalogs (so a save there empties catalogs only)."""
    existing = {f"{ROOT}/locale", f"{ROOT}/polls/locale",
                "/venv/site-packages/django/contrib/admin/locale"}
    found = templates.find(django(), None, isdir=existing.__contains__,
                           library=lambda path: path.startswith("/venv/"))
    assert found.dirs == found.resettable == found.catalogs == (
        f"{ROOT}/locale", f"{ROOT}/polls/locale")
    assert found.kinds([f"{ROOT}/polls/locale/fr/LC_MESSAGES/django.mo"]) == {"catalogs"}
    assert found.describe() == f"none; translations {ROOT}/locale, {ROOT}/polls/locale"


def test_no_catalogs_when_i18n_is_off_or_django_is_not_configured() -> None:
    off = templates.find(django(i18n=False), None, isdir=lambda path: True)
    assert off.dirs == () and "django: USE_I18N off, no catalogs" in off.notes
    unread = django()
    unread["django.conf"].settings.configured = False
    assert list(translations.find(unread, {}, [], isdir=lambda path: True)) == []


def test_a_change_of_templates_and_catalogs_empties_both() -> None:
    found = templates.Found((f"{ROOT}/templates", f"{ROOT}/locale"), (),
                            (f"{ROOT}/templates", f"{ROOT}/locale"), (f"{ROOT}/locale",))
    assert found.kinds([f"{ROOT}/templates/a.html", f"{ROOT}/locale/x.mo"]) == {
        "templates", "catalogs"}
    assert found.kinds([f"{ROOT}/templates/a.html"]) == {"templates"}
    assert found.describe() == f"{ROOT}/templates; translations {ROOT}/locale"


CHILD = """
import os, sys, threading
root, catalogs = sys.argv[1], sys.argv[2:]
sys.path.insert(0, root)
os.environ["DJANGO_SETTINGS_MODULE"] = "site_settings"
import django
django.setup()
from django.utils import translation
from django.utils.translation import trans_real
from reload_middleware.integrations import framework_caches, templates
found = templates.watched("auto", None, ())
def compile(lang, hex_catalog):
    path = os.path.join(root, "locale", lang, "LC_MESSAGES", "django.mo")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(bytes.fromhex(hex_catalog))
def in_fr():
    translation.activate("fr")  # as LocaleMiddleware does at each request
    return translation.gettext("Welcome")
# A request in flight on another thread: it has activated French and waits.
started, go, seen = threading.Event(), threading.Event(), []
def request():
    translation.activate("fr")
    seen.append(translation.gettext("Welcome"))
    started.set()
    go.wait()
    seen.append(translation.get_language() + ":" + translation.gettext("Welcome"))
worker = threading.Thread(target=request)
worker.start()
started.wait()
first = in_fr()
compile("fr", catalogs[1])
cached = in_fr()
known_before = trans_real.check_for_language("tlh")
compile("tlh", catalogs[2])
templates.reset(None, (), templates=False, catalogs=True)
after = in_fr()
go.set()
worker.join()
translation.activate("tlh")
klingon = translation.gettext("Welcome") if trans_real.check_for_language("tlh") else "-"
compile("fr", catalogs[0])
framework_caches.reset(sys.modules)  # an in-process reload's reset reads them too
print(found.catalogs == (os.path.join(root, "locale"),), first, cached, after,
      *seen, known_before, klingon, in_fr())
"""


def test_a_django_catalog_reset_reads_catalogs_anew_and_keeps_requests_in_flight(
    tmp_path: Path,
) -> None:
    """Real Django: a recompiled `.mo` is stale until the reset and new after it, for the
    next request that activates its language; a request in flight keeps its language and
    the catalogs it started with; a language whose first catalog is new is found; and an
    in-process reload's reset reads catalogs anew too."""
    root = tmp_path.resolve()
    (root / "site_settings.py").write_text(textwrap.dedent(f"""\
        LOCALE_PATHS = [{str(root / "locale")!r}]
        LANGUAGES = [("en", "English"), ("fr", "French"), ("tlh", "Klingon")]
        """))
    catalogs = [mo_bytes({"Welcome": text}).hex() for text in ("Bienvenue", "Salut", "nuqneH")]
    (root / "locale/fr/LC_MESSAGES").mkdir(parents=True)
    (root / "locale/fr/LC_MESSAGES/django.mo").write_bytes(bytes.fromhex(catalogs[0]))
    done = subprocess.run([sys.executable, "-c", CHILD, str(root), *catalogs],
                          capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "Bienvenue", "Bienvenue", "Salut", "Bienvenue",
                                   "fr:Bienvenue", "False", "nuqneH", "Bienvenue"]


FLASK = """\
from flask import Flask
from flask_babel import Babel, gettext
from reload_middleware import ReloadMiddleware

app = Flask(__name__)
Babel(app, locale_selector=lambda: "fr")


@app.route("/")
def index():
    return gettext("Welcome")


application = ReloadMiddleware(app, **{options!r})
"""


def test_a_recompiled_flask_babel_catalog_is_served_on_the_next_request(
    project: MakeProject, tmp_path: Path, until: Until, caplog: pytest.LogCaptureFixture
) -> None:
    """Flask-Babel's `translations` directory is watched with no `watch=`, and a
    recompiled catalog is served on the next request by the same app object: its
    domain's cache is emptied, nothing is reloaded, and the log says so."""
    catalog = tmp_path.resolve() / "translations/fr/LC_MESSAGES/messages.mo"
    catalog.parent.mkdir(parents=True)
    catalog.write_bytes(mo_bytes({"Welcome": "Bienvenue"}))
    old = time.time_ns() - DAY
    os.utime(catalog, ns=(old, old))
    made = project(FLASK)
    app, served = made.application, made.application.app
    assert call(app).body == b"Bienvenue"
    assert f"translations {tmp_path.resolve() / 'translations'}" in caplog.text
    temp = catalog.with_name("messages.mo.tmp")  # compilers write, then rename
    temp.write_bytes(mo_bytes({"Welcome": "Salut"}))
    os.replace(temp, catalog)
    until(lambda: call(app).body == b"Salut")
    assert app.app is served
    assert f"{catalog} (1 file) changed: translation catalogs emptied" in caplog.text
    assert "changed: reload" not in caplog.text
