"""Run a compiled pipeline YAML on this machine with kfp.local: the same artifact a cluster runs."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from kfp_tfserving.components.common.errors import UserError, find_error_line
from kfp_tfserving.components.common.tfenv import QUIET_ENV


@contextlib.contextmanager
def _captured(log_path: Path, verbose: bool):
    """kfp.local prints step logs through sys.stdout; keep them in a log file unless asked to show them."""
    if verbose:
        yield io.StringIO()
        return
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        try:
            yield buffer
        finally:
            log_path.write_text(buffer.getvalue())


def run_pipeline_yaml(
    pipeline_yaml: Path,
    arguments: dict[str, Any],
    *,
    pipeline_root: Path | None = None,
    verbose: bool = False,
) -> dict[str, Any]:
    """Run the pipeline; returns the metadata of its output artifact. UserError with the failing step's reason."""
    from kfp import components, local

    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    root = pipeline_root or Path(tempfile.mkdtemp(prefix="kfp-tfserving-run-"))
    root.mkdir(parents=True, exist_ok=True)
    log_path = root / "run.log"
    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root.resolve()), raise_on_error=True
    )
    pipeline = components.load_component_from_file(str(pipeline_yaml))
    try:
        with _captured(log_path, verbose) as buffer:
            task = pipeline(**arguments)
    except Exception as err:
        reason = find_error_line(buffer.getvalue())
        if reason is None:
            reason = f"the pipeline failed ({' '.join(str(err).split())[:200]})"
        raise UserError(reason, None if verbose else f"full log: {log_path}") from None
    return dict(task.output.metadata)


def in_progress_message(stream=sys.stderr) -> None:
    if stream.isatty():
        print("Running load → export → check → push (kfp.local) …", file=stream, flush=True)
