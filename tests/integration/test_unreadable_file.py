"""An unreadable .py in a watched directory, through a real waitress process.

The file must be unreadable to the server, so as root the server runs as `nobody`
(setpriv); without root or setpriv the test is skipped, and fails under CI=true.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from apache import free_port, wait_for
from procs import answer, make_project, running

pytestmark = pytest.mark.integration


@pytest.fixture
def shared_project() -> Iterator[tuple[Path, list[str]]]:
    """A project the server's user can read and write, and the argv prefix to run as it."""
    root = Path(tempfile.mkdtemp(prefix="rm-unreadable-"))
    try:
        make_project(root)
        prefix: list[str] = []
        if os.geteuid() == 0:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                if os.environ.get("CI") == "true":
                    pytest.fail("setpriv is needed to run the server as another user")
                pytest.skip("root without setpriv: every file is readable to the server")
            prefix = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
            for path in [root, *root.rglob("*")]:
                os.chown(path, 65534, 65534)
        root.chmod(0o755)
        yield root, prefix
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_an_unreadable_file_never_blocks_a_reload(
    shared_project: tuple[Path, list[str]],
) -> None:
    """A never-imported .py the server cannot read: reported once, and edits still load."""
    root, prefix = shared_project
    port = free_port()

    def serving(version: str) -> bool:
        return bool(answer(port)["version"] == version)

    argv = [*prefix, sys.executable, "run_waitress.py", str(port)]
    with running(argv, root, port, {"watch": "webapp"}) as printed:
        assert answer(port)["version"] == "1"
        plugin = root / "webapp" / "plugin.py"
        plugin.write_text("SECRET = 1\n")
        plugin.chmod(0o000)
        if not prefix and os.access(plugin, os.R_OK):
            pytest.skip("this user reads every file")
        for version in ("2", "3"):
            (root / "webapp" / "views.py").write_text(f"VERSION = {version!r}\n")
            wait_for(functools.partial(serving, version), 10, f"version {version}")
    output = printed[0]
    assert output.count(f"cannot read {plugin}") == 1, output
    assert "PermissionError" not in output
