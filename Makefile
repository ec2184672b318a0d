# Two environments: Airflow 3.3 (first-class) and Airflow 2.11 (supported). Each target installs what it needs,
# pinned by the committed constraints/ (one file per Airflow line and Python), so a new upstream release cannot
# change what a fresh machine installs. `make constraints` regenerates them; `make test-latest` tries the newest.
PYTHON ?= python3
PYVER := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
UV_VERSION := 0.13.9
VENV3 := .venv
VENV2 := .venv-af2
VENV_LATEST := .venv-latest
VENV_DEMO := .venv-demo
TOOLS := .venv-tools
UV := $(TOOLS)/bin/uv
CONSTRAINTS3 := constraints/airflow-3.3-py$(PYVER).txt
CONSTRAINTS2 := constraints/airflow-2.11-py$(PYVER).txt
PYTEST_ARGS ?=
# `make constraints UPGRADE=1` takes the newest releases the inputs allow; without it, the current pins are kept
# wherever pyproject.toml and constraints/*.in still allow them.
UPGRADE ?=

.PHONY: demo test test-af3 test-af2 test-latest lint docs bench e2e clean redis-server chromium constraints

# uv itself, pinned, in a venv of its own: it installs and compiles the project's environments.
$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q "uv==$(UV_VERSION)"

$(CONSTRAINTS3) $(CONSTRAINTS2):
	@echo "No constraints for Python $(PYVER) ($@): run 'make constraints' with this Python, or use Python 3.11." >&2
	@exit 1

$(VENV3)/.installed: pyproject.toml $(CONSTRAINTS3) | $(UV)
	rm -rf $(VENV3)
	$(PYTHON) -m venv $(VENV3)
	$(UV) pip install -q --python $(VENV3)/bin/python -c $(CONSTRAINTS3) -b $(CONSTRAINTS3) -e ".[dev,docs,sql]"
	touch $@

# The demo's environment: the runtime, the emulator and the SQLite provider only (the `demo` extra), pinned by the
# Airflow 3.3 constraints; the test toolchain is installed by `make test` alone.
$(VENV_DEMO)/.installed: pyproject.toml $(CONSTRAINTS3) | $(UV)
	rm -rf $(VENV_DEMO)
	$(PYTHON) -m venv $(VENV_DEMO)
	$(UV) pip install -q --python $(VENV_DEMO)/bin/python -c $(CONSTRAINTS3) -b $(CONSTRAINTS3) -e ".[demo]"
	touch $@

$(VENV2)/.installed: pyproject.toml $(CONSTRAINTS2) | $(UV)
	rm -rf $(VENV2)
	$(PYTHON) -m venv $(VENV2)
	$(UV) pip install -q --python $(VENV2)/bin/python -c $(CONSTRAINTS2) -b $(CONSTRAINTS2) -e ".[test,sql]"
	touch $@

## constraints: regenerate constraints/airflow-*-py$(PYVER).txt from pyproject.toml and constraints/*.in with uv;
## run it after changing a dependency in pyproject.toml or an input, and `make constraints UPGRADE=1` to take new
## upstream releases on purpose (then `make test` before committing the new pins)
constraints: | $(UV)
	$(UV) pip compile -q $(if $(UPGRADE),--upgrade) --python-version $(PYVER) --extra dev --extra docs --extra sql --extra demo \
		--no-header --output-file constraints/airflow-3.3-py$(PYVER).txt pyproject.toml constraints/airflow-3.3.in
	$(UV) pip compile -q $(if $(UPGRADE),--upgrade) --python-version $(PYVER) --extra test --extra sql \
		--no-header --output-file constraints/airflow-2.11-py$(PYVER).txt pyproject.toml constraints/airflow-2.11.in

## demo: sync the sample warehouse into a knowledge base (the emulator, or a real Dify via AIRFLOW_CONN_DIFY_DEFAULT)
demo: $(VENV_DEMO)/.installed
	$(VENV_DEMO)/bin/python -m example_dags.demo

## redis-server: Debian's Redis, which the shared rate-budget tests and the bench start on 127.0.0.1
redis-server:
	@command -v redis-server >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }

## chromium: Debian's Chromium, in which tests/docs_site/ opens the built docs site (headless) and measures it
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

## test: ruff, the docs site, then the whole suite on Airflow 3.3 and on Airflow 2.11
test: lint docs test-af3 test-af2

lint: $(VENV3)/.installed
	$(VENV3)/bin/ruff check .

## docs: build the documentation site into build/site in strict mode (a broken link or reference fails)
docs: $(VENV3)/.installed
	$(VENV3)/bin/mkdocs build --strict

test-af3: $(VENV3)/.installed redis-server chromium
	DIFY_PROVIDER_CONSTRAINTS=$(CONSTRAINTS3) $(VENV3)/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-af2: $(VENV2)/.installed redis-server
	DIFY_PROVIDER_CONSTRAINTS=$(CONSTRAINTS2) $(VENV2)/bin/python -m pytest -q -p no:cacheprovider -m "not e2e" $(PYTEST_ARGS)

## test-latest: the suite on the newest releases of everything (no constraints) for both Airflow lines, in venvs
## made anew each time, to see the next upstream breakage before `make constraints UPGRADE=1` brings it into CI;
## not part of CI
test-latest: redis-server | $(UV)
	rm -rf $(VENV_LATEST) $(VENV_LATEST)-af2
	$(PYTHON) -m venv $(VENV_LATEST)
	$(UV) pip install -q --python $(VENV_LATEST)/bin/python --upgrade "apache-airflow" -e ".[dev,docs,sql]"
	$(PYTHON) -m venv $(VENV_LATEST)-af2
	$(UV) pip install -q --python $(VENV_LATEST)-af2/bin/python --upgrade "apache-airflow>=2.11,<3" -e ".[test,sql]"
	$(UV) pip list --python $(VENV_LATEST)/bin/python | grep -i -E '^(apache-airflow|cryptography|celery) '
	$(UV) pip list --python $(VENV_LATEST)-af2/bin/python | grep -i -E '^(apache-airflow|cryptography|celery) '
	$(VENV_LATEST)/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS); s3=$$?; \
	$(VENV_LATEST)-af2/bin/python -m pytest -q -p no:cacheprovider -m "not e2e" $(PYTEST_ARGS); s2=$$?; \
	echo "newest Airflow 3: exit $$s3; newest Airflow 2: exit $$s2"; test $$s3 -eq 0 -a $$s2 -eq 0

## bench: measure against the alternatives and write docs/performance.md
bench: $(VENV3)/.installed redis-server
	$(VENV3)/bin/python -m bench

clean:
	rm -rf $(VENV3) $(VENV2) $(VENV_LATEST) $(VENV_LATEST)-af2 $(VENV_DEMO) $(TOOLS) .demo
