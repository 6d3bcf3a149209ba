"""A reusable sub-pipeline: a Model artifact in (from your own training step), a TF Serving version out.

Use it three ways: import `serve_model` from Python into your pipeline, load the compiled
`serve_model.yaml` with `kfp.components.load_component_from_file` (or `_url`), or submit
`retrain_and_export`, which puts it after a training step.
"""

from kfp import dsl
from kfp.dsl import Input, Model

from kfp_tfserving.components.check_signatures.component import check_signatures
from kfp_tfserving.components.export_savedmodel.component import export_savedmodel
from kfp_tfserving.components.push_to_serving.component import push_to_serving


@dsl.pipeline(
    name="serve-model",
    description="Export a trained model as a SavedModel, check it as TF Serving would, and publish it as "
    "the next version under a model base path.",
)
def serve_model(
    model: Input[Model],
    base_path: str,
    model_name: str = "",
    signature: str = "",
    inputs: list[str] = [],
    outputs: list[str] = [],
    feeds: list[str] = [],
    allow_unsafe_deserialization: bool = False,
    sample_uri: str = "",
    parity_atol: float = 1e-4,
    parity_rtol: float = 1e-4,
    contract_uri: str = "",
    version_policy: str = "next",
    version: int = 0,
    force: bool = False,
) -> Model:
    exported = export_savedmodel(
        model=model,
        signature=signature,
        inputs=inputs,
        outputs=outputs,
        feeds=feeds,
        allow_unsafe_deserialization=allow_unsafe_deserialization,
        sample_uri=sample_uri,
        parity_atol=parity_atol,
        parity_rtol=parity_rtol,
    )
    checked = check_signatures(model=exported.outputs["exported_model"], contract_uri=contract_uri)
    pushed = push_to_serving(
        model=checked.outputs["checked_model"],
        base_path=base_path,
        model_name=model_name,
        version_policy=version_policy,
        version=version,
        force=force,
    )
    # A scheduled run must publish every time: a cache hit would silently skip the push.
    pushed.set_caching_options(False)
    return pushed.outputs["pushed_model"]
