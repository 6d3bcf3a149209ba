"""The main pipeline: a model at a path or URI in, a new TF Serving version out."""

from kfp import dsl
from kfp.dsl import Model

from kfp_tfserving.components.load_model.component import load_model
from kfp_tfserving.pipelines.chain import export_check_push, sized


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
    weights_uri: str = "",
    read_deadline: float = 300.0,
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
) -> Model:
    settings = dict(locals())  # the parameters only: each is handed to the step that declares it
    loaded = sized(
        load_model(
            source_uri=settings.pop("source_uri"),
            model_format=settings.pop("model_format"),
            read_deadline=settings.pop("read_deadline"),
            weights_uri=settings.pop("weights_uri"),
        ),
        "load_model",
    )
    pushed = export_check_push(loaded.outputs["model"], settings.pop("base_path"), **settings)
    return pushed.outputs["pushed_model"]
