"""Every example in the README works: Python runs, Apache parses, commands exist."""

from __future__ import annotations

import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from reload_middleware import ReloadMiddleware, config
from reload_middleware.cli import parser

README = (Path(__file__).parent.parent / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, re.S)


def blocks(kind: str) -> list[str]:
    return [text for language, text in BLOCKS if language == kind]


def hello(environ: object, start_response: object) -> list[bytes]:
    return [b"hello"]


@pytest.mark.parametrize("source", blocks("python"), ids=lambda s: s.splitlines()[0][:40])
def test_python_examples_run(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each Python example executes, with a stand-in project where it names one."""
    myproject = types.ModuleType("myproject")
    myproject.make_app = lambda: hello  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "myproject", myproject)
    monkeypatch.setenv("RELOAD_TOKEN", "a-token-of-twenty-chars")
    monkeypatch.setenv("RELOAD_MIDDLEWARE_ENABLED", "off")  # nothing starts watching
    script = tmp_path / "app.wsgi"
    script.write_text(source)
    # The names an example takes from around it: your app, the application above it.
    namespace = {"__name__": "readme_example", "__file__": str(script), "app": hello,
                 "application": ReloadMiddleware(hello)}
    exec(compile(source, str(script), "exec"), namespace)
    assert isinstance(namespace["application"], ReloadMiddleware)


def test_the_option_table_is_the_code_s() -> None:
    """The README's configuration table lists exactly the options the code reads."""
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names = re.findall(r"^\| (\w+) \|", section, re.M)
    assert [n for n in names if n != "name"] == list(config.PARSERS)


def test_shell_examples_name_real_commands_and_options() -> None:
    """`make` targets exist, `reload-middleware` lines parse, variables are real options."""
    makefile = (Path(__file__).parent.parent / "Makefile").read_text()
    known = {f"RELOAD_MIDDLEWARE_{name.upper()}" for name in config.PARSERS}
    for text in blocks("sh"):
        for line in text.splitlines():
            command = line.split("#")[0].strip()
            if command.startswith("make "):
                assert re.search(rf"^{command.split()[1]}:", makefile, re.M), command
            if command.startswith("reload-middleware "):
                parser().parse_args(command.split()[1:])
            for variable in re.findall(r"RELOAD_MIDDLEWARE_\w+", command):
                assert variable in known, variable


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
    for example in blocks("apache"):
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
        assert result.returncode == 0, result.stderr + "\n" + text
