"""Every example in the README and the documentation pages works: Python runs, Apache
parses, ini files load, commands exist; the configuration reference is the code's.

The pages are read as the site shows them: a `--8<-- "FILE"` line stands for FILE, as
the snippets extension includes it (CHANGELOG.md, SECURITY.md, benchmarks/README.md).
"""

from __future__ import annotations

import dataclasses
import doctest
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from reload_middleware import ReloadMiddleware, config
from reload_middleware.operations.cli import parser

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "docs"))
import hooks  # the site's build-time hook: docs/hooks.py

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
README_LIMIT = 12_000  # characters: what it is, the quick start, links into docs/
PAGES = [README, *sorted(DOCS.glob("*.md"))]
SNIPPET = re.compile(r'^--8<-- "([^"]+)"$', re.M)


def shown(page: Path) -> str:
    """A page's Markdown with its snippet lines replaced by the files they include."""
    return SNIPPET.sub(lambda m: (ROOT / m[1]).read_text(), page.read_text())


def blocks(kind: str) -> list[tuple[str, str]]:
    """(page name, text) of every ```KIND block of every page, in page order."""
    found = []
    for page in PAGES:
        for language, text in re.findall(r"```(\w+)\n(.*?)```", shown(page), re.S):
            if language == kind:
                found.append((page.name, text))
    return found


def example_id(example: tuple[str, str]) -> str:
    page, text = example
    return f"{page}:{text.splitlines()[0][:40]}"


def hello(environ: object, start_response: object) -> list[bytes]:
    return [b"hello"]


@pytest.fixture
def myproject(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stand-in project the examples name, and no watching: nothing starts."""
    module = types.ModuleType("myproject")
    module.make_app = lambda *args, **kwargs: hello  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "myproject", module)
    monkeypatch.setenv("RELOAD_TOKEN", "a-token-of-twenty-chars")
    monkeypatch.setenv("RELOAD_MIDDLEWARE_ENABLED", "off")


@pytest.mark.usefixtures("myproject")
@pytest.mark.parametrize("example", blocks("python"), ids=example_id)
def test_python_examples_run(example: tuple[str, str], tmp_path: Path) -> None:
    """Each Python example executes, with a stand-in project where it names one."""
    source = example[1]
    script = tmp_path / "app.wsgi"
    script.write_text(source)
    # The names an example takes from around it: your app, the application above it.
    namespace = {"__name__": "readme_example", "__file__": str(script), "app": hello,
                 "application": ReloadMiddleware(hello)}
    exec(compile(source, str(script), "exec"), namespace)
    assert isinstance(namespace["application"], ReloadMiddleware)


@pytest.mark.parametrize("example", blocks("py"), ids=example_id)
def test_framework_project_examples_compile(example: tuple[str, str]) -> None:
    """A `py` example needs a real framework project around it (Django's wsgi.py): it
    must at least compile. The examples/ projects it stands for run in the server tests."""
    compile(example[1], example[0], "exec")


@pytest.mark.usefixtures("myproject")
@pytest.mark.parametrize("example", blocks("ini"), ids=example_id)
def test_ini_examples_load(example: tuple[str, str], tmp_path: Path) -> None:
    """Each PasteDeploy example loads with `loadapp`, its filter our middleware."""
    from paste.deploy import loadapp

    ini = tmp_path / "development.ini"
    ini.write_text(example[1])
    before = set(sys.modules)
    try:
        app = loadapp(f"config:{ini}")
    finally:  # the stand-in module of the ini file, made for in-process reloads
        for name in set(sys.modules) - before:
            del sys.modules[name]
    assert isinstance(app, ReloadMiddleware)


def test_shell_examples_name_real_commands_and_options() -> None:
    """`make` targets exist, `reload-middleware` lines parse, variables are real options."""
    makefile = (ROOT / "Makefile").read_text()
    known = {config.os_key(name) for name in config.PARSERS}
    for page, text in blocks("sh"):
        for line in text.splitlines():
            command = line.split("#")[0].strip()
            if command.startswith("make "):
                assert re.search(rf"^{command.split()[1]}:", makefile, re.M), (page, command)
            if command.startswith("reload-middleware "):
                parser().parse_args(command.split()[1:])
            for variable in re.findall(r"RELOAD_MIDDLEWARE_\w+", command):
                assert variable in known, (page, variable)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_option_a_page_names_is_real(page: Path) -> None:
    """An OS variable or `SetEnv` key named anywhere in the text is one the code reads
    (`NAME` stands for any)."""
    text = shown(page)
    variables = set(re.findall(r"RELOAD_MIDDLEWARE_([A-Z]+)\b", text)) - {"NAME"}
    keys = set(re.findall(r"[Ss]et[Ee]nv reload_middleware\.(\w+)", text)) - {"NAME"}
    assert {v.lower() for v in variables} <= set(config.PARSERS), variables
    assert keys <= set(config.PARSERS), keys


def test_apache_examples_parse(tmp_path: Path) -> None:
    """Apache itself accepts every configuration example (apache2 -t)."""
    sys.path.insert(0, str(Path(__file__).parent / "integration"))
    try:
        import apache
        from support import require
    finally:
        sys.path.pop(0)
    require(apache.apache_available(apache.DEFAULT_VENV))
    site = apache.prepare_run_dir()
    (site / "app.wsgi").write_text("application = None\n")
    (site / "config").mkdir()
    for page, example in blocks("apache"):
        run = apache.prepare_run_dir()
        server = apache.Apache(apache.DEFAULT_VENV, run, script=site / "app.wsgi", python_path=site)
        common = server.config().split("WSGIDaemonProcess")[0].split("WSGIRestrictEmbedded")[0]
        text = example.replace("/srv/venv", str(apache.DEFAULT_VENV))
        text = text.replace("/srv/myproject", str(site))
        (run / "httpd.conf").write_text(common + text)
        result = subprocess.run(
            [str(apache.APACHE), "-t", "-f", str(run / "httpd.conf")],
            capture_output=True, text=True, check=False,
        )
        assert result.returncode == 0, f"{page}: {result.stderr}\n{text}"


def test_the_configuration_reference_is_the_code_s() -> None:
    """The reference the site shows lists exactly the options the code reads, in its
    order, each with its description, keys, text form and default."""
    assert list(config.DESCRIPTIONS) == list(config.PARSERS)
    assert [f.name for f in dataclasses.fields(config.Settings)] == list(config.PARSERS)
    page = hooks.render((DOCS / "configuration.md").read_text())
    assert re.findall(r"^### `(\w+)`$", page, re.M) == list(config.PARSERS)
    assert re.findall(r"^\| \[`(\w+)`\]\(#\1\) \|", page, re.M) == list(config.PARSERS)
    for name, description in config.DESCRIPTIONS.items():
        entry = page.split(f"### `{name}`\n", 1)[1].split("\n### ", 1)[0]
        assert description in entry
        assert f"`{config.environ_key(name)}`" in entry
        assert f"`{config.os_key(name)}`" in entry
        assert config.accepted(name) in entry
    assert "`4913`" in page  # the built-in exclude list, rendered from paths.py


def test_every_marker_is_rendered() -> None:
    """No page keeps a marker the hook does not know (it would show as nothing)."""
    for page in PAGES:
        rendered = hooks.render(page.read_text())
        assert not re.findall(r"^<!-- [\w-]+ -->$", rendered, re.M), page.name


def test_hook_examples() -> None:
    """The `>>>` examples of docs/hooks.py run and show what they say."""
    result = doctest.testmod(hooks, report=False)
    assert result.attempted and not result.failed


def test_readme_stays_short() -> None:
    """The README says what it is and links into the documentation; the manual lives
    in docs/."""
    assert len(README.read_text()) <= README_LIMIT


def test_readme_links_lead_somewhere() -> None:
    """Each relative link of the README names a file of the repository (PyPI shows the
    README without them; GitHub follows them into docs/)."""
    text = README.read_text()
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    local = [target for target in targets if "://" not in target]
    assert local
    for target in local:
        assert (ROOT / target).exists(), target
