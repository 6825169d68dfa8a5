"""Kubeflow Pipelines components for the life of a tabular model, backed by an MLflow registry."""
