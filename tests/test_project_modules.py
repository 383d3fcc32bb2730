"""Which modules are project code: their files, real paths and the installed packages."""

from __future__ import annotations

import os
import sysconfig
import types
from pathlib import Path
from typing import Any

import pytest

import reload_middleware
from reload_middleware.watching.paths import under
from reload_middleware.watching.project_modules import (
    ProjectModules,
    RealPaths,
    is_library,
    library_roots,
    module_file,
    project_modules,
)


def write(path: Path, text: str = "") -> Path:
    """Create `path` (and its directories) holding `text`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def module(name: str, file: object) -> types.ModuleType:
    """A module object whose `__file__` is `file`."""
    fake = types.ModuleType(name)
    fake.__file__ = file  # type: ignore[assignment]
    return fake


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A project, a site-packages and an /etc-like directory under a resolved tmp_path."""
    root = tmp_path.resolve()
    write(root / "project" / "app.py")
    write(root / "project" / "myproject" / "__init__.py")
    write(root / "project" / "myproject" / "views.py")
    write(root / "project" / "legacy.py")
    write(root / "project" / "main_script.py")
    write(root / "project" / "reload_middleware" / "__init__.py")
    write(root / "project" / "reload_middleware" / "config.py")
    write(root / "project" / "reload_middleware_extras.py")
    write(root / "lib" / "site-packages" / "thirdparty.py")
    write(root / "etc" / "sitecustomize.py")
    (root / "lib" / "sitecustomize.py").symlink_to(root / "etc" / "sitecustomize.py")
    return root


def sample_modules(root: Path) -> dict[str, Any]:
    """A sys.modules-like mapping covering every kind of entry."""
    project = root / "project"
    return {
        "app": module("app", str(project / "app.py")),
        "myproject": module("myproject", str(project / "myproject" / "__init__.py")),
        "myproject.views": module("myproject.views", str(project / "myproject" / "views.py")),
        "legacy": module("legacy", str(project / "legacy.pyc")),
        "__main__": module("__main__", str(project / "main_script.py")),
        "reload_middleware": module(
            "reload_middleware", str(project / "reload_middleware" / "__init__.py")
        ),
        "reload_middleware.config": module(
            "reload_middleware.config", str(project / "reload_middleware" / "config.py")
        ),
        "thirdparty": module("thirdparty", str(root / "lib" / "site-packages" / "thirdparty.py")),
        "sitecustomize": module("sitecustomize", str(root / "lib" / "sitecustomize.py")),
        "builtin": types.ModuleType("builtin"),
        "namespace": module("namespace", None),
        "deleted": module("deleted", str(project / "deleted.py")),
        "blocked": None,
    }


def test_project_modules_scope_project(tree: Path) -> None:
    """With the default `modules=project` only the app's own files are tracked, a module
    whose file was deleted since its import too (its code is served, and comes back)."""
    found = project_modules(sample_modules(tree), "project", [str(tree / "lib")])
    project = tree / "project"
    assert found == {
        "app": str(project / "app.py"),
        "myproject": str(project / "myproject" / "__init__.py"),
        "myproject.views": str(project / "myproject" / "views.py"),
        "legacy": str(project / "legacy.py"),
        "deleted": str(project / "deleted.py"),
    }


def test_project_modules_scope_all(tree: Path) -> None:
    """With `modules=all` installed packages are tracked too, by their real file."""
    found = project_modules(sample_modules(tree), "all", [str(tree / "lib")])
    assert found["thirdparty"] == str(tree / "lib" / "site-packages" / "thirdparty.py")
    assert found["sitecustomize"] == str(tree / "etc" / "sitecustomize.py")
    assert found["app"] == str(tree / "project" / "app.py")
    assert len(found) == 6


def test_project_modules_scope_off(tree: Path) -> None:
    """With `modules=off` no module file is tracked, only the watch paths."""
    assert project_modules(sample_modules(tree), "off", [str(tree / "lib")]) == {}


@pytest.mark.parametrize("scope", ["project", "all"])
def test_project_modules_skip_main_and_this_package(tree: Path, scope: str) -> None:
    """The server's `__main__` and the middleware's own modules are never tracked."""
    names = set(project_modules(sample_modules(tree), scope, [str(tree / "lib")]))
    assert "__main__" not in names
    assert not any(name.startswith("reload_middleware") for name in names)


def test_project_module_with_a_similar_name_is_tracked(tree: Path) -> None:
    """A project module named `reload_middleware_extras` is tracked like any other."""
    path = str(tree / "project" / "reload_middleware_extras.py")
    modules = {"reload_middleware_extras": module("reload_middleware_extras", path)}
    assert project_modules(modules, "project", [str(tree / "lib")]) == {
        "reload_middleware_extras": path
    }


def test_project_modules_cached_agree_with_one_pass(tree: Path) -> None:
    """The cached classifier gives what one pass gives, and every name of a file."""
    modules = sample_modules(tree)
    modules["app_again"] = module("app_again", modules["app"].__file__)
    library = [str(tree / "lib")]
    project = ProjectModules(library)
    assert project(modules) == project_modules(modules, "project", library)
    assert project(modules)["app_again"] == project(modules)["app"]


def test_project_modules_second_pass_makes_no_system_call(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Names already classified under the same file cost a lookup (a reload's pass)."""
    project = ProjectModules([str(tree / "lib")])
    first = project(sample_modules(tree))
    for name in ("stat", "lstat", "scandir"):
        monkeypatch.setattr(os, name, _no_call)
    monkeypatch.setattr(os.path, "realpath", _no_call)
    assert project(sample_modules(tree)) == first


def _no_call(*args: object, **kwargs: object) -> None:
    raise AssertionError("a system call on a known module")


def test_project_modules_look_again_at_a_new_file_or_after_forget(tree: Path) -> None:
    """A name imported from another file is classified again; `forget()` resolves all anew."""
    project = ProjectModules([str(tree / "lib")])
    modules = sample_modules(tree)
    assert "app" in project(modules)
    modules["app"] = module("app", str(tree / "lib" / "site-packages" / "thirdparty.py"))
    assert "app" not in project(modules)
    link = tree / "current"
    link.symlink_to(tree / "project")
    linked = {"app": module("app", str(link / "app.py"))}
    assert project(linked) == {"app": str(tree / "project" / "app.py")}
    (tree / "release2").mkdir()
    write(tree / "release2" / "app.py")
    link.unlink()
    link.symlink_to(tree / "release2")
    assert project(linked) == {"app": str(tree / "project" / "app.py")}  # as first resolved
    project.forget()
    assert project(linked) == {"app": str(tree / "release2" / "app.py")}


def test_is_library_checks_the_imported_path_and_the_real_path(tree: Path) -> None:
    """A stdlib module linked to a file elsewhere (Debian's sitecustomize) is not project code."""
    library = [str(tree / "lib")]
    assert is_library(sample_modules(tree)["sitecustomize"], library)
    assert is_library(sample_modules(tree)["thirdparty"], library)
    assert not is_library(sample_modules(tree)["app"], library)
    linked = tree / "project" / "linked_lib.py"
    linked.symlink_to(tree / "lib" / "site-packages" / "thirdparty.py")
    assert is_library(module("linked_lib", str(linked)), library)


def test_module_file(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A module's source is found from `__file__`, even a `.pyc` or a relative path."""
    project = tree / "project"
    assert module_file(module("app", str(project / "app.py"))) == str(project / "app.py")
    assert module_file(module("legacy", str(project / "legacy.pyc"))) == str(project / "legacy.py")
    assert module_file(module("legacy", str(project / "legacy.pyo"))) == str(project / "legacy.py")
    monkeypatch.chdir(project)
    assert module_file(module("app", "app.py")) == str(project / "app.py")


@pytest.mark.parametrize(
    "file",
    [None, "", 42, "/nonexistent/dir/x.py", "compiled_only.pyc"],
    ids=["none", "empty", "not-a-string", "missing", "pyc-without-source"],
)
def test_module_file_without_a_source(tree: Path, file: object) -> None:
    """Built-in, namespace and deleted modules have no file to track."""
    if file == "compiled_only.pyc":
        file = str(write(tree / "project" / "compiled_only.pyc"))
    assert module_file(module("x", file)) is None


def test_module_file_real_or_as_imported(tree: Path) -> None:
    """The real path is what is tracked; the imported path is what tells a library apart."""
    linked = tree / "lib" / "sitecustomize.py"
    fake = module("sitecustomize", str(linked))
    assert module_file(fake) == str(tree / "etc" / "sitecustomize.py")
    assert module_file(fake, real=False) == str(linked)


def test_library_roots_cover_the_interpreter_and_this_package() -> None:
    """The stdlib, site-packages and the middleware itself never count as project code."""
    roots = library_roots()
    assert os.path.realpath(sysconfig.get_paths()["stdlib"]) in roots
    assert os.path.realpath(sysconfig.get_paths()["purelib"]) in roots
    assert os.path.dirname(os.path.realpath(reload_middleware.__file__)) in roots
    assert under(os.path.realpath(os.__file__), roots)
    assert all(root == os.path.realpath(root) for root in roots)


def test_real_paths_match_realpath(tmp_path: Path) -> None:
    """RealPaths gives what os.path.realpath gives a file, through linked dirs and files."""
    real = tmp_path / "release"
    real.mkdir()
    (real / "views.py").write_text("")
    (tmp_path / "elsewhere.py").write_text("")
    (real / "linked.py").symlink_to(tmp_path / "elsewhere.py")
    (real / "dangling.py").symlink_to(tmp_path / "gone.py")
    (real / "pkg").mkdir()
    (tmp_path / "current").symlink_to(real)
    resolve = RealPaths()
    for name in ("views.py", "linked.py", "dangling.py", "missing.py", "pkg"):
        path = str(tmp_path / "current" / name)
        expected = os.path.realpath(path) if os.path.isfile(path) else None
        assert resolve.file(path) == expected, name
