"""The live tag's scanner on the Python the servers run (Debian's, under mod_wsgi).

The unit tests run on the test environment's Python; mod_wsgi runs the distribution's,
which may be an older point release with bugs of its own in `re` (Debian 12's 3.11.2
misreads possessive groups). The same pages must get the tag at the same place there.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from apache import DEFAULT_VENV, apache_available
from pages import CLOSING
from support import require

pytestmark = pytest.mark.integration

SCAN = """
import json, sys
from reload_middleware.live.markup import closing
pages = [bytes.fromhex(page) for page in json.load(sys.stdin)]
print(json.dumps([sys.version.split()[0], [closing(page) for page in pages]]))
"""


def test_the_scanner_puts_the_tag_alike_on_the_server_s_python() -> None:
    require(apache_available())
    pages = [page for page, _ in CLOSING]
    expected = [None if marked is None else marked.index(b"|") for _, marked in CLOSING]
    done = subprocess.run([str(DEFAULT_VENV / "bin" / "python"), "-c", SCAN],
                          input=json.dumps([p.hex() for p in pages]), capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    version, found = json.loads(done.stdout)
    wrong = [(page, at, want) for page, at, want in zip(pages, found, expected, strict=True)
             if at != want]
    assert not wrong, f"Python {version}: {wrong}"
