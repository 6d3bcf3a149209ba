"""Start fresh_check in a new Python process and read back its report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from kfp_tfserving.components.check_signatures.check_report import CheckReport
from kfp_tfserving.components.check_signatures.contract import Contract
from kfp_tfserving.components.check_signatures.findings import ERROR, Finding
from kfp_tfserving.components.common.tfenv import QUIET_ENV

TIMEOUT_SECONDS = 600


def _died(model_dir: Path, reason: str) -> CheckReport:
    finding = Finding(
        "load-and-run",
        ERROR,
        f"the checking process died: {reason}",
        "make the model self-contained (no custom ops or files outside the SavedModel)",
    )
    return CheckReport(model_dir, {}, [finding])


def check_in_fresh_process(
    model_dir: Path,
    staged: Path,
    contract: Contract | None,
    serving_tf_version: str,
    batching: dict | None = None,
    tags: tuple[str, ...] = ("serve",),
    sample: Path | None = None,
) -> CheckReport:
    """Run every check in a new interpreter whose working directory is empty."""
    with tempfile.TemporaryDirectory(prefix="kfp-tfserving-check-") as scratch:
        request, result = Path(scratch) / "request.json", Path(scratch) / "result.json"
        request.write_text(
            json.dumps(
                {
                    "model_dir": str(model_dir.resolve()),
                    "staged": str(staged.resolve()),
                    "contract": contract,
                    "serving_tf_version": serving_tf_version,
                    "batching": batching,
                    "tags": list(tags),
                    "sample": str(sample.resolve()) if sample else "",
                }
            )
        )
        try:
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "kfp_tfserving.components.check_signatures.fresh_check",
                    request,
                    result,
                ],
                capture_output=True,
                text=True,
                env={**os.environ, **QUIET_ENV},
                cwd=scratch,  # nothing of the caller's directory is importable or readable by relative path
                timeout=TIMEOUT_SECONDS,
            )
        except subprocess.TimeoutExpired:
            return _died(model_dir, f"no answer within {TIMEOUT_SECONDS} s")
        if not result.exists():
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return _died(model_dir, f"exit {proc.returncode}: {tail}")
        report = CheckReport.from_dict(json.loads(result.read_text()))
    report.model_dir = model_dir
    return report
