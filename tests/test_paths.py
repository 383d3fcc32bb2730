"""Which files: exclude patterns, watch roots, module files and relative paths."""

from __future__ import annotations

import os
import sys
import sysconfig
import types
from pathlib import Path
from typing import Any

import pytest

import reload_middleware
from reload_middleware.paths import (
    DEFAULT_EXCLUDES,
    ProjectModules,
    RealPaths,
    excluded,
    is_library,
    library_roots,
    merge_roots,
    module_file,
    project_modules,
    resolve,
    stdlib_like,
    under,
    watch_root,
)

DEFAULT_EXCLUDED = [
    # (id, path)
    ("vim-swap", "/srv/app/myproject/.views.py.swp"),
    ("vim-swap-2nd", "/srv/app/myproject/.views.py.swo"),
    ("vim-swap-3rd", "/srv/app/myproject/.views.py.swx"),
    ("vim-4913", "/srv/app/myproject/4913"),
    ("vim-backup", "/srv/app/myproject/views.py~"),
    ("emacs-lock", "/srv/app/myproject/.#views.py"),
    ("emacs-numbered-backup", "/srv/app/myproject/views.py.~1~"),
    ("emacs-autosave", "/srv/app/myproject/#views.py#"),
    ("jetbrains-tmp", "/srv/app/myproject/views.py___jb_tmp___"),
    ("jetbrains-old", "/srv/app/myproject/views.py___jb_old___"),
    ("pycache-dir", "/srv/app/myproject/__pycache__"),
    ("pycache-file", "/srv/app/myproject/__pycache__/views.cpython-311.pyc"),
    ("pyc", "/srv/app/myproject/views.pyc"),
    ("pyo", "/srv/app/myproject/views.pyo"),
    ("git-dir", "/srv/app/.git"),
    ("git-file", "/srv/app/.git/index"),
    ("git-deep", "/srv/app/.git/refs/heads/main"),
    ("hg", "/srv/app/.hg/dirstate"),
    ("svn", "/srv/app/.svn/wc.db"),
    ("bzr", "/srv/app/.bzr/checkout/dirstate"),
    ("kate", "/srv/app/myproject/.views.py.kate-swp"),
    ("tmp", "/srv/app/myproject/views.py.tmp"),
    ("libreoffice-lock", "/srv/app/docs/.~lock.notes.odt#"),
    ("ds-store", "/srv/app/.DS_Store"),
    ("thumbs", "/srv/app/static/Thumbs.db"),
]
DEFAULT_KEPT = [
    ("module", "/srv/app/myproject/views.py"),
    ("package", "/srv/app/myproject/__init__.py"),
    ("template", "/srv/app/templates/index.html"),
    ("gitignore", "/srv/app/.gitignore"),
    ("github-dir", "/srv/app/.github/workflows/ci.yml"),
    ("swp-in-name", "/srv/app/myproject/swp.py"),
    ("4913-prefix", "/srv/app/myproject/4913.py"),
    ("tilde-inside", "/srv/app/myproject/a~b.py"),
    ("hash-inside", "/srv/app/myproject/notes#1.txt"),
    ("tmp-dir", "/srv/app/tmp/views.py"),
    ("pycache-lookalike", "/srv/app/myproject/pycache.py"),
    ("script", "/srv/app/app.wsgi"),
]


@pytest.mark.parametrize(
    "path", [p for _, p in DEFAULT_EXCLUDED], ids=[i for i, _ in DEFAULT_EXCLUDED]
)
def test_default_excludes_ignore_editor_and_tool_files(path: str) -> None:
    """Swap, backup, bytecode and VCS files written while editing never count as a change."""
    assert excluded(path, DEFAULT_EXCLUDES)


@pytest.mark.parametrize("path", [p for _, p in DEFAULT_KEPT], ids=[i for i, _ in DEFAULT_KEPT])
def test_default_excludes_keep_real_files(path: str) -> None:
    """Saving a module, template or script still counts, even with look-alike names."""
    assert not excluded(path, DEFAULT_EXCLUDES)


USER_PATTERNS = [
    # (id, path, patterns, excluded)
    ("name-glob", "/srv/app/logs/error.log", ("*.log",), True),
    ("name-glob-not-suffix", "/srv/app/error.log.py", ("*.log",), False),
    ("name-is-dir", "/srv/app/node_modules/lib/index.js", ("node_modules",), True),
    ("name-exact-file", "/srv/app/settings_local.py", ("settings_local.py",), True),
    ("name-exact-other-file", "/srv/app/settings.py", ("settings_local.py",), False),
    ("name-glob-matches-a-dir", "/srv/app/media.cache/img.png", ("*.cache",), True),
    ("slash-whole-path", "/srv/app/blog/migrations/0001_initial.py", ("*/migrations/*",), True),
    ("slash-whole-path-miss", "/srv/app/blog/models.py", ("*/migrations/*",), False),
    ("slash-absolute", "/srv/app/settings_local.py", ("/srv/app/settings_local.py",), True),
    ("slash-absolute-other-dir", "/srv/other/settings_local.py",
     ("/srv/app/settings_local.py",), False),
    ("slash-relative-does-not-match", "/srv/app/blog/migrations/0001.py", ("migrations/*",),
     False),
    ("slash-not-a-name-pattern", "/srv/app/migrations", ("*/migrations",), True),
    ("case-sensitive", "/srv/app/ERROR.LOG", ("*.log",), False),
    ("several-one-matches", "/srv/app/x.bak", ("*.log", "*.bak"), True),
    ("no-patterns", "/srv/app/.views.py.swp", (), False),
]


@pytest.mark.parametrize(
    ("path", "within", "expected"),
    [
        ("/home/me/site.tmp/app/views.py", "/home/me/site.tmp/app", False),
        ("/home/me/site.tmp/app/cache.tmp", "/home/me/site.tmp/app", True),
        ("/home/me/site.tmp/app/.git/index", "/home/me/site.tmp/app", True),
        ("/home/me/site.tmp/app/views.py", "", True),
    ],
    ids=["parent-dir-ignored", "own-name", "dir-below-root", "no-root-every-part"],
)
def test_directories_above_the_watched_root_never_exclude(
    path: str, within: str, expected: bool
) -> None:
    """A project kept under a directory named like `*.tmp` still reloads."""
    assert excluded(path, DEFAULT_EXCLUDES, within) is expected


@pytest.mark.parametrize(
    ("path", "patterns", "expected"),
    [row[1:] for row in USER_PATTERNS],
    ids=[row[0] for row in USER_PATTERNS],
)
def test_user_exclude_patterns(path: str, patterns: tuple[str, ...], expected: bool) -> None:
    """`exclude="*.log"` matches a name anywhere; a pattern with '/' must match the whole path."""
    assert excluded(path, patterns) is expected


WATCH_ROOTS = [
    # (id, module file, module name, (directory, recursive))
    ("top-level-module", "/srv/app/settings.py", "settings", ("/srv/app", False)),
    ("mod_wsgi-script", "/srv/myproject/app.wsgi", "_mod_wsgi_5d2a6fd2c6b3a3f1",
     ("/srv/myproject", False)),
    ("package", "/srv/app/myproject/__init__.py", "myproject", ("/srv/app/myproject", True)),
    ("module-in-package", "/srv/app/myproject/views.py", "myproject.views",
     ("/srv/app/myproject", True)),
    ("nested-module", "/srv/app/myproject/api/v1/views.py", "myproject.api.v1.views",
     ("/srv/app/myproject", True)),
    ("subpackage", "/srv/app/myproject/api/__init__.py", "myproject.api",
     ("/srv/app/myproject", True)),
    ("extension-module", "/srv/app/myproject/_fast.cpython-311-x86_64-linux-gnu.so",
     "myproject._fast", ("/srv/app/myproject", True)),
    ("name-not-the-directory", "/srv/app/lib/views.py", "myproject.views", ("/srv/app/lib", False)),
    ("name-half-matches", "/srv/app/myproject/api/views.py", "myproject.v1.views",
     ("/srv/app/myproject/api", False)),
    ("package-name-not-the-directory", "/srv/app/src/__init__.py", "myproject",
     ("/srv/app/src", False)),
    ("package-at-filesystem-root", "/myproject/__init__.py", "myproject", ("/myproject", True)),
]


@pytest.mark.parametrize(
    ("path", "name", "expected"),
    [row[1:] for row in WATCH_ROOTS],
    ids=[row[0] for row in WATCH_ROOTS],
)
def test_watch_root(path: str, name: str, expected: tuple[str, bool]) -> None:
    """A package is watched once from its top directory; a loose module only in its own dir."""
    assert watch_root(path, name) == expected


MERGES: list[tuple[str, list[tuple[str, bool]], dict[str, bool]]] = [
    ("empty", [], {}),
    ("recursive-swallows-below",
     [("/srv/app", False), ("/srv/app/pkg", True), ("/srv/app/pkg/sub", True)],
     {"/srv/app": False, "/srv/app/pkg": True}),
    ("recursive-swallows-non-recursive", [("/srv/app/pkg", True), ("/srv/app/pkg/sub", False)],
     {"/srv/app/pkg": True}),
    ("same-dir-recursive-wins", [("/srv/app", False), ("/srv/app", True)], {"/srv/app": True}),
    ("same-dir-twice", [("/srv/app", False), ("/srv/app", False)], {"/srv/app": False}),
    ("non-recursive-keeps-children", [("/srv/app", False), ("/srv/app/pkg", False)],
     {"/srv/app": False, "/srv/app/pkg": False}),
    ("sibling-with-common-prefix", [("/srv/app", True), ("/srv/app2", False)],
     {"/srv/app": True, "/srv/app2": False}),
    ("order-does-not-matter", [("/srv/app/pkg/sub", True), ("/srv/app/pkg", True)],
     {"/srv/app/pkg": True}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("roots", "expected"), [row[1:] for row in MERGES], ids=[row[0] for row in MERGES]
)
def test_merge_roots(roots: list[tuple[str, bool]], expected: dict[str, bool]) -> None:
    """Directories below a recursive watch get no watch of their own, so kernel watches stay few."""
    assert merge_roots(roots) == expected


UNDER = [
    ("same", "/srv/app", ["/srv/app"], True),
    ("inside", "/srv/app/x.py", ["/srv/app"], True),
    ("deep-inside", "/srv/app/a/b/c.py", ["/srv/app"], True),
    ("common-prefix", "/srv/app2/x.py", ["/srv/app"], False),
    ("trailing-slash-root", "/srv/app/x.py", ["/srv/app/"], True),
    ("filesystem-root", "/x.py", ["/"], True),
    ("parent", "/srv", ["/srv/app"], False),
    ("second-root", "/opt/lib/x.py", ["/srv/app", "/opt/lib"], True),
    ("no-roots", "/srv/app", [], False),
]


@pytest.mark.parametrize(
    ("path", "roots", "expected"), [row[1:] for row in UNDER], ids=[row[0] for row in UNDER]
)
def test_under(path: str, roots: list[str], expected: bool) -> None:
    """`/srv/app2` is not inside `/srv/app`: a shared prefix is not a parent directory."""
    assert under(path, roots) is expected


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
    """With the default `modules=project` only the app's own files are tracked."""
    found = project_modules(sample_modules(tree), "project", [str(tree / "lib")])
    project = tree / "project"
    assert found == {
        "app": str(project / "app.py"),
        "myproject": str(project / "myproject" / "__init__.py"),
        "myproject.views": str(project / "myproject" / "views.py"),
        "legacy": str(project / "legacy.py"),
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
    for name in ("stat", "lstat", "realpath"):
        monkeypatch.setattr(os if name != "realpath" else os.path, name, _no_call)
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


def test_resolve_relative_to_the_script(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`watch=["templates"]` means the templates directory beside the script, wherever run from."""
    base = str(tree / "project")
    monkeypatch.chdir(tree / "lib")
    monkeypatch.setenv("HOME", str(tree / "etc"))
    (tree / "project" / "current").symlink_to(tree / "project" / "myproject")
    assert resolve(
        ["templates", "./a/./b/", "../shared", str(tree / "lib"), "~/conf", "current/views.py"],
        base,
    ) == (
        str(tree / "project" / "templates"),
        str(tree / "project" / "a" / "b"),
        str(tree / "shared"),
        str(tree / "lib"),
        str(tree / "etc" / "conf"),
        str(tree / "project" / "myproject" / "views.py"),
    )
    assert resolve([], base) == ()


def test_library_roots_cover_the_interpreter_and_this_package() -> None:
    """The stdlib, site-packages and the middleware itself never count as project code."""
    roots = library_roots()
    assert os.path.realpath(sysconfig.get_paths()["stdlib"]) in roots
    assert os.path.realpath(sysconfig.get_paths()["purelib"]) in roots
    assert os.path.dirname(os.path.realpath(reload_middleware.__file__)) in roots
    assert under(os.path.realpath(os.__file__), roots)
    assert all(root == os.path.realpath(root) for root in roots)


def test_stdlib_like(tmp_path: Path) -> None:
    """The interpreter's prefix and `/` are never watched recursively; a project dir may be."""
    assert stdlib_like(os.path.realpath(sys.prefix))
    assert stdlib_like(os.path.realpath(sys.base_prefix))
    assert stdlib_like(os.sep)
    assert not stdlib_like(str(tmp_path.resolve()))


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
