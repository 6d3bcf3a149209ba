"""The main pipeline: a model at a path or URI in, a new TF Serving version out."""

from typing import Any

from kfp import dsl
from kfp.dsl import Model
from kfp.dsl.graph_component import GraphComponent

from kfp_tfserving.components.load_model.component import load_model
from kfp_tfserving.pipelines.chain import export_check_push, sized
from kfp_tfserving.pipelines.parameters import CHAIN, EXPORT_TO_SERVING, taking


@taking(EXPORT_TO_SERVING, returns=Model)
def _export_to_serving(**parameters: Any) -> Model:
    """Parameters: pipelines/parameters.py EXPORT_TO_SERVING (the load step's, then the chain's)."""
    loaded = sized(
        load_model(
            source_uri=parameters["source_uri"],
            model_format=parameters["model_format"],
            read_deadline=parameters["read_deadline"],
            weights_uri=parameters["weights_uri"],
            stall_timeout=parameters["stall_timeout"],
        ),
        "load_model",
    )
    pushed = export_check_push(
        loaded.outputs["model"],
        parameters["base_path"],
        model_name=parameters["model_name"],
        **CHAIN.pick(parameters),
    )
    return pushed.outputs["pushed_model"]


def build() -> GraphComponent:
    """The pipeline, its tasks built now (under `chain.POD_SETTINGS`, if set)."""
    return dsl.pipeline(
        name="export-to-serving",
        description="Load a pretrained TensorFlow model, export it as a SavedModel, check it as TF Serving "
        "would, and publish it as the next version under a model base path.",
    )(_export_to_serving)


export_to_serving = build()
