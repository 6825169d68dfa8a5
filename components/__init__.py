"""Kubeflow Pipelines components for the life of a tabular model, backed by an MLflow registry.

The public components are `train`, `evaluate`, `promote`, `predict`, `explain` and `notify`
(`from components import train`), and for predictions sharded over pods `plan_shards`,
`predict_shard` and `publish_predictions`; `monitor` scores predictions once their ground truth
arrives; a tuning plans its trials with `plan_trials`, trains each with `train`, and
registers the best with `select_trial`. They are imported on first use: inside a running step
the package serves the jobs only, and KFP's executor must not re-create the components.
"""

import importlib

# component name -> the module that defines it
COMPONENTS = {
    "train": "components.training",
    "evaluate": "components.evaluation",
    "promote": "components.promotion",
    "predict": "components.inference",
    "explain": "components.explanations",
    "notify": "components.alerts",
    "plan_shards": "components.planning",
    "predict_shard": "components.sharded_inference",
    "publish_predictions": "components.publication",
    "monitor": "components.monitoring",
    "plan_trials": "components.trials",
    "select_trial": "components.selection",
}

__all__ = list(COMPONENTS)


def __getattr__(name: str):
    if name in COMPONENTS:
        return getattr(importlib.import_module(COMPONENTS[name]), name)
    raise AttributeError(f"module 'components' has no attribute {name!r}")
