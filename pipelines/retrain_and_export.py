"""Retrain a small Keras model and publish it through serve_model: the shape of a recurring run."""

from typing import Any

from kfp import dsl
from kfp.dsl import Model
from kfp.dsl.graph_component import GraphComponent

from kfp_tfserving.components.train_keras_example.component import train_keras_example
from kfp_tfserving.components.train_keras_example.options import TRAIN_OPTIONS
from kfp_tfserving.pipelines import serve_model as serve_model_pipeline
from kfp_tfserving.pipelines.chain import sized
from kfp_tfserving.pipelines.parameters import KSERVE, RETRAIN_AND_EXPORT, taking


def build() -> GraphComponent:
    """The pipeline, its tasks and its serve_model sub-pipeline's built now (under `chain.POD_SETTINGS`,
    if set)."""
    serve_model = serve_model_pipeline.build()

    @taking(RETRAIN_AND_EXPORT, returns=Model)
    def retrain_and_export(**parameters: Any) -> Model:
        """Parameters: pipelines/parameters.py RETRAIN_AND_EXPORT."""
        trained = train_keras_example(**TRAIN_OPTIONS.pick(parameters))
        # The table behind data_uri changes between scheduled runs while the URI stays the same: a cache hit
        # would serve yesterday's model.
        trained.set_caching_options(False)
        sized(trained, "train_keras_example")
        served = serve_model(
            model=trained.outputs["model"],
            base_path=parameters["base_path"],
            model_name=parameters["model_name"],
            force=parameters["force"],
            **KSERVE.pick(parameters),
        )
        return served.output

    return dsl.pipeline(
        name="retrain-and-export",
        description="Train a small Keras regressor on a CSV table (or generated data) and publish it as the "
        "next TF Serving version; meant for a recurring run.",
    )(retrain_and_export)


retrain_and_export = build()
