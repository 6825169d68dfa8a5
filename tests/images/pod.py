"""The component image's recipe replayed without Docker, and a KFP pod's step run in it.

`build_image` follows images/Dockerfile step by step: the build context its allow-list lets
through, `pip wheel --no-deps`, a fresh venv with the wheel and its dependencies, the import
check, then the runtime layout (the venv, the WORKDIR `home/app`, PATH with the
venv first). `run_step` does what KFP's driver and launcher do for one task of a compiled
pipeline: it builds the ExecutorInput JSON from the component's compiled interface, sets the
environment the platform spec asks for (ConfigMaps, Secrets), replaces `{{$}}` in the executor's
`command` and `args` exactly as compiled, runs them and reads the executor output back.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import typing as T

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "images" / "Dockerfile"

# What images/Dockerfile COPYs into /src for its build stage, and what .dockerignore drops.
BUILD_CONTEXT = ("requirements.lock", "pyproject.toml", "README.md", "components", "pipelines")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "*.pyd", "*.egg-info")
# ENV of the build stage and of the runtime stage.
BUILD_ENV = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_CACHE_DIR": "1"}
RUNTIME_ENV = {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
# PATH of the python:3.11-slim base image, after the Dockerfile's /opt/venv/bin.
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclasses.dataclass(frozen=True)
class Image:
    """The replayed image: its venv (/opt/venv), WORKDIR (/home/app) and the wheel installed."""

    venv: pathlib.Path
    workdir: pathlib.Path
    wheel: pathlib.Path
    src: pathlib.Path
    tmp: pathlib.Path

    @property
    def compiled(self) -> pathlib.Path:
        """pipelines/compiled/ as it was copied into the build context, beside the wheel."""
        return self.src / "pipelines" / "compiled"

    @property
    def path(self) -> str:
        """PATH inside the image: the venv's bin first, so `python3` is the venv's."""
        return f"{self.venv / 'bin'}:{BASE_PATH}"

    def python(self, code: str) -> str:
        """Run `python3 -c CODE` in the image (WORKDIR, PATH) and return its stdout."""
        done = _run(["python3", "-c", code], cwd=self.workdir, env=self.env({}), timeout=120)
        return done.stdout

    def env(self, extra: T.Mapping[str, str]) -> dict[str, str]:
        """A container's environment: the image's ENV, nothing inherited from this process."""
        home = str(self.workdir)
        return {"PATH": self.path, "HOME": home, "TMPDIR": str(self.tmp), **RUNTIME_ENV, **extra}


def build_image(root: pathlib.Path) -> Image:
    """Replay images/Dockerfile under `root` (minutes: pip resolves and installs every pin).

    Args:
        root: an empty folder standing for the image's filesystem.

    Returns:
        The image: /opt/venv, /home/app and the wheel that was installed.
    """
    # ---- build stage: RUN python -m venv /opt/venv
    venv = root / "opt" / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    _run([base_python, "-m", "venv", str(venv)], timeout=300)
    # WORKDIR /src + COPY pyproject.toml README.md components/ pipelines/ (.dockerignore applied)
    src = root / "src"
    src.mkdir()
    for name in BUILD_CONTEXT:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, src / name, ignore=IGNORED)
        else:
            shutil.copy2(source, src / name)
    env = {**os.environ, **BUILD_ENV}
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    # RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes -r requirements.lock
    pip_install = [str(venv / "bin" / "pip"), "install", "--no-cache-dir", "--quiet"]
    _run(
        [*pip_install, "--require-hashes", "-r", "requirements.lock"],
        cwd=src,
        env=env,
        timeout=1200,
    )
    # RUN pip wheel --no-cache-dir --no-deps -w /wheels . && /opt/venv/bin/pip install
    #     --no-cache-dir --no-deps /wheels/*.whl && /opt/venv/bin/python -c "import ..."
    wheels = root / "wheels"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-cache-dir", "--no-deps"]
    _run([*pip_wheel, "-w", str(wheels), "."], cwd=src, env=env, timeout=600)
    [wheel] = wheels.glob("*.whl")
    _run([*pip_install, "--no-deps", str(wheel)], cwd=src, env=env, timeout=600)
    imports = "import components, pipelines, kfp, mlflow, psycopg2"
    _run([str(venv / "bin" / "python"), "-c", imports], cwd=root, env=env, timeout=300)
    # ---- runtime stage: WORKDIR /home/app (the demo data ships inside the wheel)
    workdir = root / "home" / "app"
    workdir.mkdir(parents=True)
    tmp = root / "tmp"
    tmp.mkdir()
    return Image(venv=venv, workdir=workdir, wheel=wheel, src=src, tmp=tmp)


def load_pipeline(path: pathlib.Path) -> tuple[dict, dict]:
    """A compiled pipeline: its PipelineSpec and its Kubernetes platform spec ({} when none)."""
    documents = list(yaml.safe_load_all(path.read_text()))
    spec = documents[0]
    platform = next((doc for doc in documents[1:] if doc and "platforms" in doc), {})
    return spec, platform.get("platforms", {}).get("kubernetes", {})


@dataclasses.dataclass(frozen=True)
class Step:
    """One component of a compiled pipeline, as KFP would start it in a pod."""

    name: str
    interface: dict
    container: dict
    platform: dict

    @classmethod
    def of(cls, pipeline: tuple[dict, dict], component: str) -> Step:
        """The component `component` (e.g. "predict") of a loaded compiled pipeline."""
        spec, platform = pipeline
        interface = spec["components"][f"comp-{component}"]
        label = interface["executorLabel"]
        container = spec["deploymentSpec"]["executors"][label]["container"]
        executors = platform.get("deploymentSpec", {}).get("executors", {})
        return cls(component, interface, container, executors.get(label, {}))

    def executor_input(self, arguments: T.Mapping[str, T.Any], task_root: pathlib.Path) -> dict:
        """The ExecutorInput KFP's driver hands the launcher, in its JSON form.

        Parameters are the arguments over the compiled defaults; output artifacts get URIs under
        `task_root`. On a cluster the URIs are `minio://`, `s3://` or `gs://` and the SDK maps them
        to `/minio/`, `/s3/`, `/gcs/` mounts; a local absolute URI is its own path, so the step
        writes where this test reads.
        """
        inputs = self.interface.get("inputDefinitions", {}).get("parameters", {})
        unknown = set(arguments) - set(inputs)
        if unknown:
            raise ValueError(f"{self.name} has no inputs {sorted(unknown)}")
        values = {
            name: spec["defaultValue"] for name, spec in inputs.items() if "defaultValue" in spec
        }
        values.update(arguments)
        missing = [n for n, s in inputs.items() if not s.get("isOptional") and n not in values]
        if missing:
            raise ValueError(f"{self.name} needs the inputs {missing}")
        outputs = self.interface.get("outputDefinitions", {})
        artifacts = {
            name: {
                "artifacts": [
                    {
                        "name": name,
                        "type": spec["artifactType"],
                        "uri": str(task_root / name),
                        "metadata": {},
                    }
                ]
            }
            for name, spec in outputs.get("artifacts", {}).items()
        }
        parameters = {
            name: {"outputFile": str(task_root / "outputs" / name)}
            for name in outputs.get("parameters", {})
        }
        return {
            "inputs": {"parameterValues": _protojson(values)},
            "outputs": {
                "artifacts": artifacts,
                "parameters": parameters,
                "outputFile": str(task_root / "executor_output.json"),
            },
        }

    def env(
        self,
        config_maps: T.Mapping[str, T.Mapping[str, str]],
        secrets: T.Mapping[str, T.Mapping[str, str]],
    ) -> dict[str, str]:
        """The variables the platform spec sets from ConfigMaps and Secrets, as the kubelet would.

        A missing ConfigMap or Secret fails unless the spec marks it optional.
        """
        env: dict[str, str] = {}
        for key, sources in (("configMapAsEnv", config_maps), ("secretAsEnv", secrets)):
            for source in self.platform.get(key, []):
                name = source.get("configMapName") or source.get("secretName")
                data = sources.get(name)
                if data is None:
                    if source.get("optional"):
                        continue
                    raise LookupError(f"{self.name} needs {key} {name!r}, which is not given")
                for item in source.get("keyToEnv", []):
                    value_key = item.get("configMapKey") or item.get("secretKey")
                    if value_key not in data and source.get("optional"):
                        continue  # Kubernetes leaves the variable unset
                    env[item["envVar"]] = data[value_key]
        return env

    def run(
        self,
        image: Image,
        arguments: T.Mapping[str, T.Any],
        task_root: pathlib.Path,
        env: T.Mapping[str, str],
        timeout: float = 600,
    ) -> StepRun:
        """Start the step as its pod would: compiled command + args, `{{$}}` replaced."""
        executor_input = self.executor_input(arguments, task_root)
        serialized = json.dumps(executor_input)
        argv = [
            part.replace("{{$}}", serialized)
            for part in [*self.container["command"], *self.container.get("args", [])]
        ]
        leftover = [part for part in argv if "{{$" in part.replace(serialized, "")]
        if leftover:
            raise ValueError(f"placeholders this test does not resolve: {leftover}")
        task_root.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            argv,
            cwd=image.workdir,
            env=image.env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        output_file = pathlib.Path(executor_input["outputs"]["outputFile"])
        output = json.loads(output_file.read_text()) if output_file.exists() else None
        return StepRun(executor_input, done.returncode, done.stdout + done.stderr, output)


@dataclasses.dataclass(frozen=True)
class StepRun:
    """What a step's pod left: its exit code, its log and the executor output (None if none)."""

    executor_input: dict
    returncode: int
    log: str
    output: dict | None

    def path(self, artifact: str) -> pathlib.Path:
        """The local path of an output artifact."""
        return pathlib.Path(
            self.executor_input["outputs"]["artifacts"][artifact]["artifacts"][0]["uri"]
        )

    def metadata(self, artifact: str) -> dict:
        """The metadata the step recorded on an output artifact."""
        assert self.output is not None
        return self.output["artifacts"][artifact]["artifacts"][0]["metadata"]

    @property
    def parameters(self) -> dict:
        """The output parameters the step returned."""
        assert self.output is not None
        return self.output.get("parameterValues", {})


def _protojson(value: T.Any) -> T.Any:
    """Values as the Go backend serializes a protobuf Value: whole numbers without a fraction.

    The compiler stores integer defaults as doubles (`131072.0`); protojson writes them `131072`,
    so the executor gets an int, as it does on a cluster.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _protojson(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_protojson(item) for item in value]
    return value


def _run(
    command: list[str],
    cwd: pathlib.Path | None = None,
    env: T.Mapping[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-4000:]}\n"
            f"{done.stderr[-4000:]}"
        )
    return done
