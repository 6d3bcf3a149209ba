"""The check that matters most: does the model load and answer in a process of its own?"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kfp_tfserving.components.check_signatures.findings import ERROR, Finding
from kfp_tfserving.components.common.formats.saved_model_io import SERVING_DEFAULT
from kfp_tfserving.components.common.tfenv import QUIET_ENV

TIMEOUT_SECONDS = 600


def run_in_fresh_process(model_dir: Path) -> tuple[dict, list[Finding]]:
    env = {**os.environ, **QUIET_ENV}
    # The working directory is the model's parent, so nothing of the exporting step is importable by accident.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kfp_tfserving.components.check_signatures.smoke_run",
            str(model_dir.resolve()),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=model_dir.resolve().parent,
        timeout=TIMEOUT_SECONDS,
    )
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    try:
        result = json.loads(last)
    except json.JSONDecodeError:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        result = {"error": f"the loading process died (exit {proc.returncode}): {tail}"}
    if "error" in result:
        return result, [
            Finding(
                "load-and-run",
                ERROR,
                f"loading and running in a fresh process failed: {result['error']}",
                "make the model self-contained (no custom ops or files outside the SavedModel)",
                SERVING_DEFAULT,
            )
        ]
    return result, []
