"""Steps' interpreters started ahead: a local run's next step finds its libraries imported.

Under kfp.local every step is a fresh `python -m kfp.dsl.executor_main`, which spends about
2.5 s importing kfp, MLflow, scikit-learn, pandas and pyarrow before its job starts (see
bench/startup.py). A local run starts the next step's interpreter while the current step
runs: it imports those libraries, then waits for its step on stdin. Each interpreter still
runs one step and exits, as a pod does; only the imports happen ahead.

The step's own environment replaces the interpreter's when the step is handed over; OpenMP,
which read its thread count when scikit-learn loaded it, is resized through threadpoolctl. A
command of any other shape than a lightweight component's (packages to install, another
Python) runs as kfp.local would run it. `LIFECYCLE_WARM_STEPS=0` turns this off.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import typing as T

# Set to 0 to start every step's interpreter when the step starts, as kfp.local does.
SWITCH_VARIABLE = "LIFECYCLE_WARM_STEPS"
# What every step imports (the libraries are most of its start-up); a module missing from
# this environment is skipped, the step imports what it needs itself.
PRELOAD = (
    "kfp.dsl.executor_main",
    "mlflow",
    "mlflow.tracking",
    "pandas",
    "pyarrow.parquet",
    "sklearn.base",
    "components.jobs.base",
)
# A local store's driver, also 0.6 s to import: only where the steps use one.
LOCAL_STORE_MODULE = "mlflow.store.tracking.sqlalchemy_store"

# The shell script of a lightweight component as kfp.local runs it (`$0` is the component's
# source, the arguments follow); anything else is not handed to a waiting interpreter.
_COMPONENT_SCRIPT = re.compile(
    r'program_path=\$\(mktemp -d\)\s+printf "%s" "\$0" > "\$program_path/ephemeral_component\.py"'
    r"\s+_KFP_RUNTIME=true (?P<python>\S+) -m kfp\.dsl\.executor_main\s+--component_module_path"
    r'\s+"\$program_path/ephemeral_component\.py"\s+"\$@"\s*'
)

# Runs in the waiting interpreter: import, wait for the step, apply its environment, run it
# as `python -m kfp.dsl.executor_main --component_module_path <file> <args>` would. The
# executor module is imported ahead (first in PRELOAD), so its function is called.
_PROGRAM = """
import importlib, json, os, sys
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except ImportError:
        pass
line = sys.stdin.readline()
if not line:  # the run ended without a step for this interpreter
    sys.exit(0)
request = json.loads(line)
os.environ.clear()
os.environ.update(request["env"])
threads = os.environ.get("OMP_NUM_THREADS", "")
if threads.isdigit() and "sklearn" in sys.modules:
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=int(threads), user_api="openmp")
import tempfile
path = os.path.join(tempfile.mkdtemp(), "ephemeral_component.py")
with open(path, "w", encoding="utf-8") as source:
    source.write(request["source"])
sys.argv = [sys.modules["kfp.dsl.executor_main"].__file__, "--component_module_path", path]
sys.argv += request["args"]
sys.modules["kfp.dsl.executor_main"].executor_main()  # what its `__main__` block calls
"""


def enabled() -> bool:
    """Whether local runs start their steps' interpreters ahead (`LIFECYCLE_WARM_STEPS`)."""
    return os.environ.get(SWITCH_VARIABLE, "1").strip().lower() not in {"0", "false", "no", "off"}


def component_call(full_command: T.Sequence[str]) -> tuple[str, list[str]] | None:
    """The source and arguments of a lightweight component run by this Python, else None."""
    if len(full_command) < 4 or list(full_command[:2]) != ["sh", "-ec"]:
        return None
    match = _COMPONENT_SCRIPT.fullmatch(full_command[2])
    if not match or os.path.realpath(match["python"]) != os.path.realpath(sys.executable):
        return None
    return full_command[3], list(full_command[4:])


class Interpreters:
    """One interpreter kept waiting for the next step; each step takes it and starts another.

    Args:
        threads: OpenMP threads of the waiting interpreters (a step's own count applies when
            it is handed over).
    """

    def __init__(self, threads: int):
        self.threads = threads
        self._lock = threading.Lock()  # kfp.local runs a loop's iterations in threads
        self._waiting: subprocess.Popen[str] | None = None
        self._closed = False

    def start(self) -> None:
        """Have an interpreter waiting (one already waiting stays)."""
        with self._lock:
            if self._waiting is None and not self._closed:
                self._waiting = self._spawn()

    def take(self, full_command: T.Sequence[str], env: T.Mapping[str, str]) -> T.Any:
        """Hand the step to the waiting interpreter and start the next one.

        Args:
            full_command: the step's command, as kfp.local would run it.
            env: the step's whole environment.

        Returns:
            The step's process (its output on stdout, stderr merged), or None when the step
            must be run as kfp.local runs it: a command of another shape, or no interpreter.
        """
        call = component_call(full_command)
        if call is None:
            return None
        source, args = call
        with self._lock:
            process, self._waiting = self._waiting, None
            if not self._closed:
                self._waiting = self._spawn()
        if process is None or process.poll() is not None:  # none, or it died importing
            return None
        # The script sets _KFP_RUNTIME for the executor: kfp then leaves its client unimported.
        request = {"source": source, "args": args, "env": {**env, "_KFP_RUNTIME": "true"}}
        try:
            assert process.stdin is not None  # piped in _spawn
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.close()
            process.stdin = None  # handed over: from here on, a process with only an output
        except (BrokenPipeError, OSError):
            process.kill()
            process.wait()
            return None
        return process

    def close(self) -> None:
        """Stop the interpreter still waiting: the run has no more steps."""
        with self._lock:
            self._closed = True
            process, self._waiting = self._waiting, None
        if process is not None:  # it has run nothing: stopped at once, mid-import or not
            process.kill()
            process.wait()
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    stream.close()

    def _spawn(self) -> subprocess.Popen[str]:
        preload = list(PRELOAD)
        if not os.environ.get("MLFLOW_TRACKING_URI", "").startswith(("http://", "https://")):
            preload.append(LOCAL_STORE_MODULE)
        env = {**os.environ, "_KFP_RUNTIME": "true", "OMP_NUM_THREADS": str(self.threads)}
        return subprocess.Popen(
            [sys.executable, "-c", _PROGRAM, json.dumps(preload)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # as kfp.local: one stream, in order
            text=True,
            bufsize=1,
            env=env,
        )
