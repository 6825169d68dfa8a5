"""Compiled pipelines: platform settings, freshness, determinism, and what a pod would run.

Compile-time only: no cluster is needed. The compiled YAML is what a KFP API server would
receive, so the checks read it as KFP does (the IR's second document holds the Kubernetes
settings) and load it back with KFP's own loader.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import kfp.components
import pytest
import yaml
from kfp import compiler

from components.image import IMAGE
from pipelines.cluster import compilation
from pipelines.dags import catalog
from pipelines.dags.settings import Settings

ROOT = pathlib.Path(__file__).resolve().parents[2]
GPU_STEPS = ("predict", "explain")
GPU_LABEL = {"nvidia.com/gpu.present": "true"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
HEAVY_MODULES = ("mlflow", "pandas", "sklearn", "shap", "pyarrow")
STALE = "is stale: run `make compile` and commit the result"


def compile_pipeline(name: str, gpu: bool, tmp_path: pathlib.Path) -> tuple[dict, dict]:
    """Compile one pipeline to IR YAML; return its pipeline spec and its platform spec."""
    path = tmp_path / f"{name}-{'gpu' if gpu else 'cpu'}.yaml"
    compiler.Compiler().compile(catalog.build(name, gpu=gpu), str(path))
    documents = list(yaml.safe_load_all(path.read_text()))
    assert len(documents) == 2, "the IR YAML holds the pipeline spec, then the platform spec"
    return documents[0], documents[1]


# The steps of a sharded prediction, by component function, as Settings names them: each
# shard's pod is a predict pod (its resources, its GPU).
SHARDED_STEPS = {
    "plan_shards": "plan",
    "predict_shard": "predict",
    "publish_predictions": "publish",
    # A tuning's steps: the plan reads no rows, as the shards' plan; select ranks runs.
    "plan_trials": "plan",
    "select_trial": "select",
}


def step_of(executor: dict) -> str:
    """The Settings step of an executor (`predict` for exec-predict, exec-predict-2 and
    exec-predict-shard)."""
    args = executor["container"]["args"]
    function = args[args.index("--function_to_execute") + 1]
    return SHARDED_STEPS.get(function, function)


def platform_executors(platform: dict) -> dict[str, dict]:
    return platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def component_tasks(spec: dict) -> dict[str, dict]:
    """Every task that runs a container, from the root DAG and every sub-DAG."""
    dags = [spec["root"]["dag"]] + [c["dag"] for c in spec["components"].values() if "dag" in c]
    executed = {name for name, c in spec["components"].items() if "executorLabel" in c}
    return {
        task_name: task
        for dag in dags
        for task_name, task in dag["tasks"].items()
        if task["componentRef"]["name"] in executed
    }


def all_tasks(spec: dict) -> dict[str, dict]:
    dags = [spec["root"]["dag"]] + [c["dag"] for c in spec["components"].values() if "dag" in c]
    return {name: task for dag in dags for name, task in dag["tasks"].items()}


@pytest.fixture(scope="module", params=catalog.NAMES)
def name(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def gpu_compiled(name, tmp_path_factory) -> tuple[dict, dict]:
    return compile_pipeline(name, True, tmp_path_factory.mktemp("gpu"))


@pytest.fixture(scope="module")
def cpu_compiled(name, tmp_path_factory) -> tuple[dict, dict]:
    return compile_pipeline(name, False, tmp_path_factory.mktemp("cpu"))


def test_gpu_scheduling_only_on_predict_and_explain(name, gpu_compiled):
    spec, platform = gpu_compiled
    executors = spec["deploymentSpec"]["executors"]
    settings = platform_executors(platform)
    steps = {step_of(executor) for executor in executors.values()}
    expected = {"training": {"train"}, "monitoring": {"monitor"}, "tuning": {"train", "select"}}
    assert steps >= expected.get(name, {"predict", "explain"})
    for label, executor in executors.items():
        config = settings[label]
        accelerator = executor["container"]["resources"].get("accelerator")
        if step_of(executor) in GPU_STEPS:
            assert config.get("nodeSelector", {}).get("labels") == GPU_LABEL, label
            assert config.get("tolerations") == [GPU_TOLERATION], label
            assert accelerator is not None, label
            assert accelerator["resourceType"] == "nvidia.com/gpu", label
            assert int(accelerator["resourceCount"]) == 1, label
        else:
            assert "nodeSelector" not in config, label
            assert "tolerations" not in config, label
            assert accelerator is None, label


def test_no_gpu_scheduling_without_gpu(cpu_compiled):
    spec, platform = cpu_compiled
    for name, executor in spec["deploymentSpec"]["executors"].items():
        assert "accelerator" not in executor["container"]["resources"], name
    for name, config in platform_executors(platform).items():
        assert "nodeSelector" not in config, name
        assert "tolerations" not in config, name


@pytest.mark.parametrize("gpu", [True, False])
def test_every_executor_has_requests_and_limits(gpu, gpu_compiled, cpu_compiled):
    spec, _ = gpu_compiled if gpu else cpu_compiled
    for name, executor in spec["deploymentSpec"]["executors"].items():
        wanted = Settings().resources[step_of(executor)]
        resources = executor["container"]["resources"]
        assert resources["resourceCpuRequest"] == wanted.cpu_request, name
        assert resources["resourceCpuLimit"] == wanted.cpu_limit, name
        assert resources["resourceMemoryRequest"] == wanted.memory_request, name
        assert resources["resourceMemoryLimit"] == wanted.memory_limit, name


@pytest.mark.parametrize("gpu", [True, False])
def test_environment_from_config_map_and_secrets(gpu, gpu_compiled, cpu_compiled):
    spec, platform = gpu_compiled if gpu else cpu_compiled
    settings = platform_executors(platform)
    assert set(settings) == set(spec["deploymentSpec"]["executors"])
    for name, executor in spec["deploymentSpec"]["executors"].items():
        config = settings[name]
        # ConfigMap key -> optional, for the keys read from the run ConfigMap.
        run_config = {
            item["configMapKey"]: source.get("optional", False)
            for source in config.get("configMapAsEnv", [])
            if source["configMapName"] == "mlflow-config"
            for item in source["keyToEnv"]
        }
        assert run_config.get("MLFLOW_TRACKING_URI") is False, f"{name}: tracking URI required"
        slack = [s for s in config.get("secretAsEnv", []) if s["secretName"] == "slack-webhook"]
        if step_of(executor) == "notify":
            assert len(slack) == 1, name
            assert slack[0]["keyToEnv"] == [
                {"envVar": "SLACK_WEBHOOK_URL", "secretKey": "SLACK_WEBHOOK_URL"}
            ]
            # The link to the run in the alert; optional: a missing key must not cost the alert.
            assert run_config.get("KFP_UI_BASE_URL") is True, f"{name}: no optional UI URL"
        else:
            assert not slack, f"{name} should not see the Slack webhook"
            assert "KFP_UI_BASE_URL" not in run_config, name


@pytest.mark.parametrize("gpu", [True, False])
def test_every_step_has_its_timeout(gpu, gpu_compiled, cpu_compiled):
    """Each step's pod has an activeDeadlineSeconds: a hung step cannot hold the run forever."""
    spec, platform = gpu_compiled if gpu else cpu_compiled
    settings = platform_executors(platform)
    timeouts = Settings().timeouts
    for name, executor in spec["deploymentSpec"]["executors"].items():
        deadline = settings[name].get("activeDeadlineSeconds")
        assert deadline is not None, f"{name}: no timeout"
        assert int(deadline) == timeouts[step_of(executor)] > 0, name


def test_settings_refuse_a_step_without_a_timeout():
    with pytest.raises(ValueError, match="no timeout for notify") as caught:
        Settings(timeouts={step: 60 for step in Settings().resources if step != "notify"})
    assert "steps: train, evaluate" in str(caught.value)
    with pytest.raises(ValueError, match="timeouts must be > 0 seconds: train"):
        Settings(timeouts={**Settings().timeouts, "train": 0})
    with pytest.raises(ValueError, match="timeouts for unknown steps trian"):
        Settings(timeouts={**Settings().timeouts, "trian": 60})


def test_tasks_have_display_names_retries_and_no_cache(gpu_compiled):
    spec, _ = gpu_compiled
    tasks = component_tasks(spec)
    assert {"notify"} <= set(tasks)
    executors = spec["deploymentSpec"]["executors"]
    for task_name, task in tasks.items():
        component = spec["components"][task["componentRef"]["name"]]
        step = step_of(executors[component["executorLabel"]])
        assert task["taskInfo"]["name"] not in ("", task_name), f"{task_name}: no display name"
        # Caching off: a cached step would skip its MLflow writes.
        assert task.get("cachingOptions", {}).get("enableCache", False) is False, task_name
        retry = task.get("retryPolicy", {}).get("maxRetryCount", 0)
        # Every step is safe to retry, promote included (it compares and sets the alias).
        assert retry == Settings().retries[step] >= 1, f"{task_name}: {retry} retries"
    for task_name, task in all_tasks(spec).items():
        if not task_name.startswith("condition-branches-"):  # KFP's unnamed If/Else group
            assert task["taskInfo"]["name"] not in ("", task_name), f"{task_name}: no name"


def test_inference_fans_predict_out_over_the_planned_shards(tmp_path):
    spec, platform = compile_pipeline("inference", True, tmp_path)
    tasks = all_tasks(spec)
    [(loop_name, loop)] = [(n, task) for n, task in tasks.items() if "parameterIterator" in task]
    assert loop["iteratorPolicy"]["parallelismLimit"] == Settings().parallelism
    iterated = loop["parameterIterator"]["items"]["inputParameter"]
    inputs = loop["inputs"]["parameters"][iterated]
    assert inputs["taskOutputParameter"] == {
        "outputParameterKey": "Output",
        "producerTask": "plan-shards",
    }
    # Each shard's pod predicts with the predict step's resources and GPU scheduling.
    shard = tasks["predict-shard"]
    plan = shard["inputs"]["artifacts"]["plan"]["componentInputArtifact"]
    assert loop["inputs"]["artifacts"][plan]["taskOutputArtifact"]["producerTask"] == "plan-shards"
    label = spec["components"][shard["componentRef"]["name"]]["executorLabel"]
    resources = spec["deploymentSpec"]["executors"][label]["container"]["resources"]
    wanted = Settings().resources["predict"]
    assert resources["resourceCpuLimit"] == wanted.cpu_limit
    assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert platform_executors(platform)[label]["nodeSelector"]["labels"] == GPU_LABEL
    # The publishing step collects every shard's report, and runs only after all of them.
    publish = tasks["publish-predictions"]
    reports = publish["inputs"]["parameters"]["reports"]["taskOutputParameter"]
    assert reports["producerTask"] == loop_name
    assert loop_name in publish["dependentTasks"]
    # One predict pod when shards == 1, the fan-out otherwise.
    conditions = {
        task["taskInfo"]["name"]: task.get("triggerPolicy", {}).get("condition", "")
        for task in tasks.values()
        if task.get("triggerPolicy", {}).get("condition")
    }
    assert any("== 1" in condition for condition in conditions.values()), conditions


# The steps that load the model, by component function: each takes the `loader` parameter.
LOADING_STEPS = ("predict", "predict_shard", "explain")


def function_of(spec: dict, task: dict) -> str | None:
    """The component function a task runs (None for a sub-DAG)."""
    component = spec["components"][task["componentRef"]["name"]]
    if "dag" in component:
        return None
    args = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]["args"]
    return args[args.index("--function_to_execute") + 1]


@pytest.mark.parametrize("pipeline", ["inference", "lifecycle"])
def test_the_loader_parameter_reaches_every_step_that_loads_the_model(pipeline):
    """The committed YAML declares `loader` ({} by default) and wires it into each such step."""
    path = catalog.COMPILED / f"{pipeline}.yaml"
    spec = next(yaml.safe_load_all(path.read_text()))
    declared = spec["root"]["inputDefinitions"]["parameters"]["loader"]
    assert declared["parameterType"] == "STRUCT" and declared["defaultValue"] == {}
    loading = {
        name: function
        for name, task in all_tasks(spec).items()
        if (function := function_of(spec, task)) in LOADING_STEPS
    }
    sharded = {"predict_shard"} if pipeline == "inference" else set()
    assert set(loading.values()) == {"predict", "explain", *sharded}
    for name, task in all_tasks(spec).items():
        if name in loading:
            source = task["inputs"]["parameters"]["loader"]["componentInputParameter"]
            assert source in ("loader", "pipelinechannel--loader"), name


@pytest.mark.parametrize("pipeline", ["training", "lifecycle"])
def test_the_trusted_types_parameter_reaches_the_train_step(pipeline):
    path = catalog.COMPILED / f"{pipeline}.yaml"
    spec = next(yaml.safe_load_all(path.read_text()))
    declared = spec["root"]["inputDefinitions"]["parameters"]["trusted_types"]
    assert declared["parameterType"] == "LIST" and declared["defaultValue"] == []
    [train] = [task for task in all_tasks(spec).values() if function_of(spec, task) == "train"]
    source = train["inputs"]["parameters"]["trusted_types"]["componentInputParameter"]
    assert source in ("trusted_types", "pipelinechannel--trusted_types")


def test_components_run_the_project_image_without_pip(gpu_compiled):
    spec, _ = gpu_compiled
    for name, executor in spec["deploymentSpec"]["executors"].items():
        container = executor["container"]
        assert container["image"] == IMAGE, name
        command = " ".join(container["command"] + container["args"])
        assert not re.search(r"\bpip3?\b\s+install|-m\s+pip\b", command), (
            f"{name} installs packages at pod start"
        )
        assert "kfp.dsl.executor_main" in command, name


def test_compiled_files_are_fresh(tmp_path):
    """`make compile`'s output equals the committed files, compiled in a fresh process."""
    out, manifests = tmp_path / "compiled", tmp_path / "manifests"
    env = {k: v for k, v in os.environ.items() if k != "LIFECYCLE_IMAGE"}
    code = (
        "import pathlib, sys; from pipelines.cluster.compilation import compile_all; "
        "compile_all(pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]))"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(out), str(manifests)], cwd=ROOT, env=env, check=True
    )
    for name in catalog.NAMES:
        fresh, committed = out / f"{name}.yaml", catalog.COMPILED / f"{name}.yaml"
        assert committed.exists(), f"{committed} is missing: run `make compile`"
        assert fresh.read_bytes() == committed.read_bytes(), f"{committed} {STALE}"
    for path in sorted(manifests.iterdir()):
        committed = compilation.MANIFESTS / path.name
        assert committed.exists(), f"{committed} is missing: run `make compile`"
        assert path.read_bytes() == committed.read_bytes(), f"{committed} {STALE}"


def test_compiling_twice_gives_the_same_bytes(tmp_path):
    first = compilation.compile_all(tmp_path / "a", tmp_path / "am")
    second = compilation.compile_all(tmp_path / "b", tmp_path / "bm")
    # An IR file and a manifest per pipeline, the images configuration, the kustomization.
    assert len(first) == len(second) == 2 * len(catalog.NAMES) + 2
    for a, b in zip(first, second, strict=True):
        assert a.name == b.name
        assert a.read_bytes() == b.read_bytes(), f"{a.name} differs between two compilations"


@pytest.mark.parametrize("pipeline", catalog.NAMES)
def test_committed_ir_loads_with_kfp(pipeline):
    path = catalog.COMPILED / f"{pipeline}.yaml"
    component = kfp.components.load_component_from_file(str(path))
    assert component.name == pipeline
    assert component.pipeline_spec.pipeline_info.name == pipeline
    assert "kubernetes" in component.platform_spec.platforms


@pytest.mark.parametrize("pipeline", catalog.NAMES)
def test_committed_manifests_hold_a_loadable_pipeline_version(pipeline, tmp_path):
    documents = list(yaml.safe_load_all((compilation.MANIFESTS / f"{pipeline}.yaml").read_text()))
    kinds = [document["kind"] for document in documents]
    assert kinds == ["Pipeline", "PipelineVersion"]
    pipeline_object, version = documents
    assert pipeline_object["metadata"]["name"] == pipeline
    assert version["spec"]["pipelineName"] == pipeline
    # The version carries the same spec as the IR file, which KFP loads back.
    ir = list(yaml.safe_load_all((catalog.COMPILED / f"{pipeline}.yaml").read_text()))
    assert version["spec"]["pipelineSpec"] == ir[0]
    assert version["spec"]["platformSpec"] == ir[1]
    path = tmp_path / f"{pipeline}.yaml"
    path.write_text(
        yaml.safe_dump_all([version["spec"]["pipelineSpec"], version["spec"]["platformSpec"]])
    )
    component = kfp.components.load_component_from_file(str(path))
    assert component.name == pipeline
    assert "kubernetes" in component.platform_spec.platforms


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((compilation.MANIFESTS / "kustomization.yaml").read_text())
    assert kustomization["resources"] == [f"{name}.yaml" for name in catalog.NAMES]
    assert kustomization["configurations"] == [compilation.IMAGES_CONFIGURATION]


def test_images_configuration_names_every_step_image():
    """The overlays' `images:` reach each executor's image through this configuration."""
    configuration = yaml.safe_load(
        (compilation.MANIFESTS / compilation.IMAGES_CONFIGURATION).read_text()
    )
    paths = set()
    for entry in configuration["images"]:
        assert (entry["group"], entry["kind"]) == ("pipelines.kubeflow.org", "PipelineVersion")
        paths.add(entry["path"])
    wanted = set()
    for pipeline in catalog.NAMES:
        documents = yaml.safe_load_all((compilation.MANIFESTS / f"{pipeline}.yaml").read_text())
        [version] = [document for document in documents if document["kind"] == "PipelineVersion"]
        for label, executor in version["spec"]["pipelineSpec"]["deploymentSpec"][
            "executors"
        ].items():
            path = compilation.EXECUTOR_IMAGE_PATH.format(executor=label)
            # The path leads to the image, as kustomize walks it.
            node = version
            for key in path.split("/"):
                node = node[key]
            assert node == executor["container"]["image"] == IMAGE, path
            wanted.add(path)
    assert paths == wanted


def test_component_modules_import_only_kfp_and_the_standard_library():
    """Importing a component (what the compiler and KFP's executor do) loads no heavy library."""
    import components

    code = (
        "import importlib, json, sys; importlib.import_module(sys.argv[1]); "
        f"print(json.dumps(sorted(set({list(HEAVY_MODULES)!r}) & set(sys.modules))))"
    )
    processes = {
        module: subprocess.Popen(
            [sys.executable, "-c", code, module], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for module in ["components", *components.COMPONENTS.values()]
    }
    loaded = {}
    for module, process in processes.items():
        out, _ = process.communicate(timeout=300)
        assert process.returncode == 0, module
        loaded[module] = json.loads(out)
    assert loaded == {module: [] for module in processes}


@pytest.mark.parametrize("pipeline", catalog.NAMES)
def test_every_pipeline_parameter_has_a_description_for_the_ui(pipeline):
    """The Kubeflow UI shows these beside each parameter (from the pipelines' docstrings)."""
    spec = yaml.safe_load_all((catalog.COMPILED / f"{pipeline}.yaml").read_text())
    parameters = next(spec)["root"]["inputDefinitions"]["parameters"]
    undescribed = [name for name, p in parameters.items() if not p.get("description")]
    assert not undescribed, f"{pipeline}: no description for {undescribed}"
    data = "predictions_data" if pipeline == "monitoring" else "data"
    for required in (data, "model_name"):
        assert required in parameters
