"""KFP wrapper of the push step."""

from kfp import dsl
from kfp.dsl import Input, Markdown, Model, Output

from kfp_tfserving.components.common.image import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def push_to_serving(
    model: Input[Model],
    base_path: str,
    pushed_model: Output[Model],
    push_report: Output[Markdown],
    model_name: str = "",
    version_policy: str = "next",
    version: int = 0,
    force: bool = False,
    keep: int = 0,
    models_config: str = "",
    label: str = "",
    serving_url: str = "",
    serving_timeout: float = 300.0,
    tags: str = "serve",
    run_id: str = "",
):
    """Publish a checked SavedModel atomically as `<base_path>/<version>/` (a local path, gs:// or s3://).

    Args:
        model: A checked SavedModel.
        base_path: TF Serving's `model_base_path`: the directory holding the numeric version directories.
        pushed_model: Metadata with TFX Pusher's keys `pushed` (1: the version is in place, also when it
            already was this model, as Pusher reports), `pushed_destination`, `pushed_version`, plus
            `published` (1: this run wrote the version, 0: unchanged) and `push_outcome` (`published
            version N` or `unchanged: version N kept`), `model_fingerprint`,
            `content_digest`, `manifest_sha256`, `removed_versions`, `version_labels` and the signature.
        push_report: Markdown: what was published (or kept, and why), where, and the model fingerprint.
        model_name: The model's name in TF Serving (default: the last segment of `base_path`).
        version_policy: `next` (highest existing + 1), `timestamp` (unix seconds, as TFX Pusher) or `explicit`.
        version: The version number when `version_policy` is `explicit`.
        force: Publish even when the newest version is already the same model (same model fingerprint).
        keep: Keep this many versions, removing the oldest (never the newest nor a labelled one); 0 keeps all.
        models_config: Path or URI of TF Serving's models.config to create or update ('' leaves it alone).
        label: Version label (e.g. `canary`, `stable`) to point at the pushed version in `models_config`.
        serving_url: `http://host:8501` of a TF Serving watching `base_path`: the new version must become
            AVAILABLE and answer like the export, or it is removed again and the step fails.
        serving_timeout: Seconds to wait for the version to become AVAILABLE.
        tags: The tag-set TF Serving loads, comma-separated (`serve,gpu`): the meta graph the push verifies
            before publishing; a checked model whose export served another tag-set is refused (the
            pipelines give every step the same `tags`).
        run_id: The Kubeflow run that publishes, recorded in the version's manifest as `pipeline_run_id`
            (`kfp-tfserving runs` finds the version a run published by it); the pipelines pass their own
            run's id.
    """
    from pathlib import Path

    from kfp_tfserving.components.push_to_serving.publisher import PushOptions, run_push_step

    options = PushOptions(
        model_name=model_name,
        version_policy=version_policy,
        version=version,
        force=force,
        keep=keep,
        models_config=models_config,
        label=label,
        serving_url=serving_url,
        serving_timeout=serving_timeout,
        tags=tags,
        run_id=run_id,
    )
    run_push_step(
        Path(model.path), model.metadata, pushed_model.metadata, base_path, options, Path(push_report.path)
    )
