"""KFP wrapper of the check step."""

from kfp import dsl
from kfp.dsl import Input, Markdown, Metrics, Model, Output

from kfp_tfserving.components.common.image import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def check_signatures(
    model: Input[Model],
    checked_model: Output[Model],
    report: Output[Markdown],
    metrics: Output[Metrics],
    contract_uri: str = "",
    serving_tf_version: str = "",
    batching_params: bool = True,
    serving_cpus: int = 0,
    tags: str = "serve",
    sample_uri: str = "",
):
    """Predict TF Serving's verdict on a SavedModel; fail before anything is published.

    The checked model carries a warmup file (assets.extra/tf_serving_warmup_requests) unless it had one.

    Args:
        model: An exported SavedModel.
        checked_model: The same SavedModel plus its warmup file, passed on only when no error-level
            finding stands; metadata `check_report` holds the full report as JSON.
        report: Markdown: the signatures table and every finding.
        metrics: Finding counts, load seconds, the median latency of `serving_default`, and the
            batching sweep's and load test's throughput and latency.
        contract_uri: Optional expected-signature file (YAML or JSON, path or URI); any difference fails.
        serving_tf_version: TensorFlow version of the model server; a model written by a newer one fails
            (default: the TensorFlow in the step's image).
        batching_params: Sweep batch sizes through the serving oracle, load-test the chosen parameters
            with TensorFlow's batch scheduler against the unbatched model, and write batching_params.pbtxt
            into the version only when batching pays (read by TF Serving started with --enable_batching
            --enable_per_model_batching_parameters); the report shows both, the metrics the figures.
        serving_cpus: CPUs of the model server, for num_batch_threads (0: as many as the check step has).
        tags: The tag-set TF Serving loads (its `--saved_model_tags`, comma-separated): the
            meta graph judged, loaded and run.
        sample_uri: The `.npz` or TF Serving JSON request the export compared on; the runtime checks run
            it (then an existing warmup file) before any generated input, and it becomes the warmup file.
    """
    from pathlib import Path

    from kfp_tfserving.components.check_signatures.check_step import run_check_step

    run_check_step(
        Path(model.path),
        model.metadata,
        Path(checked_model.path),
        checked_model.metadata,
        Path(report.path),
        metrics,
        contract_uri,
        serving_tf_version,
        batching_params,
        serving_cpus,
        tags,
        sample_uri,
    )
