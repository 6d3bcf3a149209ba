"""The main pipeline: a model at a path or URI in, a new TF Serving version out."""

from kfp import dsl
from kfp.dsl import Model

from kfp_tfserving.components.check_signatures.component import check_signatures
from kfp_tfserving.components.export_savedmodel.component import export_savedmodel
from kfp_tfserving.components.load_model.component import load_model
from kfp_tfserving.components.push_to_serving.component import push_to_serving


@dsl.pipeline(
    name="export-to-serving",
    description="Load a pretrained TensorFlow model, export it as a SavedModel, check it as TF Serving "
    "would, and publish it as the next version under a model base path.",
)
def export_to_serving(
    source_uri: str,
    base_path: str,
    model_name: str = "",
    model_format: str = "auto",
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
    loaded = load_model(source_uri=source_uri, model_format=model_format)
    exported = export_savedmodel(
        model=loaded.outputs["model"],
        signature=signature,
        inputs=inputs,
        outputs=outputs,
        feeds=feeds,
        allow_unsafe_deserialization=allow_unsafe_deserialization,
        sample_uri=sample_uri,
        parity_atol=parity_atol,
        parity_rtol=parity_rtol,
    )
    checked = check_signatures(
        model=exported.outputs["exported_model"],
        contract_uri=contract_uri,
        serving_tf_version=serving_tf_version,
    )
    pushed = push_to_serving(
        model=checked.outputs["checked_model"],
        base_path=base_path,
        model_name=model_name,
        version_policy=version_policy,
        version=version,
        force=force,
        keep=keep,
        models_config=models_config,
        label=label,
        serving_url=serving_url,
        serving_timeout=serving_timeout,
    )
    # A scheduled run must publish every time: a cache hit would silently skip the push.
    pushed.set_caching_options(False)
    return pushed.outputs["pushed_model"]
