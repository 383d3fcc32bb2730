"""The finder that notes each module file as the import system is about to load it."""

from __future__ import annotations

import importlib
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import MakeProject, call
from reload_middleware.watching import import_finder


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[import_finder.Recorder]:
    """A recorder of its own, first on sys.meta_path, and tmp_path importable."""
    fresh = import_finder.Recorder()
    monkeypatch.syspath_prepend(str(tmp_path))
    saved = set(sys.modules)
    yield fresh
    if fresh in sys.meta_path:
        sys.meta_path.remove(fresh)
    for name in set(sys.modules) - saved:
        del sys.modules[name]


def test_an_import_is_noted_before_the_module_runs(
    recorder: import_finder.Recorder, tmp_path: Path
) -> None:
    """The file, the module name and a moment before the read are noted, then the flag."""
    seen: list[dict[str, tuple[str, int]]] = []
    pokes: list[int] = []
    inbox = recorder.subscribe("script", poke=lambda: pokes.append(1))
    module = tmp_path / "lazy_noted.py"
    module.write_text("import sys\nNOTED = dict(sys.meta_path[0]"
                      ".inboxes['script']._loaded)\n")
    before = time.time_ns()
    loaded = importlib.import_module("lazy_noted")
    seen.append(loaded.NOTED)
    assert str(module) in seen[0]  # noted before its own code ran
    name, at = inbox.drain()[str(module)]
    assert name == "lazy_noted" and at <= before
    assert pokes
    assert inbox.drain() == {}


def test_a_failed_import_is_noted_so_its_fix_is_a_change(
    recorder: import_finder.Recorder, tmp_path: Path
) -> None:
    """A module that raises while it loads is in no one's sys.modules, but is noted."""
    inbox = recorder.subscribe("script", poke=lambda: None)
    broken = tmp_path / "lazy_broken.py"
    broken.write_text("raise RuntimeError('not yet')\n")
    with pytest.raises(RuntimeError):
        importlib.import_module("lazy_broken")
    assert str(broken) in inbox.drain()


def test_modules_that_do_not_exist_and_builtins_are_not_noted(
    recorder: import_finder.Recorder,
) -> None:
    """Optional imports that fail to find anything, and modules with no file, note nothing."""
    inbox = recorder.subscribe("script", poke=lambda: None)
    with pytest.raises(ImportError):
        importlib.import_module("no_such_module_anywhere_1234")
    sys.modules.pop("_string", None)
    importlib.import_module("_string")  # built in: no file
    assert "_string" not in {name for name, _ in inbox.drain().values()}


def test_the_spec_is_the_one_the_finders_behind_give(
    recorder: import_finder.Recorder, tmp_path: Path
) -> None:
    """The finder hands on the spec the path finder makes, so imports work as before."""
    recorder.subscribe("script", poke=lambda: None)
    (tmp_path / "pkg_spec").mkdir()
    (tmp_path / "pkg_spec" / "__init__.py").write_text("from . import inner\n")
    (tmp_path / "pkg_spec" / "inner.py").write_text("X = 1\n")
    package = importlib.import_module("pkg_spec")
    assert package.inner.X == 1
    assert package.__spec__ is not None
    assert package.__spec__.submodule_search_locations == [str(tmp_path / "pkg_spec")]


def test_the_earliest_moment_is_kept_and_every_inbox_hears(
    recorder: import_finder.Recorder,
) -> None:
    """One file noted twice keeps its first moment; each script's inbox gets its own note."""
    first = recorder.subscribe("a", poke=lambda: None)
    second = recorder.subscribe("b", poke=lambda: None)
    first.note("/srv/app/views.py", "views", 5)
    first.note("/srv/app/views.py", "views", 9)
    assert first.drain() == {"/srv/app/views.py": ("views", 5)}
    assert second.drain() == {}


def test_the_finder_goes_with_the_last_inbox(recorder: import_finder.Recorder) -> None:
    """Installed by the first subscription, removed with the last: nothing at import time."""
    assert recorder not in sys.meta_path
    recorder.subscribe("a", poke=lambda: None)
    recorder.subscribe("b", poke=lambda: None)
    assert sys.meta_path[0] is recorder
    recorder.unsubscribe("a")
    assert recorder in sys.meta_path
    recorder.unsubscribe("b")
    assert recorder not in sys.meta_path


def test_imports_from_many_threads_are_all_noted(
    recorder: import_finder.Recorder, tmp_path: Path
) -> None:
    """Eight threads importing eight modules at once: every file is noted."""
    inbox = recorder.subscribe("script", poke=lambda: None)
    for n in range(8):
        (tmp_path / f"lazy_thread_{n}.py").write_text(f"N = {n}\n")
    threads = [threading.Thread(target=importlib.import_module, args=(f"lazy_thread_{n}",))
               for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {str(tmp_path / f"lazy_thread_{n}.py") for n in range(8)} <= set(inbox.drain())


def test_switching_reloading_off_takes_the_finder_away(
    project: MakeProject,
) -> None:
    """A middleware turned off by its first request's environ notes no more imports."""
    made = project()
    assert any(isinstance(f, import_finder.Recorder) for f in sys.meta_path)
    call(made.application, extra={"reload_middleware.enabled": "off"})
    assert not any(isinstance(f, import_finder.Recorder) for f in sys.meta_path)
