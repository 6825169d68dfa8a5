"""What a local run prints: one line per step as it ends, a long step's progress, nothing else.

kfp.local streams every line that a step prints (KFP's executor input JSON, library warnings,
the job's log, a traceback) to this process's stdout, and adds its own report of each task and
warnings of its own. A local run keeps each step's whole output in `<run>/<task>/output.log`
instead, and prints it only when verbose; quiet, it prints one line per step as it ends (step,
outcome, wall time, the step's headline) and the progress lines of a long step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import pathlib
import re
import subprocess
import sys
import time
import typing as T
import warnings

from components.io import alerts, retraining
from pipelines.local import warm

# Each step's whole output (what kfp.local would have printed), beside its outputs.
STEP_OUTPUT = "output.log"
# An alert as the steps log it (`ConsoleAlerter`): `[STATUS] title: message | facts`: a job's
# success (its failure is told once, at the end), or the pipeline's, whose title holds its state.
_ALERT = re.compile(
    r"(?:\[SUCCEEDED\] \w+ succeeded|\[[A-Z]+\] [\w.-]+: [A-Z]+): (?P<message>.*?)(?: \| .*)?$"
)
# The lines of a job's alert message that its step's line shows below it: each warning
# (`components.jobs`), and the monitoring's headlines (`components.io.monitoring.alert_lines`).
NOTES = ("Warning: ", "Drift: ", "Performance: ", "Challenger: ")
# The folder of one iteration of a ParallelFor: its tasks are named `<task>-<iteration>`.
_ITERATION = re.compile(r"for-loop-\d+-iteration-(\d+)")


@dataclasses.dataclass(frozen=True)
class Step:
    """A step that ended.

    Attributes:
        task: its name in the run (`predict-shard-2` for an iteration of a loop).
        folder: its folder of outputs, where `output.log` is.
        succeeded: whether it exited 0.
        seconds: its wall time.
        headline: the first line of its alert (what it did), "" when it logged none.
        notes: the lines of its alert under the headline that a user should see: its warnings,
            the batch's drift, its estimated performance, a challenger's comparison.
    """

    task: str
    folder: pathlib.Path
    succeeded: bool
    seconds: float
    headline: str
    notes: tuple[str, ...] = ()

    @property
    def log(self) -> pathlib.Path:
        """The step's whole output."""
        return self.folder / STEP_OUTPUT

    def line(self) -> str:
        """`train   done   9.8 s  Registered bike-sharing v2 (...)`, then its notes below."""
        outcome = "done" if self.succeeded else "FAILED"
        first = f"{self.task:<20} {outcome:<6} {self.seconds:6.1f} s  "
        below = "".join(f"\n{'':<{len(first)}}{note}" for note in self.notes)
        return f"{first}{self.headline}".rstrip() + below


class Console:
    """Runs kfp.local's steps, keeps their output on disk, and prints what a user needs.

    Args:
        verbose: also print everything the steps and kfp.local print, as kfp.local does.
        out: where the lines go (default: this process's stdout when the console is made).
    """

    def __init__(self, verbose: bool = False, out: T.TextIO | None = None):
        self.verbose = verbose
        self.out = out or sys.stdout
        self.steps: list[Step] = []
        # kfp.local's own report of the tasks, kept for a quiet run's `orchestrator.log`.
        self.chatter = io.StringIO()
        # The next step's interpreter, started ahead while the pipeline runs (pipelines.local.warm).
        self.interpreters: warm.Interpreters | None = None

    @contextlib.contextmanager
    def attached(self) -> T.Iterator[Console]:
        """Route kfp.local's steps through `run_step` while the pipeline runs.

        kfp.local calls `subprocess_task_handler.run_local_subprocess` for each step and prints
        each line it reads; this runs the step the same way, with the output going to its log.
        """
        from kfp.local import subprocess_task_handler

        original = subprocess_task_handler.run_local_subprocess
        subprocess_task_handler.run_local_subprocess = self.run_step
        self.start_interpreters()
        try:
            if self.verbose:
                yield self
                return
            # Quiet: kfp.local's task reports (logged to stdout) and its warnings (settings
            # without effect locally, the project image run as this Python) are not for users.
            with contextlib.redirect_stdout(self.chatter), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield self
        finally:
            subprocess_task_handler.run_local_subprocess = original
            self.close_interpreters()

    def start_interpreters(self) -> None:
        """Have the first step's interpreter import its libraries now (see pipelines.local.warm).

        Called before the pipeline starts (while its parameters are checked) or when it
        starts; `LIFECYCLE_WARM_STEPS=0` leaves every step to start its own.
        """
        from components.utils import cpus

        if self.interpreters is None and warm.enabled():
            self.interpreters = warm.Interpreters(threads=cpus.available_cpus())
            self.interpreters.start()

    def close_interpreters(self) -> None:
        """Stop the interpreter left waiting: no step will take it."""
        if self.interpreters is not None:
            self.interpreters.close()
            self.interpreters = None

    def run_step(self, full_command: list[str], env_vars: dict[str, str] | None = None) -> int:
        """Run one step as kfp.local does; its output goes to its log, and here if verbose.

        Args:
            full_command: the step's command line, with its executor input.
            env_vars: the step's own environment variables, over this process's.

        Returns:
            The step's exit status.
        """
        from components.io.services import PROGRESS_MARK

        folder = task_folder(full_command)
        folder.mkdir(parents=True, exist_ok=True)
        task = task_name(folder)
        env = {**os.environ, **on_this_machine(env_vars or {})}
        started = time.monotonic()
        headline, also, delivery = "", "", ""
        notes: list[str] = []
        in_alert = False  # reading the lines of a multi-line alert message
        process = self.interpreters.take(full_command, env) if self.interpreters else None
        if process is None:  # no interpreter waiting, or not a command one can run
            process = subprocess.Popen(
                full_command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,  # as kfp.local: one stream, in order
                text=True,
                bufsize=1,
                env=env,
            )
        with (folder / STEP_OUTPUT).open("w", encoding="utf-8", buffering=1) as log, process:
            assert process.stdout is not None  # piped above
            for line in process.stdout:
                log.write(line)
                if self.verbose:
                    self.out.write("    " + line)
                elif PROGRESS_MARK in line:
                    progress = line.split(PROGRESS_MARK, 1)[1].strip()
                    self.print(f"{task:<20} ...    {time.monotonic() - started:6.1f} s  {progress}")
                found = _headline(line)
                if found:
                    headline, notes, in_alert = found, [], True
                elif in_alert and line.startswith(NOTES):
                    notes.append(_without_facts(line))
                elif line.startswith("["):  # the next record of the log: the message ended
                    in_alert = False
                if alerts.DELIVERY_MARK in line:  # the exit step's alert: where it went
                    delivery = line.split(alerts.DELIVERY_MARK, 1)[1].strip()
                if line.startswith(retraining.LINE_PREFIX):  # a training started in the background
                    also = line.split(f" {alerts.FACTS_SEPARATOR} ", 1)[0].strip()
            code = process.wait()
        headline = f"{headline} {also}".strip() if also else headline
        if delivery.startswith("NOT"):  # an alert that nobody received: say it where one looks
            notes.append(f"Warning: alert {delivery}")
        elif delivery and not headline:  # sent elsewhere than this log: say where
            headline = f"Alert {delivery}."
        step = Step(task, folder, code == 0, time.monotonic() - started, headline, tuple(notes))
        self.steps.append(step)
        if not self.verbose:
            self.print(step.line())
        return code

    def print(self, line: str) -> None:
        """Print one line, at once (a step's line must not wait for the next)."""
        self.out.write(line + "\n")
        self.out.flush()


def on_this_machine(env_vars: T.Mapping[str, str]) -> dict[str, str]:
    """A step's environment for a run on this machine: OpenMP sized for its CPUs.

    The compiled `OMP_NUM_THREADS` is the pod's CPU limit (4 for train); on a 2-core machine
    that many OpenMP threads contend for two cores, and scikit-learn's tree fitting spins:
    the demo's train step took 8 times as long as with 2 threads. A value at or under the
    CPUs here stays.
    """
    from components.utils import cpus

    env = dict(env_vars)
    threads = env.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > cpus.available_cpus():
        env["OMP_NUM_THREADS"] = str(cpus.available_cpus())
    return env


def _headline(line: str) -> str:
    """The message of a logged alert's line, or ""."""
    match = _ALERT.search(line.rstrip("\n"))
    return match["message"].strip() if match else ""


def _without_facts(line: str) -> str:
    """A line of an alert's message without the facts that may follow it (` | rows=...`)."""
    return line.split(f" {alerts.FACTS_SEPARATOR} ", 1)[0].strip()


def task_folder(full_command: T.Sequence[str]) -> pathlib.Path:
    """The step's folder of outputs, from the executor input on its command line.

    Raises:
        ValueError: the command carries no executor input (not a KFP lightweight component).
    """
    for flag, value in zip(full_command, full_command[1:], strict=False):
        if flag == "--executor_input":
            output = json.loads(value)["outputs"]["outputFile"]
            return pathlib.Path(output).parent
    raise ValueError("the step's command has no --executor_input")


def task_name(folder: pathlib.Path) -> str:
    """The task's name as the run's steps name themselves: `predict-shard-2` in a loop."""
    iteration = _ITERATION.fullmatch(folder.parent.name)
    return f"{folder.name}-{iteration[1]}" if iteration else folder.name


# A failed job's alert line: `[FAILED] TrainingJob failed: SettingsError: message`.
_FAILED_JOB = re.compile(r"\[FAILED\] [\w.-]+ failed: (?P<cause>(?P<error>\w+): .*)$")
# The line that ends a traceback: `components.jobs.base.SettingsError: message`.
_EXCEPTION = re.compile(r"^(?:[\w]+\.)*(?P<cause>(?P<error>\w*(?:Error|Exception)): .*)$")
# What MLflow's client says when the server wants other credentials (401) or another account.
_REFUSED_CREDENTIALS = re.compile(r"error code (401|403) != 200")
# Errors that say what in the input or the parameters is wrong: a traceback adds nothing.
USER_ERRORS = frozenset(
    {
        "SettingsError", "ValidationError", "DatasetError", "DriftError", "ShardError",
        "FeatureError", "SignatureError", "UnsignedModelError", "RegistryError", "CardError",
        "PromotionError", "FactoryError", "ShadowError", "UntrustedTypesError", "PerformanceError",
        "LabelsError", "MonitoringError", "PerformanceDegradedError", "CategoriesError",
        "ChampionMismatchError", "FitError",
        "FileNotFoundError", "ValueError",
    }
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Failure:
    """Why a step failed, told once.

    Attributes:
        step: the failed step.
        cause: its error, `ErrorClass: message` when known.
        error: the error's class name ("" when the step left none: killed).
    """

    step: Step
    cause: str
    error: str

    def advice(self, tracking_uri: str) -> str:
        """What to do about it.

        Args:
            tracking_uri: the MLflow store the run used (credentials masked).
        """
        if self.error == "MlflowUnavailableError" and _REFUSED_CREDENTIALS.search(self.cause):
            return (
                f"MLflow at {tracking_uri} refused this client: set MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) to an account it knows, "
                "then run again"
            )
        if self.error == "MlflowUnavailableError" and " refused a request of step " in self.cause:
            return (
                "MLflow answered and refused what the step asked: fix what it names, then run again"
            )
        if self.error == "MlflowUnavailableError":
            return f"check that MLflow answers at {tracking_uri}, then run again"
        if self.error == "ArtifactStoreError":
            return f"change where MLflow at {tracking_uri} keeps artifacts, as said above"
        if self.error in USER_ERRORS:
            return "fix the input or the parameter named above (--config, --param), then run again"
        if not self.error:
            return "the step was stopped from outside (out of memory?): see its log"
        return "an unexpected error: its traceback is in the step log; report it with that log"


def failure_of(step: Step) -> Failure:
    """The cause of a failed step, from its output: the job's error, else the traceback's end."""
    from components.io import runs
    from components.utils import secrets

    text = runs.read_tail(step.log)
    lines = [line.rstrip() for line in text.splitlines()]
    for pattern in (_FAILED_JOB, _EXCEPTION):
        order = range(len(lines)) if pattern is _FAILED_JOB else reversed(range(len(lines)))
        for index in order:
            match = pattern.search(lines[index])
            if match:
                # The job's message goes on over the lines after it (what in the input is wrong).
                told = match["cause"]
                if pattern is _FAILED_JOB:
                    told = " ".join([told, *runs.continued(lines, index)])
                cause = secrets.clip(secrets.redact(told), runs.CAUSE_CHARS)
                return Failure(step, cause, match["error"])
    cause = runs.error_in_log(text) or (runs.last_lines(text) if text.strip() else runs.KILLED)
    return Failure(step, cause, "")
