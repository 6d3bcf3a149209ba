"""Run every check on a SavedModel and produce the step's outputs."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kfp_tfserving.components.check_signatures.batching import DEFAULT_BUDGET_SECONDS
from kfp_tfserving.components.check_signatures.batching_report import batching_markdown
from kfp_tfserving.components.check_signatures.batching_report import metrics_of as batching_metrics
from kfp_tfserving.components.check_signatures.check_report import CheckReport
from kfp_tfserving.components.check_signatures.contract import Contract, load_contract
from kfp_tfserving.components.check_signatures.findings import ERROR, WARNING, errors
from kfp_tfserving.components.check_signatures.options import CHECK_OPTIONS
from kfp_tfserving.components.check_signatures.report import markdown_report
from kfp_tfserving.components.check_signatures.runtime_check import check_in_fresh_process
from kfp_tfserving.components.check_signatures.version_check import validate_target
from kfp_tfserving.components.common.artifacts import CheckedModelMetadata
from kfp_tfserving.components.common.errors import ModelRejected, reports_errors
from kfp_tfserving.components.common.saved_model.tags import parse_tags
from kfp_tfserving.components.common.storage import storage_for


def _link_or_symlink(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        os.symlink(os.path.abspath(src), dst)


@contextlib.contextmanager
def _staged(model_dir: Path, stage_dir: Path | None) -> Iterator[Path]:
    """The model as the run sees it: in stage_dir, or in a scratch copy of links that is thrown away."""
    if stage_dir is not None:
        yield stage_dir
        return
    with tempfile.TemporaryDirectory(prefix="kfp-tfserving-stage-") as scratch:
        staged = Path(scratch) / "model"
        shutil.copytree(model_dir, staged, copy_function=_link_or_symlink)
        yield staged


def check_model(
    model_dir: Path,
    contract: Contract | None = None,
    serving_tf_version: str = "",
    stage_dir: Path | None = None,
    batching: dict | None = None,
    saved_model_tags: str = CHECK_OPTIONS.default("saved_model_tags"),
    sample_uri: str = "",
) -> CheckReport:
    """Every check on model_dir, in a fresh process. The run and the warmup file happen in stage_dir (a copy
    of model_dir the caller keeps, with the generated warmup file), else in a scratch copy. `batching`
    ({"budget_seconds", "serving_cpus"[, "write"]}) adds the batching sweep and load test, and
    batching_params.pbtxt when batching pays.
    saved_model_tags: the tag-set TF Serving loads ("serve,gpu"); its meta graph is the one judged.
    The runtime checks run `sample_uri` (the request the export's parity ran) before any generated input."""
    validate_target(serving_tf_version)
    tags = parse_tags(saved_model_tags)
    with _staged(model_dir, stage_dir) as staged, tempfile.TemporaryDirectory() as tmp:
        sample = None
        if sample_uri:
            sample = storage_for(sample_uri).download(sample_uri, Path(tmp) / Path(sample_uri).name)
        return check_in_fresh_process(model_dir, staged, contract, serving_tf_version, batching, tags, sample)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        Path(dst).hardlink_to(src)  # same filesystem (local runs): no second copy of the weights
    except OSError:
        shutil.copy2(src, dst)


def check_step(
    model_dir: Path,
    model_metadata: dict[str, Any],
    checked_dir: Path,
    checked_metadata: dict[str, Any],
    report_path: Path,
    metrics: Any,
    contract_uri: str = CHECK_OPTIONS.default("contract_uri"),
    serving_tf_version: str = CHECK_OPTIONS.default("serving_tf_version"),
    batching_params: bool = CHECK_OPTIONS.default("batching_params"),
    serving_cpus: int = CHECK_OPTIONS.default("serving_cpus"),
    saved_model_tags: str = CHECK_OPTIONS.default("saved_model_tags"),
    sample_uri: str = CHECK_OPTIONS.default("sample_uri"),
) -> CheckReport:
    """Check the exported model; pass it on, with its warmup file, only when no error-level finding stands.

    With batching_params, the model also gets a batching_params.pbtxt measured through the serving oracle
    for a server with serving_cpus CPUs (0: as many as this machine has).
    """
    contract = load_contract(contract_uri) if contract_uri else None
    # The run happens on the copy, away from the exporter's directory; the warmup file lands in it.
    shutil.copytree(model_dir, checked_dir, copy_function=_link_or_copy, dirs_exist_ok=True)
    batching = (
        {"budget_seconds": DEFAULT_BUDGET_SECONDS, "serving_cpus": serving_cpus} if batching_params else None
    )
    report = check_model(
        model_dir,
        contract,
        serving_tf_version,
        stage_dir=checked_dir,
        batching=batching,
        saved_model_tags=saved_model_tags,
        sample_uri=sample_uri,
    )
    report_path.parent.mkdir(parents=True, exist_ok=True)
    markdown = markdown_report(str(model_dir), report)
    if "batching" in report.runtime:
        markdown = "\n".join([markdown.rstrip("\n"), *batching_markdown(report.runtime["batching"])]) + "\n"
        for key, value in batching_metrics(report.runtime["batching"]).items():
            metrics.log_metric(key, value)
    report_path.write_text(markdown)
    counts = report.counts()
    metrics.log_metric("errors", counts[ERROR])
    metrics.log_metric("warnings", counts[WARNING])
    for key in ("load_seconds", "median_latency_ms"):
        if key in report.runtime:
            metrics.log_metric(key, round(report.runtime[key], 4))
    if "warmup" in report.runtime:
        metrics.log_metric("warmup_records", report.runtime["warmup"]["records"])
    for finding in report.findings:
        print(f"{finding.severity}: {finding.one_line()}", flush=True)
    if not report.passed:
        first = errors(report.findings)[0]
        more = len(errors(report.findings)) - 1
        raise ModelRejected(
            f"TF Serving would reject the model: {first.one_line()}" + (f" (and {more} more)" if more else "")
        )
    checked = CheckedModelMetadata.after_check(
        model_metadata, report.as_dict(), report.runtime.get("model_fingerprint", "")
    )
    checked_metadata.update(checked.to_dict())
    return report


run_check_step = reports_errors(check_step)
