"""Run a compiled pipeline YAML on this machine with kfp.local: the same artifact a cluster runs."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kfp_tfserving.components.common.errors import EXIT_BUG, UserError, find_error_line, find_exit_code
from kfp_tfserving.components.common.redaction import redact
from kfp_tfserving.components.common.tfenv import QUIET_ENV

_TASK_STARTED = re.compile(r"Executing task '([\w-]+)'")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _StepLog(io.StringIO):
    """Keeps every line kfp.local prints; on a terminal, shows which step is running."""

    def __init__(self, status: Any = None):
        super().__init__()
        self._status = status
        self._steps = 0

    def write(self, text: str) -> int:
        if self._status is not None and (match := _TASK_STARTED.search(_ANSI.sub("", text))):
            self._steps += 1
            self._status.update(f"step {self._steps}: {match.group(1)} …")
        return super().write(text)


class _Tee(io.StringIO):
    def __init__(self, stream: Any):
        super().__init__()
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return super().write(text)

    def flush(self) -> None:
        self._stream.flush()


@contextlib.contextmanager
def _captured(log_path: Path, verbose: bool) -> Iterator[io.StringIO]:
    """kfp.local prints step logs through sys.stdout; keep them in a log file unless asked to show them."""
    if verbose:  # shown as it happens, and kept so a failing step's reason can still be found
        buffer = _Tee(sys.stdout)
        with contextlib.redirect_stdout(buffer):
            yield buffer
        return
    status_ctx = contextlib.nullcontext()
    if sys.stderr.isatty():
        from rich.console import Console

        status_ctx = Console(stderr=True).status("starting the pipeline …")
    with status_ctx as status:
        buffer = _StepLog(status)
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            try:
                yield buffer
            finally:
                log_path.write_text(redact(buffer.getvalue()))


def without_retries(pipeline_text: str) -> str:
    """The compiled pipeline without its tasks' retry policies. A local run tries each step once: the
    retries (minutes of backoff) are meant for pods a cluster loses, and here a failure is shown at once to
    the person who started the run."""
    import yaml

    # LibYAML's parser and emitter when PyYAML has them: the pure-Python ones take ~60 ms of each local run.
    loader, dumper = (
        getattr(yaml, "CSafeLoader", yaml.SafeLoader),
        getattr(yaml, "CSafeDumper", yaml.SafeDumper),
    )
    docs = list(yaml.load_all(pipeline_text, Loader=loader))
    spec = docs[0]
    dags = [spec["root"]["dag"], *(c["dag"] for c in spec.get("components", {}).values() if "dag" in c)]
    for dag in dags:
        for task in dag.get("tasks", {}).values():
            task.pop("retryPolicy", None)
    return yaml.dump_all(docs, Dumper=dumper, sort_keys=False)


@contextlib.contextmanager
def _step_tmpdir(path: Path) -> Iterator[None]:
    """The steps' TMPDIR inside the run's root: each step's launcher writes its code to a `mktemp -d` it never
    removes, and the steps' own scratch files belong with the run, removed with it."""
    path.mkdir(parents=True, exist_ok=True)
    saved = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(path)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved


def _keep_only(root: Path, log_path: Path | None) -> None:
    """Remove a failed run's step artifacts (model copies can be gigabytes); keep its log, if any."""
    if log_path is None:
        shutil.rmtree(root, ignore_errors=True)
        return
    for child in root.iterdir():
        if child != log_path:
            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)


def run_pipeline_yaml(
    pipeline_yaml: Path,
    arguments: dict[str, Any],
    *,
    pipeline_root: Path | None = None,
    verbose: bool = False,
) -> dict[str, Any]:
    """Run the pipeline; returns its output artifact's metadata, or raises UserError with the failing step's reason.

    Without a pipeline_root the step artifacts go to a scratch directory, removed after a success; after a
    failure only its run.log stays (the error names it), and nothing at all with `verbose`.
    """
    from kfp import components, local

    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    scratch = pipeline_root is None
    root = Path(tempfile.mkdtemp(prefix="kfp-tfserving-run-")) if scratch else pipeline_root
    root.mkdir(parents=True, exist_ok=True)
    log_path = root / "run.log"
    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root.resolve()), raise_on_error=True
    )
    pipeline = components.load_component_from_text(without_retries(pipeline_yaml.read_text()))
    try:
        with _captured(log_path, verbose) as buffer, _step_tmpdir(root / "tmp"):
            task = pipeline(**arguments)
    except Exception as err:
        reason = find_error_line(buffer.getvalue())
        code = find_exit_code(buffer.getvalue())
        if reason is None:  # no step said why: kfp.local itself, or a step killed before it could
            reason = f"the pipeline failed ({' '.join(str(err).split())[:200]})"
            code = EXIT_BUG
        if scratch:
            _keep_only(root, log_path if not verbose else None)
        raise UserError(reason, None if verbose else f"full log: {log_path}", exit_code=code) from None
    metadata = dict(task.output.metadata)
    if scratch:
        shutil.rmtree(root, ignore_errors=True)
    return metadata
