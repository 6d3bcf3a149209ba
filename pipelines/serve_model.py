"""A reusable sub-pipeline: a Model artifact in (from your own training step), a TF Serving version out.

Use it three ways: import `serve_model` from Python into your pipeline, load the compiled
`serve_model.yaml` with `kfp.components.load_component_from_file` (or `_url`), or submit
`retrain_and_export`, which puts it after a training step.
"""

import inspect
from typing import Any

from kfp import dsl
from kfp.dsl import Input, Model
from kfp.dsl.graph_component import GraphComponent

from kfp_tfserving.components.deploy_kserve.component import deploy_kserve
from kfp_tfserving.pipelines.chain import export_check_push_tasks, sized
from kfp_tfserving.pipelines.parameters import CHAIN, SERVE_MODEL, taking

_MODEL = inspect.Parameter("model", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Input[Model])


@taking(SERVE_MODEL, leading=(_MODEL,), returns=Model)
def _serve_model(model: Input[Model], **parameters: Any) -> Model:
    """Parameters: pipelines/parameters.py SERVE_MODEL (the chain's, then the KServe deploy's)."""
    checked, pushed = export_check_push_tasks(
        model, parameters["base_path"], model_name=parameters["model_name"], **CHAIN.pick(parameters)
    )
    # Serving through KServe is off unless a namespace is given.
    with dsl.If(parameters["kserve_namespace"] != "", name="serve-through-kserve"):
        deployed = deploy_kserve(
            model=checked.outputs["checked_model"],
            pushed_model=pushed.outputs["pushed_model"],
            namespace=parameters["kserve_namespace"],
            name=parameters["kserve_name"],
            storage_uri=parameters["kserve_storage_uri"],
            timeout=parameters["serving_timeout"],
        )
        deployed.set_caching_options(False)  # like the push: a scheduled run must roll out every time
        sized(deployed, "deploy_kserve")
    return pushed.outputs["pushed_model"]


def build() -> GraphComponent:
    """The pipeline, its tasks built now (under `chain.POD_SETTINGS`, if set)."""
    return dsl.pipeline(
        name="serve-model",
        description="Export a trained model as a SavedModel, check it as TF Serving would, and publish it "
        "as the next version under a model base path.",
    )(_serve_model)


serve_model = build()
