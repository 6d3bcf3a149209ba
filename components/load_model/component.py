"""KFP wrapper of the load step."""

from kfp import dsl
from kfp.dsl import Model, Output
from kfp_tfserving.components.common.image import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def load_model(source_uri: str, model: Output[Model], model_format: str = "auto"):
    """Fetch a pretrained TensorFlow model and detect its format.

    Args:
        source_uri: Local path (or mounted PVC path) of the model file or directory.
        model: The fetched model files; metadata `format` names the detected format and `entry` the
            model's path inside the artifact.
        model_format: `auto` to detect, or a format name to insist on (see the component README).
    """
    from pathlib import Path

    from kfp_tfserving.components.load_model.loader import run_load_step

    run_load_step(source_uri, Path(model.path), model.metadata, model_format)
