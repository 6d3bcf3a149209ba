"""The check step: run every check on a SavedModel in a fresh process, then write the step's outputs.

The checks themselves, in order, are in check_session.py (CheckSession.run), which this module starts in
a new interpreter; this module stages the model, reads the session's report back and writes the report,
the metrics and the checked model.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kfp_tfserving.components.check_signatures.batching import DEFAULT_BUDGET_SECONDS
from kfp_tfserving.components.check_signatures.batching_report import batching_markdown
from kfp_tfserving.components.check_signatures.batching_report import metrics_of as batching_metrics
from kfp_tfserving.components.check_signatures.check_report import CheckReport
from kfp_tfserving.components.check_signatures.check_session import (
    SELF_CONTAINED_FIX,
    Batching,
    CheckOutcome,
    CheckRequest,
)
from kfp_tfserving.components.check_signatures.contract import Contract, load_contract
from kfp_tfserving.components.check_signatures.findings import ERROR, WARNING, Finding, errors
from kfp_tfserving.components.check_signatures.options import CHECK_OPTIONS
from kfp_tfserving.components.check_signatures.report import markdown_report
from kfp_tfserving.components.check_signatures.version_check import validate_target
from kfp_tfserving.components.common.artifacts import CheckedModelMetadata
from kfp_tfserving.components.common.errors import ModelRejected, reports_errors
from kfp_tfserving.components.common.saved_model.tags import SERVE, Tags, parse_tags
from kfp_tfserving.components.common.storage import storage_for
from kfp_tfserving.components.common.tfenv import QUIET_ENV

TIMEOUT_SECONDS = 600


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


def check_model(model_dir: Path, **options: Any) -> CheckReport:
    """The report of run_check(model_dir, **options) (`kfp-tfserving check`, and the tests)."""
    return run_check(model_dir, **options).report


def run_check(
    model_dir: Path,
    contract: Contract | None = None,
    serving_tf_version: str = "",
    stage_dir: Path | None = None,
    batching: Batching | None = None,
    tags: Tags = SERVE,
    sample_uri: str = "",
) -> CheckOutcome:
    """Every check on model_dir, in a fresh process. The run and the warmup file happen in stage_dir (a copy
    of model_dir the caller keeps, with the generated warmup file), else in a scratch copy. `batching` adds
    the batching sweep and load test, and batching_params.pbtxt when batching pays (unless it says not to
    write). `tags`: the tag-set TF Serving loads; its meta graph is
    the one judged. The runtime checks run `sample_uri` (the request the export's parity ran) before any
    generated input."""
    validate_target(serving_tf_version)
    with _staged(model_dir, stage_dir) as staged, tempfile.TemporaryDirectory() as tmp:
        sample = None
        if sample_uri:
            sample = storage_for(sample_uri).download(sample_uri, Path(tmp) / Path(sample_uri).name)
        request = CheckRequest(
            model_dir, staged, contract, serving_tf_version, parse_tags(tags), sample, batching
        )
        return check_in_fresh_process(request)


def _died(model_dir: Path, reason: str) -> CheckReport:
    finding = Finding("load-and-run", ERROR, f"the checking process died: {reason}", SELF_CONTAINED_FIX)
    return CheckReport(model_dir, {}, [finding])


def check_in_fresh_process(request: CheckRequest) -> CheckOutcome:
    """Run the check session in a new interpreter whose working directory is empty: a crash or a hang of
    the model becomes a finding, not a dead step."""
    with tempfile.TemporaryDirectory(prefix="kfp-tfserving-check-") as scratch:
        request_file, result_file = Path(scratch) / "request.json", Path(scratch) / "result.json"
        request_file.write_text(request.to_json())
        session = "kfp_tfserving.components.check_signatures.check_session"
        try:
            proc = subprocess.run(
                [sys.executable, "-m", session, request_file, result_file],
                capture_output=True,
                text=True,
                env={**os.environ, **QUIET_ENV},
                cwd=scratch,  # nothing of the caller's directory is importable or readable by relative path
                timeout=TIMEOUT_SECONDS,
            )
        except subprocess.TimeoutExpired:
            return CheckOutcome(_died(request.model_dir, f"no answer within {TIMEOUT_SECONDS} s"), {})
        if not result_file.exists():
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return CheckOutcome(_died(request.model_dir, f"exit {proc.returncode}: {tail}"), {})
        result = json.loads(result_file.read_text())
    report = CheckReport.from_dict(result["report"])
    report.model_dir = request.model_dir
    return CheckOutcome(report, result["phase_seconds"])


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
    tags: str = CHECK_OPTIONS.default("tags"),
    sample_uri: str = CHECK_OPTIONS.default("sample_uri"),
) -> CheckReport:
    """Check the exported model; pass it on, with its warmup file, only when no error-level finding stands.

    With batching_params, the model also gets a batching_params.pbtxt measured through the serving oracle
    for a server with serving_cpus CPUs (0: as many as this machine has).
    """
    contract = load_contract(contract_uri) if contract_uri else None
    # The run happens on the copy, away from the exporter's directory; the warmup file lands in it.
    shutil.copytree(model_dir, checked_dir, copy_function=_link_or_copy, dirs_exist_ok=True)
    batching = Batching(DEFAULT_BUDGET_SECONDS, serving_cpus) if batching_params else None
    outcome = run_check(
        model_dir,
        contract,
        serving_tf_version,
        checked_dir,
        batching,
        parse_tags(tags),
        sample_uri,
    )
    report = outcome.report
    if outcome.phase_seconds:  # where the session's time went: the step's log (the benchmarks read it)
        phases = ", ".join(f"{name} {seconds:.2f}" for name, seconds in outcome.phase_seconds.items())
        print(f"check phases (s): {phases}", flush=True)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    markdown = markdown_report(str(model_dir), report)
    runtime = report.runtime
    if runtime.batching is not None:
        markdown = "\n".join([markdown.rstrip("\n"), *batching_markdown(runtime.batching)]) + "\n"
        for key, value in batching_metrics(runtime.batching).items():
            metrics.log_metric(key, value)
    report_path.write_text(markdown)
    counts = report.counts()
    metrics.log_metric("errors", counts[ERROR])
    metrics.log_metric("warnings", counts[WARNING])
    if runtime.load_seconds is not None:
        metrics.log_metric("load_seconds", round(runtime.load_seconds, 4))
    if runtime.median_latency_ms is not None:
        metrics.log_metric("median_latency_ms", round(runtime.median_latency_ms, 4))
    if runtime.warmup is not None:
        metrics.log_metric("warmup_records", runtime.warmup.records)
    for finding in report.findings:
        print(f"{finding.severity}: {finding.one_line()}", flush=True)
    if not report.passed:
        first = errors(report.findings)[0]
        more = len(errors(report.findings)) - 1
        raise ModelRejected(
            f"TF Serving would reject the model: {first.one_line()}" + (f" (and {more} more)" if more else "")
        )
    checked = CheckedModelMetadata.after_check(model_metadata, report.as_dict(), runtime.model_fingerprint)
    checked_metadata.update(checked.to_dict())
    return report


run_check_step = reports_errors(check_step)
