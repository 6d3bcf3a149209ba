"""KFP wrapper of the KServe deploy step."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from kfp_tfserving.components.common.image import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def deploy_kserve(
    model: Input[Model],
    pushed_model: Input[Model],
    namespace: str,
    deployment: Output[Artifact],
    name: str = "",
    storage_uri: str = "",
    runtime_version: str = "2.20.0",
    timeout: float = 600.0,
):
    """Create or patch a KServe InferenceService (TensorFlow predictor) serving the pushed version, wait
    until it is Ready, check the version is AVAILABLE and answers like the export; else roll back.

    Args:
        model: The checked SavedModel (its own answers are what the live request is compared with).
        pushed_model: push_to_serving's output (pushed_version, base_path, model_name).
        namespace: Namespace of the InferenceService.
        deployment: Metadata: inference_service, namespace, storage_uri, runtime_version, serving_url,
            served_version, created.
        name: InferenceService name, which is also the model name TF Serving serves (default: model_name).
        storage_uri: What KServe downloads (default: the base path; a PVC is `pvc://CLAIM/PATH`).
        runtime_version: The TF Serving image tag of KServe's TensorFlow runtime.
        timeout: Seconds to wait for Ready, then for the version to become AVAILABLE.
    """
    from pathlib import Path

    from kfp_tfserving.components.deploy_kserve.inference_service import KServeOptions, run_deploy_step

    options = KServeOptions(
        namespace=namespace,
        name=name,
        storage_uri=storage_uri,
        runtime_version=runtime_version,
        timeout=timeout,
    )
    run_deploy_step(Path(model.path), dict(pushed_model.metadata), options, deployment.metadata)
