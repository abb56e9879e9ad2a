# Every target works on a fresh machine: virtualenvs are made and filled on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
AIRFLOW_VERSION := 3.3.2
PY_VERSION = $(shell $(PYTHON) -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
CONSTRAINTS = constraints/airflow-$(AIRFLOW_VERSION)-py$(PY_VERSION).txt
INSTALLED := $(VENV)/.installed-$(AIRFLOW_VERSION)
PIP_FLAGS := --quiet --disable-pip-version-check

# The supported matrix, as tested: Airflow version and the Python it runs on, one virtualenv each.
MATRIX := airflow-2.11.2-py3.11 airflow-3.0.6-py3.12 airflow-3.1.8-py3.11 airflow-3.2.2-py3.12 \
	airflow-3.3.2-py3.13

.PHONY: test lint test-matrix test-deploy test-deploy-celery demo install clean bench

install: $(INSTALLED)

$(INSTALLED): pyproject.toml $(wildcard constraints/*.txt)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) $(if $(wildcard $(CONSTRAINTS)),--constraint $(CONSTRAINTS)) \
		"apache-airflow==$(AIRFLOW_VERSION)" --editable ".[test,lint]"
	touch $@

test: $(INSTALLED) lint
	$(VENV)/bin/python -m pytest

lint: $(INSTALLED)
	$(VENV)/bin/ruff format --check airflow_provider_seedream tests example_dags scripts benchmarks
	$(VENV)/bin/ruff check airflow_provider_seedream tests example_dags scripts benchmarks
	$(VENV)/bin/mypy

# The whole suite once per supported Airflow, each in its own virtualenv pinned by its constraints file.
# The virtualenvs are made and filled by uv, side by side: pip took most of CI's 90 minutes to fill five
# of them on a fresh machine (its resolver and one download at a time), uv takes seconds, from one cache.
# The suites run one after another (their timings would disturb each other).
UV := .venv-matrix/.uv/bin/uv
UV_VERSION := 0.13.9

$(UV):
	test -x .venv-matrix/.uv/bin/python || $(PYTHON) -m venv .venv-matrix/.uv
	.venv-matrix/.uv/bin/pip install $(PIP_FLAGS) "uv==$(UV_VERSION)"

test-matrix: $(UV)
	$(MAKE) -j $(words $(MATRIX)) $(MATRIX:%=.venv-matrix/%/.installed)
	@set -e; for env in $(MATRIX); do \
		echo "== $$env"; \
		.venv-matrix/$$env/bin/python -m pytest -q -p no:cacheprovider; \
	done

.venv-matrix/%/.installed: pyproject.toml constraints/%.txt $(UV)
	@env=$*; airflow=$${env#airflow-}; airflow=$${airflow%-py*}; \
	set -ex; test -x .venv-matrix/$$env/bin/python || \
		$(UV) venv --quiet --seed --python "$$(scripts/find-python.sh $${env##*-py})" .venv-matrix/$$env; \
	$(PYTHON) scripts/requirements.py test >.venv-matrix/$$env/requirements.txt; \
	$(UV) pip install --quiet --python .venv-matrix/$$env/bin/python --constraint constraints/$$env.txt \
		"apache-airflow==$$airflow" --requirement .venv-matrix/$$env/requirements.txt; \
	flock .venv-matrix/.editable.lock $(UV) pip install --quiet --python .venv-matrix/$$env/bin/python \
		--no-deps --editable .
	touch $@

# Debian's Chromium and its driver, for what a person sees in the UI (tests/deploy/browser.py); where
# they cannot be installed, the tiers say so and skip only the browser checks.
BROWSER := command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	{ apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
	echo "Chromium could not be installed: the browser checks will be skipped"

# A real deployment: PostgreSQL, scheduler, dag-processor, triggerer and api-server, driven over REST;
# the gallery and the review page looked at in Chromium.
test-deploy: $(INSTALLED)
	@$(BROWSER)
	$(VENV)/bin/python tests/deploy/run.py

# The same on CeleryExecutor: Redis (Debian's, installed when missing), two Celery workers that share no
# disk (each a mount and UTS namespace: run as root) and are killed mid-task, objects in S3 (moto).
test-deploy-celery: $(INSTALLED)
	@command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
	@$(BROWSER)
	$(VENV)/bin/python tests/deploy/run_celery.py

# The marketing example DAG end to end; SEEDREAM_API_KEY=... uses the real API instead of the sandbox.
demo: $(INSTALLED)
	$(VENV)/bin/python scripts/demo.py

clean:
	rm -rf $(VENV) .venv-matrix build *.egg-info .pytest_cache .demo

# What the provider costs its users, against baselines measured in the same run (docs/benchmarks.md).
# Not part of `test`. It needs the http provider as the import-time baseline: installed on first use.
bench: $(INSTALLED)
	$(VENV)/bin/python -c 'import importlib.metadata as m; m.version("apache-airflow-providers-http")' 2>/dev/null || \
		$(VENV)/bin/pip install $(PIP_FLAGS) $(if $(wildcard $(CONSTRAINTS)),--constraint $(CONSTRAINTS)) \
		apache-airflow-providers-http
	$(VENV)/bin/python benchmarks/run.py $(BENCH_ARGS)
