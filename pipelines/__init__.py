"""Kubeflow pipelines composed from the project's components, and the CLI that runs them."""
