# Two commands on a fresh machine: `make run` (the example service) and `make test` (the suite).
# Both create a virtualenv and install everything first.
#
# DJANGO picks the Django series (5.2, 6.0 or 6.1; default the newest, in .venv): e.g.
# `make run DJANGO=5.2` or `make test DJANGO=6.0` use .venv-django5.2, .venv-django6.0.
# `make matrix` runs every supported Python and Django (tox.ini).

NEWEST := 6.1
DJANGO ?= $(NEWEST)
VENV := $(if $(filter $(NEWEST),$(DJANGO)),.venv,.venv-django$(DJANGO))
# Django 5.2: the django-tasks backport (compat); 6.0 and newer: Celery as a third backend.
EXTRAS := dev,$(if $(filter 5.2,$(DJANGO)),compat,celery)
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# A database per checkout (Django creates and drops test_<name>), and Redis keys per run
# (tests/redis_scope.py): two checkouts run the PostgreSQL suite at once without colliding.
PG_URL ?= postgres://postgres@127.0.0.1:5432/ij_$(shell printf %s '$(CURDIR)' | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=
TOX_ARGS ?=

.PHONY: run test test-postgres matrix lint bench bench-smoke clean

$(STAMP): pyproject.toml
	@case "$(DJANGO)" in 5.2|6.0|6.1) ;; *) echo "DJANGO must be 5.2, 6.0 or 6.1." >&2; exit 1;; esac
	@PY=python3; \
	if ! $$PY -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
		PY=$$(command -v python3.12 || command -v python3.13 || true); \
	fi; \
	if [ -z "$$PY" ]; then echo "Python >= 3.12 is required." >&2; exit 1; fi; \
	[ -x $(BIN)/python ] || $$PY -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]' 'Django~=$(DJANGO).0'
	@touch $(STAMP)

run: $(STAMP)
	PYTHON="$(CURDIR)/$(BIN)/python" PATH="$(CURDIR)/$(BIN):$$PATH" bash example_project/run.sh

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-postgres: $(STAMP)
	DATABASE_URL=$(PG_URL) REQUIRE_SERVICES=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

matrix: $(STAMP)
	$(BIN)/tox $(TOX_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check idempotency_jobs tests example_project benchmarks manage.py
	$(BIN)/mypy idempotency_jobs example_project
	DJANGO_SETTINGS_MODULE=tests.settings $(BIN)/python -m django makemigrations --check --dry-run
	DJANGO_SETTINGS_MODULE=tests.settings $(BIN)/python -m django check --fail-level WARNING

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

bench-smoke: $(STAMP)
	$(BIN)/python benchmarks/run.py --smoke
	$(BIN)/python -m benchmarks.profile_keyed --requests 20

clean:
	rm -rf .venv .venv-django* .tox .pytest_cache .mypy_cache .ruff_cache test-*.sqlite3
