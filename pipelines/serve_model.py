"""A reusable sub-pipeline: a Model artifact in (from your own training step), a TF Serving version out.

Use it three ways: import `serve_model` from Python into your pipeline, load the compiled
`serve_model.yaml` with `kfp.components.load_component_from_file` (or `_url`), or submit
`retrain_and_export`, which puts it after a training step.
"""

from kfp import dsl
from kfp.dsl import Input, Model

from kfp_tfserving.components.deploy_kserve.component import deploy_kserve
from kfp_tfserving.pipelines.chain import export_check_push_tasks, sized


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
    custom_objects: list[str] = [],
    tags: str = "serve",
    sample_uri: str = "",
    contract_uri: str = "",
    serving_tf_version: str = "",
    batching_params: bool = True,
    serving_cpus: int = 0,
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
    kserve_namespace: str = "",
    kserve_name: str = "",
    kserve_storage_uri: str = "",
) -> Model:
    settings = dict(locals())  # the parameters only: each is handed to the step that declares it
    for kserve_setting in ("kserve_namespace", "kserve_name", "kserve_storage_uri"):
        settings.pop(kserve_setting)
    checked, pushed = export_check_push_tasks(settings.pop("model"), settings.pop("base_path"), **settings)
    # Serving through KServe is off unless a namespace is given.
    with dsl.If(kserve_namespace != "", name="serve-through-kserve"):
        deployed = deploy_kserve(
            model=checked.outputs["checked_model"],
            pushed_model=pushed.outputs["pushed_model"],
            namespace=kserve_namespace,
            name=kserve_name,
            storage_uri=kserve_storage_uri,
            timeout=serving_timeout,
        )
        deployed.set_caching_options(False)  # like the push: a scheduled run must roll out every time
        sized(deployed, "deploy_kserve")
    return pushed.outputs["pushed_model"]
