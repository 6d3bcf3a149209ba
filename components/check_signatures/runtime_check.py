"""Run smoke_run in a fresh Python process and turn what it reports into findings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from kfp_tfserving.components.check_signatures.findings import ERROR, Finding
from kfp_tfserving.components.common.tfenv import QUIET_ENV

TIMEOUT_SECONDS = 600


def _died(reason: str) -> Finding:
    return Finding(
        "load-and-run",
        ERROR,
        f"the loading process died: {reason}",
        "make the model self-contained (no custom ops or files outside the SavedModel)",
    )


def run_in_fresh_process(model_dir: Path, write_warmup: bool) -> tuple[dict, list[Finding]]:
    """Load and run `model_dir` in a new interpreter whose working directory is empty."""
    env = {**os.environ, **QUIET_ENV}
    with tempfile.TemporaryDirectory(prefix="kfp-tfserving-check-") as scratch:
        result_path = Path(scratch) / "result.json"
        args = [
            sys.executable,
            "-m",
            "kfp_tfserving.components.check_signatures.smoke_run",
            str(model_dir.resolve()),
            str(result_path),
        ]
        try:
            proc = subprocess.run(
                args + (["--write-warmup"] if write_warmup else []),
                capture_output=True,
                text=True,
                env=env,
                cwd=scratch,  # nothing of the caller's directory is importable or readable by relative path
                timeout=TIMEOUT_SECONDS,
            )
        except subprocess.TimeoutExpired:
            return {}, [_died(f"no answer within {TIMEOUT_SECONDS} s")]
        if not result_path.exists():
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return {}, [_died(f"exit {proc.returncode}: {tail}")]
        result = json.loads(result_path.read_text())
    if "crash" in result:
        return {}, [_died(result["crash"])]
    findings = [Finding(**f) for f in result.pop("findings")]
    return result, findings
