# The two commands: `make demo` serves the example with reloading, `make test` runs the
# tests. Both make their own virtual environments; nothing else is needed but Python.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The Apache tests need an interpreter that Apache's user (www-data) can read, and
# mod_wsgi built against it: Debian's python3 in a world-readable venv. The frameworks
# the framework tests serve are installed on every run (a no-op once they are there).
APACHE_PYTHON ?= /usr/bin/python3
APACHE_VENV ?= /tmp/reload-middleware-apache-venv
PORT ?= 8000

.PHONY: demo test lint unit dist docs apache-venv clean bench schedules trixie trixie-if-root

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,lint,docs]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/reload-middleware serve examples/app.wsgi --port $(PORT)

# Skipped (with the reason) where Apache's development files are missing.
apache-venv:
	@if command -v apxs >/dev/null && [ -x $(APACHE_PYTHON) ]; then \
	  set -e; \
	  [ -x $(APACHE_VENV)/bin/mod_wsgi-express ] || { \
	    $(APACHE_PYTHON) -m venv $(APACHE_VENV); \
	    $(APACHE_VENV)/bin/python -m pip install -q --upgrade pip; \
	    $(APACHE_VENV)/bin/python -m pip install -q mod_wsgi 'watchdog>=7,<8'; }; \
	  $(APACHE_VENV)/bin/python -m pip install -q 'pyramid>=2,<3' 'pastedeploy>=3,<4' \
	    'django>=4.2' 'flask>=3' 'jinja2>=3'; \
	  $(APACHE_VENV)/bin/python -m pip install -q --force-reinstall --no-deps . ; \
	else echo "apache-venv: no apxs or $(APACHE_PYTHON): the Apache tests will be skipped"; fi

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests benchmarks docs
	$(BIN)/mypy
	$(BIN)/mypy tests/integration

# The package as users get it: an sdist and a wheel that pass twine's checks.
dist: $(BIN)/.installed
	rm -rf dist
	$(BIN)/python -m build --outdir dist . >/dev/null
	$(BIN)/twine check --strict dist/*
	$(BIN)/python -c "import sys, zipfile, glob; names = zipfile.ZipFile(glob.glob('dist/*.whl')[0]).namelist(); sys.exit(next((f + ' missing from the wheel' for f in ('py.typed', 'live/live.js') if 'reload_middleware/' + f not in names), 0))"

# The documentation site (mkdocs.yml, docs/) into build/site. --strict: a warning (a
# broken link or anchor, a page left out of the nav) fails the build. Nothing is fetched:
# the theme, its icons and the search come from pip, and the theme's web fonts are off.
# NO_MKDOCS_2_WARNING quiets a notice the theme prints about its own future on every build.
docs: $(BIN)/.installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

unit: $(BIN)/.installed
	$(BIN)/pytest -m "not integration"

# The server schedule checker runs one known seed here, so that a change is judged on
# the same schedule every time; `make schedules` draws new ones (TEST_SCHEDULE_SEED= for
# a new one here too). The in-process checker runs 5 schedules here, 1 in `make unit`.
TEST_SCHEDULE_SEED ?= 1010
TEST_INPROCESS_SEEDS ?= 5
test: $(BIN)/.installed apache-venv lint docs dist
	APACHE_TEST_VENV=$(APACHE_VENV) RM_TEST_SCHEDULE_SEED=$(TEST_SCHEDULE_SEED) \
	  RM_SCHEDULE_SEEDS=$(TEST_INPROCESS_SEEDS) $(BIN)/pytest
	@$(MAKE) --no-print-directory trixie-if-root

# Debian 13 (trixie): Python 3.13 and Debian's own Apache and mod_wsgi 5.0.x, in a root
# made with debootstrap and kept between runs (as root): the unit suite and the Apache
# tests that matter most for mod_wsgi users (.ci/trixie lists them). `make test` runs it
# as root, and says why not otherwise; with CI=true, not running it is a failure.
trixie:
	RM_TEST_SCHEDULE_SEED=$(TEST_SCHEDULE_SEED) bash .ci/trixie

trixie-if-root:
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory trixie; \
	elif [ "$$CI" = true ]; then echo "trixie: needs root (chroot), and CI runs as root" >&2; exit 1; \
	else echo "trixie: skipped, it needs root (sudo make trixie)"; fi

# Both schedule checkers at length. In one process: SCHEDULE_SEEDS schedules of about
# SCHEDULE_SECONDS each (50 of 20 s: about 25 minutes on 2 cores). Against real servers:
# RM_SCHEDULE_RUNS seeded schedules of RM_SCHEDULE_STEPS steps of about 2 s per
# configuration, where `make test` runs one of 8 (about 13 minutes as set here). A failure
# prints its seed; RM_SCHEDULE_SEED=<seed> replays it.
SCHEDULE_SEEDS ?= 50
SCHEDULE_SECONDS ?= 20
RM_SCHEDULE_RUNS ?= 4
RM_SCHEDULE_STEPS ?= 12
schedules: $(BIN)/.installed apache-venv
	RM_SCHEDULE_SEEDS=$(SCHEDULE_SEEDS) RM_SCHEDULE_SECONDS=$(SCHEDULE_SECONDS) \
	  $(BIN)/pytest tests/test_inprocess.py -p no:cacheprovider -q
	APACHE_TEST_VENV=$(APACHE_VENV) RM_SCHEDULE_RUNS=$(RM_SCHEDULE_RUNS) \
	  RM_SCHEDULE_STEPS=$(RM_SCHEDULE_STEPS) RM_SCHEDULE_SEED=$(RM_SCHEDULE_SEED) \
	  $(BIN)/pytest tests/integration/test_schedules.py -m integration -s

clean:
	rm -rf $(VENV) build dist src/*.egg-info

# The benchmarks of benchmarks/README.md, side by side with hupper, werkzeug, the
# classic polling monitor and Django's runserver with django-browser-reload (the `bench`
# extra); about 7 minutes on 2 cores.
bench: $(BIN)/.installed apache-venv
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/detection_latency.py
	$(BIN)/python benchmarks/idle_cpu.py
	$(BIN)/python benchmarks/watch_setup.py
	$(BIN)/python benchmarks/request_overhead.py
	$(BIN)/python benchmarks/save_to_new_code.py
	$(BIN)/python benchmarks/import_overhead.py
	$(BIN)/python benchmarks/safety_net.py
	$(BIN)/python benchmarks/atomic_saves.py
	APACHE_TEST_VENV=$(APACHE_VENV) $(BIN)/python benchmarks/apache_restart.py
	APACHE_TEST_VENV=$(APACHE_VENV) $(BIN)/python benchmarks/framework_examples.py
	APACHE_TEST_VENV=$(APACHE_VENV) $(BIN)/python benchmarks/live_reload.py
	APACHE_TEST_VENV=$(APACHE_VENV) $(BIN)/python benchmarks/django_runserver.py
	APACHE_TEST_VENV=$(APACHE_VENV) $(BIN)/python benchmarks/big_app.py
