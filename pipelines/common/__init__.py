"""What every other part of `pipelines` shares: the user-error type, the outcomes of a run."""
