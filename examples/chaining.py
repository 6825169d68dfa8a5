"""Chain your own KFP component into the project's components, and nest a compiled pipeline.

`prepared` feeds a user's own `Output[Dataset]` straight into `train`, `predict` and `explain`
(typed artifacts, no path strings). `nested` loads the compiled `inference` pipeline with
`kfp.components.load_component_from_file` and runs it as one step of a user's pipeline.

Run both here with kfp.local (local MLflow store, no cluster):

    .venv/bin/python examples/chaining.py

On a cluster, compile them instead (`kfp.compiler.Compiler().compile(prepared, "p.yaml")`).
"""

import pathlib

from kfp import components, dsl
from kfp.dsl import Dataset, Input, Output

import components as lifecycle
from components.image import IMAGE

COMPILED = pathlib.Path(__file__).resolve().parents[1] / "pipelines" / "compiled"


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def prepare(source: str, rows: int, table: Output[Dataset]):
    """A team's own step: pick the rows to learn from, then hand a Dataset on.

    Args:
        source: the raw table (a path, a URI or demo://).
        rows: how many rows to keep.
        table: the prepared rows, as Parquet (no extension: the readers default to Parquet).
    """
    import pandas as pd

    from components import demo

    frame = pd.read_parquet(demo.resolve(source))
    frame = frame[frame["weathersit"] < 4].head(rows)  # drop the rare storms, keep the rest
    frame.to_parquet(table.path, index=False)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def count_rows(predictions: Input[Dataset]) -> int:
    """A team's own step after predict: read the predictions Dataset it produced.

    Args:
        predictions: the predictions of the `predict` step.
    """
    import pyarrow.parquet as pq

    return pq.ParquetFile(predictions.path).metadata.num_rows


@dsl.pipeline(name="prepared")
def prepared(
    source: str = "demo://bike-sharing/hour.parquet",
    rows: int = 3000,
    model_name: str = "bike-prepared",
) -> int:
    """Prepare rows with a user component, then train, promote, predict and explain on them.

    Args:
        source: the raw table.
        rows: how many rows to use.
        model_name: the registered model name.
    """
    table = prepare(source=source, rows=rows).outputs["table"]
    train = lifecycle.train(
        dataset=table,
        target="cnt",
        model_name=model_name,
        exclude=["instant", "dteday", "casual", "registered"],
        model_params={"max_iter": 30},
        experiment=model_name,
    )
    promote = lifecycle.promote(
        model_name=model_name, version=train.outputs["version"], experiment=model_name
    )
    predict = lifecycle.predict(
        dataset=table, model_name=model_name, passthrough=["instant"], experiment=model_name
    ).after(promote)
    lifecycle.explain(
        dataset=table, model_name=model_name, max_samples=50, experiment=model_name
    ).after(promote)
    return count_rows(predictions=predict.outputs["predictions"]).output


def inference_component():
    """The compiled `inference` pipeline, loaded as a component a user pipeline can call."""
    return components.load_component_from_file(str(COMPILED / "inference.yaml"))


@dsl.pipeline(name="nested")
def nested(data: str = "demo://bike-sharing/hour.parquet", model_name: str = "bike-prepared"):
    """Run the project's compiled `inference` pipeline as one step of a user's pipeline.

    Args:
        data: the rows to predict and explain.
        model_name: the registered model whose Champion predicts.
    """
    inference = inference_component()
    inference(data=data, model_name=model_name, max_samples=20, experiment=model_name)


def main() -> None:
    """Run both pipelines with kfp.local in this Python environment."""
    import os

    from kfp import local

    from components.io import services

    os.environ.setdefault("MLFLOW_TRACKING_URI", services.default_tracking_uri())
    root = services.lifecycle_home() / "examples"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    rows = prepared()
    print(f"prepared: predicted {rows.output} rows")
    nested()
    print("nested: the compiled inference pipeline ran as a step")


if __name__ == "__main__":
    main()
