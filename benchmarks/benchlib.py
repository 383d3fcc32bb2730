"""Shared by the benchmark scripts (parent side only): the generated application,
fresh child processes, statistics and tables.

The measured processes never import this module: a helper module imported into a
child would be project code there, and ReloadMiddleware would watch this directory too.

>>> app = generate_app(Path(tempfile.mkdtemp()), 1000)        # doctest: +SKIP
>>> result = run_child("watchers.py", ["latency", "reload_middleware", str(app.root)])
"""

from __future__ import annotations

import compileall
import importlib.metadata
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SIZES = (100, 1_000, 5_000)
PER_PACKAGE = 50  # modules per package directory: an __init__ and 49 more
DAY_NS = 86_400 * 10**9

# The script module: what a WSGI server imports. It builds the middleware at module
# level, as a mod_wsgi script does, and notes when (for the arming figure).
SCRIPT = '''\
"""The measured application: {n} generated modules behind ReloadMiddleware."""
import time

import {top}
from {first} import m01 as target
from reload_middleware import ReloadMiddleware


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [target.VERSION.encode()]


BUILD_STARTED = time.perf_counter()
application = ReloadMiddleware(hello)
BUILD_ENDED = time.perf_counter()
'''
MODULE = '''\
"""Generated module {k}."""
VERSION = "v0"


def handler_{k}(value):
    return value + {k}
'''


@dataclass(frozen=True)
class App:
    """A generated application: `root` goes on sys.path; `script` builds the middleware."""

    root: Path
    n: int
    packages: tuple[str, ...]  # dotted names of the package directories
    top: tuple[str, ...]  # top-level names the script imports

    @property
    def script(self) -> Path:
        return self.root / "benchapp.py"

    @property
    def target(self) -> Path:
        """The module whose VERSION the app answers with."""
        return self.root.joinpath(*self.packages[0].split("."), "m01.py")

    def modules(self) -> list[Path]:
        """Every generated module file but the packages' __init__."""
        return sorted(self.root.glob("**/m[0-9]*.py"))


def generate_app(
    root: Path, n: int, *, flat: bool = False, venv_dirs: int = 0, tops: int = 0
) -> App:
    """Write N modules in N/50 package directories under `root`, compiled, a day old.

    Packages are `genapp.pNNN` (one top-level package), or top-level `pNNN` with `flat`,
    or with `tops` spread evenly over that many top-level packages `tNN` (`tNN.pNNN`, a
    monorepo's shape). Each top-level package's `__init__` imports its packages.
    `venv_dirs`: also a virtualenv-like tree of that many directories in `root/venv`.
    """
    count = max(1, n // PER_PACKAGE)
    if tops and (flat or not 0 < tops <= count):
        raise ValueError(f"tops: 1 to {count} package directories, and not with flat")
    if flat:
        names = [f"p{i:03d}" for i in range(count)]
    else:
        # Consecutive package directories share a top: 60 over 30 gives t00.p000, t00.p001...
        names = [f"{f't{i * tops // count:02d}' if tops else 'genapp'}.p{i:03d}"
                 for i in range(count)]
    files: dict[Path, str] = {}
    for parent in dict.fromkeys(name.split(".")[0] for name in names if "." in name):
        files[root / parent / "__init__.py"] = "from . import " + ", ".join(
            name.split(".")[1] for name in names if name.split(".")[0] == parent
        ) + "\n"
    k = 0
    for name in names:
        package = root.joinpath(*name.split("."))
        members = [f"m{j:02d}" for j in range(1, PER_PACKAGE)]
        files[package / "__init__.py"] = f"from . import {', '.join(members)}\n"
        for member in members:
            k += 1
            files[package / f"{member}.py"] = MODULE.format(k=k)
    top = tuple(names) if flat else tuple(dict.fromkeys(name.split(".")[0] for name in names))
    files[root / "benchapp.py"] = SCRIPT.format(n=n, top=", ".join(top), first=names[0])
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if venv_dirs:
        fake_virtualenv(root / "venv", venv_dirs)
    backdate(root)
    # After backdating: a .pyc holds its source's mtime, and one that differs is ignored.
    compileall.compile_dir(str(root), quiet=2, workers=1)
    return App(root, n, tuple(names), top)


def fake_virtualenv(venv: Path, dirs: int) -> None:
    """A virtualenv's shape: `dirs` directories of packages under lib/.../site-packages."""
    site = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("include-system-site-packages = false\n")
    for i in range(dirs // 3):
        for sub in ("", "sub", "__pycache__"):
            package = site / f"lib{i:04d}" / sub
            package.mkdir(parents=True, exist_ok=True)
            (package / "__init__.py").write_text("")


def backdate(root: Path) -> None:
    """Files a day old, like a checkout older than the server process that loads it."""
    old = time.time_ns() - DAY_NS
    for path in root.rglob("*"):
        os.utime(path, ns=(old, old), follow_symlinks=False)


def run_child(script: str, args: Sequence[str], timeout: float = 300) -> dict[str, Any]:
    """Run `benchmarks/SCRIPT ARGS` in a fresh interpreter; its last stdout line is JSON."""
    done = subprocess.run(
        [sys.executable, str(HERE / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"{script} {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def start_child(script: str, args: Sequence[str]) -> subprocess.Popen[str]:
    """Start a child like `run_child`, for children measured side by side; see `collect`."""
    return subprocess.Popen(
        [sys.executable, str(HERE / script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )


def collect(child: subprocess.Popen[str], timeout: float = 300) -> dict[str, Any]:
    """The JSON result of a child started with `start_child`."""
    out, err = child.communicate(timeout=timeout)
    if child.returncode != 0 or not out.strip():
        raise RuntimeError(f"{child.args!r} failed:\n{err[-3000:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def p95(values: Iterable[float]) -> float:
    """The 95th percentile, nearest rank (of 40 values: the 38th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def table(title: str, rows: Mapping[str, Mapping[int, str]], sizes: Sequence[int]) -> None:
    """Print one figure: a row per contender, a column per N."""
    first = max(len(name) for name in rows) + 2
    width = max([14, *(len(cell) + 2 for row in rows.values() for cell in row.values())])
    print(f"\n{title}")
    print(" " * first + "".join(f"{f'N={n:,}':>{width}}" for n in sizes))
    for name, cells in rows.items():
        print(f"{name:<{first}}" + "".join(f"{cells.get(n, '-'):>{width}}" for n in sizes))


def verdict(met: bool, target: str, detail: str = "") -> None:
    """Say plainly whether reload_middleware meets a target."""
    print(f"{'target met' if met else 'TARGET MISSED'}: {target}{f' ({detail})' if detail else ''}")


def machine() -> str:
    """The line each script prints first: where and with what it ran."""
    versions = []
    for name in ("watchdog", "hupper", "werkzeug"):
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} missing")
    load = os.getloadavg()[0]
    return (
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {', '.join(versions)}, load average {load:.2f}"
    )
