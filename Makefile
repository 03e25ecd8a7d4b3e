# Stagegate: `make run` serves the embedded demo, `make test` runs the whole suite.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Django 6 needs Python >= 3.12: take the newest interpreter found (PATH, then pyenv's folders).
PYTHON ?= $(shell for p in python3.13 python3.12 $$HOME/.pyenv/versions/3.13*/bin/python3 $$HOME/.pyenv/versions/3.12*/bin/python3 /usr/local/bin/python3.13 /usr/local/bin/python3.12 python3; do \
	  command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1 && { command -v $$p; break; }; done)
# The MLflow 2.x client line is checked from its own venv (it pins an older stack).
PYTHON_MLFLOW2 ?= $(shell for p in python3.11 $(PYTHON); do command -v $$p >/dev/null 2>&1 && { command -v $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
WORKERS ?= 2
# The address mails link to (pages and API answers use the host each request reached).
export STAGEGATE_BASE_URL ?= http://127.0.0.1:$(PORT)

.PHONY: help run test install serve migrate bootstrap test-deps clean

help:
	@echo "make run   - set up .venv, migrate, create the admin, load the demo, serve on http://127.0.0.1:$(PORT)"
	@echo "make test  - set up .venv and run the whole test suite"

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "Stagegate needs Python >= 3.12 (Django 6); none found. Set PYTHON=/path/to/python3.12"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-compile -e .
	touch $@

# The test tools (the mlflow client, Playwright, moto) come with `make test` only: serving needs none of them.
$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

migrate: install
	$(PY) manage.py migrate --noinput

# One process: migrations, the admin, the demo (when the database is empty) and the static files.
bootstrap: install
	$(PY) manage.py bootstrap --migrate --demo --collectstatic

run: bootstrap
	@echo "Stagegate on http://127.0.0.1:$(PORT)  (MLFLOW_TRACKING_URI=http://127.0.0.1:$(PORT); mails link to $(STAGEGATE_BASE_URL))"
	$(VENV)/bin/gunicorn config.wsgi --bind 127.0.0.1:$(PORT) --workers $(WORKERS) --threads 4 \
	  --worker-class gthread --timeout 300 --keep-alive 30 --access-logfile - \
	  --limit-request-line 0 --limit-request-field_size 16384

# What the test suite needs beyond Python packages: the MLflow 2.22 client venv and Debian's Chromium.
.venv-mlflow2/.installed:
	test -x .venv-mlflow2/bin/python || $(PYTHON_MLFLOW2) -m venv .venv-mlflow2
	.venv-mlflow2/bin/python -m pip install --quiet --upgrade pip
	.venv-mlflow2/bin/python -m pip install --quiet 'mlflow==2.22.*' scikit-learn pandas
	touch $@

/usr/bin/chromium:
	@if [ "$$(id -u)" = "0" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "Browser tests need Debian's chromium: sudo apt-get install chromium"; exit 1; fi

test-deps: $(VENV)/.installed-dev .venv-mlflow2/.installed /usr/bin/chromium

test: test-deps
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .venv-mlflow2 var/test.sqlite3
