"""Compile-time settings: where each step runs on a cluster (GPU, resources, secrets, retries)."""

from __future__ import annotations

import typing as T

import pydantic as pdt
from kfp import kubernetes
from kfp.dsl import PipelineTask

from components.io import alerts
from pipelines.dags import defaults, kfp_fix

kfp_fix.install()  # before any pipeline is built: every builder imports this module


class Resources(pdt.BaseModel, frozen=True, extra="forbid"):
    """CPU and memory requests and limits of one step's pod."""

    cpu_request: str = "500m"
    cpu_limit: str = "2"
    memory_request: str = "1Gi"
    memory_limit: str = "4Gi"

    def threads(self) -> int:
        """Whole CPUs in the limit, at least one ("4" -> 4, "500m" -> 1)."""
        cpus = (
            float(self.cpu_limit[:-1]) / 1000
            if self.cpu_limit.endswith("m")
            else float(self.cpu_limit)
        )
        return max(1, int(cpus))


class Settings(pdt.BaseModel, frozen=True, extra="forbid"):
    """How the compiled pipelines ask Kubernetes for their pods.

    Args:
        gpu: put predict and explain on GPU nodes (off for kind and CPU-only clusters).
        gpu_node_label: node selector label key and value of the GPU node pool.
        accelerator_type: the resource name of the accelerator.
        accelerator_limit: how many accelerators predict and explain ask for.
        mlflow_config_map: the run ConfigMap: every step reads its MLFLOW_TRACKING_URI, the
            notify step its KFP_UI_BASE_URL (the link to the run in alerts).
        mlflow_credentials_secret: Secret with MLFLOW_TRACKING_USERNAME / _PASSWORD (optional).
        slack_secret: the alerters' Secret (optional): the notify step reads from it the
            variables every registered alerter declares secret (SLACK_WEBHOOK_URL), and
            `alerter_secret_keys`.
        alerter_secret_keys: more keys of that Secret for the notify step, e.g. a user's
            alerter's `SECRET_ENVIRONMENT`, or LIFECYCLE_ALERTER when its config is secret.
        alerter: LIFECYCLE_ALERTER of the notify step, when not empty: a KIND, a
            `package.module:Class` or a JSON `{"type": ..., "config": {...}}`, no secret in it.
        retries: retries per step; every step may be retried: a retry of the same task
            leaves the registry as one attempt would (train keeps its version, promote
            compares and sets).
        resources: requests and limits per step.
        timeouts: seconds each step's pod may run (per attempt) before Kubernetes stops it, so
            that a hung step fails, reaches the alert and frees the run.
        parallelism: the most shard pods of a sharded prediction that run at once (the other
            shards wait for a free slot); each shard pod has the predict step's resources.
        trial_parallelism: the most trial pods of a tuning that run at once; each has the
            train step's resources. KFP fixes it when it compiles the pipeline; a local run
            builds the pipeline with its `parallelism` parameter.
        pipeline: the pipeline's name, given to every step (its MLflow parent run shows it).
    """

    gpu: bool = True
    gpu_node_label: tuple[str, str] = ("nvidia.com/gpu.present", "true")
    accelerator_type: str = "nvidia.com/gpu"
    accelerator_limit: int = 1
    mlflow_config_map: str = "mlflow-config"
    mlflow_credentials_secret: str = "mlflow-credentials"
    slack_secret: str = "slack-webhook"
    alerter_secret_keys: tuple[str, ...] = ()
    alerter: str = ""
    retries: dict[str, int] = {
        "train": 1, "evaluate": 2, "promote": 2, "predict": 2, "explain": 2, "notify": 3,
        "plan": 2, "publish": 2, "monitor": 2, "select": 2,
    }  # fmt: skip
    resources: dict[str, Resources] = {
        "train": Resources(cpu_request="1", cpu_limit="4", memory_limit="8Gi"),
        "evaluate": Resources(),
        "promote": Resources(cpu_request="100m", cpu_limit="500m", memory_limit="1Gi"),
        "predict": Resources(cpu_request="2", cpu_limit="4", memory_request="2Gi"),
        "explain": Resources(cpu_request="1", cpu_limit="4", memory_request="2Gi"),
        # A retraining policy that fires checks and starts the training in a second interpreter
        # (about 300 MB, briefly): the limit leaves room for both.
        "notify": Resources(cpu_request="100m", cpu_limit="500m", memory_request="256Mi",
                            memory_limit="1Gi"),
        # Plan and publish read metadata and write a small JSON file: no rows pass through them.
        "plan": Resources(cpu_request="100m", cpu_limit="1", memory_limit="1Gi"),
        "publish": Resources(cpu_request="100m", cpu_limit="500m", memory_limit="1Gi"),
        # Monitor holds one window's labelled rows in memory, as evaluate holds its holdout.
        "monitor": Resources(),
        # Select ranks runs in MLflow, registers one and copies the best trial's holdout.
        "select": Resources(cpu_request="100m", cpu_limit="500m", memory_limit="1Gi"),
    }  # fmt: skip
    # Generous for the demo data, bounded for any: raise them for big data, never drop them.
    # MLflow calls are bounded (about 50 s each), so promote and notify need minutes at most.
    timeouts: dict[str, int] = {
        "train": 4 * 3600,
        "evaluate": 3600,
        "promote": 600,
        "predict": 4 * 3600,
        "explain": 4 * 3600,
        "notify": 600,
        "plan": 1800,
        "publish": 600,
        "monitor": 3600,
        "select": 600,
    }
    parallelism: int = pdt.Field(default=8, gt=0)
    trial_parallelism: int = pdt.Field(default=defaults.TRIAL_PARALLELISM, gt=0)
    pipeline: str = ""

    GPU_STEPS: T.ClassVar[tuple[str, ...]] = ("predict", "explain")

    @pdt.model_validator(mode="after")
    def _every_step_has_a_timeout(self) -> Settings:
        problems = []
        if missing := sorted(set(self.resources) - set(self.timeouts)):
            problems.append(f"no timeout for {', '.join(missing)}")
        if unknown := sorted(set(self.timeouts) - set(self.resources)):
            problems.append(f"timeouts for unknown steps {', '.join(unknown)}")
        if not_positive := sorted(step for step, s in self.timeouts.items() if s <= 0):
            problems.append(f"timeouts must be > 0 seconds: {', '.join(not_positive)}")
        if problems:
            raise ValueError(f"{'; '.join(problems)} (steps: {', '.join(self.resources)})")
        return self

    def configure(self, task: PipelineTask, step: str, display_name: str) -> PipelineTask:
        """Apply the step's name, resources, timeout, retries, environment and scheduling."""
        task.set_display_name(display_name)
        # Steps write to MLflow (versions, aliases, runs): a cached step would skip that.
        task.set_caching_options(enable_caching=False)
        resources = self.resources[step]
        task.set_cpu_request(resources.cpu_request).set_cpu_limit(resources.cpu_limit)
        task.set_memory_request(resources.memory_request)
        task.set_memory_limit(resources.memory_limit)
        # OpenMP (scikit-learn's trees) sizes its pool by the node's cores, not the pod's limit;
        # more threads than the CPU limit only make the step slower under CFS throttling.
        task.set_env_variable("OMP_NUM_THREADS", str(resources.threads()))
        if self.pipeline:  # components.io.parents names the steps' MLflow parent run after it
            task.set_env_variable("LIFECYCLE_PIPELINE", self.pipeline)
        # The pod's activeDeadlineSeconds: a hung step is stopped (each retry gets its own
        # deadline), fails, and the exit handler's notify step still tells people why.
        kubernetes.set_timeout(task, self.timeouts[step])
        if self.retries.get(step):
            task.set_retry(num_retries=self.retries[step], backoff_duration="30s", backoff_factor=2)
        kubernetes.use_config_map_as_env(
            task, self.mlflow_config_map, {"MLFLOW_TRACKING_URI": "MLFLOW_TRACKING_URI"}
        )
        kubernetes.use_secret_as_env(
            task,
            self.mlflow_credentials_secret,
            {
                "MLFLOW_TRACKING_USERNAME": "MLFLOW_TRACKING_USERNAME",
                "MLFLOW_TRACKING_PASSWORD": "MLFLOW_TRACKING_PASSWORD",
            },
            optional=True,  # an MLflow server without authentication needs no credentials
        )
        if step == "notify":
            # Optional: a Secret or a key missing sends the alert to the log, never loses it.
            keys = dict.fromkeys((*alerts.secret_environment(), *self.alerter_secret_keys))
            kubernetes.use_secret_as_env(
                task, self.slack_secret, {key: key for key in keys}, optional=True
            )
            if self.alerter:
                task.set_env_variable(alerts.ALERTER_ENV, self.alerter)
            # Optional: without it (a ConfigMap applied before the key existed) the alert only
            # lacks the link to the run, which is no reason to lose the alert.
            kubernetes.use_config_map_as_env(
                task, self.mlflow_config_map, {"KFP_UI_BASE_URL": "KFP_UI_BASE_URL"}, optional=True
            )
        if self.gpu and step in self.GPU_STEPS:
            task.set_accelerator_type(self.accelerator_type)
            task.set_accelerator_limit(self.accelerator_limit)
            kubernetes.add_node_selector(task, *self.gpu_node_label)
            kubernetes.add_toleration(
                task, key=self.accelerator_type, operator="Exists", effect="NoSchedule"
            )
        return task
