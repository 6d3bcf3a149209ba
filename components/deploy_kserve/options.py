"""The KServe deploy step's parameters, written once (see components/common/options.py)."""

from kfp_tfserving.components.common.options import REQUIRED, Option, Options

DEPLOY_OPTIONS = Options(
    Option("namespace", str, REQUIRED, "Namespace of the InferenceService."),
    Option(
        "name",
        str,
        "",
        "InferenceService name, which is also the model name TF Serving serves (default: model_name).",
    ),
    Option(
        "storage_uri",
        str,
        "",
        "What KServe downloads (default: the base path; a PVC is `pvc://CLAIM/PATH`).",
    ),
    Option("runtime_version", str, "2.20.0", "The TF Serving image tag of KServe's TensorFlow runtime."),
    Option("timeout", float, 600.0, "Seconds to wait for Ready, then for the version to become AVAILABLE."),
)
