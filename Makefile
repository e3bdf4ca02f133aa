# The two commands of the README: `make run` and `make test`.
# Django 6.1 needs Python 3.12+: the first interpreter found that is new enough (pyenv's included).
PYTHON ?= $(shell for p in python3.12 python3.13 python3 $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3) $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3); do $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1 && echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test setup demo lint format clean

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "Python 3.12 or newer is required (Django 6.1)." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python requirements.txt requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

setup: $(STAMP)

# Upstreams of `make run` may point at the Anthropic API and at the built-in emulator on 127.0.0.1
# (README, "Running in production"); a MIGRATION_AUDIT_UPSTREAM_HOSTS set by the caller wins.
demo run: export MIGRATION_AUDIT_UPSTREAM_HOSTS ?= api.anthropic.com,127.0.0.1

demo: setup
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo

run: demo
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	@echo
	@echo "  Migration Audit: http://127.0.0.1:8000/  (log in as demo / demo-password)"
	@echo "  Proxy:           http://127.0.0.1:8000/proxy/anthropic/  and root-path proxy http://127.0.0.1:8001/"
	@echo "  Emulator:        http://127.0.0.1:8100/"
	@echo
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start -f Procfile

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var staticfiles
