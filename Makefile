# Two environments: Airflow 3.3 (first-class) and Airflow 2.11 (supported). Each target installs what it needs.
PYTHON ?= python3
AIRFLOW3 ?= 3.3.2
AIRFLOW2 ?= 2.11.2
VENV3 := .venv
VENV2 := .venv-af2
PYTEST_ARGS ?=

.PHONY: demo test test-af3 test-af2 lint docs bench e2e clean redis-server

$(VENV3)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV3)
	$(VENV3)/bin/pip install -q --upgrade pip
	$(VENV3)/bin/pip install -q "apache-airflow==$(AIRFLOW3)" -e ".[dev,docs]"
	touch $@

$(VENV2)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV2)
	$(VENV2)/bin/pip install -q --upgrade pip
	$(VENV2)/bin/pip install -q "apache-airflow==$(AIRFLOW2)" -e ".[test]"
	touch $@

## demo: sync the sample warehouse into a knowledge base (the emulator, or a real Dify via AIRFLOW_CONN_DIFY_DEFAULT)
demo: $(VENV3)/.installed
	$(VENV3)/bin/python -m example_dags.demo

## redis-server: Debian's Redis, which the shared rate-budget tests and the bench start on 127.0.0.1
redis-server:
	@command -v redis-server >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }

## test: ruff, the docs site, then the whole suite on Airflow 3.3 and on Airflow 2.11
test: lint docs test-af3 test-af2

lint: $(VENV3)/.installed
	$(VENV3)/bin/ruff check .

## docs: build the documentation site into build/site in strict mode (a broken link or reference fails)
docs: $(VENV3)/.installed
	$(VENV3)/bin/mkdocs build --strict

test-af3: $(VENV3)/.installed redis-server
	$(VENV3)/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-af2: $(VENV2)/.installed redis-server
	$(VENV2)/bin/python -m pytest -q -p no:cacheprovider -m "not e2e" $(PYTEST_ARGS)

## bench: measure against the alternatives and write docs/performance.md
bench: $(VENV3)/.installed redis-server
	$(VENV3)/bin/python -m bench

clean:
	rm -rf $(VENV3) $(VENV2) .demo
