# Every target works on a fresh machine: the virtualenv is made and filled on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
AIRFLOW_VERSION := 3.3.2
PY_VERSION = $(shell $(PYTHON) -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
CONSTRAINTS = constraints/airflow-$(AIRFLOW_VERSION)-py$(PY_VERSION).txt
INSTALLED := $(VENV)/.installed-$(AIRFLOW_VERSION)

.PHONY: test demo install clean

install: $(INSTALLED)

$(INSTALLED): pyproject.toml $(wildcard constraints/*.txt)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check \
		$(if $(wildcard $(CONSTRAINTS)),--constraint $(CONSTRAINTS)) \
		"apache-airflow==$(AIRFLOW_VERSION)" --editable ".[test]"
	touch $@

test: $(INSTALLED)
	$(VENV)/bin/python -m pytest

# The marketing example DAG end to end; SEEDREAM_API_KEY=... uses the real API instead of the sandbox.
demo: $(INSTALLED)
	$(VENV)/bin/python scripts/demo.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .demo
