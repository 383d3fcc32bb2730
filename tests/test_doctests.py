"""Every `>>>` example in the package's docstrings runs and shows what it says."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import reload_middleware

# The package as it is installed, not the files under src/: tox tests the built wheel,
# and pytest's --doctest-modules would import src/ beside it (an import path mismatch).
# `__main__` is left out because importing it runs the command line.
MODULES = [
    "reload_middleware",
    *sorted(
        info.name
        for info in pkgutil.walk_packages(reload_middleware.__path__, "reload_middleware.")
        if not info.name.endswith(".__main__")
    ),
]


def docstrings() -> list[doctest.DocTest]:
    """The docstrings with examples, one test each, in the order of the modules."""
    finder = doctest.DocTestFinder()
    found: list[doctest.DocTest] = []
    for name in MODULES:
        found += [test for test in finder.find(importlib.import_module(name)) if test.examples]
    return found


def test_every_module_is_searched() -> None:
    """The list of modules is the package's, subpackages included, so a new module's
    examples run too."""
    assert "reload_middleware.watching.paths" in MODULES
    assert len(MODULES) > 40


@pytest.mark.parametrize("test", docstrings(), ids=lambda test: test.name)
def test_examples(test: doctest.DocTest) -> None:
    """The examples of one docstring run and print what the docstring shows."""
    skipped = [example.options.get(doctest.SKIP, False) for example in test.examples]
    assert all(skipped) or not any(skipped), "+SKIP goes on every line of an example or none"
    if all(skipped):
        pytest.skip("every example of this docstring needs a real server or files")
    report: list[str] = []
    runner = doctest.DocTestRunner(verbose=False)
    result = runner.run(test, out=report.append)
    assert result.failed == 0, "".join(report)
