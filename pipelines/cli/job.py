"""`job status|wait|cancel|result ID`: follow a run started with `--detach`, on either backend.

Usage:
    ID=$(python -m pipelines run inference --local --config confs/bike-sharing.yaml --detach)
    python -m pipelines job status $ID      # {"state": "running", "submitted_at": ...}
    python -m pipelines job wait $ID        # blocks until it ends; exit status 0 if completed
    python -m pipelines job result $ID      # {"kind": "Predictions", "uri": ..., "rows": ...}
    python -m pipelines job cancel $ID
"""

from __future__ import annotations

import argparse
import json
import sys
import typing as T

from pipelines.cli.guard import guarded
from pipelines.cluster.client import TOKEN_ENV

if T.TYPE_CHECKING:
    from pipelines.jobs import futures

ACTIONS = ("status", "wait", "cancel", "result")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`job ACTION ID [--config FILE] [--host URL] [--timeout S]`."""
    parser.add_argument("action", choices=ACTIONS, help="what to do with the job")
    parser.add_argument("id", help="the job id: local:<16 hex digits> or kfp:<run id>")
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="run config whose model_management section names the backends (jobs folder, host)",
    )
    parser.add_argument(
        "--host",
        default=None,
        help="KFP API endpoint for a kfp: id (default: the config's, else $KF_PIPELINES_ENDPOINT)",
    )
    parser.add_argument("--namespace", default=None, help="profile namespace on multi-user KFP")
    parser.add_argument(
        "--token-env", default=TOKEN_ENV, help="environment variable holding a bearer token"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds `wait` and `result` wait at most (default: until the job ends)",
    )
    parser.set_defaults(handler=job_command)


def find(args: argparse.Namespace) -> futures.JobFuture:
    """The job's future, from its id, with the backends of --config or --host."""
    # Here, not at the top: they load MLflow, which every other command would wait for.
    from pipelines.jobs import backends, futures, management

    backend, job = futures.split_id(args.id)
    if backend == futures.KFP and args.host:
        kfp = backends.KFPTrainer(
            host=args.host, namespace=args.namespace, token_env=args.token_env
        )
        return kfp.get_future(job)
    return management.get_future(args.id, args.config)


@guarded
def job_command(args: argparse.Namespace) -> int:
    """Print the job's status, final status, cancel outcome or result; exit 1 if it failed."""
    from pipelines.jobs import futures

    future = find(args)
    try:
        if args.action == "status":
            return _print(future.status().to_dict())
        if args.action == "cancel":
            stopped = future.cancel()
            state = future.status().state
            print(f"{future.id} {'canceled' if stopped else f'had already ended: {state}'}")
            return 0
        if args.action == "wait":
            status = future.wait(args.timeout)
            _print(status.to_dict())
            return 0 if status.state == futures.COMPLETED else 1
        from pipelines.common import outcomes

        return _print(outcomes.to_dict(future.result(args.timeout)))
    except (futures.JobError, TimeoutError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _print(data: T.Mapping[str, T.Any]) -> int:
    print(json.dumps(data, indent=2))
    return 0
