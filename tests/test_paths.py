"""Which files: exclude patterns, watch roots, module files and relative paths."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from reload_middleware.watching import paths
from reload_middleware.watching.paths import (
    DEFAULT_EXCLUDES,
    excluded,
    files_below,
    merge_roots,
    module_roots,
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


def test_resolve_relative_to_the_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`watch=["templates"]` means the templates directory beside the script, wherever run from."""
    tree = tmp_path.resolve()
    for directory in ("project/myproject", "lib", "etc"):
        (tree / directory).mkdir(parents=True)
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



def test_stdlib_like(tmp_path: Path) -> None:
    """The interpreter's prefix and `/` are never watched recursively; a project dir may be."""
    assert stdlib_like(os.path.realpath(sys.prefix))
    assert stdlib_like(os.path.realpath(sys.base_prefix))
    assert stdlib_like(os.sep)
    assert not stdlib_like(str(tmp_path.resolve()))


def test_module_roots_one_schedule_per_package() -> None:
    """Tracked files map to watch roots once per directory and package; merged, a package
    is one recursive watch and a top-level module or other file watches its directory."""
    files = {
        "/srv/app/pkg/__init__.py": "pkg",
        "/srv/app/pkg/views.py": "pkg.views",
        "/srv/app/pkg/sub/models.py": "pkg.sub.models",
        "/srv/app/app.py": "app",
        "/srv/app/settings.ini": "",
    }
    roots = module_roots(files)
    assert len(roots) == 4  # pkg, pkg.sub, the top-level module, the other file
    assert merge_roots(roots) == {"/srv/app": False, "/srv/app/pkg": True}


def test_files_below_skip_excluded_names(tmp_path: Path) -> None:
    """A watch directory's files, without VCS internals, bytecode or editor files."""
    for name in ("a.html", "sub/b.html", "sub/__pycache__/b.pyc", ".git/HEAD", "c.html.swp"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    found = files_below([str(tmp_path)], DEFAULT_EXCLUDES)
    assert sorted(found) == [str(tmp_path / "a.html"), str(tmp_path / "sub" / "b.html")]


@pytest.mark.parametrize(
    "raw, point",
    [
        (b"/mnt/plain", "/mnt/plain"),
        (b"/mnt/caf\xc3\xa9", "/mnt/caf\u00e9"),
        (b"/mnt/my\\040disk", "/mnt/my disk"),
        (b"/mnt/tab\\011and\\012newline", "/mnt/tab\tand\nnewline"),
        (b"/mnt/back\\134slash", "/mnt/back\\slash"),
        (b"/mnt/caf\xc3\xa9\\040bar", "/mnt/caf\u00e9 bar"),
        (b"/mnt/latin1-\xe9", os.fsdecode(b"/mnt/latin1-\xe9")),
        (b"/mnt/not\\8escape", "/mnt/not\\8escape"),
    ],
    ids=["ascii", "utf-8", "space", "tab-newline", "backslash", "utf-8-and-space",
         "undecodable-byte", "not-octal"],
)
def test_parse_mounts_decodes_only_octal_escapes(raw: bytes, point: str) -> None:
    """Mount points come back as the filesystem names them, non-ASCII included."""
    text = os.fsdecode(b"server:/export " + raw + b" nfs4 rw 0 0\n")
    assert paths.parse_mounts(text) == [(point, "nfs4")]


def test_a_non_ascii_nfs_mount_is_found_as_remote() -> None:
    """A file under an NFS mount at /mnt/café is on a remote filesystem: it is polled."""
    text = os.fsdecode(b"/dev/sda1 / ext4 rw 0 0\nsrv:/x /mnt/caf\xc3\xa9 nfs4 rw 0 0\n")
    kind = paths.filesystem_of("/mnt/caf\u00e9/app/views.py", paths.parse_mounts(text))
    assert paths.remote(kind)
