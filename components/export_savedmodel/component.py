"""KFP wrapper of the export step."""

from kfp import dsl
from kfp.dsl import Input, Model, Output

from kfp_tfserving.components.common.image import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def export_savedmodel(
    model: Input[Model],
    exported_model: Output[Model],
    signature: str = "",
    inputs: list[str] = [],
    outputs: list[str] = [],
    feeds: list[str] = [],
    allow_unsafe_deserialization: bool = False,
    sample_uri: str = "",
    parity_atol: float = 1e-4,
    parity_rtol: float = 1e-4,
    tags: str = "serve",
    custom_objects: list[str] = [],
):
    """Export the loaded model as a SavedModel TF Serving loads, and prove numeric parity with the source.

    Args:
        model: The load step's artifact (metadata `format` and `entry`).
        exported_model: The SavedModel; metadata holds its signatures and the parity figures per output.
        signature: The source signature to serve as `serving_default` when the source has none.
        inputs: TF1 graphs: input tensor names (default: the graph's placeholders).
        outputs: TF1 graphs: output tensor names (default: the graph's sinks).
        feeds: TF1 graphs: `NAME=VALUE` items that bind a placeholder to a constant.
        allow_unsafe_deserialization: Load models that carry Python code (Keras Lambda layers).
        sample_uri: An `.npz` or TF Serving JSON request to compare on (default: generated inputs).
        parity_atol: Absolute tolerance of the parity check.
        parity_rtol: Relative tolerance of the parity check (both are widened for mixed-precision
            Keras models: 4 x epsilon of the compute dtype, float16 3.9e-3, bfloat16 3.1e-2).
        tags: The tag-set TF Serving loads, comma-separated (`serve,gpu`): a SavedModel source's meta
            graph with exactly these tags is exported (its other meta graphs kept), and every export
            serves its graph under them.
        custom_objects: Keras `MODULE[:NAME,...]` items: each module is imported before loading so its
            registered Python-defined layers deserialize (safe mode stays on). The module must be
            importable in this step's image.
    """
    from pathlib import Path

    from kfp_tfserving.components.export_savedmodel.exporter import run_export_step

    run_export_step(
        Path(model.path),
        model.metadata,
        Path(exported_model.path),
        exported_model.metadata,
        signature=signature,
        inputs=inputs,
        outputs=outputs,
        feeds=feeds,
        allow_unsafe_deserialization=allow_unsafe_deserialization,
        sample_uri=sample_uri,
        parity_atol=parity_atol,
        parity_rtol=parity_rtol,
        tags=tags,
        custom_objects=custom_objects,
    )
