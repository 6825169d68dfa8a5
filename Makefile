# Model lifecycle on Kubeflow Pipelines: `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY ?= $(VENV)/bin/python
VERSION ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
PYTEST_ARGS ?=

.PHONY: help venv test lint format compile demo bench clean

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | \
		awk -F':.*## ' '{printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed ## Create the virtualenv and install the project with its dev tools

test: venv ## Run the tests (real mlflow server, kfp.local pipelines, Slack-like server, Chromium)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv ## Lint Python (ruff) and the Dockerfiles (hadolint)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(MAKE) --no-print-directory lint-image

format: venv ## Format and autofix Python sources
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

compile: venv ## Compile every pipeline to pipelines/compiled/ and its Kubernetes-native manifests
	$(PY) -m pipelines compile

demo: venv ## Run the lifecycle pipeline locally (kfp.local + local MLflow store) on the bike data
	$(PY) -m pipelines run lifecycle --local --config confs/bike-sharing.yaml

bench: venv ## Benchmarks: InferenceJob vs raw predict, 1 vs 2 shards, SHAP on 1 vs all cores
	$(PY) -m bench.inference
	$(PY) -m bench.scaling
	$(PY) -m bench.explanations

clean: venv ## Remove local run outputs (the local MLflow store and kfp.local outputs)
	rm -rf "$$($(PY) -c 'from components.io import services; print(services.lifecycle_home())')"

-include mk/*.mk
