"""Inputs and outputs: datasets, model registries, and services (logging, MLflow, alerts)."""
