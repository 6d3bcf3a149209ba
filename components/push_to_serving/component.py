"""KFP wrapper of the push step."""

from kfp import dsl
from kfp.dsl import Input, Model, Output
from kfp_tfserving.components.common.image import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def push_to_serving(
    model: Input[Model],
    base_path: str,
    pushed_model: Output[Model],
    model_name: str = "",
    version_policy: str = "next",
    version: int = 0,
    force: bool = False,
):
    """Publish a checked SavedModel atomically as `<base_path>/<version>/`.

    Args:
        model: A checked SavedModel.
        base_path: TF Serving's `model_base_path`: the directory holding the numeric version directories.
        pushed_model: Metadata with TFX Pusher's keys `pushed`, `pushed_destination`, `pushed_version`,
            plus `content_digest` and the served signature.
        model_name: The model's name in TF Serving (default: the last segment of `base_path`).
        version_policy: `next` (highest existing + 1), `timestamp` (unix seconds, as TFX Pusher) or `explicit`.
        version: The version number when `version_policy` is `explicit`.
        force: Publish even when the newest version already has identical content.
    """
    from pathlib import Path

    from kfp_tfserving.components.push_to_serving.publisher import run_push_step

    run_push_step(
        Path(model.path),
        model.metadata,
        pushed_model.metadata,
        base_path,
        model_name,
        version_policy,
        version,
        force,
    )
