# Model lifecycle on Kubeflow Pipelines: `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY ?= $(VENV)/bin/python
# The interpreter the venv is made from: the project runs on CPython 3.11 only.
PYTHON ?= python3.11
# The whole dependency set, pinned with hashes: `make venv`, CI and images/Dockerfile install
# exactly these versions (requirements.lock: the runtime; requirements-dev.lock: it plus the tools).
LOCK ?= requirements-dev.lock
UV = $(VENV)/bin/uv
UV_VERSION = $(shell sed -n 's/^uv==\([^ ]*\).*/\1/p' requirements-dev.lock)
VERSION ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
PYTEST_ARGS ?=

.PHONY: help venv lock test lint typecheck typecheck-baseline audit format compile demo bench clean

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | \
		awk -F':.*## ' '{printf "  \033[36m%-19s\033[0m %s\n", $$1, $$2}'

$(VENV)/.installed: $(LOCK) pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null || { \
		echo "make venv needs CPython 3.11; '$(PYTHON)' is $$($(PYTHON) --version 2>&1 || echo 'not found')." >&2; \
		echo "Point the Makefile at one: make venv PYTHON=/path/to/python3.11" >&2; exit 2; }
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	@# Bytecode compiled once here: each pipeline step is a fresh interpreter, and without it
	@# every step compiles the ~1,000 modules it imports again (over half its start-up).
	$(UV) pip install --quiet --compile-bytecode --python $(PY) --require-hashes -r $(LOCK)
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	touch $@

venv: $(VENV)/.installed ## Create the virtualenv from the lock files (PYTHON=python3.11 by default)

lock: venv ## Refresh requirements*.lock on purpose: the newest versions pyproject.toml's ranges allow
	$(UV) pip compile --quiet --upgrade --universal --python-version 3.11 --generate-hashes \
		--extra dev -o requirements-dev.lock pyproject.toml
	$(UV) pip compile --quiet --universal --python-version 3.11 --generate-hashes \
		-c requirements-dev.lock -o requirements.lock pyproject.toml
	@# The GPU image's XGBoost (images/Dockerfile.gpu): the CUDA build of the locked xgboost-cpu.
	echo "xgboost==$$(sed -n 's/^xgboost-cpu==\([^ ]*\).*/\1/p' requirements.lock)" | \
		$(UV) pip compile --quiet --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--generate-hashes -c requirements.lock -o requirements-gpu.lock -
	@echo "Locked; now: make venv compile test, and commit requirements*.lock with what changed."

test: venv ## Run the tests (real mlflow server, kfp.local pipelines, Slack-like server, Chromium)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv ## Lint Python (ruff) and the Dockerfiles (hadolint)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(MAKE) --no-print-directory lint-image

typecheck: venv ## mypy --strict on components/ and pipelines/, against .ci/mypy-baseline.txt (only shrinks)
	$(PY) .ci/mypy_baseline.py check

typecheck-baseline: venv ## Rewrite .ci/mypy-baseline.txt after fixing type errors (refuses to let it grow)
	$(PY) .ci/mypy_baseline.py update

audit: venv ## Audit the locked dependency set for known vulnerabilities (pip-audit)
	$(PY) .ci/audit.py

format: venv ## Format and autofix Python sources
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

compile: venv ## Compile every pipeline to pipelines/compiled/ and its Kubernetes-native manifests
	$(PY) -m pipelines compile

demo: venv ## Run the lifecycle pipeline locally (kfp.local + local MLflow store) on the bike data
	$(PY) -m pipelines run lifecycle --local --config confs/bike-sharing.yaml

bench: venv ## Benchmarks: InferenceJob vs raw predict, 1 vs 2 shards, SHAP on 1 vs all cores, step start-up
	$(PY) -m bench.inference
	$(PY) -m bench.inference --model-kind XGBRegressor
	$(PY) -m bench.scaling
	$(PY) -m bench.explanations
	$(PY) -m bench.startup

clean: venv ## Remove local run outputs (the local MLflow store and kfp.local outputs)
	rm -rf "$$($(PY) -c 'from components.io import services; print(services.lifecycle_home())')"

-include mk/*.mk
