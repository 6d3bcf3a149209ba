"""A reusable sub-pipeline: a Model artifact in (from your own training step), a TF Serving version out.

Use it three ways: import `serve_model` from Python into your pipeline, load the compiled
`serve_model.yaml` with `kfp.components.load_component_from_file` (or `_url`), or submit
`retrain_and_export`, which puts it after a training step.
"""

from typing import Any

from kfp import dsl
from kfp.dsl import Input, Model, PipelineTask

from kfp_tfserving.components.check_signatures.component import check_signatures
from kfp_tfserving.components.export_savedmodel.component import export_savedmodel
from kfp_tfserving.components.push_to_serving.component import push_to_serving


def export_check_push(model: Any, base_path: Any, **settings: Any) -> PipelineTask:
    """Inside a pipeline body: the export → check → push tasks on a Model channel; returns the push task.

    `settings` are the steps' own parameters by name (signature, contract_uri, version_policy, ...), each
    handed to the step that declares it.
    """

    def own(component) -> dict[str, Any]:
        names = component.component_spec.inputs or {}
        return {k: v for k, v in settings.items() if k in names}

    unknown = set(settings) - {
        name
        for c in (export_savedmodel, check_signatures, push_to_serving)
        for name in c.component_spec.inputs
    }
    if unknown:
        raise TypeError(f"no step takes {', '.join(sorted(unknown))}")
    exported = export_savedmodel(model=model, **own(export_savedmodel))
    checked = check_signatures(model=exported.outputs["exported_model"], **own(check_signatures))
    pushed = push_to_serving(
        model=checked.outputs["checked_model"], base_path=base_path, **own(push_to_serving)
    )
    # A scheduled run must publish every time: a cache hit would silently skip the push.
    pushed.set_caching_options(False)
    return pushed


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
    contract_uri: str = "",
    serving_tf_version: str = "",
    parity_atol: float = 1e-4,
    parity_rtol: float = 1e-4,
    version_policy: str = "next",
    version: int = 0,
    force: bool = False,
    keep: int = 0,
    models_config: str = "",
    label: str = "",
    serving_url: str = "",
    serving_timeout: float = 300.0,
) -> Model:
    pushed = export_check_push(
        model,
        base_path,
        model_name=model_name,
        signature=signature,
        inputs=inputs,
        outputs=outputs,
        feeds=feeds,
        allow_unsafe_deserialization=allow_unsafe_deserialization,
        sample_uri=sample_uri,
        contract_uri=contract_uri,
        serving_tf_version=serving_tf_version,
        parity_atol=parity_atol,
        parity_rtol=parity_rtol,
        version_policy=version_policy,
        version=version,
        force=force,
        keep=keep,
        models_config=models_config,
        label=label,
        serving_url=serving_url,
        serving_timeout=serving_timeout,
    )
    return pushed.outputs["pushed_model"]
