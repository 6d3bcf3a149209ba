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
):
    """Predict TF Serving's verdict on a SavedModel; fail before anything is published.

    Args:
        model: An exported SavedModel.
        checked_model: The same SavedModel, passed on only when no error-level finding stands; metadata
            `check_report` holds the full report.
        report: Markdown: the signatures table and every finding.
        metrics: Finding counts, load seconds and the median latency of `serving_default`.
    """
    from pathlib import Path

    from kfp_tfserving.components.check_signatures.checker import run_check_step

    run_check_step(
        Path(model.path),
        model.metadata,
        Path(checked_model.path),
        checked_model.metadata,
        Path(report.path),
        metrics,
    )
