"""The benchmarks' generated application is what their README says it is."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import benchlib


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> benchlib.App:
    return benchlib.generate_app(tmp_path_factory.mktemp("bench"), 100)


def test_generated_app_has_n_modules_in_packages_of_50(app: benchlib.App) -> None:
    """N modules, counting each package's __init__, 50 to a directory."""
    modules = list((app.root / "genapp").rglob("p*/*.py"))
    assert len(modules) == 100
    assert {len(list(p.glob("*.py"))) for p in (app.root / "genapp").glob("p*")} == {50}


def test_generated_files_are_a_day_old_and_their_bytecode_is_valid(app: benchlib.App) -> None:
    """Imports load the .pyc, not the source: each records its source's mtime and size."""
    sources = list(app.root.rglob("*.py"))
    for source in sources:
        st = source.stat()
        assert st.st_mtime_ns < (time.time_ns() - benchlib.DAY_NS // 2)
        header = Path(importlib.util.cache_from_source(str(source))).read_bytes()[8:16]
        assert int.from_bytes(header[:4], "little") == int(st.st_mtime)
        assert int.from_bytes(header[4:], "little") == st.st_size & 0xFFFFFFFF
    assert len(sources) == 102  # the N modules, genapp/__init__ and the script


def test_tops_spread_the_package_directories_over_top_level_packages(tmp_path: Path) -> None:
    """A monorepo's shape (big_app.py): consecutive package directories share a top, and
    the script imports every top."""
    app = benchlib.generate_app(tmp_path, 300, tops=3)
    assert app.top == ("t00", "t01", "t02")
    assert app.packages[2:4] == ("t01.p002", "t01.p003")
    assert (tmp_path / "t01" / "__init__.py").read_text() == "from . import p002, p003\n"
    assert "import t00, t01, t02\n" in app.script.read_text()
    assert app.target == tmp_path / "t00" / "p000" / "m01.py"
    with pytest.raises(ValueError, match="tops"):
        benchlib.generate_app(tmp_path / "flat", 300, flat=True, tops=3)
