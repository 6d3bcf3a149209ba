"""The push step's parameters, written once (see components/common/options.py)."""

from kfp_tfserving.components.common.options import REQUIRED, Option, Options

VERSION_POLICIES = ("next", "timestamp", "explicit")

PUSH_OPTIONS = Options(
    Option(
        "base_path",
        str,
        REQUIRED,
        "TF Serving's `model_base_path`: the directory holding the numeric version directories.",
        uri=True,
    ),
    Option(
        "model_name",
        str,
        "",
        "The model's name in TF Serving (default: the last segment of `base_path`).",
    ),
    Option(
        "version_policy",
        str,
        "next",
        "`next` (highest existing + 1), `timestamp` (unix seconds, as TFX Pusher) or `explicit`.",
        choices=VERSION_POLICIES,
    ),
    Option("version", int, 0, "The version number when `version_policy` is `explicit`."),
    Option(
        "force",
        bool,
        False,
        "Publish even when the newest version is already the same model (same model fingerprint).",
    ),
    Option(
        "keep",
        int,
        0,
        "Keep this many versions, removing the oldest (never the newest nor a labelled one); 0 keeps all.",
    ),
    Option(
        "models_config",
        str,
        "",
        "Path or URI of TF Serving's models.config to create or update ('' leaves it alone).",
        uri=True,
    ),
    Option(
        "label",
        str,
        "",
        "Version label (e.g. `canary`, `stable`) to point at the pushed version in `models_config`.",
    ),
    Option(
        "serving_url",
        str,
        "",
        "`http://host:8501` of a TF Serving watching `base_path`: the new version must become AVAILABLE "
        "and answer like the export, or it is removed again and the step fails.",
    ),
    Option("serving_timeout", float, 300.0, "Seconds to wait for the version to become AVAILABLE."),
    Option(
        "tags",
        str,
        "serve",
        "The tag-set TF Serving loads, comma-separated (`serve,gpu`): the meta graph the push verifies "
        "before publishing; a checked model whose export served another tag-set is refused (the pipelines give "
        "every step the same `tags`).",
    ),
    Option(
        "run_id",
        str,
        "",
        "The Kubeflow run that publishes, recorded in the version's manifest as `pipeline_run_id` "
        "(`kfp-tfserving runs` finds the version a run published by it); the pipelines pass their own "
        "run's id.",
    ),
)
