"""Domain core: schemas, models, metrics and explainers."""
