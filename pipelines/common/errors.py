"""The mistakes a user can fix from the command line, and nothing else."""


class UsageError(ValueError):
    """A mistake the user can fix from the command line (unknown pipeline, bad file).

    The CLI prints it as one line and exits with status 2 (`pipelines.cli.guard.guarded`);
    every part of `pipelines` raises it (or a subclass) for a value the user gave.
    """
