"""`python -m pipelines`: the command line (`pipelines.cli`), as `kfp-lifecycle` runs it."""

from __future__ import annotations

import sys

from pipelines.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
