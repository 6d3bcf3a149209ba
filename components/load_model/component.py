"""KFP wrapper of the load step."""

from kfp import dsl
from kfp.dsl import Model, Output

from kfp_tfserving.components.common.image import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def load_model(
    source_uri: str,
    model: Output[Model],
    model_format: str = "auto",
    max_extract_bytes: int = 0,
    read_deadline: float = 300.0,
    stall_timeout: float = 60.0,
    weights_uri: str = "",
):
    """Fetch a pretrained TensorFlow model and detect its format.

    Args:
        source_uri: The model file or directory: a local or mounted-PVC path, `gs://`, `s3://` or
            `http(s)://`; `.tar.gz`, `.tgz`, `.tar` and `.zip` archives are unpacked safely.
        model: The fetched model files; metadata `format` names the detected format and `entry` the
            model's path inside the artifact.
        model_format: `auto` to detect, or a format name to insist on (see the component README).
        max_extract_bytes: Refuse archives expanding past this many bytes (0: the default limit, 20 GiB).
        read_deadline: Seconds a remote read may go without an answer (connecting, retrying, stalled)
            before the step fails with "timed out after N s"; receiving data restarts it.
        stall_timeout: Seconds a remote read may receive nothing before the step fails (the read
            timeout; a stalled read is not retried); a download that keeps moving is never cut.
        weights_uri: The weights file (HDF5, any name) of a Keras architecture file given as
            `source_uri` (`model.to_json()`/`to_yaml()`, Keras 3 `config.json`); both are fetched side by
            side and loaded as format `keras_architecture_weights`.
    """
    from pathlib import Path

    from kfp_tfserving.components.load_model.loader import run_load_step

    run_load_step(
        source_uri,
        Path(model.path),
        model.metadata,
        model_format,
        max_extract_bytes,
        read_deadline,
        weights_uri,
        stall_timeout,
    )
