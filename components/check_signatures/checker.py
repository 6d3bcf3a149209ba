"""Run every check on a SavedModel and produce the step's outputs."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfp_tfserving.components.check_signatures.findings import ERROR, WARNING, Finding, errors
from kfp_tfserving.components.check_signatures.report import markdown_report
from kfp_tfserving.components.check_signatures.runtime_check import run_in_fresh_process
from kfp_tfserving.components.check_signatures.static_checks import STATIC_CHECKS, ModelView
from kfp_tfserving.components.common.errors import FormatError, UserError, reports_errors
from kfp_tfserving.components.common.formats.saved_model_io import SignatureInfo, read_saved_model_proto


@dataclass
class CheckReport:
    model_dir: Path
    signatures: dict[str, SignatureInfo]
    findings: list[Finding]
    runtime: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not errors(self.findings)

    def counts(self) -> dict[str, int]:
        return {sev: sum(f.severity == sev for f in self.findings) for sev in (ERROR, WARNING)}

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_dir": str(self.model_dir),
            "passed": self.passed,
            "signatures": {n: s.as_dict() for n, s in self.signatures.items()},
            "findings": [f.as_dict() for f in self.findings],
            "counts": self.counts(),
            "runtime": self.runtime,
        }


def check_model(model_dir: Path) -> CheckReport:
    try:
        proto = read_saved_model_proto(model_dir)
    except FormatError as err:
        finding = Finding("unreadable-saved-model", ERROR, err.what, err.fix or "export the model again")
        return CheckReport(model_dir, {}, [finding])
    view = ModelView(model_dir, proto)
    findings = [finding for check in STATIC_CHECKS for finding in check(view)]
    runtime: dict = {}
    if not errors(findings):  # a model that fails statically would only fail again, slower
        runtime, runtime_findings = run_in_fresh_process(model_dir)
        findings += runtime_findings
    return CheckReport(model_dir, view.signatures, findings, runtime)


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
) -> CheckReport:
    """Check the exported model; pass it on only when no error-level finding stands."""
    report = check_model(model_dir)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(
        markdown_report(str(model_dir), report.signatures, report.findings, report.runtime)
    )
    counts = report.counts()
    metrics.log_metric("errors", counts[ERROR])
    metrics.log_metric("warnings", counts[WARNING])
    for key in ("load_seconds", "median_latency_ms"):
        if key in report.runtime:
            metrics.log_metric(key, round(report.runtime[key], 4))
    for finding in report.findings:
        print(f"{finding.severity}: {finding.one_line()}", flush=True)
    if not report.passed:
        first = errors(report.findings)[0]
        more = len(errors(report.findings)) - 1
        raise UserError(
            f"TF Serving would reject the model: {first.one_line()}" + (f" (and {more} more)" if more else "")
        )
    shutil.copytree(model_dir, checked_dir, copy_function=_link_or_copy, dirs_exist_ok=True)
    checked_metadata.update(model_metadata)
    checked_metadata["check_report"] = report.as_dict()
    return report


run_check_step = reports_errors(check_step)
