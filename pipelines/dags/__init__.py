"""The pipelines (DAGs), their parameters' descriptions and defaults, and where their steps run."""
