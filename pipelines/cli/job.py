"""`job status|wait|cancel|result ID`, `job list`, `job prune`: the runs started with `--detach`.

Usage:
    ID=$(python -m pipelines run inference --local --config confs/bike-sharing.yaml --detach)
    python -m pipelines job status $ID      # {"state": "running", "submitted_at": ...}
    python -m pipelines job wait $ID        # blocks until it ends; exit status 0 if completed
    python -m pipelines job result $ID      # {"kind": "Predictions", "uri": ..., "rows": ...}
    python -m pipelines job cancel $ID
    python -m pipelines job list [--state S] [--host URL] [--json]   # newest first
    python -m pipelines job prune --older-than DAYS [--state S] [--dry-run]   # local jobs only
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

ACTIONS = {
    "status": "Print where the job is: its state, times and error.",
    "wait": "Wait for the job to end; exit status 0 if it completed.",
    "cancel": "Stop the job (a local one leaves no output).",
    "result": "Print what the job produced; exit status 1 if it failed.",
}
# The states a job reaches (pipelines.jobs.futures), for help texts: checked by the listing.
STATES = "queued, running, completed, errored, canceled"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`job ACTION ID [options]`, `job list [options]`, `job prune --older-than DAYS [options]`."""
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, help_text in ACTIONS.items():
        follow = actions.add_parser(action, help=help_text, description=help_text)
        follow.add_argument("id", help="the job id: local:<16 hex digits> or kfp:<run id>")
        _add_config(follow)
        _add_kfp(
            follow, "KFP API endpoint for a kfp: id", "the config's, else $KF_PIPELINES_ENDPOINT"
        )
        follow.add_argument(
            "--timeout",
            type=float,
            default=None,
            help="seconds `wait` and `result` wait at most (default: until the job ends)",
        )
        follow.set_defaults(handler=job_command)

    lister = actions.add_parser(
        "list",
        help="List the jobs, newest first: id, pipeline, state, times, duration.",
        description="List the local jobs (the jobs folder of --config, else the default one) "
        "and, with --host or a KFP backend in --config, this project's runs on KFP; newest "
        "first. A job folder that cannot be read is listed as unreadable, with why.",
    )
    lister.add_argument("--state", default=None, help=f"only the jobs in this state: {STATES}")
    _add_config(lister)
    _add_kfp(lister, "also list this KFP cluster's runs", "the config's KFP backends, if any")
    lister.add_argument("--json", action="store_true", help="print a JSON list, one object per job")
    lister.set_defaults(handler=list_command)

    pruner = actions.add_parser(
        "prune",
        help="Remove the local jobs that ended more than DAYS ago.",
        description="Remove the local jobs (their folders, outputs included) that ended "
        "(completed, errored, canceled) more than DAYS ago; a queued or running job is never "
        "removed, nor one whose worker still runs. KFP runs are never pruned: the cluster "
        "keeps its own runs.",
    )
    pruner.add_argument(
        "--older-than",
        required=True,
        metavar="DAYS",
        help="days since the job ended (0: every job that ended)",
    )
    pruner.add_argument(
        "--state", default=None, help="only the jobs that ended so: completed, errored, canceled"
    )
    _add_config(pruner)
    pruner.add_argument(
        "--dry-run", action="store_true", help="print what would be removed; remove nothing"
    )
    pruner.set_defaults(handler=prune_command)


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="run config whose model_management section names the backends (jobs folder, host)",
    )


def _add_kfp(parser: argparse.ArgumentParser, what: str, default: str) -> None:
    parser.add_argument("--host", default=None, help=f"{what} (default: {default})")
    parser.add_argument("--namespace", default=None, help="profile namespace on multi-user KFP")
    parser.add_argument(
        "--token-env", default=TOKEN_ENV, help="environment variable holding a bearer token"
    )


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


@guarded
def list_command(args: argparse.Namespace) -> int:
    """Print the jobs, newest first, as a table (or JSON)."""
    from pipelines.jobs import listing, management

    listing.check_state(args.state)  # before the config loads MLflow
    manager = management.manager_of(args.config)
    jobs = manager.list_jobs(args.state, args.host, args.namespace, args.token_env)
    if args.json:
        print(json.dumps([job.to_dict() for job in jobs], indent=2))
    else:
        print("\n".join(listing.table(jobs)))
    return 0


@guarded
def prune_command(args: argparse.Namespace) -> int:
    """Remove (or with --dry-run name) the local jobs that ended before the cut-off."""
    from pipelines.jobs import listing, management

    older_than = listing.days(args.older_than)
    listing.check_state(args.state, listing.ENDED)
    report = management.manager_of(args.config).prune_jobs(older_than, args.state, args.dry_run)
    verb = "would remove" if report.dry_run else "removed"
    for pruned in report.removed:
        job, size = pruned.job, listing.size_text(pruned.size)
        ended = listing.when_text(job.ended_at)
        print(f"{verb} {job.id}  {job.pipeline or '-'}  {job.state}  ended {ended} UTC  {size}")
    count, freed = len(report.removed), listing.size_text(report.bytes_freed)
    summary = f"{verb} {count} job{'' if count == 1 else 's'}, "
    if report.dry_run:
        summary += f"would free {freed} (dry run: nothing removed)"
    else:
        summary += f"freed {freed}"
    print(summary)
    return 0


def _print(data: T.Mapping[str, T.Any]) -> int:
    print(json.dumps(data, indent=2))
    return 0
