"""Expected failures of a command: one line on stderr and an exit status, never a traceback."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

import kfp_server_api
import urllib3

from pipelines.common.errors import UsageError

Handler = Callable[[argparse.Namespace], int]


def guarded(handler: Handler) -> Handler:
    """Turn expected failures into one line on stderr and an exit status, not a traceback.

    Exit status 2 for a usage mistake, 1 when KFP refuses or cannot be reached.

    Args:
        handler: a sub-command's handler, taking the parsed arguments.

    Returns:
        The handler, answering its expected failures with an exit status.
    """

    @functools.wraps(handler)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except UsageError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        except kfp_server_api.ApiException as error:
            print(
                f"error: KFP answered {error.status} {error.reason}: {error.body}", file=sys.stderr
            )
            return 1
        except urllib3.exceptions.HTTPError as error:
            print(f"error: cannot reach KFP at {args.host}: {error}", file=sys.stderr)
            return 1

    return wrapper
